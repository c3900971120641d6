"""Decoding and encoding of the images of a dataset, with checks done before any large allocation.

Decoding goes through Pillow (which imageio brings) so that the pixel type is under our control:
16-bit gray PNGs decode to ``uint16`` whatever Pillow's version calls the mode (``I;16`` or ``I``),
8-bit gray to ``uint8``, paletted PNGs to their indices.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from .errors import InvalidFileError

__all__ = ["MAX_PIXELS", "PngHeader", "read_header", "decode_gray", "decode_rgb", "encode_png"]

#: Largest image (in pixels) decoded; larger headers are refused before decoding.
MAX_PIXELS = 1 << 27  # 134 M pixels: 64× a Cityscapes frame

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
        raise InvalidFileError(path, "not a PNG file (bad signature)" if data else "empty file")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InvalidFileError(path, "truncated or corrupt PNG (no IHDR chunk)")
    ihdr = data[16:29]
    if zlib.crc32(data[12:29]) & 0xFFFFFFFF != struct.unpack(">I", data[29:33])[0]:
        raise InvalidFileError(path, "corrupt PNG header (IHDR checksum mismatch)")
    width, height, depth, ctype = struct.unpack(">IIBB", ihdr[:10])
    if width == 0 or height == 0:
        raise InvalidFileError(path, f"PNG declares an empty image ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise InvalidFileError(
            path, f"PNG declares {width}x{height} pixels, more than the limit of {MAX_PIXELS} (refused)"
        )
    return PngHeader((width, height, depth, ctype))


def _open(data: bytes, path: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise InvalidFileError(path, f"image declares {img.width}x{img.height} pixels, more than the limit")
        img.load()
    except InvalidFileError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidFileError(path, f"refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise InvalidFileError(path, f"cannot decode image: {exc}") from exc
    return img


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
    img = _open(data, path)
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise InvalidFileError(path, f"expected a single-channel image, got shape {arr.shape}")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return arr
    # Old Pillow versions decode 16-bit gray as mode "I" (int32).
    if arr.dtype.kind in "iu" and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 0xFFFF)):
        return arr.astype(np.uint16)
    raise InvalidFileError(path, f"unsupported pixel type {arr.dtype}")


def decode_paletted(data: bytes, path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Decode a paletted PNG to ``(indices, palette)``: an ``H×W`` uint8 array and a
    ``256×3`` uint8 colour table."""
    header = read_header(data, path)
    if header.color_type != 3:
        raise InvalidFileError(path, "expected a paletted PNG")
    img = _open(data, path)
    pal = np.zeros((256, 3), np.uint8)
    raw = np.frombuffer(bytes(img.getpalette() or []), np.uint8)[: 256 * 3]
    pal.reshape(-1)[: len(raw)] = raw
    return np.asarray(img), pal


def decode_rgb(data: bytes, path: str) -> np.ndarray:
    """Decode a photo (PNG, JPEG, BMP, … anything Pillow reads) to an ``H×W×3`` uint8 array."""
    if data[:8] == _SIGNATURE:
        read_header(data, path)
    img = _open(data, path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def image_size(data: bytes, path: str) -> Tuple[int, int]:
    """``(width, height)`` of an encoded image, read from its header only."""
    if data[:8] == _SIGNATURE:
        h = read_header(data, path)
        return h.width, h.height
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidFileError(path, f"cannot read image header: {exc}") from exc


def encode_png(arr: np.ndarray, *, palette: Optional[np.ndarray] = None, compress_level: int = 6) -> bytes:
    """Encode an array as PNG: ``uint16`` 2-D → 16-bit gray, ``uint8`` 2-D → 8-bit gray (or
    paletted when ``palette`` (N×3 uint8) is given), ``H×W×3`` → RGB, ``H×W×4`` → RGBA."""
    if arr.ndim == 2 and arr.dtype == np.uint16:
        img = Image.frombuffer("I;16", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, dtype="<u2").tobytes(), "raw", "I;16", 0, 1)
    elif arr.ndim == 2:
        data = np.ascontiguousarray(arr, dtype=np.uint8)
        img = Image.frombytes("L" if palette is None else "P", (arr.shape[1], arr.shape[0]), data.tobytes())
        if palette is not None:
            pal = np.zeros((256, 3), np.uint8)
            pal[: len(palette)] = palette
            img.putpalette(pal.tobytes())
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        mode = "RGB" if arr.shape[2] == 3 else "RGBA"
        img = Image.frombytes(mode, (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
    else:
        raise ValueError(f"cannot encode array of shape {arr.shape} and type {arr.dtype} as PNG")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
