"""The fast PNG path (issue 20): libdeflate or zlib inflate + the C unfilter of ``cityscapes_io._png``.

Every decoded array is compared with Pillow's decode of the same bytes, over PNGs written here
with each of the five filter types (and mixtures of them, row by row), every colour type and
bit depth the library reads, one or several IDAT chunks; the layouts the fast path leaves to
Pillow (bit depths below 8, interlaced, 16-bit colour) are checked to come out the same too.
Corrupt image data is an ``InvalidFileError`` naming the file on the fast path. The C unfilter
is also checked on its own against a reference written here in Python, for every number of
bytes per pixel, in place and out of place, and its Paeth predictor over all 2^24 inputs.
"""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from cityscapes_io import decoder, png
from cityscapes_io.errors import InvalidFileError

fast_only = pytest.mark.skipif(not png.fast_path_active(),
                               reason=f"the fast path is not active: {decoder.why_pure_python()}")

# -- a PNG writer with a chosen filter per row -------------------------------------------------------------


def _predict(kind, cur_left, above, above_left):
    a, b, c = (x.astype(np.int16) for x in (cur_left, above, above_left))
    if kind == 1:
        return a
    if kind == 2:
        return b
    if kind == 3:
        return (a + b) // 2
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_rows(rows: np.ndarray, bpp: int, filters) -> bytes:
    """``rows`` (h × stride bytes) filtered, row r with ``filters[r % len(filters)]``."""
    h, stride = rows.shape
    out = bytearray()
    prev = np.zeros(stride, np.uint8)
    for r in range(h):
        kind = filters[r % len(filters)]
        row = rows[r]
        if kind == 0:
            filt = row
        else:
            left = np.concatenate([np.zeros(bpp, np.uint8), row[:-bpp]])
            upleft = np.concatenate([np.zeros(bpp, np.uint8), prev[:-bpp]])
            filt = ((row.astype(np.int16) - _predict(kind, left, prev, upleft)) % 256).astype(np.uint8)
        out.append(kind)
        out += filt.tobytes()
        prev = row
    return bytes(out)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def make_png(raw: bytes, width: int, height: int, depth: int, color: int, *, idats: int = 1,
             interlace: int = 0, palette: bytes = b"", compressed: bytes = b"") -> bytes:
    stream = compressed or zlib.compress(raw, 6)
    step = max(1, -(-len(stream) // idats))
    parts = [stream[i:i + step] for i in range(0, len(stream), step)] or [b""]
    head = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    return (png._SIGNATURE + _chunk(b"IHDR", head) + (_chunk(b"PLTE", palette) if palette else b"")
            + b"".join(_chunk(b"IDAT", p) for p in parts) + _chunk(b"IEND", b""))


LAYOUTS = {  # name: (colour type, bit depth, samples per pixel, numpy dtype)
    "gray8": (0, 8, 1, np.uint8), "gray16": (0, 16, 1, np.uint16), "paletted": (3, 8, 1, np.uint8),
    "rgb8": (2, 8, 3, np.uint8), "rgba8": (6, 8, 4, np.uint8),
}


def label_like(rng, h, w, channels, dtype):
    """Flat regions (as in label images) with some noise rows: flat runs and busy bytes."""
    top = 65536 if dtype == np.uint16 else 256
    blocks = rng.integers(0, top, size=(h // 7 + 1, w // 9 + 1, channels))
    img = np.repeat(np.repeat(blocks, 7, axis=0), 9, axis=1)[:h, :w].astype(dtype)
    img[h // 2] = rng.integers(0, top, size=(w, channels))
    return img[:, :, 0] if channels == 1 else img


def encode(img: np.ndarray, color: int, depth: int, filters, **kw) -> bytes:
    h, w = img.shape[:2]
    rows = img.astype(">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, -1)
    bpp = rows.shape[1] // w
    pal = np.repeat(np.arange(256, dtype=np.uint8), 3).tobytes() if color == 3 else b""  # gray
    return make_png(filter_rows(rows, bpp, filters), w, h, depth, color, palette=pal, **kw)


def pillow(data: bytes, rgb: bool) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    if rgb and im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def decode(data: bytes, rgb: bool) -> np.ndarray:
    return png.decode_rgb(data, "x.png") if rgb else png.decode_gray(data, "x.png")


@pytest.fixture(params=["fast", "zlib", "pure"])
def path(request, monkeypatch):
    """Each decoder tier: C unfilter after libdeflate, after zlib, and Pillow alone."""
    if request.param != "pure" and not png.fast_path_active():
        pytest.skip(f"the fast path is not active: {decoder.why_pure_python()}")
    if request.param == "fast" and png._INFLATE is None:
        pytest.skip("the deflate package is not installed")
    if request.param == "zlib":
        monkeypatch.setattr(png, "_INFLATE", None)
        monkeypatch.setattr(png, "_DEFLATE", None)
        monkeypatch.setattr(png, "_crc32", zlib.crc32)
    if request.param == "pure":
        monkeypatch.setattr(png, "_UNFILTER", None)
    return request.param


FILTER_SETS = [(0,), (1,), (2,), (3,), (4,), (4, 2, 1, 3, 0), (2, 4, 4, 1)]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("filters", FILTER_SETS, ids=lambda f: "".join(map(str, f)))
def test_every_filter_and_layout_decodes_as_pillow_does(path, layout, filters):
    color, depth, channels, dtype = LAYOUTS[layout]
    rng = np.random.default_rng(len(filters) * 31 + color)
    for h, w in [(1, 1), (2, 3), (29, 61), (64, 131)]:
        img = label_like(rng, h, w, channels, dtype)
        data = encode(img, color, depth, filters, idats=3 if h > 30 else 1)
        for rgb in ((True,) if channels > 1 else (False, True)):
            got, want = decode(data, rgb), pillow(data, rgb)
            assert got.dtype == want.dtype and got.shape == want.shape, (layout, h, w, rgb)
            assert np.array_equal(got, want), (layout, filters, h, w, rgb)
        if not rgb and channels == 1:
            assert np.array_equal(got, img)  # and it is the image that was written


@pytest.mark.parametrize("filters", [(4,), (1,), (3,)])
def test_random_photo_bytes_decode_as_pillow_does(path, filters):
    """Busy bytes (no flat runs): the SIMD Paeth of 3 and 4 bytes a pixel and the scalar loops."""
    rng = np.random.default_rng(7)
    for channels, color in [(3, 2), (4, 6)]:
        img = rng.integers(0, 256, size=(37, 203, channels), dtype=np.uint8)
        data = encode(img, color, 8, filters)
        assert np.array_equal(decode(data, True), pillow(data, True))


def test_the_fast_path_gives_writable_native_arrays(path):
    img = np.arange(64 * 40, dtype=np.uint16).reshape(40, 64) * 7
    got = decode(encode(img, 0, 16, (4,)), False)
    assert got.dtype == np.uint16 and got.dtype.isnative
    assert got.flags.c_contiguous and np.array_equal(got, img)
    indices, palette = png.decode_paletted(encode(img.astype(np.uint8), 3, 8, (2,)), "p.png")
    assert np.array_equal(indices, img.astype(np.uint8)) and palette.shape == (256, 3)
    assert palette[5].tolist() == [5, 5, 5]


def _sub_byte(img: np.ndarray, depth: int) -> bytes:
    per = 8 // depth
    h, w = img.shape
    padded = np.zeros((h, -(-w // per) * per), np.uint8)
    padded[:, :w] = img
    packed = np.zeros((h, padded.shape[1] // per), np.uint8)
    for i in range(per):
        packed |= padded[:, i::per] << (8 - depth * (i + 1))
    return filter_rows(packed, 1, (0, 2))


def _adam7(img: np.ndarray, bpp_bytes) -> bytes:
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        sub = img[y0::dy, x0::dx]
        if sub.size:
            rows = np.ascontiguousarray(sub).reshape(sub.shape[0], -1)
            out += filter_rows(rows, bpp_bytes, (1, 4))
    return out


def test_layouts_left_to_pillow_decode_the_same(path):
    """Bit depths below 8, interlaced images, 16-bit RGB and gray+alpha take Pillow's path."""
    rng = np.random.default_rng(3)
    for depth in (1, 2, 4):
        img = rng.integers(0, 1 << depth, size=(13, 21), dtype=np.uint8)
        data = make_png(_sub_byte(img, depth), 21, 13, depth, 3, palette=bytes(range(48)))
        assert np.array_equal(png.decode_gray(data, "p.png"), pillow(data, False))
    img = rng.integers(0, 256, size=(19, 23), dtype=np.uint8)
    data = make_png(_adam7(img, 1), 23, 19, 8, 0, interlace=1)
    assert np.array_equal(png.decode_gray(data, "i.png"), img)
    rgb = rng.integers(0, 256, size=(11, 17, 3), dtype=np.uint8)
    data = make_png(_adam7(rgb, 3), 17, 11, 8, 2, interlace=1)
    assert np.array_equal(png.decode_rgb(data, "i.png"), rgb)
    wide = rng.integers(0, 65536, size=(9, 10, 3)).astype(">u2")
    data = make_png(filter_rows(wide.view(np.uint8).reshape(9, -1), 6, (4,)), 10, 9, 16, 2)
    assert np.array_equal(png.decode_rgb(data, "w.png"), pillow(data, True))
    la = rng.integers(0, 256, size=(9, 10, 2), dtype=np.uint8)
    data = make_png(filter_rows(la.reshape(9, -1), 2, (3,)), 10, 9, 8, 4)
    assert np.array_equal(png.decode_rgb(data, "la.png"), pillow(data, True))


def test_the_sample_dataset_decodes_as_pillow_does(path):
    """Files written by the official scripts (Pillow's filter choice: Up, Paeth, Sub rows)."""
    import cityscapes_io
    seen = 0
    for root, _, names in os.walk(cityscapes_io.sample_path()):
        for name in sorted(names):
            if name.endswith(".png"):
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                rgb = png.read_header(data, name).color_type in (2, 6)
                assert np.array_equal(decode(data, rgb), pillow(data, rgb)), name
                seen += 1
    assert seen >= 20


# -- corrupt image data -----------------------------------------------------------------------------------

def _corrupt_cases():
    img = np.tile(np.arange(40, dtype=np.uint8), (30, 1))
    rows = img.reshape(30, -1)
    raw = filter_rows(rows, 1, (2, 4))
    bad_filter = bytearray(raw)
    bad_filter[41 * 17] = 5
    flipped = bytearray(zlib.compress(raw))
    flipped[len(flipped) // 2] ^= 0x55
    return {
        "bad filter type": (make_png(bytes(bad_filter), 40, 30, 8, 0), "filter type 5"),
        "short stream": (make_png(raw[:-41], 40, 30, 8, 0), "ends early"),
        "long stream": (make_png(raw + raw[:41], 40, 30, 8, 0), "more than"),
        "cut zlib stream": (make_png(b"", 40, 30, 8, 0, compressed=zlib.compress(raw)[:-9]), "zlib stream"),
        "damaged zlib stream": (make_png(b"", 40, 30, 8, 0, compressed=bytes(flipped)), "zlib stream"),
    }


@fast_only
@pytest.mark.parametrize("tier", ["fast", "zlib"])
@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_corrupt_image_data_is_an_error_naming_the_file(monkeypatch, tier, case):
    if tier == "zlib":
        monkeypatch.setattr(png, "_INFLATE", None)
        monkeypatch.setattr(png, "_crc32", zlib.crc32)
    elif png._INFLATE is None:
        pytest.skip("the deflate package is not installed")
    data, words = _corrupt_cases()[case]
    with pytest.raises(InvalidFileError) as err:
        png.decode_gray(data, "gtFine/val/a/broken_gtFine_labelIds.png")
    assert err.value.path == "gtFine/val/a/broken_gtFine_labelIds.png"
    assert words in str(err.value), str(err.value)


@fast_only
def test_a_bad_crc_inside_the_image_data_is_an_error():
    img = np.zeros((8, 8), np.uint8)
    data = bytearray(encode(img, 0, 8, (0,)))
    crc_at = data.index(b"IDAT") + 4 + struct.unpack(">I", data[data.index(b"IDAT") - 4:data.index(b"IDAT")])[0]
    data[crc_at] ^= 1
    with pytest.raises(InvalidFileError, match="IDAT chunk at byte .* fails its CRC check"):
        png.decode_gray(bytes(data), "x.png")


# -- the C unfilter alone -------------------------------------------------------------------------------------

@fast_only
def test_the_paeth_predictor_is_the_specifications_for_all_inputs():
    assert png._UNFILTER.check_paeth() == 0


@fast_only
@pytest.mark.parametrize("bpp", [1, 2, 3, 4, 6, 8])
def test_unfilter_matches_a_reference_in_and_out_of_place(bpp):
    rng = np.random.default_rng(bpp)
    for h, pixels in [(1, 1), (3, 1), (5, 2), (9, 5), (17, 33), (4, 70)]:
        stride = pixels * bpp
        rows = rng.integers(0, 256, size=(h, stride), dtype=np.uint8)
        rows[: h // 2, : stride // 2] = rows[0, 0]  # a flat corner
        for filters in FILTER_SETS:
            raw = filter_rows(rows, bpp, filters)
            out = np.zeros(h * stride, np.uint8)
            png._UNFILTER.unfilter(raw, out, h, stride, bpp, False)
            assert np.array_equal(out.reshape(h, stride), rows), (bpp, h, pixels, filters)
            buf = bytearray(raw)
            png._UNFILTER.unfilter(buf, buf, h, stride, bpp, False)
            assert bytes(buf[: h * stride]) == rows.tobytes()
            if bpp % 2 == 0:
                buf = bytearray(raw)
                png._UNFILTER.unfilter(buf, buf, h, stride, bpp, True)
                assert bytes(buf[: h * stride]) == rows.reshape(-1, 2)[:, ::-1].tobytes()


@fast_only
def test_unfilter_refuses_what_does_not_fit():
    u = png._UNFILTER
    with pytest.raises(ValueError, match="shorter than"):
        u.unfilter(bytes(9), bytearray(10), 2, 4, 1, False)  # 2 rows of 1 + 4 bytes are 10
    with pytest.raises(ValueError, match="smaller than"):
        u.unfilter(bytes(12), bytearray(7), 2, 4, 1, False)
    with pytest.raises(ValueError, match="bad geometry"):
        u.unfilter(bytes(12), bytearray(12), 2, 5, 2, False)
    with pytest.raises(ValueError, match="bad geometry"):
        u.unfilter(bytes(12), bytearray(12), 2, 3, 3, True)
    with pytest.raises(ValueError, match="overlaps"):
        buf = bytearray(30)
        u.unfilter(memoryview(buf)[1:], memoryview(buf)[:20], 2, 4, 1, False)
    with pytest.raises(TypeError):
        u.unfilter(bytes(10), bytes(10), 2, 4, 1, False)  # read-only output
    with pytest.raises(ValueError, match="bad geometry"):
        u.drop_bytes(bytearray(8), 3, 4, 3)


# -- the pure-Python path, forced for a whole process ----------------------------------------------------------

def test_the_pure_python_path_is_forced_by_the_environment(tmp_path):
    code = ("import numpy as np, cityscapes_io as cio\n"
            "from cityscapes_io import decoder, png\n"
            "print(png.fast_path_active(), decoder.describe())\n"
            "ds = cio.open(cio.sample_path())\n"
            "print(sum(int(f.instance_ids().sum() % 1000003) + len(f.instances()) for f in ds))\n")
    env = dict(os.environ, CITYSCAPES_IO_PURE_PYTHON="1")
    pure = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    env.pop("CITYSCAPES_IO_PURE_PYTHON")
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    flag, _, words = pure.stdout.splitlines()[0].partition(" ")
    assert flag == "False" and words.startswith("Pillow (pure-Python path: forced by CITYSCAPES_IO_PURE_PYTHON=1")
    assert pure.stdout.splitlines()[1] == default.stdout.splitlines()[1]  # the same numbers either way
    if png.fast_path_active():
        assert default.stdout.startswith("True C unfilter + ")


# -- the pixel-pair counter of evaluation (cityscapes_io._count, numpy without it) -----------------------------

@pytest.fixture(params=["c", "numpy"])
def counting_tier(request, monkeypatch):
    """cityscapes_io.counting with its C extension, and with numpy."""
    from cityscapes_io import counting
    if request.param == "c" and counting._C is None:
        pytest.skip("the C extension cityscapes_io._count is not built (or CITYSCAPES_IO_PURE_PYTHON=1)")
    if request.param == "numpy":
        monkeypatch.setattr(counting, "_C", None)
    return counting


def test_count_pairs_is_bincount(counting_tier):
    counting = counting_tier
    rng = np.random.default_rng(5)
    a = np.repeat(rng.integers(0, 34, size=(64, 8), dtype=np.uint8), 9, axis=1)
    b = a.copy()
    b[rng.random(a.shape) < 0.1] = 7
    ref = np.bincount((a.astype(np.int64) * 34 + b).ravel(), minlength=34 * 34)
    assert np.array_equal(counting.count_pairs(a, b, 34, 34 * 34), ref)
    inst = a.astype(np.uint16) * 1000 + rng.integers(0, 3, size=a.shape).astype(np.uint16)
    sel = inst >= 24000
    ref = np.bincount((inst[sel].astype(np.int64) - 24000) * 34 + b[sel], minlength=10000 * 34)
    got = counting.count_pairs(inst, b, 34, 10000 * 34, a_min=24000)
    assert got.dtype == np.int64 and np.array_equal(got, ref)
    assert np.array_equal(counting.count_pairs(inst.astype(np.uint32), None, 1, 34000), np.bincount(inst.ravel(),
                                                                                                   minlength=34000))
    with pytest.raises(ValueError, match="past 100"):
        counting.count_pairs(a, b, 34, 100)
    empty = np.zeros((0, 5), np.uint8)
    assert counting.count_pairs(empty, empty, 34, 10).tolist() == [0] * 10


def test_apply_lut_is_take(counting_tier):
    counting = counting_tier
    rng = np.random.default_rng(9)
    ids = np.repeat(rng.integers(0, 3000, size=(40, 9)), 7, axis=1)
    for id_type in (np.uint8, np.uint16, np.uint32):
        src = (ids % 256 if id_type == np.uint8 else ids).astype(id_type)
        for table_type in (np.uint8, np.uint16, np.int32, np.int64):
            table = rng.integers(0, 120, size=int(src.max()) + 1).astype(table_type)
            got = counting.apply_lut(table, src)
            assert got.dtype == table.dtype and got.shape == src.shape
            assert np.array_equal(got, table[src])
    with pytest.raises(IndexError):
        counting.apply_lut(np.zeros(10, np.uint8), np.arange(11, dtype=np.uint16))


# -- _count under random inputs (helper) -------------------------------------------------------------------
# The C counters of cityscapes_io._count held, case by random case, to a reference written here (keys in
# uint64, ids mapped by searchsorted: nothing shared with the library) and the library's numpy path
# (counting._C = None) to the same reference: images with runs (the 8-pixel block paths, whose memcmp
# reads pixels i-1 .. i+8) and without, of 0, 1, 7, 8, 9, 15, 16, 17 pixels or a random number, in odd
# shapes. benchmarks/sanitize.sh imports these helpers and runs many more cases on the build with
# -fsanitize=address,undefined, every buffer placed to end (or start) at a page without access
# (``place``); the tests below run a few hundred on the ordinary build.
from typing import Any, Callable, Dict, List, Optional, Tuple  # noqa: E402

COUNT_PIXELS = (0, 1, 7, 8, 9, 15, 16, 17)
_UINT: Dict[int, Any] = {1: np.uint8, 2: np.uint16, 4: np.uint32}
Place = Callable[[np.ndarray], np.ndarray]


def _unplaced(arr: np.ndarray) -> np.ndarray:
    return arr


def _count_pixels(rng: np.random.Generator) -> int:
    return int(rng.choice(COUNT_PIXELS)) if rng.random() < 0.6 else int(rng.integers(0, 120))


def _count_shape(rng: np.random.Generator, n: int) -> Tuple[int, ...]:
    """``n`` pixels as a 1-D array, one row, one column or an H x W of a divisor of ``n``."""
    if n == 0:
        return [(0,), (0, 5), (3, 0)][int(rng.integers(3))]
    how = int(rng.integers(4))
    if how < 3:
        return [(n,), (1, n), (n, 1)][how]
    h = int(rng.choice([d for d in range(1, n + 1) if n % d == 0]))
    return (h, n // h)


def _count_values(rng: np.random.Generator, n: int, pool: np.ndarray, runs: bool) -> np.ndarray:
    """``n`` values of ``pool`` (int64): independent, or runs of 1-40 equal values (crossing the
    8-pixel blocks) with a few single pixels changed inside them."""
    if not runs or n == 0:
        return rng.choice(pool, n)
    parts = []
    total = 0
    while total < n:
        k = int(rng.integers(1, 41))
        parts.append(np.full(k, rng.choice(pool), np.int64))
        total += k
    out = np.concatenate(parts)[:n]
    flip = rng.random(n) < 0.03
    out[flip] = rng.choice(pool, int(flip.sum()))
    return out


def _pool(rng: np.random.Generator, high: int, extra: Tuple[int, ...] = ()) -> np.ndarray:
    values = [int(v) for v in rng.integers(0, high, size=int(rng.integers(1, 6)))]
    return np.array(values + [v for v in extra if v < high], np.int64)


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 (the type is compared: ValueError, IndexError expected)
        return type(exc)


def _same(got: Any, expected: Any) -> bool:
    if isinstance(expected, type) or isinstance(got, type):
        return got is expected
    if isinstance(expected, np.ndarray):
        return (isinstance(got, np.ndarray) and got.dtype == expected.dtype and got.shape == expected.shape
                and bool(np.array_equal(got, expected)))
    if isinstance(expected, tuple):
        return (isinstance(got, tuple) and len(got) == len(expected)
                and all(_same(x, y) for x, y in zip(got, expected)))
    return bool(got == expected)


def _ref_map(ids: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    if not keys.size:
        return np.zeros(ids.shape, np.uint64)
    pos = np.minimum(np.searchsorted(keys, ids), keys.size - 1)
    return np.where(keys[pos] == ids, vals[pos], 0).astype(np.uint64)


def _ref_bincount(keys: np.ndarray, length: int) -> Tuple[np.ndarray, int]:
    inside = keys < length
    return np.bincount(keys[inside].astype(np.int64), minlength=length).astype(np.int64), int((~inside).sum())


def _rgb(ids: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    ids = ids.astype(np.uint32)
    rgb = np.stack([ids & 255, (ids >> 8) & 255, ids >> 16], axis=-1).astype(np.uint8)
    return rgb.reshape((shape if len(shape) == 2 else (shape[0], 1)) + (3,))


def _case_pairs(rng: np.random.Generator, big: bool, place: Place) -> Tuple[str, Any, Any, Any, Any, int]:
    asize = int(rng.choice([1, 2, 4]))
    bsize = int(rng.choice([0, 1, 2, 4]))
    n = _count_pixels(rng)
    runs = bool(rng.random() < 0.6)
    shape = _count_shape(rng, n)
    top = (1 << 8 * asize) - 1
    high_a = min(top + 1, int(rng.choice([3, 40, 300, 3000] + ([70000, 1 << 32] if big else []))))
    a = _count_values(rng, n, _pool(rng, high_a, (0, top) if big else (0,)), runs).astype(_UINT[asize]).reshape(shape)
    nb = 1
    b = None
    if bsize:
        nb = int(rng.choice([1, 2, 34, 300] + ([70000] if big else [])))
        b_high = min(nb, 1 << 8 * bsize)
        b = _count_values(rng, n, _pool(rng, b_high, (0, b_high - 1)), runs).astype(_UINT[bsize]).reshape(shape)
    a_min = 0 if rng.random() < 0.5 or not n else int(rng.integers(1, int(a.max()) + 2))
    ka = a.ravel().astype(np.uint64)
    sel = ka >= a_min
    keys = ka[sel] - np.uint64(a_min)
    if b is not None:
        keys = keys * np.uint64(nb) + b.ravel()[sel].astype(np.uint64)
    bound = int(keys.max()) + 1 if keys.size else 0
    length = bound if rng.random() < 0.7 else int(rng.integers(0, bound + 3))
    if length > 1 << 18:
        length = int(rng.integers(0, 1 << 18))
    ref_out, ref_missed = _ref_bincount(keys, length)
    what = (f"count_pairs a {a.dtype}{shape} b {None if b is None else b.dtype} nb {nb} a_min {a_min} "
            f"length {length} runs {runs}")
    at_c = place(a), None if b is None else place(b)

    def raw(module: Any) -> Any:
        out = place(np.zeros(length, np.int64))
        missed = module.count_pairs(at_c[0], asize, at_c[1], bsize, int(rng.integers(1, 5)) if b is None else nb,
                                    a_min, out)
        return np.array(out), missed

    def wrapper(counting: Any) -> Any:
        return _outcome(lambda: counting.count_pairs(at_c[0], at_c[1], nb, length, a_min=a_min))

    return what, raw, (ref_out, ref_missed), wrapper, ValueError if ref_missed else ref_out, bound


def _segments_length(rng: np.random.Generator, bound: int, nb: int, big: bool) -> int:
    """The counters' length: any (``big``), else as the library's callers make it, whole rows of
    ``nb`` (at least one): the numpy path reads the matrix's row and column 0 off a reshape."""
    if big:
        length = bound if rng.random() < 0.7 else int(rng.integers(0, bound + 3))
        return length if length <= 1 << 18 else int(rng.integers(0, 1 << 18))
    rows = -(-bound // nb)
    return max(1, rows if rng.random() < 0.7 else int(rng.integers(0, rows + 2))) * nb


def _case_segments(rng: np.random.Generator, big: bool, place: Place) -> Tuple[str, Any, Any, Any, Any, int]:
    n = _count_pixels(rng)
    runs = bool(rng.random() < 0.6)
    nb = int(rng.integers(1, 300))
    vhigh = int(rng.choice([2, 200] + ([1 << 17] if big else [])))
    sides: List[Optional[Tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]]] = []
    for side in ("g", "p"):
        size = int(rng.choice([0, 2, 3, 4] if side == "g" else [2, 3, 4]))
        if not size:
            sides.append(None)
            continue
        top = {2: 1 << 16, 3: 1 << 24, 4: 1 << 32 if big else 1 << 24}[size]
        pool = _pool(rng, top, (0, 1, top - 1))
        ids = _count_values(rng, n, pool, runs)
        shape = _count_shape(rng, n)
        pixels = _rgb(ids, shape) if size == 3 else ids.astype(_UINT[size]).reshape(shape)
        how = int(rng.integers(3))  # no keys, one, many (ids of the image, others, 0 or not)
        listed = [] if how == 0 else list(rng.choice(pool, 1 if how == 1 else int(rng.integers(1, 8))))
        listed += [int(v) for v in rng.integers(0, top, size=int(rng.integers(0, 3)))] if how == 2 else []
        listed = [v for v in listed if v != 0] + ([0] if rng.random() < 0.4 and how else [])
        keys = np.unique(np.array(listed, np.int64)).astype(np.uint32)
        vals = rng.integers(0, min(vhigh, nb) if side == "p" else vhigh, size=keys.size).astype(np.uint32)
        sides.append((pixels, size, keys, vals, ids.astype(np.uint32)))
    g, p = sides
    assert p is not None
    p_val = _ref_map(p[4], p[2], p[3])
    keys = p_val.copy()
    g_counts = (0, 0)
    if g is not None:
        g_val = _ref_map(g[4], g[2], g[3])
        keys += g_val * np.uint64(nb)
        g_counts = (int((g_val == 0).sum()), int((g[4] == 0).sum()))
    bound = int(keys.max()) + 1 if keys.size else 0
    length = _segments_length(rng, bound, 1 if g is None else nb, big)
    ref_out, ref_missed = _ref_bincount(keys, length)
    counters = g_counts + (int((p_val == 0).sum()), int((p[4] == 0).sum()))
    what = (f"count_segments g {None if g is None else (g[0].dtype, g[0].shape, g[2].tolist(), g[3].tolist())} "
            f"p {(p[0].dtype, p[0].shape, p[2].tolist(), p[3].tolist())} nb {nb} length {length} runs {runs}")
    gc = None if g is None else (place(g[0]), place(g[2]), place(g[3]))
    pc = (place(p[0]), place(p[2]), place(p[3]))
    empty = np.zeros(0, np.uint32)

    def raw(module: Any) -> Any:
        out = place(np.zeros(length, np.int64))
        got = module.count_segments(None if gc is None else gc[0], 0 if g is None else g[1],
                                    empty if gc is None else gc[1], empty if gc is None else gc[2], pc[0], p[1],
                                    pc[1], pc[2], nb if g is not None else int(rng.integers(1, 5)), out)
        return np.array(out), tuple(got)

    def wrapper(counting: Any) -> Any:
        def call() -> Any:
            r = counting.count_segments(None if gc is None else gc[0], [] if gc is None else gc[1],
                                        [] if gc is None else gc[2], pc[0], pc[1], pc[2], nb, length)
            return np.asarray(r.counts, np.int64), (r.g_missing, r.g_zero, r.p_missing, r.p_zero)
        return _outcome(call)

    return (what, raw, (ref_out, (ref_missed,) + counters), wrapper,
            ValueError if ref_missed else (ref_out, counters), bound)


def _case_lut(rng: np.random.Generator, big: bool, place: Place) -> Tuple[str, Any, Any, Any, Any, int]:
    ssize = int(rng.choice([1, 2, 4]))
    tsize = int(rng.choice([1, 2, 4]))
    ttype = rng.choice([_UINT[tsize], {1: np.int8, 2: np.int16, 4: np.int32}[tsize]])
    n = _count_pixels(rng)
    runs = bool(rng.random() < 0.6)
    shape = _count_shape(rng, n)
    size = int(rng.choice([0, 1, 2, 7, 256, 300, 3000]))
    info = np.iinfo(ttype)
    table = rng.integers(int(info.min), int(info.max) + 1, size=size, dtype=np.int64).astype(ttype)
    top = (1 << 8 * ssize) - 1
    past = rng.random() < 0.3 or size == 0
    pool = _pool(rng, min(top + 1, max(size, 1)), (0,))
    if past:
        pool = np.concatenate([pool, [v for v in (size, size + 1, top) if v <= top]]).astype(np.int64)
    src = _count_values(rng, n, pool, runs).astype(_UINT[ssize]).reshape(shape)
    flat = src.ravel().astype(np.int64)
    bad = int((flat >= size).sum())
    ref = (np.where(flat < size, table[np.minimum(flat, size - 1)], 0) if size else np.zeros(n)).astype(ttype)
    what = f"apply_lut src {src.dtype}{shape} table {table.dtype}[{size}] past {past} runs {runs}"
    sc, tc = place(src), place(table)

    def raw(module: Any) -> Any:
        dst = place(np.zeros(n, ttype))
        got = module.apply_lut(sc, ssize, tc, tsize, dst)
        return np.array(dst), got

    def wrapper(counting: Any) -> Any:
        return _outcome(lambda: counting.apply_lut(tc, sc))

    return what, raw, (ref, bad), wrapper, IndexError if bad else ref.reshape(shape), 0


COUNT_KINDS = {"count_pairs": _case_pairs, "count_segments": _case_segments, "apply_lut": _case_lut}


def count_differential(module: Optional[Any], cases: int, seed: int, big: bool = False,
                       place: Place = _unplaced) -> Tuple[List[str], List[str], Dict[str, int]]:
    """``cases`` random cases of each kind: the raw C function (``module``; None: not run) and
    the wrapper on the C path held to the reference, and the wrapper on numpy's path (counting._C =
    None) held to it too. Returns the C failures, the numpy-path failures (each a description that
    reproduces the case) and how many cases ran of each kind. ``big``: ids of 4-byte images up to
    2^32 - 1 and values past 2^16 too (the numpy path is known to differ there: see the tests).
    Cases whose keys reach 2^24 are not given to the numpy path (its bincount would allocate
    counters up to the largest key, gigabytes)."""
    from cityscapes_io import counting
    rng = np.random.default_rng(seed)
    c_failures: List[str] = []
    np_failures: List[str] = []
    ran: Dict[str, int] = {}
    saved = counting._C
    try:
        for i in range(cases):
            for kind, make in COUNT_KINDS.items():
                what, raw, raw_expected, wrapper, expected, bound = make(rng, big, place)
                where = f"[seed {seed} case {i}] {what}"
                if module is not None:
                    got = raw(module)
                    if not _same(got, raw_expected):
                        c_failures.append(f"raw {where}: got {got!r}, expected {raw_expected!r}")
                    counting._C = module
                    got = wrapper(counting)
                    if not _same(got, expected):
                        c_failures.append(f"wrapper (C) {where}: got {got!r}, expected {expected!r}")
                counting._C = None
                # (numpy's bincount allocates counters up to the largest key, whatever the length)
                got = wrapper(counting) if bound <= 1 << 24 else expected
                if not _same(got, expected):
                    np_failures.append(f"wrapper (numpy) {where}: got {got!r}, expected {expected!r}")
                counting._C = saved
                ran[kind] = ran.get(kind, 0) + 1
    finally:
        counting._C = saved
    return c_failures, np_failures, ran


def count_bad_calls(module: Any) -> List[Tuple[str, Callable[[], Any]]]:
    """Raw calls the C functions must refuse with ValueError or TypeError (never touching memory)."""
    odd16 = memoryview(bytes(33))[1:]  # 32 bytes at an odd address: a misaligned uint16/uint32 view
    out = np.zeros(64, np.int64)
    u8 = np.zeros(16, np.uint8)
    u16 = np.zeros(16, np.uint16)
    u32 = np.zeros(4, np.uint32)
    e = np.zeros(0, np.uint32)
    strided = np.zeros((4, 4), np.uint8)[:, ::2]
    cp, cs, lut = module.count_pairs, module.count_segments, module.apply_lut
    return [
        ("count_pairs misaligned a", lambda: cp(odd16, 2, None, 0, 1, 0, out)),
        ("count_pairs misaligned b", lambda: cp(u16, 2, odd16, 2, 4, 0, out)),
        ("count_pairs misaligned out", lambda: cp(u8, 1, None, 0, 1, 0, memoryview(bytearray(73))[1:])),
        ("count_pairs a and b of different lengths", lambda: cp(u8, 1, u16[:8], 2, 4, 0, out)),
        ("count_pairs a of a partial item", lambda: cp(u8[:15], 2, None, 0, 1, 0, out)),
        ("count_pairs item size 3", lambda: cp(u8, 3, None, 0, 1, 0, out)),
        ("count_pairs item size 8", lambda: cp(u8, 8, None, 0, 1, 0, out)),
        ("count_pairs b size 0", lambda: cp(u8, 1, u8, 0, 4, 0, out)),
        ("count_pairs nb 0", lambda: cp(u8, 1, u8, 1, 0, 0, out)),
        ("count_pairs nb 2^32", lambda: cp(u8, 1, u8, 1, 1 << 32, 0, out)),
        ("count_pairs a_min -1", lambda: cp(u8, 1, None, 0, 1, -1, out)),
        ("count_pairs out of 7 bytes", lambda: cp(u8, 1, None, 0, 1, 0, bytearray(7))),
        ("count_pairs read-only out", lambda: cp(u8, 1, None, 0, 1, 0, bytes(64))),
        ("count_pairs a not a buffer", lambda: cp("abc", 1, None, 0, 1, 0, out)),
        ("count_pairs b not a buffer", lambda: cp(u8, 1, 3, 1, 4, 0, out)),
        ("count_pairs non-contiguous a", lambda: cp(strided, 1, None, 0, 1, 0, out)),
        ("count_segments keys not sorted", lambda: cs(None, 0, e, e, u16, 2, np.array([5, 3], np.uint32),
                                                      np.array([1, 2], np.uint32), 4, out)),
        ("count_segments keys repeated", lambda: cs(u16, 2, np.array([3, 3], np.uint32), np.array([1, 2], np.uint32),
                                                    u16, 2, e, e, 4, out)),
        ("count_segments more keys than values", lambda: cs(None, 0, e, e, u16, 2, np.array([1, 2], np.uint32),
                                                            np.array([1], np.uint32), 4, out)),
        ("count_segments misaligned keys", lambda: cs(None, 0, e, e, u16, 2, odd16[:8], odd16[8:16], 4, out)),
        ("count_segments misaligned pixels", lambda: cs(None, 0, e, e, odd16, 2, e, e, 4, out)),
        ("count_segments misaligned g pixels", lambda: cs(odd16, 4, e, e, u32, 4, e, e, 4, out)),
        ("count_segments pixel size 1", lambda: cs(None, 0, e, e, u8, 1, e, e, 4, out)),
        ("count_segments pixel size 5", lambda: cs(None, 0, e, e, u8[:15], 5, e, e, 4, out)),
        ("count_segments g size 0", lambda: cs(u16, 0, e, e, u16, 2, e, e, 4, out)),
        ("count_segments images of different sizes", lambda: cs(u16[:8], 2, e, e, u16, 2, e, e, 4, out)),
        ("count_segments partial pixel", lambda: cs(None, 0, e, e, u8[:7], 3, e, e, 4, out)),
        ("count_segments nb 0", lambda: cs(None, 0, e, e, u16, 2, e, e, 0, out)),
        ("count_segments nb 2^32", lambda: cs(u16, 2, e, e, u16, 2, e, e, 1 << 32, out)),
        ("count_segments misaligned out", lambda: cs(None, 0, e, e, u16, 2, e, e, 4, memoryview(bytearray(73))[1:])),
        ("count_segments read-only out", lambda: cs(None, 0, e, e, u16, 2, e, e, 4, bytes(64))),
        ("count_segments g keys not a buffer", lambda: cs(u16, 2, 5, e, u16, 2, e, e, 4, out)),
        ("count_segments p keys not a buffer", lambda: cs(None, 0, e, e, u16, 2, None, e, 4, out)),
        ("apply_lut misaligned src", lambda: lut(odd16, 2, u8, 1, bytearray(16))),
        ("apply_lut misaligned table", lambda: lut(u8, 1, odd16, 2, bytearray(32))),
        ("apply_lut misaligned dst", lambda: lut(u8, 1, u16, 2, memoryview(bytearray(33))[1:])),
        ("apply_lut dst too short", lambda: lut(u8, 1, u8, 1, bytearray(15))),
        ("apply_lut dst too long", lambda: lut(u8, 1, u8, 1, bytearray(17))),
        ("apply_lut src size 3", lambda: lut(u8[:15], 3, u8, 1, bytearray(5))),
        ("apply_lut table size 8", lambda: lut(u8, 1, u8, 8, bytearray(128))),
        ("apply_lut table of a partial entry", lambda: lut(u8, 1, u8[:15], 2, bytearray(32))),
        ("apply_lut read-only dst", lambda: lut(u8, 1, u8, 1, bytes(16))),
        ("apply_lut non-contiguous src", lambda: lut(strided, 1, u8, 1, bytearray(8))),
    ]


def count_bad_call_failures(module: Any) -> List[str]:
    """The bad calls that were not refused with ValueError or TypeError."""
    failures = []
    for what, call in count_bad_calls(module):
        try:
            call()
            failures.append(f"{what}: accepted")
        except (ValueError, TypeError):
            pass
        except Exception as exc:  # noqa: BLE001 (a refusal of another type is a finding too)
            failures.append(f"{what}: {type(exc).__name__}: {exc}")
    return failures


def _count_c_module() -> Any:
    from cityscapes_io import counting
    if counting._C is None:
        pytest.skip(f"the C extension cityscapes_io._count is not loaded ({decoder.why_pure_python() or 'not built'}"
                    f"): only the numpy path is checked, by test_count_numpy_path_matches_the_reference")
    return counting._C


def test_count_c_matches_the_reference_on_random_images():
    c_failures, np_failures, ran = count_differential(_count_c_module(), 150, seed=20)
    assert not c_failures, "\n".join(c_failures[:5])
    assert not np_failures, "\n".join(np_failures[:5])
    assert ran == {kind: 150 for kind in COUNT_KINDS}


def test_count_numpy_path_matches_the_reference():
    """Runs without the extension too (the module is not called)."""
    c_failures, np_failures, _ = count_differential(None, 150, seed=21)
    assert not c_failures and not np_failures, "\n".join(np_failures[:5])


def test_count_c_refuses_bad_arguments():
    failures = count_bad_call_failures(_count_c_module())
    assert not failures, "\n".join(failures)


def _u16(*values: int) -> np.ndarray:
    return np.array(values, np.uint16)


# Cases where the numpy path of counting.count_segments departed from its contract (found by the
# differential test with ``big=True``, then fixed): each expected result is the reference's.
_NUMPY_SEGMENT_BUGS = {
    "uint32 ids from 2^24": ((None, [], [], np.array([1 << 24, (1 << 24) + 5, (1 << 24) - 1], np.uint32),
                              [(1 << 24) - 1, 1 << 24], [3, 4], 1, 10), {0: 1, 3: 1, 4: 1}),
    "16-bit keys wrap past 65535": ((_u16(256, 1), [1, 256], [1, 256], _u16(1, 1), [1], [0], 256, 65536),
                                    ValueError),
    "nb past 65535": ((_u16(1, 1), [1], [0], _u16(1, 1), [1], [1], 70000, 100), {1: 2}),
    "length not whole rows of nb": ((_u16(*[0] * 8), [], [], _u16(*[5] * 8), [], [], 113, 1), {0: 8}),
    "no pixels, length 0": ((None, [], [], _u16(), [], [], 1, 0), {}),
}


@pytest.mark.parametrize("case", sorted(_NUMPY_SEGMENT_BUGS))
def test_count_segments_numpy_path_edge_cases(monkeypatch, case):
    from cityscapes_io import counting
    monkeypatch.setattr(counting, "_C", None)
    args, expected = _NUMPY_SEGMENT_BUGS[case]
    if expected is ValueError:
        with pytest.raises(ValueError):
            counting.count_segments(*args)
        return
    counts = counting.count_segments(*args).counts
    assert {int(k): int(counts[k]) for k in np.flatnonzero(counts)} == expected and counts.size == args[-1]


@pytest.mark.parametrize("call", ["count_pairs", "apply_lut", "count_segments"])
def test_count_wrappers_take_unaligned_arrays(call):
    from cityscapes_io import counting
    _count_c_module()
    odd = np.frombuffer(bytes(17), np.uint16, offset=1)  # 8 zeros at an odd address
    assert not odd.flags.aligned
    if call == "count_pairs":
        assert counting.count_pairs(odd, None, 1, 4).tolist() == [8, 0, 0, 0]
    elif call == "apply_lut":
        assert counting.apply_lut(np.arange(3, dtype=np.uint8), odd).tolist() == [0] * 8
    else:
        assert counting.count_segments(None, [], [], odd, [0], [1], 1, 4).counts.tolist() == [0, 8, 0, 0]


def test_count_pairs_numpy_path_a_min_past_2_31(monkeypatch):
    from cityscapes_io import counting
    monkeypatch.setattr(counting, "_C", None)
    a = np.array([4000000000, 5, 4000000000], np.uint32)
    assert counting.count_pairs(a, None, 1, 10, a_min=3999999999).tolist() == [0, 2] + [0] * 8


def test_count_pairs_numpy_path_with_a_min_or_nb_past_the_dtype():
    """Found in review: the numpy path's key type must hold a_min and nb too (the C path counts)."""
    from cityscapes_io import counting
    for c in ((counting._C,) if counting._C is not None else ()) + (None,):
        saved = counting._C
        counting._C = c
        try:
            assert counting.count_pairs(np.array([1, 2], np.uint8), None, 1, 4, a_min=70000).tolist() == [0] * 4
            a, b = np.array([255, 255], np.uint8), np.array([1, 2], np.uint16)
            got = counting.count_pairs(a, b, 70000, 70003, a_min=255)
            assert got[1] == 1 and got[2] == 1 and got.sum() == 2
        finally:
            counting._C = saved
    if counting._C is not None:
        with pytest.raises((ValueError, OverflowError)):
            counting._C.count_pairs(np.zeros(2, np.uint8), 1, None, 0, 2 ** 64 + 2, 0, np.zeros(4, np.int64))
        with pytest.raises((ValueError, OverflowError)):
            counting._C.count_pairs(np.zeros(2, np.uint8), 1, None, 0, 1, -1, np.zeros(4, np.int64))
