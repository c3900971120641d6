"""Decoding and encoding of the images of a dataset, with checks done before any large allocation.

The codec is imageio's v3 API with its Pillow plugin named explicitly (``plugin="pillow"``: the
same decoder for every extension, and no plugin search per call). Before anything is decoded,
a PNG's IHDR chunk is read here (:func:`read_header`) and other formats' sizes are taken from
the opened file's properties, so that a file declaring a huge image is refused without
allocating it. Pixel types are under our control: 16-bit gray PNGs decode to ``uint16``
whatever Pillow's version calls the mode (``I;16`` or ``I``), 8-bit gray to ``uint8``,
paletted PNGs to their indices.

Pillow is used directly in one place only, where imageio cannot do the job: writing a paletted
PNG with a given colour table (see :func:`encode_png`). (Its ``DecompressionBombError`` is also
caught here: imageio passes Pillow's errors on.) A paletted PNG's colour table is read from its
PLTE chunk here, since imageio reports the palette only as its set of distinct colours.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from typing import Any, List, Optional, Tuple

import imageio.v3 as iio
import numpy as np
from PIL import Image, UnidentifiedImageError

from . import decoder
from .errors import InvalidFileError

__all__ = ["MAX_PIXELS", "IMAGE_EXTS", "PngHeader", "read_header", "image_size", "decode_gray", "encode_label_png",
           "decode_paletted", "decode_rgb", "encode_png", "encode_image", "check_structure", "structure_problem",
           "decode_failure", "decode_photo"]

#: Largest image (in pixels) decoded; larger headers are refused before decoding.
MAX_PIXELS = 1 << 27  # 134 M pixels: 64× a Cityscapes frame

#: Extensions of the photo formats :func:`encode_image` writes (and :func:`decode_rgb` reads).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: JPEG quality of re-encoded photos.
JPEG_QUALITY = 95

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {0: "gray", 2: "RGB", 3: "paletted", 4: "gray+alpha", 6: "RGBA"}


class PngHeader(Tuple[int, int, int, int]):
    """``(width, height, bit_depth, color_type)`` from a PNG's IHDR chunk."""

    @property
    def width(self) -> int:
        return self[0]

    @property
    def height(self) -> int:
        return self[1]

    @property
    def bit_depth(self) -> int:
        return self[2]

    @property
    def color_type(self) -> int:
        return self[3]


def read_header(data: bytes, path: str) -> PngHeader:
    """Read a PNG's header without decoding it.

    Raises
    ------
    InvalidFileError
        The bytes are not a PNG, the header is truncated or corrupt, or the declared size
        exceeds :data:`MAX_PIXELS`.
    """
    if len(data) < 8 or data[:8] != _SIGNATURE:
        raise InvalidFileError(path, f"not a PNG file (bad signature: starts with {bytes(data[:8])!r})"
                                     if data else "empty file")
    if len(data) < 33:
        raise InvalidFileError(path, f"truncated PNG: the file ends at byte {len(data)}, inside its header")
    if data[12:16] != b"IHDR":
        raise InvalidFileError(path, "corrupt PNG (the first chunk is not IHDR)")
    ihdr = data[16:29]
    if zlib.crc32(data[12:29]) & 0xFFFFFFFF != struct.unpack(">I", data[29:33])[0]:
        raise InvalidFileError(path, "corrupt PNG header (IHDR checksum mismatch)")
    width, height, depth, ctype = struct.unpack(">IIBB", ihdr[:10])
    if width == 0 or height == 0:
        raise InvalidFileError(path, f"PNG declares an empty image ({width}x{height})")
    _check_size(width, height, path, "PNG")
    return PngHeader((width, height, depth, ctype))


def _check_size(width: int, height: int, path: str, what: str = "image") -> None:
    if width * height > MAX_PIXELS:
        raise InvalidFileError(
            path, f"{what} declares {width}x{height} pixels, more than the limit of {MAX_PIXELS} (refused)"
        )


# Errors Pillow's decoders raise on bad input (imageio lets them through, or wraps those of
# opening in an OSError whose cause is the original).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
                  Image.DecompressionBombError)


def _reason(exc: BaseException, doing: str) -> str:
    """``exc`` as the reason of an :class:`InvalidFileError`: the innermost cause, which is
    Pillow's own message when imageio wrapped it."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, Image.DecompressionBombError):
        return f"refused: {exc}"
    if isinstance(exc, UnidentifiedImageError) or "can not read the provided bytes" in str(exc):
        # (Pillow's message names a BytesIO object, imageio's names no file.)
        return "not an image: no image format recognises its bytes"
    return f"{doing}: {exc}"


def _decode(data: bytes, path: str, mode: Optional[str] = None, rgb: bool = False,
            header: Optional[PngHeader] = None) -> np.ndarray:
    """Open ``data`` once with imageio's Pillow plugin and decode it, after refusing a size
    above :data:`MAX_PIXELS` (from ``header``, the PNG's already checked IHDR, or from the
    opened file's properties: Pillow reads the header only, nothing is decoded yet).

    ``mode``: Pillow mode to convert to (``"P"`` keeps a paletted image's indices, which
    imageio would otherwise map through the palette). ``rgb``: convert to RGB unless the image
    decodes to ``H×W×3`` uint8 as it is (converting an RGB image to RGB would copy it)."""
    if header is not None and header.color_type == 3:
        _palette(data, path)  # Pillow fails below Python's errors on a paletted PNG without PLTE
    try:
        # No extension needed: Pillow identifies the format from the bytes. (Not `with
        # imopen(...) as file`: imageio types __enter__ as returning the plugin base class.)
        file = iio.imopen(data, "r", plugin="pillow")
        with file:
            if header is None:
                props = file.properties(index=0)
                _check_size(props.shape[1], props.shape[0], path)
                is_rgb = props.shape[2:] == (3,) and props.dtype == np.uint8
            else:
                is_rgb = header.color_type == 2  # Pillow's mode "RGB" at 8 and 16 bits
            if rgb and not is_rgb:
                mode = "RGB"
            # writeable_output=False: no copy of a read-only result (the arrays are not
            # modified in place; a caller that needs to write copies).
            if mode is None:  # (imageio types `mode` as str, with None as its default)
                return file.read(index=0, writeable_output=False)
            return file.read(index=0, mode=mode, writeable_output=False)
    except InvalidFileError:
        raise
    except _DECODE_ERRORS as exc:
        raise InvalidFileError(path, decode_failure(data, exc)) from exc


def decode_failure(data: bytes, exc: BaseException, doing: str = "cannot decode image") -> str:
    """Why ``data`` could not be decoded, in words, for callers that decode with Pillow
    themselves: where a PNG is cut or broken (rather than the decoder's words), "not an image",
    or Pillow's reason (never the repr of the buffer it was given)."""
    problem = structure_problem(data) if data[:8] == _SIGNATURE else None
    return problem or _reason(exc, doing)


# The fast path (see :mod:`cityscapes_io.decoder`): the C unfilter, and libdeflate's inflate
# (or zlib's when the deflate package is missing). None on the pure-Python path.
_UNFILTER: Any = decoder.unfilter_module()
_INFLATE: Any = decoder.inflate_module()
# libdeflate for what the writers compress and for CRCs, whichever path decodes.
_DEFLATE: Any = decoder.deflate_module()
_crc32: Any = _DEFLATE.crc32 if _DEFLATE is not None else zlib.crc32

#: Bytes per pixel of the (colour type, bit depth) pairs the fast path decodes, and the
#: array's trailing shape. Bit depths below 8 and interlaced images go to Pillow.
_FAST_LAYOUTS = {(0, 8): (1, ()), (0, 16): (2, ()), (3, 8): (1, ()), (2, 8): (3, (3,)), (6, 8): (4, (4,))}


def fast_path_active() -> bool:
    """Whether PNGs are decoded by the C extension (else by Pillow)."""
    return _UNFILTER is not None


def _image_data(data: bytes, path: str) -> Any:
    """The zlib stream of a PNG (its IDAT chunks, joined when there are several), every chunk
    up to the last IDAT checked for its length and CRC. A buffer, not a copy, for one IDAT."""
    view = memoryview(data)
    size, pos = len(data), 8
    parts: List[memoryview] = []
    while True:
        if pos + 12 > size:
            if parts:
                break  # no IEND: the image data is complete, as Pillow also accepts
            raise InvalidFileError(path, f"truncated PNG: the file ends at byte {size} before its image data")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind != b"IDAT" and parts:
            break  # the image data is complete: what follows it is not read (as Pillow does not)
        end = pos + 12 + length
        if end > size:
            raise InvalidFileError(path, f"truncated PNG: {kind.decode('latin-1')} ends at byte {end} of {size}")
        if _crc32(view[pos + 4:end - 4]) & 0xFFFFFFFF != struct.unpack_from(">I", data, end - 4)[0]:
            raise InvalidFileError(path, f"corrupt PNG: {kind.decode('latin-1')} chunk at byte {pos} fails its CRC check")
        if kind == b"IDAT":
            parts.append(view[pos + 8:end - 4])
        elif kind == b"IEND":
            raise InvalidFileError(path, "corrupt PNG: no IDAT chunk (no image data)")
        pos = end
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _inflate(stream: Any, n: int, path: str) -> Any:
    """Exactly ``n`` bytes of image data out of ``stream``: a bytearray (libdeflate's, written
    in place afterwards) or bytes (zlib's). Never more than ``n + 1`` bytes are produced, so
    a stream that inflates to more than its header declares costs no memory."""
    if _INFLATE is not None:
        try:
            out = _INFLATE.zlib_decompress(stream, n)
        except _INFLATE.DeflateError:
            _zlib_inflate(stream, n, path)  # libdeflate does not say why: zlib does
            raise InvalidFileError(path, "corrupt PNG: its image data is not a valid zlib stream") from None
        if len(out) < n:
            raise InvalidFileError(path, f"corrupt PNG: its image data ends early ({len(out)} of the {n} bytes "
                                         f"its header declares)")
        return out
    return _zlib_inflate(stream, n, path)


def _zlib_inflate(stream: Any, n: int, path: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(stream, n + 1)
    except zlib.error as exc:
        raise InvalidFileError(path, f"corrupt PNG: its image data is not a valid zlib stream ({exc})") from None
    if len(out) > n:
        raise InvalidFileError(path, f"corrupt PNG: its image data inflates to more than the "
                                     f"{n} bytes its header declares")
    if not inflater.eof:
        raise InvalidFileError(path, f"corrupt PNG: its image data is not a valid zlib stream (cut short after "
                                     f"{len(out)} of the {n} bytes its header declares)")
    if len(out) < n:
        raise InvalidFileError(path, f"corrupt PNG: its image data ends early ({len(out)} of the {n} bytes "
                                     f"its header declares)")
    return out


def _fast_decode(data: bytes, path: str, header: PngHeader, rgb: bool = False) -> Optional[np.ndarray]:
    """Decode with the C unfilter, or None when the fast path does not apply (not built,
    interlaced, a bit depth or colour type it leaves to Pillow). The array is writable and
    owns its memory (the inflated buffer, unfiltered in place). ``rgb``: an RGBA image comes
    out as RGB (alpha dropped, as Pillow's conversion to RGB does)."""
    layout = _FAST_LAYOUTS.get((header.color_type, header.bit_depth))
    if _UNFILTER is None or layout is None or data[28] != 0 or data[26] != 0 or data[27] != 0:
        return None
    bpp, tail = layout
    w, h = header.width, header.height
    stride = w * bpp
    raw = _inflate(_image_data(data, path), h * (stride + 1), path)
    out = raw if isinstance(raw, bytearray) else np.empty(h * stride, np.uint8)
    wide = header.bit_depth == 16
    try:
        _UNFILTER.unfilter(raw, out, h, stride, bpp, wide and sys.byteorder == "little")
    except ValueError as exc:
        raise InvalidFileError(path, f"corrupt PNG image data: {exc}") from None
    if rgb and tail == (4,):
        _UNFILTER.drop_bytes(out, h * w, 4, 3)
        return np.frombuffer(out, np.uint8, count=h * w * 3).reshape(h, w, 3)
    return np.frombuffer(out, np.uint16 if wide else np.uint8, count=h * stride // (2 if wide else 1)
                         ).reshape((h, w) + tail)


def _gray_direct(data: bytes, header: PngHeader) -> Optional[np.ndarray]:
    """A non-interlaced 8- or 16-bit gray PNG decoded by Pillow's own PNG decoder straight into
    an array of ours: Pillow's route out of its image (``tobytes``, joined chunks) costs half as
    much again as decoding a 16-bit image. None when this Pillow does not go along (the image
    is then decoded the ordinary way, which also gives the proper error for a corrupt file)."""
    w, h = header.width, header.height
    mode, dtype, mark = ("I;16", np.uint16, 0x1234) if header.bit_depth == 16 else ("L", np.uint8, 0x5A)
    out: np.ndarray = np.empty((h, w), dtype)
    try:
        im: Any = Image.open(io.BytesIO(data), formats=("PNG",))  # (load_read: PngImageFile's)
        if im.mode != mode or im.size != (w, h) or len(im.tile) != 1:
            return None
        tile = im.tile[0]
        name, extents, offset, args = tile[0], tile[1], tile[2], tile[3]
        out[0, 0] = mark
        target = Image.frombuffer(mode, (w, h), out, "raw", mode, 0, 1)
        if target.getpixel((0, 0)) != mark:  # the image does not share our array's memory
            return None
        im.load_prepare()
        im.fp.seek(offset)
        decoder = Image._getdecoder(im.mode, name, args, getattr(im, "decoderconfig", ()))
        decoder.setimage(target.im, extents)
        buffered = b""
        while True:
            chunk = im.load_read(im.decodermaxblock)
            if not chunk:
                return None  # truncated: the ordinary route says so
            buffered += chunk
            n, err = decoder.decode(buffered)
            if n < 0:
                break
            buffered = buffered[n:]
        decoder.cleanup()
        if err < 0:
            return None
    except Exception:  # noqa: BLE001 - any trouble here: the ordinary route decodes (or reports) the file
        return None
    return out


def decode_gray(data: bytes, path: str) -> np.ndarray:
    """Decode a single-channel PNG to a 2-D array (``uint16`` for 16-bit, ``uint8`` for 8-bit or
    paletted).

    Raises
    ------
    InvalidFileError
        Not a PNG, truncated, corrupt, too large, or not single-channel (e.g. RGB).
    """
    header = read_header(data, path)
    if header.color_type not in (0, 3):
        raise InvalidFileError(
            path,
            f"expected a single-channel (gray) PNG, got {_COLOR_TYPES.get(header.color_type, header.color_type)}",
        )
    if header.color_type == 3:
        _palette(data, path)  # (an indexed image without its colour table is corrupt)
    fast = _fast_decode(data, path, header)
    if fast is not None:
        return fast
    if header.color_type == 0 and header.bit_depth in (8, 16) and data[28] == 0:
        direct = _gray_direct(data, header)
        if direct is not None:
            return direct
    arr = _decode(data, path, mode="P" if header.color_type == 3 else None, header=header)
    if arr.ndim != 2:
        raise InvalidFileError(path, f"expected a single-channel image, got shape {arr.shape}")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return arr
    # Pillow before 10 decodes 16-bit gray as mode "I" (int32), and imageio passes it on.
    if arr.dtype.kind in "iu" and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 0xFFFF)):
        return arr.astype(np.uint16)
    raise InvalidFileError(path, f"unsupported pixel type {arr.dtype}")


def decode_paletted(data: bytes, path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Decode a paletted PNG to ``(indices, palette)``: an ``H×W`` uint8 array and a
    ``256×3`` uint8 colour table (entries past the file's palette are black)."""
    header = read_header(data, path)
    if header.color_type != 3:
        raise InvalidFileError(path, "expected a paletted PNG")
    palette = _palette(data, path)
    indices = _fast_decode(data, path, header)
    if indices is None:
        indices = _decode(data, path, mode="P", header=header)
    return indices, palette


def _palette(data: bytes, path: str) -> np.ndarray:
    """The colour table of a PNG's PLTE chunk, as 256×3 uint8. (imageio's metadata gives the
    palette as the list of its distinct colours, which loses the index of repeated ones.)"""
    pal = np.zeros((256, 3), np.uint8)
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"PLTE":
            raw = data[pos + 8:pos + 8 + min(length, 256 * 3)]
            raw = raw[: len(raw) // 3 * 3]
            pal.reshape(-1)[: len(raw)] = np.frombuffer(raw, np.uint8)
            return pal
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    raise InvalidFileError(path, "paletted PNG without a palette (no PLTE chunk before the image data)")


def decode_rgb(data: bytes, path: str) -> np.ndarray:
    """Decode a photo to an ``H×W×3`` uint8 array: PNG, JPEG, BMP, TIFF, WebP (every format of
    :data:`IMAGE_EXTS`, and any other that Pillow reads). Gray, paletted and RGBA images are
    converted to RGB (alpha dropped).

    Raises
    ------
    InvalidFileError
        Truncated, corrupt, not an image, or declaring more than :data:`MAX_PIXELS` pixels
        (checked from the header before decoding).
    """
    header = read_header(data, path) if data[:8] == _SIGNATURE else None
    if header is not None and header.color_type in (2, 6):
        fast = _fast_decode(data, path, header, rgb=True)
        if fast is not None:
            return fast
    return _decode(data, path, rgb=True, header=header)


def decode_photo(data: bytes, path: str) -> np.ndarray:
    """Decode a photo to ``H×W×3``: uint8, or uint16 for a 16-bit PNG, whose samples are kept
    whole (the release's ``leftImg16bit``/``rightImg16bit``; Pillow would reduce them to 8
    bits). Other photos as :func:`decode_rgb`.

    Raises
    ------
    InvalidFileError
        As :func:`decode_rgb`; an interlaced 16-bit PNG is refused when the C extension is not
        built (no decoder here keeps its 16 bits).
    """
    header = read_header(data, path) if data[:8] == _SIGNATURE else None
    if header is None or header.bit_depth != 16:
        return decode_rgb(data, path)
    if header.color_type == 0:
        gray = decode_gray(data, path)
        return np.repeat(gray[:, :, None], 3, axis=2)
    channels = {2: 3, 4: 2, 6: 4}.get(header.color_type)
    if channels is None or data[26] != 0 or data[27] != 0:
        raise InvalidFileError(path, f"unsupported PNG (colour type {header.color_type}, 16-bit)")
    if data[28] != 0:
        raise InvalidFileError(path, "interlaced 16-bit PNG photos are not supported")
    w, h = header.width, header.height
    bpp = 2 * channels
    stride = w * bpp
    raw = _inflate(_image_data(data, path), h * (stride + 1), path)
    if _UNFILTER is not None:
        out = raw if isinstance(raw, bytearray) else bytearray(h * stride)
        try:
            _UNFILTER.unfilter(raw, out, h, stride, bpp, sys.byteorder == "little")
        except ValueError as exc:
            raise InvalidFileError(path, f"corrupt PNG image data: {exc}") from None
        pixels = np.frombuffer(out, np.uint16, count=h * w * channels).reshape(h, w, channels)
    else:
        pixels = _numpy_unfilter(raw, h, stride, bpp, path).view(">u2").astype(np.uint16).reshape(h, w, channels)
    if channels == 2:  # gray and alpha
        return np.repeat(pixels[:, :, :1], 3, axis=2)
    return pixels if channels == 3 else np.ascontiguousarray(pixels[:, :, :3])


def _numpy_unfilter(raw: Any, h: int, stride: int, bpp: int, path: str) -> np.ndarray:
    """The PNG filters undone with numpy (the fallback of the C extension, for 16-bit photos):
    ``h`` rows of ``stride`` bytes, each after its filter byte. Sub and Up are vectorised;
    Average and Paeth go pixel by pixel (slow: seconds for a 2048×1024 photo)."""
    src = np.frombuffer(raw, np.uint8, count=h * (stride + 1)).reshape(h, stride + 1)
    out = np.zeros((h + 1, stride), np.uint8)  # row 0: the zero row above the first
    for y in range(h):
        kind, row, prev = src[y, 0], src[y, 1:], out[y]
        if kind == 0:
            out[y + 1] = row
        elif kind == 1:
            out[y + 1] = np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            out[y + 1] = row + prev
        elif kind in (3, 4):
            r, p, cur = row.tolist(), prev.tolist(), [0] * stride
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = p[i]
                if kind == 3:
                    cur[i] = (r[i] + ((a + b) >> 1)) & 0xFF
                    continue
                c = p[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (r[i] + pred) & 0xFF
            out[y + 1] = cur
        else:
            raise InvalidFileError(path, f"corrupt PNG image data: unknown filter type {kind} in row {y}")
    return out[1:]


def structure_problem(data: bytes, ext: Optional[str] = None) -> Optional[str]:
    """What is structurally wrong with an encoded photo, without decoding it; None when nothing.

    A PNG (recognised by its signature, or expected from ``ext``) must be a run of chunks each
    within the file and with a valid CRC, starting with IHDR, with image data, and ending with
    IEND. A JPEG must start with SOI and end with EOI (trailing padding allowed). Other formats
    are checked by their header only (Pillow identifies them without decoding)."""
    ext = (ext or "").lower()
    is_jpeg = data[:2] == b"\xff\xd8"
    if data[:8] == _SIGNATURE or (ext == ".png" and not is_jpeg):
        return _png_problem(data)
    if is_jpeg or ext in (".jpg", ".jpeg"):
        if data[:3] != b"\xff\xd8\xff":
            return "not a JPEG file (no SOI marker)" if data else "empty file"
        if data[-64:].rstrip(b"\x00\r\n \t")[-2:] != b"\xff\xd9":
            return f"truncated JPEG: no EOI marker at the end of its {len(data)} bytes"
        return None
    if not data:
        return "empty file"
    try:
        iio.improps(data, plugin="pillow", index=0)
    except _DECODE_ERRORS as exc:
        return _reason(exc, "cannot read image header")
    return None


def _png_problem(data: bytes) -> Optional[str]:
    if data[:8] != _SIGNATURE:
        return f"not a PNG file (bad signature: starts with {bytes(data[:8])!r})" if data else "empty file"
    size = len(data)
    pos, first, seen_idat = 8, True, False
    view = memoryview(data)
    while True:
        if pos + 12 > size:
            return f"truncated PNG: the file ends at byte {size} with no IEND chunk"
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        name = kind.decode("latin-1")
        if end > size:
            return f"truncated PNG: {name} ends at byte {end} of {size}"
        if _crc32(view[pos + 4:end - 4]) & 0xFFFFFFFF != struct.unpack_from(">I", data, end - 4)[0]:
            return f"corrupt PNG: {name} chunk at byte {pos} fails its CRC check"
        if first and kind != b"IHDR":
            return "corrupt PNG (the first chunk is not IHDR)"
        first = False
        seen_idat = seen_idat or kind == b"IDAT"
        if kind == b"IEND":
            return None if seen_idat else "corrupt PNG: no IDAT chunk (no image data)"
        pos = end


def check_structure(data: bytes, path: str, ext: Optional[str] = None) -> None:
    """Raise :class:`InvalidFileError` naming ``path`` when :func:`structure_problem` finds one:
    the cheap check of a photo copied without decoding (``--save-media``)."""
    problem = structure_problem(data, ext)
    if problem:
        raise InvalidFileError(path, problem)


def image_size(data: bytes, path: str) -> Tuple[int, int]:
    """``(width, height)`` of an encoded image, read from its header only."""
    if data[:8] == _SIGNATURE:
        h = read_header(data, path)
        return h.width, h.height
    try:
        props = iio.improps(data, plugin="pillow", index=0)
    except _DECODE_ERRORS as exc:
        raise InvalidFileError(path, _reason(exc, "cannot read image header")) from exc
    height, width = props.shape[:2]
    return width, height


def encode_png(arr: np.ndarray, *, palette: Optional[np.ndarray] = None, compress_level: int = 6,
               rle: bool = False) -> bytes:
    """Encode an array as PNG: ``uint16`` 2-D → 16-bit gray, ``uint8`` 2-D → 8-bit gray (or
    paletted when ``palette`` (N×3 uint8) is given), ``H×W×3`` → RGB, ``H×W×4`` → RGBA.
    Other integer types are cast to the 8-bit type. ``rle`` uses zlib's run-length strategy:
    label images (long runs of one value) come out about half the size in the same time."""
    if arr.ndim == 2 and palette is not None:
        return _encode_paletted(arr, palette, compress_level)
    if arr.ndim == 2 and arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # either byte order
        arr = np.ascontiguousarray(arr, dtype="<u2")  # Pillow's I;16 (a big-endian array would be I;16B)
    elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
    else:
        raise ValueError(f"cannot encode array of shape {arr.shape} and type {arr.dtype} as PNG")
    if rle:
        return _write(arr, ".png", compress_level=compress_level, compress_type=zlib.Z_RLE)
    return _write(arr, ".png", compress_level=compress_level)


#: Compression level of label PNGs with libdeflate (and with zlib without it): see
#: :func:`encode_label_png` and the table in ``benchmarks/README.md`` (issue 20). At level 6
#: some 8-bit labelIds came out 0.6 % larger than Pillow's default; at 7, 0.05 % (files of a
#: split together stay below it: tests/test_png.py).
LABEL_LEVEL = 7
#: The level of paletted masks (VOC, CamVid): 0.62 of Pillow's size already at level 3, and
#: 2 ms a mask faster than at 7 (their encoding is most of a VOC conversion's time).
PALETTE_LEVEL = 3
#: zlib's level for gray and RGB(A) label PNGs when the ``deflate`` package is missing (at 7 a
#: labelIds file came out 1.2 % larger than Pillow's default; at 8, 0.976 of it over a split).
ZLIB_LEVEL = 8


def encode_label_png(arr: np.ndarray, palette: Optional[np.ndarray] = None) -> bytes:
    """Encode a label image for fast reading at a size no larger than Pillow's default:
    ``uint8`` / ``uint16`` 2-D (gray, or paletted when ``palette``, N×3 uint8, is given) or
    ``H×W×3`` / ``H×W×4`` ``uint8`` (RGB, RGBA).

    Every row is filtered by PNG's "Up" filter (label images repeat from one row to the next, so
    most filtered bytes are 0; undoing Up is a plain vectorised add, where Pillow's choice mixes
    in Paeth rows, the slowest to undo), then deflated by libdeflate at level
    :data:`LABEL_LEVEL` (zlib at :data:`ZLIB_LEVEL` without the ``deflate`` package). Paletted
    masks too, at :data:`PALETTE_LEVEL` (zlib's run-length strategy without ``deflate``): on
    full frames Up gives 0.62 of Pillow's size, PNG's advice of no filter for indices 0.84. Measured on 2048×1024 labels (``benchmarks/bench_png_encode.py`` and the
    table in ``benchmarks/README.md``): 0.6-1.0 of Pillow's default size, encoded 2-3× faster
    than Pillow. The PNG is standard (any decoder reads it). Paletted indices of another
    integer type are cast to ``uint8``."""
    if palette is not None and arr.ndim == 2:
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 2 and arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2):
        depth, color, rows = 8 * arr.dtype.itemsize, 0, np.ascontiguousarray(arr, dtype=f">u{arr.dtype.itemsize}")
        if palette is not None:  # (8-bit: cast above)
            color = 3
    elif arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8 and palette is None:
        depth, color, rows = 8, 2 if arr.shape[2] == 3 else 6, np.ascontiguousarray(arr)
    else:
        raise ValueError(f"cannot encode array of shape {arr.shape} and type {arr.dtype} as a label PNG")
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("cannot encode an empty image as PNG")
    data = rows.view(np.uint8).reshape(h, -1)
    filtered = np.empty((h, data.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # Up: each byte minus the byte above it (modulo 256)
    filtered[0, 1:] = data[0]
    np.subtract(data[1:], data[:-1], out=filtered[1:, 1:])
    if _DEFLATE is not None:
        stream = bytes(_DEFLATE.zlib_compress(filtered, PALETTE_LEVEL if color == 3 else LABEL_LEVEL))
    elif color == 3:  # (zlib: run-length coding of the Up-filtered indices, 0.63 of Pillow's size, 4 ms)
        packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        stream = packer.compress(filtered) + packer.flush()
    else:
        stream = zlib.compress(filtered, ZLIB_LEVEL)
    header = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    plte = b""
    if color == 3:
        assert palette is not None
        table = np.zeros((256, 3), np.uint8)
        table[: len(palette)] = np.asarray(palette, np.uint8)[:256]
        plte = _chunk(b"PLTE", table.tobytes())
    return _SIGNATURE + _chunk(b"IHDR", header) + plte + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _encode_paletted(arr: np.ndarray, palette: np.ndarray, compress_level: int) -> bytes:
    # Pillow directly: imageio's Pillow plugin cannot attach a given colour table to a mode "P"
    # image (its `bits` option quantizes to a palette of its own choosing).
    img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
    pal = np.zeros((256, 3), np.uint8)
    pal[: len(palette)] = palette
    img.putpalette(pal.tobytes())
    with io.BytesIO() as buf:
        img.save(buf, format="PNG", compress_level=compress_level)
        return buf.getvalue()


def encode_image(arr: np.ndarray, ext: str) -> bytes:
    """Encode a photo (``H×W×3`` uint8) in the format of ``ext``, one of :data:`IMAGE_EXTS`
    (JPEG at quality :data:`JPEG_QUALITY`; the other formats with Pillow's defaults, PNG at
    compression level 6)."""
    ext = ext.lower()
    if ext not in IMAGE_EXTS:
        raise ValueError(f"image extension {ext!r} not supported (one of {', '.join(IMAGE_EXTS)})")
    if ext == ".png":
        return encode_png(arr)
    options = {"quality": JPEG_QUALITY} if ext in (".jpg", ".jpeg") else {}
    return _write(np.ascontiguousarray(arr, dtype=np.uint8), ext, **options)


def _write(arr: np.ndarray, ext: str, **options: Any) -> bytes:
    encoded = iio.imwrite("<bytes>", arr, plugin="pillow", extension=ext, **options)
    assert encoded is not None  # imwrite returns the bytes when writing to "<bytes>"
    return encoded

