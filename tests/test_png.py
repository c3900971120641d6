"""The codec layer (cityscapes_io.png): round trips of every pixel type and photo format, and
the refusals that happen before anything large is allocated. Every test runs twice: with the
fast path (the C unfilter) and with the pure-Python path (Pillow) that users without the
extension get."""
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from cityscapes_io import png
from cityscapes_io.errors import InvalidFileError

H, W = 24, 40


@pytest.fixture(autouse=True, params=["fast", "pure"])
def decoder_path(request, monkeypatch):
    if request.param == "fast" and not png.fast_path_active():
        pytest.skip("the fast path is not active (the C extension is not built, or CITYSCAPES_IO_PURE_PYTHON=1)")
    if request.param == "pure":
        monkeypatch.setattr(png, "_UNFILTER", None)
    return request.param


def smooth_rgb(h=H, w=W):
    """A photo-like image (gradients): lossy codecs keep it within a few levels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width, height, depth=16, ctype=0):
    """A PNG whose header declares ``width``×``height`` and whose image data is 64 zero bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)
    return png._SIGNATURE + chunk(b"IHDR", ihdr) + b"\x00" * 64


# -- round trips ---------------------------------------------------------------------------------

def test_uint16_gray_round_trip():
    arr = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 997 % 34000).astype(np.uint16)
    arr[0, 0], arr[0, 1] = 0, 33999
    data = png.encode_png(arr)
    header = png.read_header(data, "x.png")
    assert (header.width, header.height, header.bit_depth, header.color_type) == (W, H, 16, 0)
    out = png.decode_gray(data, "x.png")
    assert out.dtype == np.uint16 and np.array_equal(out, arr)


def test_uint8_gray_round_trip():
    arr = (np.arange(H * W).reshape(H, W) % 256).astype(np.uint8)
    data = png.encode_png(arr, compress_level=1)
    assert png.read_header(data, "x.png")[2:] == (8, 0)
    out = png.decode_gray(data, "x.png")
    assert out.dtype == np.uint8 and np.array_equal(out, arr)


def test_big_endian_uint16_is_written_by_value():
    arr = np.array([[1, 258, 65535]], dtype=">u2")
    assert np.array_equal(png.decode_gray(png.encode_png(arr), "x.png"), arr.astype(np.uint16))


def test_rgb_and_rgba_round_trip():
    rgb = smooth_rgb()
    out = png.decode_rgb(png.encode_png(rgb), "x.png")
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and np.array_equal(out, rgb)

    rgba = np.concatenate([rgb, np.full((H, W, 1), 255, np.uint8)], -1)
    rgba[0, 0, 3] = 0
    data = png.encode_png(rgba)
    assert png.read_header(data, "x.png").color_type == 6
    decoded = np.asarray(Image.open(io.BytesIO(data)))  # Pillow as an independent reader
    assert np.array_equal(decoded, rgba)
    assert np.array_equal(png.decode_rgb(data, "x.png"), rgb)  # a photo drops the alpha channel


def test_paletted_round_trip_keeps_indices_and_colours():
    indices = (np.arange(H * W).reshape(H, W) % 5).astype(np.uint8)
    # Repeated colours (index 1 and 3 alike) must keep their own indices.
    palette = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 0, 0], [10, 20, 30]], np.uint8)
    data = png.encode_png(indices, palette=palette)
    assert png.read_header(data, "x.png").color_type == 3
    got, table = png.decode_paletted(data, "x.png")
    assert got.dtype == np.uint8 and np.array_equal(got, indices)
    assert table.shape == (256, 3) and np.array_equal(table[:5], palette)
    reference = np.asarray(Image.open(io.BytesIO(data)).getpalette(), np.uint8).reshape(-1, 3)
    assert np.array_equal(table[: len(reference)], reference)
    # decode_gray reads a paletted mask by index too; decode_rgb by colour.
    assert np.array_equal(png.decode_gray(data, "x.png"), indices)
    assert np.array_equal(png.decode_rgb(data, "x.png"), palette[indices])


def test_short_palette_is_padded_with_black():
    img = Image.frombytes("P", (2, 1), bytes([0, 1]))
    img.putpalette([255, 0, 0, 0, 0, 255])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    indices, table = png.decode_paletted(buf.getvalue(), "x.png")
    assert indices.tolist() == [[0, 1]]
    assert table[:2].tolist() == [[255, 0, 0], [0, 0, 255]] and not table[2:].any()


@pytest.mark.parametrize("ext", png.IMAGE_EXTS)
def test_every_photo_extension_round_trips(ext):
    rgb = smooth_rgb()
    data = png.encode_image(rgb, ext)
    assert png.image_size(data, "photo" + ext) == (W, H)
    out = png.decode_rgb(data, "photo" + ext)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    lossy = ext in (".jpg", ".jpeg", ".webp")
    err = np.abs(out.astype(int) - rgb).max()
    assert err <= 16 if lossy else err == 0, (ext, err)
    # The file is really of that format, as Pillow sees it.
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(ext, ext[1:].upper())
    assert Image.open(io.BytesIO(data)).format == fmt


def test_jpeg_quality_is_95():
    rgb = smooth_rgb(256, 256)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    assert png.encode_image(rgb, ".JPG") == buf.getvalue()


def test_gray_photo_decodes_to_rgb():
    gray = (np.arange(H * W).reshape(H, W) % 256).astype(np.uint8)
    out = png.decode_rgb(png.encode_png(gray), "x.png")
    assert out.shape == (H, W, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


def test_unsupported_encodings_are_refused():
    with pytest.raises(ValueError, match="not supported"):
        png.encode_image(smooth_rgb(), ".gif")
    with pytest.raises(ValueError, match="cannot encode"):
        png.encode_png(np.zeros((2, 2, 2), np.uint8))


# -- refusals ----------------------------------------------------------------------------------

def test_huge_declared_size_refused_before_allocation():
    data = png_declaring(100000, 100000)
    tracemalloc.start()
    try:
        for fn in (png.decode_gray, png.decode_rgb, png.image_size, png.read_header):
            with pytest.raises(InvalidFileError, match="100000x100000") as info:
                fn(data, "huge.png")
            assert info.value.path == "huge.png" and "more than the limit" in str(info.value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [12000, 40000])
def test_huge_declared_size_of_another_format_refused_before_allocation(side):
    # A BMP header declaring side x side pixels, followed by nothing: 12000² is over our limit
    # (and under Pillow's own refusal), 40000² over both.
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="BMP")
    data = bytearray(buf.getvalue())
    struct.pack_into("<ii", data, 18, side, side)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidFileError) as info:
            png.decode_rgb(bytes(data), "huge.bmp")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.path == "huge.bmp"
    assert f"{side}x{side} pixels, more than the limit" in str(info.value) or "refused" in str(info.value)
    assert peak < 10 * 2**20


def test_refused_headers():
    good = png.encode_png(np.zeros((2, 3), np.uint8))
    cases = {
        b"": "empty file",
        b"GIF89a not a png": "not a PNG",
        good[:20]: "truncated PNG: the file ends at byte 20",
        good[:19] + b"\x07" + good[20:]: "checksum mismatch",  # the width changed
        png_declaring(0, 5, 8): "empty image",
    }
    for data, reason in cases.items():
        for fn in (png.read_header, png.decode_gray):
            with pytest.raises(InvalidFileError, match=reason) as info:
                fn(data, "dir/bad.png")
            assert info.value.path == "dir/bad.png"


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_png_names_the_path(cut):
    arr = (np.random.default_rng(1).integers(0, 34000, (64, 64))).astype(np.uint16)
    data = png.encode_png(arr)
    bad = data[: int(len(data) * cut)]
    with pytest.raises(InvalidFileError, match=r"truncated PNG: IDAT ends at byte \d+ of \d+") as info:
        png.decode_gray(bad, "a/b_gtFine_instanceIds.png")
    assert info.value.path == "a/b_gtFine_instanceIds.png"
    assert str(info.value).startswith("a/b_gtFine_instanceIds.png: ")


def test_corrupt_image_data_names_the_path():
    data = bytearray(png.encode_png(smooth_rgb()))
    idat = data.index(b"IDAT")
    data[idat + 10: idat + 30] = b"\xff" * 20
    with pytest.raises(InvalidFileError, match="corrupt PNG: IDAT chunk at byte 33 fails its CRC check") as info:
        png.decode_rgb(bytes(data), "photo.png")
    assert info.value.path == "photo.png"


@pytest.mark.parametrize("ext", [".jpg", ".webp", ".tif", ".bmp"])
def test_truncated_or_garbage_photo_names_the_path(ext):
    data = png.encode_image(smooth_rgb(64, 64), ext)
    for bad in (data[: len(data) // 2], b"this is no image at all" * 4):
        with pytest.raises(InvalidFileError) as info:
            png.decode_rgb(bad, "x/photo" + ext)
        assert info.value.path == "x/photo" + ext
        assert "BytesIO" not in str(info.value)
    with pytest.raises(InvalidFileError, match="not an image: no image format recognises its bytes") as info:
        png.image_size(b"this is no image at all" * 4, "x/photo" + ext)


def test_rgb_mask_refused_as_gray():
    with pytest.raises(InvalidFileError, match="expected a single-channel"):
        png.decode_gray(png.encode_png(smooth_rgb()), "x.png")
    with pytest.raises(InvalidFileError, match="expected a paletted PNG"):
        png.decode_paletted(png.encode_png(np.zeros((2, 2), np.uint8)), "x.png")


def test_one_bit_gray_is_refused_with_its_type():
    img = Image.new("1", (8, 2))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with pytest.raises(InvalidFileError, match="unsupported pixel type"):
        png.decode_gray(buf.getvalue(), "x.png")


def test_label_png_encoder_round_trips_through_pillow_and_imageio():
    """encode_label_png writes standard PNGs (Up filter, zlib): read back by Pillow and by our
    decoders with every value, for each type it takes; other types are refused."""
    import io as _io

    from PIL import Image as _Image

    from cityscapes_io.png import decode_gray, decode_rgb, encode_label_png

    rng = np.random.default_rng(1)
    flat = np.zeros((64, 128), np.uint16)
    flat[10:40, 5:90] = 26001
    for arr in (rng.integers(0, 256, (7, 9), dtype=np.uint8), rng.integers(0, 65536, (5, 3), dtype=np.uint16),
                rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), rng.integers(0, 256, (4, 6, 4), dtype=np.uint8),
                np.zeros((1, 1), np.uint8), flat):
        data = encode_label_png(arr)
        assert np.array_equal(np.asarray(_Image.open(_io.BytesIO(data))), arr)
        got = decode_gray(data, "x.png") if arr.ndim == 2 else decode_rgb(data, "x.png")
        assert np.array_equal(got, arr if arr.ndim == 2 else arr[..., :3])
    assert len(encode_label_png(flat)) < 400
    for bad in (np.zeros((2, 2), np.int32), np.zeros((2, 2, 2), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(ValueError):
            encode_label_png(bad)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (257, 33), (64, 2048)])
def test_gray_decoded_straight_into_our_array_equals_pillow(shape, dtype):
    """The fast route for 8- and 16-bit gray PNGs (Pillow's decoder writing into our array)
    gives what Pillow's ordinary decoding gives, for files of every encoder we meet, in several
    IDAT chunks."""
    rng = np.random.default_rng(sum(shape))
    top = 65536 if dtype == np.uint16 else 256
    flat = np.repeat(rng.integers(0, 34, (shape[0], 1)) * (1000 if dtype == np.uint16 else 7), shape[1], axis=1)
    noisy = rng.integers(0, top, shape)
    for arr in (flat.astype(dtype), noisy.astype(dtype), ((flat + (noisy % 3)) % top).astype(dtype)):
        encoded = [png.encode_png(arr), png.encode_label_png(arr), png.encode_png(arr, compress_level=9)]
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", optimize=True)
        encoded.append(buf.getvalue())
        for data in encoded:
            header = png.read_header(data, "x.png")
            fast = png._gray_direct(data, header)
            assert fast is not None  # the route is taken: this test compares something
            im = Image.open(io.BytesIO(data))
            ordinary = np.frombuffer(im.tobytes(), "<u2" if dtype == np.uint16 else np.uint8).reshape(shape)
            assert fast.dtype == dtype and np.array_equal(fast, ordinary) and np.array_equal(fast, arr)
            assert np.array_equal(png.decode_gray(data, "x.png"), arr)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_gray_truncated_or_corrupt_is_still_reported(dtype):
    arr = (np.arange(64 * 2048) % (65536 if dtype == np.uint16 else 256)).astype(dtype).reshape(64, 2048)
    data = png.encode_png(arr)
    with pytest.raises(InvalidFileError, match="x.png"):
        png.decode_gray(data[: len(data) // 2], "x.png")
    spoiled = bytearray(data)
    spoiled[len(data) // 2] ^= 0xFF
    with pytest.raises(InvalidFileError, match="x.png"):
        png.decode_gray(bytes(spoiled), "x.png")


def test_a_paletted_png_without_its_palette_is_an_error_naming_the_file():
    """Found by a long fuzz run (seed 18): IHDR says paletted (colour type 3) and there is no
    PLTE chunk; Pillow failed with an AttributeError ('NoneType' object has no attribute
    'colors') instead of a clear error."""
    import struct
    import zlib

    from cityscapes_io.errors import InvalidFileError

    data = bytearray(png.encode_png(np.zeros((4, 6), np.uint8)))
    data[25] = 3  # IHDR colour type: paletted
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    with pytest.raises(InvalidFileError, match="x_pred.png: paletted PNG without a palette"):
        png.decode_gray(bytes(data), "x_pred.png")


@pytest.mark.parametrize("compressor", ["libdeflate", "zlib"])
def test_label_pngs_are_no_larger_than_pillows_default_and_read_back(monkeypatch, decoder_path, compressor):
    """Issue 20: the writers' label PNGs (every row Up, libdeflate or, without the deflate
    package, zlib) are no larger than Pillow's default encoding of the same pixels, over
    full-size frames (one file may come out a few bytes larger: Pillow's per-row filter choice
    sometimes wins; on tiny images the fixed costs differ), and read back exactly."""
    from cityscapes_io.testing import make_frame

    if decoder_path != "pure":  # (the pure path always runs: the extension need not be built)
        pytest.skip("the encoder does not depend on the decoder: run once, with the pure path")
    if compressor == "libdeflate" and png._DEFLATE is None:
        pytest.skip("the deflate package is not installed")
    if compressor == "zlib":
        monkeypatch.setattr(png, "_DEFLATE", None)

    ours = {"instanceIds": 0, "labelIds": 0, "color": 0, "paletted": 0}
    pillow = dict.fromkeys(ours, 0)
    palette = np.random.default_rng(1).integers(0, 256, size=(40, 3), dtype=np.uint8)
    for index in range(3):
        frame = make_frame(seed=0, index=index, photos=False)
        for kind in ("instanceIds", "labelIds", "color"):
            arr = np.ascontiguousarray(frame[kind])
            assert arr.shape[:2] == (1024, 2048)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            data = png.encode_label_png(arr)
            assert len(data) <= 1.01 * len(buf.getvalue()), kind
            ours[kind] += len(data)
            pillow[kind] += len(buf.getvalue())
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)
        data = png.encode_label_png(frame["labelIds"], palette=palette)
        indices, table = png.decode_paletted(data, "paletted")
        assert np.array_equal(indices, frame["labelIds"]) and np.array_equal(table[:40], palette)
        assert not table[40:].any()
        buf = io.BytesIO()
        im = Image.fromarray(frame["labelIds"], "P")
        im.putpalette(table.tobytes())
        im.save(buf, format="PNG")
        ours["paletted"] += len(data)
        pillow["paletted"] += len(buf.getvalue())
    for kind in ours:
        assert ours[kind] <= pillow[kind], (kind, ours[kind], pillow[kind])
