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

@pytest.mark.parametrize("tier", ["c", "numpy"])
def test_count_pairs_is_bincount(monkeypatch, tier):
    from cityscapes_io import counting
    if tier == "c" and counting._C is None:
        pytest.skip("the C extension cityscapes_io._count is not built (or CITYSCAPES_IO_PURE_PYTHON=1)")
    if tier == "numpy":
        monkeypatch.setattr(counting, "_C", None)
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


@pytest.mark.parametrize("tier", ["c", "numpy"])
def test_apply_lut_is_take(monkeypatch, tier):
    from cityscapes_io import counting
    if tier == "c" and counting._C is None:
        pytest.skip("the C extension cityscapes_io._count is not built (or CITYSCAPES_IO_PURE_PYTHON=1)")
    if tier == "numpy":
        monkeypatch.setattr(counting, "_C", None)
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
