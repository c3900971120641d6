"""Bad input tried as a routine: the pieces shared by ``tests/test_fuzz.py`` (a seeded, bounded
run) and ``benchmarks/fuzz.py`` (longer runs that count outcomes).

Every input kind the library parses has a :class:`Kind`: it writes a small *valid* dataset with
the library's own writers (``convert`` of the shipped sample), offers a hypothesis strategy of
mutations (fields dropped, types changed, numbers at the limits, paths with ``..`` / absolute /
NUL, truncation, byte flips, PNG chunks and tar headers rewritten with valid checksums, a file
replaced by a symbolic link out of the root) and runs the library over the mutated files.
:func:`run_case` applies one mutation, runs it and returns an :class:`Outcome` against the
contract:

- a result (no frame given twice, a resumed conversion reads back as reported), or a
  :class:`~cityscapes_io.CityscapesIOError` whose message names a file and gives a reason in
  words (not an object's repr); any other exception type is a crash;
- no file outside the roots is opened (canary files lie beside the root; an audit hook on the
  ``open`` event records every opening, links resolved, of a file beside the root or of
  ``/etc/passwd``);
- the peak memory stays under :data:`MEMORY_BOUND`: traced by tracemalloc, or the growth of the
  process's peak RSS for what it does not trace (and an address-space limit keeps a
  runaway allocation from taking the machine down: it fails as ``MemoryError``, a crash).
"""
from __future__ import annotations

import copy
import gc
import io
import json
import os
import pickle
import posixpath
import resource
import shutil
import signal
import struct
import sys
import tarfile
import tempfile
import traceback
import tracemalloc
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import cityscapes_io as cio
from cityscapes_io import png

#: Peak memory allowed for one example (the valid inputs need a few MB).
MEMORY_BOUND = 256 << 20
#: Address space allowed above the current one while an example runs (a safety net only).
ADDRESS_SPACE_MARGIN = 4 << 30
CANARY = "canary.png"
#: Stands for the absolute path of the canary in mutation values (filled in when applied).
CANARY_ABS = "@CANARY_ABS@"

# -- reads outside the roots ------------------------------------------------------------------------
class _Watch:
    """The folder watched while an example runs (empty: none) and the roots inside it."""

    outside = ""
    roots: Tuple[str, ...] = ()
    opened: List[str] = []


def _audit(event: str, args: Tuple[Any, ...]) -> None:
    if event != "open" or not _Watch.outside or not isinstance(args[0], (str, bytes)):
        return
    path = os.path.realpath(os.fsdecode(args[0]))  # a link inside the root may lead out of it
    if path == "/etc/passwd" or (path.startswith(_Watch.outside + os.sep)
                                 and not any(path == r or path.startswith(r + os.sep) for r in _Watch.roots)):
        _Watch.opened.append(path)


sys.addaudithook(_audit)  # audit hooks cannot be removed: one for the process, switched by _Watch


# -- mutation values ----------------------------------------------------------------------------------
class Raw(str):
    """JSON text put in place as is (``1e400``, ``NaN``, deep nesting)."""


#: name -> value; mutations name their value so that a reproduction reads as text.
VALUES: Dict[str, Any] = {
    "0": 0, "-1": -1, "1": 1, "65535": 65535, "2**31": 2 ** 31, "2**32+1": 2 ** 32 + 1, "2**63": 2 ** 63,
    "-2**63": -2 ** 63, "10**12": 10 ** 12, "0.5": 0.5, "true": True, "null": None, '""': "", '"x"': "x",
    '"7"': "7", "[]": [], "{}": {}, "[0]*100000": [0] * 100000,
    "1e400": Raw("1e400"), "NaN": Raw("NaN"), "-Infinity": Raw("-Infinity"),
    "deep nesting": Raw("[" * 100000 + "]" * 100000),
    # RLE counts whose int64 sum wraps around to 128*256, and a negative run.
    "rle wrap": [2 ** 62, 2 ** 62, 2 ** 62, 2 ** 62 + 128 * 256], "rle negative": [-1, 128 * 256 + 1],
}


def rle_string(counts: Sequence[int]) -> str:
    """COCO's compressed RLE text of ``counts`` (5-bit groups, differences from two runs back)."""
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group, x = x & 0x1F, x >> 5
            more = x != (-1 if group & 0x10 else 0)
            out.append(chr((group | (0x20 if more else 0)) + 48))
    return "".join(out)


VALUES.update({"rle text wrap": rle_string(VALUES["rle wrap"]), "rle text negative": rle_string([-1, 128 * 256 + 1]),
               "rle text huge": rle_string([2 ** 70, 5]), "rle text cut": rle_string([5, 2 ** 40])[:-1]})
#: Paths a dataset file may name: each must stay inside its root.
PATHS = ["../canary.png", "../../canary.png", "../../../canary.png", "../../../../canary.png",
         "aachen/../../canary.png", CANARY_ABS, "/etc/passwd", "../../../../../../../../etc/passwd",
         "a\0b.png", "C:/x.png", "s3://bucket/x.png", "..", ".", "", "a" * 5000 + ".png", "\\..\\canary.png"]
VALUES.update({repr(p) if p != CANARY_ABS else "abs canary": p for p in PATHS})
VALUE_NAMES = sorted(VALUES)
#: Keys whose values the readers trust most (sizes, ids, paths, offsets, RLE counts): drawn more often.
HOT_KEYS = {"height", "width", "imgHeight", "imgWidth", "counts", "size", "file_name", "segm_file", "id", "image_id",
            "category_id", "bbox", "area", "polygon", "segments_info", "file", "files", "frames", "members",
            "labels", "color", "colors", "label", "categories", "images", "annotations", "splits"}


def _json_text(doc: Any) -> str:
    raws: List[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(str(node))
            return f"@RAW{len(raws) - 1}@"
        if isinstance(node, list):
            return [swap(v) for v in node]
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        return node

    text = json.dumps(swap(doc))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@RAW{i}@"', raw)
    return text


def json_paths(doc: Any, prefix: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Every path (keys and indices) into ``doc``; long lists contribute their first three items."""
    found = [prefix]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc[:3]) if isinstance(doc, list) else ()
    for key, value in items:
        found.extend(json_paths(value, prefix + (key,)))
    return found


def _mutate_json(doc: Any, op: str, path: Tuple[Any, ...], value: str) -> Any:
    if not path:
        return VALUES[value] if op == "set" else doc
    parent = doc
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return doc
    key = path[-1]
    if isinstance(parent, list) and not (isinstance(key, int) and key < len(parent)):
        return doc
    if isinstance(parent, dict) and key not in parent or not isinstance(parent, (list, dict)):
        return doc
    if op == "drop":
        del parent[key]
    elif op == "set":
        parent[key] = copy.deepcopy(VALUES[value])
    elif op == "dup" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif op == "wrap":
        parent[key] = [parent[key]]
    return doc


# -- byte- and line-level mutations --------------------------------------------------------------------
def _bytes_op(data: bytes, op: Sequence[Any]) -> bytes:
    name = op[0]
    if name == "truncate":
        return data[: op[1] % (len(data) + 1)]
    if name == "flip" and data:
        i = op[1] % len(data)
        return data[:i] + bytes([data[i] ^ op[2]]) + data[i + 1:]
    if name == "append":
        return data + op[1]
    return data


LINE_VALUES = PATHS + ["x y z", "24 1.0", " ", "\t", "#", "a b", "0 0 0", "256 0 0 road", "-1 0 0 road",
                       "1e400 0 0 road", "0 0 0 road", "0 0 0 ../canary", "255 255 255 " + "n" * 300,
                       "pred/0.png 24 nan", "pred/0.png 24 inf", "pred/0.png 24 -inf", "pred/0.png 24 1e400",
                       "pred/0.png 99999999999999999999 1", "pred/0.png -1 1", "pred/0.png 24.5 1",
                       "../canary.png 24 1.0", "/etc/passwd 24 1.0", CANARY_ABS + " 24 1.0",
                       "a\0b.png 24 1.0", "\ufeffx", "\udcff"]


def _lines_op(lines: List[str], op: Sequence[Any]) -> List[str]:
    if op[0] not in ("line", "field", "insert", "dupline", "dropline"):
        return lines
    name, i = op[0], (op[1] % len(lines) if lines else 0)
    if name == "line" and lines:
        lines[i] = op[2]
    elif name == "field" and lines:
        parts = lines[i].split()
        if parts:
            parts[op[2] % len(parts)] = op[3]
            lines[i] = " ".join(parts)
    elif name == "insert":
        lines.insert(i, op[2])
    elif name == "dupline" and lines:
        lines.insert(i, lines[i])
    elif name == "dropline" and lines:
        del lines[i]
    return lines


def _text_bytes(lines: List[str], ops: Sequence[Sequence[Any]]) -> bytes:
    sep = "\r\n" if any(op[0] == "crlf" for op in ops) else "\n"
    data = (sep.join(lines) + sep).encode("utf-8", "surrogateescape")
    if any(op[0] == "bom" for op in ops):
        data = b"\xef\xbb\xbf" + data
    return data


# -- PNG chunks -----------------------------------------------------------------------------------------
IHDR_FIELDS = {"width": (0, ">I"), "height": (4, ">I"), "depth": (8, ">B"), "color": (9, ">B"), "interlace": (12, ">B")}
IHDR_VALUES = [0, 1, 2, 3, 4, 6, 8, 16, 255, 16384, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]


def png_chunks(data: bytes) -> List[List[Any]]:
    """``[type, payload, length or None, crc or None]`` of each chunk (None: computed)."""
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append([kind, data[pos + 8:pos + 8 + length], None, None])
        pos += 12 + length
    return chunks


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BOMB = zlib.compress(b"\0" * (64 << 20), 9)


def _png_op(chunks: List[List[Any]], op: Sequence[Any]) -> List[List[Any]]:
    name = op[0]
    if name == "ihdr" and chunks and chunks[0][0] == b"IHDR" and len(chunks[0][1]) == 13:
        offset, fmt = IHDR_FIELDS[op[1]]
        value = op[2] % (256 if fmt == ">B" else 2 ** 32)
        payload = bytearray(chunks[0][1])
        struct.pack_into(fmt, payload, offset, value)
        chunks[0][1] = bytes(payload)
    elif chunks and name in ("length", "crc", "type", "drop", "dup", "bomb"):
        i = op[1] % len(chunks)
        if name == "length":
            chunks[i][2] = op[2]
        elif name == "crc":
            chunks[i][3] = zlib.crc32(chunks[i][0] + chunks[i][1]) ^ 1
        elif name == "type":
            chunks[i][0] = op[2]
        elif name == "drop":
            del chunks[i]
        elif name == "dup":
            chunks.insert(i, list(chunks[i]))
        else:
            chunks[i] = [b"IDAT", _BOMB, None, None]
    return chunks


def png_bytes(chunks: List[List[Any]]) -> bytes:
    out = [PNG_SIGNATURE]
    for kind, payload, length, crc in chunks:
        out.append(struct.pack(">I", len(payload) if length is None else length) + kind + payload
                   + struct.pack(">I", zlib.crc32(kind + payload) if crc is None else crc))
    return b"".join(out)


def png_data_ops() -> List[st.SearchStrategy]:
    """Mutations inside the image data (see :func:`_png_data`): the file stays a well-formed
    PNG (valid zlib stream, valid CRCs), so the row unfilter is what meets them."""
    row = st.integers(0, 1 << 16)
    return [
        st.tuples(st.just("refilter"), row, st.integers(1, 200), st.integers(0, 4)),
        st.tuples(st.just("filter"), row, st.one_of(st.integers(0, 4), st.integers(5, 255))),
        st.tuples(st.just("dataflip"), st.integers(0, 1 << 20), st.integers(1, 255)),
        st.tuples(st.just("cut"), st.one_of(st.integers(1, 16), st.integers(1, 1 << 18))),
        st.tuples(st.just("extend"), st.one_of(st.integers(1, 16), st.integers(1, 1 << 16)), st.sampled_from([0, 4, 255])),
        st.tuples(st.just("split"), st.integers(2, 16)),
        st.tuples(st.just("zlevel"), st.sampled_from([0, 1, 9])),
    ]


def png_ops() -> st.SearchStrategy:
    index = st.integers(0, 12)
    return st.one_of(
        st.tuples(st.just("ihdr"), st.sampled_from(sorted(IHDR_FIELDS)), st.sampled_from(IHDR_VALUES)),
        st.tuples(st.just("length"), index, st.sampled_from([0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1])),
        st.tuples(st.just("crc"), index),
        st.tuples(st.just("type"), index, st.sampled_from([b"IEND", b"IHDR", b"IDAT", b"PLTE", b"zzzz", b"\0\0\0\0"])),
        st.tuples(st.sampled_from(["drop", "dup", "bomb"]), index),
        byte_ops(),
        # Drawn about half the time: a chunk or byte mutation mostly stops a file before its rows.
        *png_data_ops(), *png_data_ops(),
    )


def byte_ops() -> st.SearchStrategy:
    return st.one_of(st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),
                     st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
                     st.tuples(st.just("append"), st.sampled_from([b"\0", b"garbage", b"\0" * 4096])))


#: Operations of :func:`png_data_ops`.
DATA_OPS = ("refilter", "filter", "dataflip", "cut", "extend", "split", "zlevel")
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_geometry(ihdr: bytes) -> Optional[Tuple[int, int, int]]:
    """``(height, stride, bytes per pixel)`` of the rows an IHDR payload declares (None: not a
    layout the data mutations know, or too large to be worth inflating)."""
    if len(ihdr) != 13:
        return None
    width, height, depth, color = struct.unpack(">IIBB", ihdr[:10])
    channels = _CHANNELS.get(color)
    if channels is None or depth not in (1, 2, 4, 8, 16) or not 0 < width * height <= 1 << 24:
        return None
    bits = channels * depth
    return height, (width * bits + 7) // 8, max(1, bits // 8)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def unfilter_reference(raw: bytes, height: int, stride: int, bpp: int) -> bytes:
    """PNG's row unfiltering written from the specification, slowly and plainly: the reference
    the C unfilter is held to (here and in ``benchmarks/sanitize.sh``). ValueError on a filter
    type above 4 or data shorter than the rows."""
    if len(raw) < height * (stride + 1):
        raise ValueError("image data shorter than its rows")
    out = bytearray(height * stride)
    prev = bytes(stride)
    for r in range(height):
        f, row = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        if f > 4:
            raise ValueError(f"row {r} has filter type {f}")
        for j in range(stride):
            a = row[j - bpp] if j >= bpp else 0
            b = prev[j]
            c = prev[j - bpp] if j >= bpp else 0
            if f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            else:
                pred = (0, a, b, (a + b) >> 1)[f]
            row[j] = (row[j] + pred) & 0xFF
        out[r * stride:(r + 1) * stride] = row
        prev = bytes(row)
    return bytes(out)


_PIXELS: Dict[bytes, np.ndarray] = {}


def _pixel_rows(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """The unfiltered rows of a template's image data (``height × stride`` uint8), cached: a
    template is unfiltered once per process."""
    key = zlib.crc32(raw).to_bytes(4, "big") + struct.pack(">III", height, stride, bpp)
    if key not in _PIXELS:
        _PIXELS[key] = np.frombuffer(unfilter_reference(raw, height, stride, bpp), np.uint8).reshape(height, stride)
    return _PIXELS[key]


def _filtered_row(rows: np.ndarray, r: int, f: int, bpp: int) -> bytes:
    """Row ``r`` of unfiltered ``rows`` filtered with PNG filter type ``f`` (a valid encoding:
    it decodes to the same pixels)."""
    x: np.ndarray = rows[r].astype(np.int16)
    b = rows[r - 1].astype(np.int16) if r else np.zeros_like(x)
    a, c = np.zeros_like(x), np.zeros_like(x)
    a[bpp:], c[bpp:] = x[:-bpp], b[:-bpp]
    pred = (np.zeros_like(x), a, b, (a + b) >> 1, _paeth(a, b, c))[f]
    return bytes([f]) + ((x - pred) & 0xFF).astype(np.uint8).tobytes()


def _png_data(chunks: List[List[Any]], ops: Sequence[Sequence[Any]]) -> List[List[Any]]:
    """Apply the data mutations: inflate all IDAT chunks, re-filter rows validly (``refilter``:
    rows start..start+count with filter type f), set a row's filter byte (``filter``), flip a
    byte (``dataflip``), cut the inflated data short or extend it by n bytes (``cut``,
    ``extend``), recompress with zlib (``zlevel``: at that level, else 6) and put the stream
    back as one IDAT chunk, or spread over several (``split``) where the first IDAT was."""
    ops = sorted((op for op in ops if op[0] in DATA_OPS), key=lambda op: op[0] != "refilter")
    first = next((i for i, chunk in enumerate(chunks) if chunk[0] == b"IDAT"), None)
    geometry = png_geometry(chunks[0][1]) if chunks and chunks[0][0] == b"IHDR" else None
    if not ops or first is None or geometry is None:
        return chunks
    try:
        raw = zlib.decompress(b"".join(chunk[1] for chunk in chunks if chunk[0] == b"IDAT"))
    except zlib.error:
        return chunks
    height, stride, bpp = geometry
    data, level, parts = bytearray(raw), 6, 1
    for op in ops:
        name = op[0]
        if name == "refilter" and len(raw) >= height * (stride + 1):
            rows = _pixel_rows(raw, height, stride, bpp)
            for r in range(op[1] % height, min(height, op[1] % height + op[2])):
                data[r * (stride + 1):(r + 1) * (stride + 1)] = _filtered_row(rows, r, op[3], bpp)
        elif name == "filter" and len(data) > (op[1] % height) * (stride + 1):
            data[(op[1] % height) * (stride + 1)] = op[2]
        elif name == "dataflip" and data:
            data[op[1] % len(data)] ^= op[2]
        elif name == "cut":
            del data[max(0, len(data) - op[1]):]
        elif name == "extend":
            data += bytes([op[2]]) * op[1]
        elif name == "split":
            parts = op[1]
        elif name == "zlevel":
            level = op[1]
    stream = zlib.compress(bytes(data), level)
    cuts = [len(stream) * i // parts for i in range(parts + 1)]
    idats = [[b"IDAT", stream[cuts[i]:cuts[i + 1]], None, None] for i in range(parts)]
    rest = [chunk for chunk in chunks if chunk[0] != b"IDAT"]
    return rest[:first] + idats + rest[first:]


def mutate_png(data: bytes, ops: Sequence[Sequence[Any]]) -> bytes:
    """Image-data operations first (the data inflated, changed, recompressed), then chunk-level
    ones (with valid CRCs unless one is broken on purpose), then byte-level ones."""
    chunks = _png_data(png_chunks(data), ops)
    for op in ops:
        chunks = _png_op(chunks, op)
    out = png_bytes(chunks)
    for op in ops:
        out = _bytes_op(out, op)
    return out


# -- tar headers ---------------------------------------------------------------------------------------
TAR_FIELDS = {"name": (0, 100), "mode": (100, 8), "size": (124, 12), "typeflag": (156, 1), "linkname": (157, 100),
              "magic": (257, 6), "prefix": (345, 155)}
TAR_VALUES = [b"", b"../canary.png", b"/etc/passwd", b"a\0b", b"77777777777", b"00000000000", b"-1",
              b"\x80" + b"\0" * 5 + (10 ** 12).to_bytes(6, "big"), b"\xff" * 12, b"2", b"1", b"5", b"L", b"x",
              b"ustar\0", b"zzzzz"]


def _tar_op(data: bytearray, headers: Sequence[int], op: Sequence[Any]) -> None:
    if op[0] != "field" or not headers:
        return
    start = headers[op[1] % len(headers)]
    offset, size = TAR_FIELDS[op[2]]
    data[start + offset:start + offset + size] = op[3][:size].ljust(size, b"\0")
    if op[4]:  # recompute the checksum so the header is taken as valid
        data[start + 148:start + 156] = b" " * 8
        data[start + 148:start + 156] = b"%06o\0 " % sum(data[start:start + 512])


def tar_headers(data: bytes) -> List[int]:
    """Offsets of the member headers of an uncompressed tar."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.offset for m in tar.getmembers()]


# -- kinds ---------------------------------------------------------------------------------------------
class WrongResult(Exception):
    """A run that ended without error but with a result the input cannot have meant."""


def read_everything(ds: Any) -> int:
    """Decode every frame of ``ds`` (photo, label ids, instance ids, instances); the frame count.
    A frame id given twice is a wrong result (two images of one id are an error to report)."""
    seen = set()
    for frame in ds:
        if frame.id in seen:
            raise WrongResult(f"frame {frame.id} given twice")
        seen.add(frame.id)
        frame.image()
        frame.label_ids()
        frame.instance_ids()
        frame.instances()
    return len(seen)


@dataclass
class Kind:
    """One input kind: how to make it valid, how to mutate it, how to read it.

    ``files`` maps the root-relative paths that mutations touch to how they are mutated
    (``json``, ``lines``, ``png``, ``tar``, ``zip``); ``run(root, gt)`` reads them with the library.
    """

    name: str
    make: Callable[[str, str], None]
    files: Dict[str, str]
    run: Callable[[str, str], Any]


def _convert(fmt: str, **options: Any) -> Callable[[str, str], None]:
    def make(root: str, gt: str) -> None:
        cio.convert(cio.sample_path(), root, format=fmt, split="val", save_media=True, **options)
    return make


def _open_all(fmt: str) -> Callable[[str, str], Any]:
    return lambda root, gt: read_everything(cio.open(root, format=fmt))


#: Observations that are not contract violations (the fast path accepting a file Pillow
#: refuses, or the reverse), gathered while an example runs and kept in its Outcome.
NOTES: List[str] = []
SAMPLE_FRAME = ("val", "aachen", "aachen_000002_000042")


def _same_array(fast: Any, pure: Any) -> Optional[str]:
    """None when two decodes are identical (dtype, shape, bytes), else how they differ."""
    if isinstance(fast, tuple):  # decode_paletted: (indices, palette)
        for name, x, y in zip(("indices", "palette"), fast, pure):
            problem = _same_array(x, y)
            if problem:
                return f"{name}: {problem}"
        return None
    if fast.dtype != pure.dtype or fast.shape != pure.shape:
        return f"fast {fast.dtype} {fast.shape}, Pillow {pure.dtype} {pure.shape}"
    if fast.tobytes() != pure.tobytes():
        where = np.argwhere(fast != pure)
        return (f"{len(where)} values differ, the first at {tuple(int(i) for i in where[0])}: "
                f"fast {fast[tuple(where[0])]!r}, Pillow {pure[tuple(where[0])]!r}")
    return None


def _reason_of(exc: cio.CityscapesIOError) -> str:
    """The reason of an error without the file's path (notes are grouped by their text)."""
    text = str(exc)
    return (text[len(exc.path) + 2:] if exc.path and text.startswith(exc.path + ": ") else text)[:160]


def _against_pillow(fn: Callable[[bytes, str], Any], data: bytes, path: str, fast: Any) -> None:
    """The differential check: decode again on the pure path (Pillow; ``png._UNFILTER`` set to
    None for the call) and hold the fast path's result (``fast``: an array or tuple, or the
    refusal) to it. Both decoded and differ: a wrong result. One refused what the other
    decoded: a note (the fast path refuses some files Pillow reads, e.g. short streams)."""
    saved = png._UNFILTER
    png._UNFILTER = None
    try:
        pure = fn(data, path)
    except cio.CityscapesIOError as exc:
        if not isinstance(fast, cio.CityscapesIOError):
            NOTES.append(f"fast path decoded, Pillow refused ({fn.__name__}): {_reason_of(exc)}")
        return
    finally:
        png._UNFILTER = saved
    if isinstance(fast, cio.CityscapesIOError):
        NOTES.append(f"fast path refused, Pillow decoded ({fn.__name__}): {_reason_of(fast)}")
        return
    problem = _same_array(fast, pure)
    if problem:
        raise WrongResult(f"{fn.__name__}: the fast path and Pillow decode the file differently: {problem}")


#: The decoders each PNG kind runs (besides the header functions): those that accept its valid file.
_GRAY_DECODERS = ("decode_gray", "decode_rgb")
_PALETTED_DECODERS = ("decode_gray", "decode_paletted", "decode_rgb")
_RGB_DECODERS = ("decode_rgb",)


def _png_runner(decoders: Sequence[str], pure: bool = False) -> Callable[[str, str], Any]:
    """Read ``root/x.png`` with every header function and ``decoders``. On the fast path
    (``pure`` False and the C extension active) each decode is also checked against Pillow's
    (:func:`_against_pillow`); ``pure`` forces Pillow for the whole run."""
    def run(root: str, gt: str) -> Any:
        path = os.path.join(root, "x.png")
        with open(path, "rb") as f:
            data = f.read()
        problem = png.structure_problem(data, ".png")
        assert problem is None or isinstance(problem, str), problem
        fns: List[Callable[[bytes, str], Any]] = [png.read_header, png.image_size]
        fns += [getattr(png, name) for name in decoders] + [png.check_structure]
        refusals = []
        saved = png._UNFILTER
        if pure:
            png._UNFILTER = None
        try:
            for fn in fns:
                decoder = fn.__name__.startswith("decode_")
                try:
                    result = fn(data, path)
                except cio.CityscapesIOError as exc:
                    refusals.append(exc)
                    if decoder and png._UNFILTER is not None:
                        _against_pillow(fn, data, path, exc)
                    continue
                arr = result[0] if isinstance(result, tuple) and isinstance(result[0], np.ndarray) else result
                if isinstance(arr, np.ndarray):
                    assert arr.shape[0] * arr.shape[1] <= png.MAX_PIXELS, arr.shape
                if decoder and png._UNFILTER is not None:
                    _against_pillow(fn, data, path, result)
        finally:
            png._UNFILTER = saved
        if refusals:  # every function ran; the first refusal is the outcome
            raise refusals[0]
    return run



def _png_maker(name: str, folder: str = "gtFine", paletted: bool = False) -> Callable[[str, str], None]:
    """Write ``root/x.png``: a file of the shipped sample re-encoded by Pillow (its rows carry
    Sub, Up and Paeth filters; the sample's own files are Up-filtered throughout), or its
    labelIds as a paletted PNG (34 colours)."""
    def make(root: str, gt: str) -> None:
        from PIL import Image  # (the harness's own writer; the library encodes with imageio)

        os.makedirs(root)
        split, city, frame = SAMPLE_FRAME
        src = os.path.join(cio.sample_path(), folder, split, city, f"{frame}_{name}.png")
        with Image.open(src) as im:
            im.load()
            out = im
            if paletted:
                out = Image.frombytes("P", im.size, im.tobytes())
                out.putpalette(bytes((i * 67 + k * 101) % 256 for i in range(34) for k in range(3)))
            out.save(os.path.join(root, "x.png"), format="PNG")
    return make


#: The PNG kinds: (name, sample file, its folder, paletted, decoders); each also as ``<name>_pure``.
PNG_KINDS = [("png", "gtFine_instanceIds", "gtFine", False, _GRAY_DECODERS),
             ("png_gray8", "gtFine_labelIds", "gtFine", False, _GRAY_DECODERS),
             ("png_rgba", "gtFine_color", "gtFine", False, _RGB_DECODERS),
             ("png_rgb", "leftImg8bit", "leftImg8bit", False, _RGB_DECODERS),
             ("png_paletted", "gtFine_labelIds", "gtFine", True, _PALETTED_DECODERS)]


def _png_kinds() -> List["Kind"]:
    kinds = []
    for name, sample, folder, paletted, decoders in PNG_KINDS:
        make = _png_maker(sample, folder, paletted)
        kinds.append(Kind(name, make, {"x.png": "png"}, _png_runner(decoders)))
        kinds.append(Kind(f"{name}_pure", make, {"x.png": "png"}, _png_runner(decoders, pure=True)))
    return kinds


def _polygons_make(root: str, gt: str) -> None:
    os.makedirs(root)
    src = os.path.join(cio.sample_path(), "gtFine", "val", "aachen", "aachen_000002_000042_gtFine_polygons.json")
    shutil.copyfile(src, os.path.join(root, "p_gtFine_polygons.json"))


def _polygons_run(root: str, gt: str) -> Any:
    path = os.path.join(root, "p_gtFine_polygons.json")
    with open(path, "rb") as f:
        polygons = cio.parse_polygons(f.read(), path)
    return [cio.rasterize(polygons, enc) for enc in ("ids", "instanceIds", "color")]


def _instance_make(root: str, gt: str) -> None:
    cio.convert(cio.sample_path(), gt, split="val", save_media=False)
    cio.export_predictions(gt, root, task="instance", split="val")


def _instance_run(root: str, gt: str) -> Any:
    problems = cio.check_predictions(gt, root, task="instance")
    assert all(isinstance(p, str) for p in problems)
    return problems, cio.evaluate(gt, root, task="instance")


def _resume_make(root: str, gt: str) -> None:
    cio.convert(cio.sample_path(), root, format="wds", split="val")


def _resume_run(root: str, gt: str) -> Any:
    """Resume a conversion whose index was not written: the entries come from the tar headers;
    a resumed conversion then reads back as the frames it reports."""
    index = os.path.join(root, "shards.json")
    if os.path.exists(index):
        os.remove(index)
    report = cio.convert(cio.sample_path(), root, format="wds", split="val", resume=True)
    frames = read_everything(cio.open(root, format="wds"))
    if frames != report.written:  # (written counts the resumed frames)
        raise WrongResult(f"{report.written} frames reported written, {frames} read back")
    return report


def _citypersons_run(root: str, gt: str) -> Any:
    """Every frame of a coco_citypersons folder, its persons too."""
    ds = cio.open(root, format="coco_citypersons")
    count = read_everything(ds)
    return count, [frame.persons() for frame in ds]


def _mr_make(root: str, gt: str) -> None:
    """The sample's val ground truth with its CityPersons files, and detections of its persons
    as a COCO results JSON (frame names as image ids)."""
    cio.convert(cio.sample_path(), gt, split="val", save_media=False, parts=["gtBboxCityPersons"])
    dets = [{"image_id": posixpath.basename(f.id), "category_id": 1, "bbox": list(p.bbox), "score": 0.5 + k / 100}
            for f in cio.open(gt) for k, p in enumerate(f.persons() or ())]
    os.makedirs(root)
    with open(os.path.join(root, "dets.json"), "w") as fh:
        json.dump(dets, fh)


def _mr_run(root: str, gt: str) -> Any:
    path = os.path.join(root, "dets.json")
    problems = cio.check_predictions(gt, path, task="citypersons")
    assert all(isinstance(p, str) for p in problems)
    return problems, cio.evaluate(gt, path, task="citypersons").to_dict()


PARTS_FRAME = "val/aachen/aachen_000000_000019"


def _parts_make(root: str, gt: str) -> None:
    """A one-frame tree with every part of the release (the generator's)."""
    from cityscapes_io.testing import generate

    generate(root, splits={"val": 1}, cities=("aachen",), size=(64, 32), parts="all", demo_frames=0)


def _parts_run(root: str, gt: str) -> Any:
    """Every part of every frame, read through the frames (and validate's checks of them)."""
    from cityscapes_io.validate import validate

    out = []
    for frame in cio.open(root):
        snippet = frame.snippet()
        out.append((frame.image_keys(), frame.disparity(), frame.camera(), frame.depth(), frame.vehicle(),
                    frame.timestamp(), frame.persons(), frame.boxes3d(),
                    [(s.timestamp(), s.vehicle(), s.disparity()) for s in snippet[:2]],
                    [frame.image(k) for k in frame.image_keys()]))
    problems = list(validate(root))
    assert all(isinstance(p.reason, str) for p in problems)
    refused = [p for p in problems if p.code in ("bad-part", "corrupt-png", "size-mismatch")]
    if refused:  # the readers raise what validate reports
        raise cio.InvalidFileError(refused[0].path, refused[0].reason)
    return out


SEMANTIC_FRAMES = ("aachen/aachen_000002_000042", "bad-honnef/bad-honnef_000002_000042")


def _semantic_make(root: str, gt: str) -> None:
    cio.convert(cio.sample_path(), gt, split="val", save_media=False)
    for fid in SEMANTIC_FRAMES:
        os.makedirs(os.path.join(root, posixpath.dirname(fid)), exist_ok=True)
        shutil.copyfile(os.path.join(gt, "gtFine", "val", f"{fid}_gtFine_labelIds.png"),
                        os.path.join(root, f"{fid}_pred.png"))


def _semantic_run(root: str, gt: str) -> Any:
    problems = cio.check_predictions(gt, root, task="semantic")
    assert all(isinstance(p, str) for p in problems)
    return problems, cio.evaluate(gt, root, task="semantic")


def _zip_make(root: str, gt: str) -> None:
    os.makedirs(root)
    with tempfile.TemporaryDirectory() as tmp:
        loose = os.path.join(tmp, "ds")
        cio.convert(cio.sample_path(), loose, split="val", save_media=True)
        with zipfile.ZipFile(os.path.join(root, "ds.zip"), "w") as zf:
            for folder, _, names in sorted(os.walk(loose)):
                for name in sorted(names):
                    path = os.path.join(folder, name)
                    zf.write(path, os.path.relpath(path, loose))


ZIP_NAMES = PATHS + ["gtFine/val/aachen/../../../../canary.png", "gtFine\\val\\aachen\\x_gtFine_labelIds.png",
                     "gtFine/val/aachen/", "gtFine//val//aachen//a_000000_000001_gtFine_labelIds.png",
                     "gtFine/val/aachen/aachen_000009_000042_gtFine_labelIds.png",
                     "leftImg8bit/val/zz/é_000000_000001_leftImg8bit.png"]


def _zip_mutate(template: bytes, ops: Sequence[Sequence[Any]]) -> bytes:
    """Rebuild the archive with members renamed, repeated or added."""
    with zipfile.ZipFile(io.BytesIO(template)) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    for op in ops:
        k = op[1] % len(members)
        if op[0] == "rename":
            members[k] = (op[2], members[k][1])
        elif op[0] == "repeat":
            members.insert(k, (members[k][0], members[k][1][: len(members[k][1]) // 2]))
        elif op[0] == "add":
            members.append((op[2], members[k][1]))
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as zf:
        warnings.simplefilter("ignore")  # repeated names are the point
        for name, data in members:
            info = zipfile.ZipInfo("x")
            info.filename = name  # kept as given: ZipInfo() would normalise a name
            zf.writestr(info, data)
    return out.getvalue()


def _zip_run(root: str, gt: str) -> Any:
    return read_everything(cio.open(os.path.join(root, "ds.zip")))


KINDS: Dict[str, Kind] = {k.name: k for k in _png_kinds() + [
    Kind("coco_instances", _convert("coco_instances"),
         {"annotations/instancesonly_filtered_gtFine_val.json": "json"}, _open_all("coco_instances")),
    Kind("coco_panoptic", _convert("coco_panoptic"),
         {"annotations/panoptic_val.json": "json", "annotations/panoptic_val/aachen/aachen_000002_000042.png": "png"},
         _open_all("coco_panoptic")),
    Kind("polygons", _polygons_make, {"p_gtFine_polygons.json": "json"}, _polygons_run),
    Kind("wds_index", _convert("wds"), {"shards.json": "json"}, _open_all("wds")),
    Kind("wds_tar", _convert("wds"), {"val-000000.tar": "tar"}, _open_all("wds")),
    Kind("wds_resume", _resume_make, {"val-000000.tar": "tar"}, _resume_run),
    Kind("voc_list", _convert("voc"), {"ImageSets/Segmentation/val.txt": "lines"}, _open_all("voc")),
    Kind("camvid_list", _convert("camvid"), {"val.txt": "lines"}, _open_all("camvid")),
    Kind("instance_txt", _instance_make,
         {"aachen/aachen_000002_000042_pred.txt": "lines", "aachen/aachen_000002_000042_pred/0.png": "png"},
         _instance_run),
    Kind("semantic_pred", _semantic_make, {f"{SEMANTIC_FRAMES[0]}_pred.png": "png"}, _semantic_run),
    Kind("dataset_meta", _convert("cityscapes", save_dataset_meta=True), {"dataset_meta.json": "json"},
         _open_all("cityscapes")),
    Kind("label_colors", _convert("camvid"), {"label_colors.txt": "lines"}, _open_all("camvid")),
    Kind("zip_names", _zip_make, {"ds.zip": "zip"}, _zip_run),
    Kind("voc_detection", _convert("voc_detection"),
         {f"Annotations/{SAMPLE_FRAME[2]}.xml": "lines", "ImageSets/Main/val.txt": "lines"}, _open_all("voc_detection")),
    Kind("yolo", _convert("yolo"), {f"labels/val/{SAMPLE_FRAME[2]}.txt": "lines", "data.yaml": "lines"},
         _open_all("yolo")),
    Kind("yolo_polygon", _convert("yolo", segmentation="polygon"), {f"labels/val/{SAMPLE_FRAME[2]}.txt": "lines"},
         _open_all("yolo")),
    Kind("coco_citypersons", _convert("coco_citypersons"), {"annotations/citypersons_val.json": "json"},
         _citypersons_run),
    Kind("citypersons_results", _mr_make, {"dets.json": "json"}, _mr_run),
    Kind("parts", _parts_make, {f"camera/{PARTS_FRAME}_camera.json": "json",
                                f"gtBboxCityPersons/{PARTS_FRAME}_gtBboxCityPersons.json": "json",
                                f"gtBbox3d/{PARTS_FRAME}_gtBbox3d.json": "json",
                                f"vehicle/{PARTS_FRAME}_vehicle.json": "json",
                                f"timestamp/{PARTS_FRAME}_timestamp.txt": "lines",
                                f"disparity/{PARTS_FRAME}_disparity.png": "png",
                                f"rightImg16bit/{PARTS_FRAME}_rightImg16bit.png": "png"}, _parts_run),
]}


#: Kinds whose files are read by the harness, or from inside an archive: no link to follow. The
#: part files (``parts``) and YOLO's labels are found by listing the tree, as a Cityscapes frame's
#: own files are, and read where a link leads (a tree may link a folder from another disk); a
#: results JSON (``citypersons_results``) is the file the caller names. What is held inside the
#: root is a path found inside a file (VOC's lists, COCO's file names, ...).
UNLINKED = tuple(k.name for k in _png_kinds()) + ("polygons", "zip_names", "wds_resume", "parts", "yolo",
                                                   "yolo_polygon", "citypersons_results")


# -- one kind made ready: its template and its strategy ----------------------------------------------------
class Bench:
    """A kind made ready in ``work``: ``work/root`` (and ``work/gt``) valid, the canary beside them."""

    def __init__(self, kind: Kind, work: str):
        self.kind = kind
        self.work = os.path.abspath(work)
        self.root = os.path.join(self.work, "root")
        self.gt = os.path.join(self.work, "gt")
        os.makedirs(self.work, exist_ok=True)
        kind.make(self.root, self.gt)
        canary = os.path.join(cio.sample_path(), "gtFine", "val", "aachen", "aachen_000002_000042_gtFine_labelIds.png")
        for name in (CANARY, "canary.txt", "canary.json"):
            shutil.copyfile(canary, os.path.join(self.work, name))
        self.originals = {rel: open(os.path.join(self.root, rel), "rb").read() for rel in kind.files}
        self.parsed = {rel: json.loads(data) for rel, data in self.originals.items() if kind.files[rel] == "json"}

    # strategies
    def _file_ops(self, rel: str) -> st.SearchStrategy:
        how = self.kind.files[rel]
        if how == "json":
            paths = json_paths(self.parsed[rel])
            hot = [p for p in paths if any(key in HOT_KEYS for key in p[-2:])] or paths
            structural = st.tuples(st.sampled_from(["set", "set", "drop", "dup", "wrap"]),
                                   st.one_of(st.sampled_from(paths), st.sampled_from(hot)),
                                   st.sampled_from(VALUE_NAMES))
            return st.one_of(structural, structural, structural, structural, byte_ops())
        if how == "lines":
            i = st.integers(0, 40)
            line = st.sampled_from(LINE_VALUES)
            return st.one_of(st.tuples(st.sampled_from(["line", "insert"]), i, line),
                             st.tuples(st.just("field"), i, st.integers(0, 3), line),
                             st.tuples(st.sampled_from(["dupline", "dropline"]), i),
                             st.tuples(st.sampled_from(["bom", "crlf"])), byte_ops())
        if how == "png":
            return png_ops()
        if how == "tar":
            return st.one_of(st.tuples(st.just("field"), st.integers(0, 7), st.sampled_from(sorted(TAR_FIELDS)),
                                       st.sampled_from(TAR_VALUES), st.booleans()), byte_ops())
        k = st.integers(0, 40)
        return st.one_of(st.tuples(st.sampled_from(["rename", "add"]), k, st.sampled_from(ZIP_NAMES)),
                         st.tuples(st.just("repeat"), k))

    def cases(self) -> st.SearchStrategy:
        """Mutations: a tuple of ``(file, op)``, one to three of them; ``("link",)`` makes the
        file a symbolic link to the canary beside the root (where the library opens the file)."""
        def ops(rel: str) -> st.SearchStrategy:
            if self.kind.name in UNLINKED:
                return self._file_ops(rel)
            return st.one_of(self._file_ops(rel), st.just(("link",)))

        one = st.one_of([st.tuples(st.just(rel), ops(rel)) for rel in sorted(self.kind.files)])
        return st.lists(one, min_size=1, max_size=3).map(tuple)

    # application
    def mutated(self, case: Sequence[Tuple[str, Sequence[Any]]]) -> Dict[str, bytes]:
        """The new contents of the files ``case`` touches (the canary's absolute path filled in)."""
        canary = os.path.join(self.work, CANARY)

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace(CANARY_ABS, canary)
            if isinstance(value, bytes):
                return value.replace(CANARY_ABS.encode(), canary.encode())
            if isinstance(value, (list, tuple)):
                return type(value)(fill(v) for v in value)
            return value

        out = {}
        for rel in sorted({r for r, _ in case}):
            data = self._apply(rel, [fill(op) for r, op in case if r == rel])
            out[rel] = fill(data) if self.kind.files[rel] in ("json", "lines") else data  # values named in VALUES
        return out

    def _apply(self, rel: str, ops: Sequence[Sequence[Any]]) -> bytes:
        how, data = self.kind.files[rel], self.originals[rel]
        if how == "png":
            return mutate_png(data, ops)
        if how == "zip":
            return _zip_mutate(data, ops)
        if how == "json":
            doc = copy.deepcopy(self.parsed[rel])
            for op in ops:
                if op[0] in ("set", "drop", "dup", "wrap"):
                    doc = _mutate_json(doc, *op)
            data = _json_text(doc).encode("utf-8", "surrogateescape")
        elif how == "lines":
            lines = data.decode("utf-8").splitlines()
            for op in ops:
                lines = _lines_op(lines, op)
            data = _text_bytes(lines, ops)
        elif how == "tar":
            buf, headers = bytearray(data), tar_headers(data)
            for op in ops:
                _tar_op(buf, headers, op)
            data = bytes(buf)
        for op in ops:
            data = _bytes_op(data, op)
        return data


@dataclass
class Outcome:
    """What one example did: ``label`` is ``ok``, an error class name, or ``CRASH <type>``."""

    label: str
    message: str = ""
    origin: str = ""
    outside: Tuple[str, ...] = ()
    peak: int = 0
    #: What the example showed that breaks no rule (see :data:`NOTES`).
    notes: Tuple[str, ...] = ()

    @property
    def violations(self) -> List[str]:
        """Each way the example broke the contract (empty: it kept it)."""
        found = []
        if self.label.startswith(BROKEN):
            found.append(f"{self.label}: {self.message} (from {self.origin})")
        if self.outside:
            found.append(f"read outside the root: {', '.join(sorted(set(self.outside)))}")
        if self.peak > MEMORY_BOUND:
            found.append(f"peak memory {self.peak >> 20} MiB > {MEMORY_BOUND >> 20} MiB")
        return found


def _origin(exc: BaseException) -> str:
    """``file:function`` of the deepest frame inside cityscapes_io (else the deepest frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}cityscapes_io{os.sep}" in f.filename] or frames
    if not ours:
        return "?"
    last = ours[-1]
    return f"{posixpath.join(*last.filename.split(os.sep)[-2:])}:{last.lineno} {last.name}"


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


#: Labels of outcomes that break the contract.
BROKEN = ("CRASH", "NO FILE", "UNCLEAR", "WRONG")
#: Words that show a reason is not one a person can act on.
_UNREADABLE = ("object at 0x", "unpack_from requires", "Traceback")


def classify(exc: BaseException, places: Sequence[str] = ()) -> Tuple[str, str]:
    """``(label, message)`` of an exception under the contract: the error class name when it is
    kept, else ``WRONG RESULT`` (see :class:`WrongResult`), ``CRASH <type>`` (another
    exception type), ``NO FILE <type>`` (an error that names
    no file, or whose path is not under one of ``places``: a frame id is not a file) or
    ``UNCLEAR <type>`` (a reason no person can act on; the message is its line)."""
    lines = str(exc).splitlines() or [""]
    if lines[0].endswith(":") and len(lines) > 1:  # "<root>: N problem(s):" then the problems
        lines[0] += " " + lines[1].strip()
    if isinstance(exc, WrongResult):
        return "WRONG RESULT", lines[0][:300]
    if not isinstance(exc, cio.CityscapesIOError):
        return f"CRASH {type(exc).__name__}", lines[0][:300]
    if not exc.path or (places and not any(place in exc.path for place in places)):
        return f"NO FILE {type(exc).__name__}", lines[0][:300]
    unclear = [line for line in lines if any(word in line for word in _UNREADABLE)]
    if unclear:
        return f"UNCLEAR {type(exc).__name__}", unclear[0].strip()[:300]
    return type(exc).__name__, lines[0][:300]


def explore(bench: Bench, examples: int, seed: Optional[int] = None,
            before: Optional[Callable[[Sequence[Tuple[str, Sequence[Any]]]], None]] = None
            ) -> List[Tuple[Tuple[Tuple[str, Sequence[Any]], ...], Outcome]]:
    """Run ``examples`` mutations of the bench (derandomized unless ``seed`` is given) and return
    every ``(case, outcome)``; ``before(case)`` is called ahead of each run. No shrinking: each
    failure is reported as found, and every example runs."""
    results = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(bench.cases())
    def probe(case: Tuple[Tuple[str, Sequence[Any]], ...]) -> None:
        if before is not None:
            before(case)
        results.append((case, run_case(bench, case)))

    (probe if seed is None else hypothesis.seed(seed)(probe))()
    return results


@dataclass
class Death:
    """A child process that did not come back: its signal (or exit status) and the case it ran."""

    how: str
    case: str


def explore_forked(kind: str, work: str, examples: int, seed: Optional[int] = None
                   ) -> Tuple[List[Tuple[str, Outcome]], Optional[Death]]:
    """:func:`explore` in a forked child, so that a crash below Python (a segfault) is reported
    rather than taking the caller down: ``([(description, outcome)], death or None)``."""
    os.makedirs(work, exist_ok=True)
    out, last = os.path.join(work, "results.pickle"), os.path.join(work, "running.txt")
    pid = os.fork()
    if pid == 0:  # the child: never returns
        # The parent's objects (in a test session, botocore's models, torch, ...) stay out of
        # the child's garbage collections: scanning them at every collection made a kind take
        # 15 s instead of 1 s (and copied every page they lie on).
        gc.freeze()
        status = 1
        try:
            def note(case: Sequence[Tuple[str, Sequence[Any]]]) -> None:
                with open(last, "w") as f:
                    f.write(describe(case))

            results = explore(Bench(KINDS[kind], os.path.join(work, kind)), examples, seed, note)
            with open(out, "wb") as f:
                pickle.dump([(describe(case), outcome) for case, outcome in results], f)
            status = 0
        except BaseException:  # noqa: BLE001 - reported by the parent through the status
            traceback.print_exc()
        finally:
            os._exit(status)
    _, code = os.waitpid(pid, 0)
    if os.WIFEXITED(code) and os.WEXITSTATUS(code) == 0:
        with open(out, "rb") as results_file:
            return pickle.load(results_file), None
    how = (f"killed by {signal.Signals(os.WTERMSIG(code)).name}" if os.WIFSIGNALED(code)
           else f"exit status {os.WEXITSTATUS(code)}")
    case = open(last).read() if os.path.exists(last) else "(before the first example)"
    return [], Death(how, case)


def run_case(bench: Bench, case: Sequence[Tuple[str, Sequence[Any]]]) -> Outcome:
    """Apply ``case`` to the bench's root, run the kind, restore the root; the outcome."""
    contents = bench.mutated(case)
    for rel, data in contents.items():
        with open(os.path.join(bench.root, rel), "wb") as f:
            f.write(data)
    for rel in {rel for rel, op in case if op[0] == "link"}:
        os.remove(os.path.join(bench.root, rel))
        os.symlink(os.path.join(bench.work, CANARY), os.path.join(bench.root, rel))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + ADDRESS_SPACE_MARGIN
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    _Watch.opened, _Watch.outside, _Watch.roots = [], bench.work, (bench.root, bench.gt)
    del NOTES[:]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a warning is a fine outcome
            bench.kind.run(bench.root, bench.gt)
        outcome = Outcome("ok")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every other exception is an outcome to report
        label, message = classify(exc, (bench.work, cio.sample_path()))
        outcome = Outcome(label, message, _origin(exc))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # Memory that tracemalloc does not see (Pillow's decoders): the growth of the peak RSS.
        peak = max(peak, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024)
        _Watch.outside, _Watch.roots = "", ()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        for rel, data in bench.originals.items():
            path = os.path.join(bench.root, rel)
            if os.path.islink(path):
                os.remove(path)
            with open(path, "wb") as f:
                f.write(data)
    outcome.outside = tuple(_Watch.opened)
    outcome.peak = peak
    outcome.notes = tuple(NOTES)
    return outcome


def describe(case: Sequence[Tuple[str, Sequence[Any]]]) -> str:
    """A short text of a mutation (long values cut)."""
    parts = []
    for rel, op in case:
        shown = [repr(v)[:60] + ("..." if len(repr(v)) > 60 else "") for v in op]
        parts.append(f"{rel}: {', '.join(shown)}")
    return "; ".join(parts)
