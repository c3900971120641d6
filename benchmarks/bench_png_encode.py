#!/usr/bin/env python
"""Label PNG encoding (issue 20): filter choice and compressor level, for fast reading at a size no
larger than Pillow's default.

The writers' label PNGs are read far more often than they are written, so the question is which
encoding decodes fastest at a size no larger than ``PIL.Image.save(format="PNG")`` (zlib level 6,
Pillow's adaptive filtering) and encodes no slower than today's writers: Pillow at ``GT_COMPRESS``
(3) for the Cityscapes writer and the VOC / CamVid paletted masks, ``encode_label_png`` (every row
"Up", zlib level 1) for export-predictions, panoptic PNGs, prepare and tar shards.

Image kinds, from each frame's instanceIds, labelIds and color images:

- ``gray16``: instanceIds, 16-bit gray;
- ``gray8``: labelIds, 8-bit gray;
- ``rgba``: color, RGBA;
- ``paletted``: labelIds with the official colours as palette (the VOC / CamVid class masks);
- ``panoptic``: RGB, id = R + 256 G + 256² B with id = the instanceIds value (as the official
  ``createPanopticImgs`` does for an id it keeps);
- ``trainids``: the train ids of labelIds (255 = ignore), 8-bit gray (a prediction as
  export-predictions writes it; drawn from the ground truth, so flatter than a real prediction).

Sources (``--source``): ``sample``, the sample shipped in the package (6 frames at 256x128, made
by the synthetic generator: these are NOT real Cityscapes files), and ``synthetic``, ``--frames``
frames of :func:`cityscapes_io.testing.make_frame` at ``--size`` (default 2048x1024, the real
frame size; polygons rasterised by the official rules). No real Cityscapes annotation is shipped.

Encodings of each image:

- Pillow at compress_level 6 (the reference size), 3 and 1 (its own filter choice);
- the writer of this script: one filter for every row (None, Sub, Up, Paeth) or the PNG
  specification's heuristic (``minsad``: per row, the filter of least sum of absolute values of
  its bytes taken as signed) x compressor: zlib levels 1, 3, 6, 9 (default strategy), zlib Z_RLE
  at level 1, libdeflate (``deflate`` bindings) levels 1, 3, 6, 9, 12.

Figures per frame (the mean over the frames of each frame's best of ``--repeat``; a call slower
than ``--slow-ms``, 500 ms, is timed once: libdeflate 12 and zlib 9 on a full frame):

- bytes, and their ratio to Pillow level 6;
- encode ms (ours: the numpy filter of the whole image + compression + chunk assembly, timed as
  two steps, each its best);
- inflate ms: ``deflate.zlib_decompress`` of the joined IDAT data (libdeflate);
- unfilter: the share of rows per filter type (read from the inflated data, for Pillow's files
  too) and its cost class, the mean of None 0 < Up 1 < Sub 2 < Average 2.5 < Paeth 3: a C
  unfilter copies None rows, adds Up rows with vector instructions and runs Sub, Average and
  Paeth rows byte after byte;
- Pillow decode ms (``Image.open(...).load()``), for reference;
- round trip: every encoding is decoded by Pillow and compared with the array (and the palette);
  a mismatch is a bug of the encoder and is reported as ``FAIL``.

The choice per kind: among encodings of size <= Pillow level 6 and encode time <= today's
writer, the least cost class, then the least inflate time.

Usage::

    python benchmarks/bench_png_encode.py [--source both|sample|synthetic] [--frames 4]
                                          [--size 2048x1024] [--repeat 5] [--json FILE]
"""
from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

import deflate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTERS = ("none", "sub", "up", "paeth", "minsad")
FILTER_TYPE = {"none": 0, "sub": 1, "up": 2, "average": 3, "paeth": 4}
# Cost class of unfiltering a row, by PNG filter type (0 None .. 4 Paeth); see the module doc.
COST = {0: 0.0, 1: 2.0, 2: 1.0, 3: 2.5, 4: 3.0}
TYPE_NAME = {0: "None", 1: "Sub", 2: "Up", 3: "Avg", 4: "Paeth"}
PILLOW_LEVELS = (6, 3, 1)
GT_COMPRESS = 3  # the Cityscapes writer's Pillow level before issue 20 (now png.encode_label_png)


@dataclass
class Kind:
    """An image kind: its PNG colour type, bit depth and bytes per pixel; its palette if any."""
    name: str
    what: str
    color: int
    depth: int
    bpp: int
    today: str  # name of the encoding today's writer uses
    palette: Optional[np.ndarray] = None


KINDS = {
    "gray16": Kind("gray16", "instanceIds, 16-bit gray", 0, 16, 2, f"pillow-{GT_COMPRESS}"),
    "gray8": Kind("gray8", "labelIds, 8-bit gray", 0, 8, 1, f"pillow-{GT_COMPRESS}"),
    "rgba": Kind("rgba", "color, RGBA", 6, 8, 4, f"pillow-{GT_COMPRESS}"),
    "paletted": Kind("paletted", "labelIds + colours, paletted (VOC/CamVid masks)", 3, 8, 1, "pillow-3"),
    "panoptic": Kind("panoptic", "panoptic RGB from instanceIds", 2, 8, 3, "up+zlib-1"),
    "trainids": Kind("trainids", "train ids (predictions), 8-bit gray", 0, 8, 1, "up+zlib-1"),
}


def compressors() -> Dict[str, Callable[[bytes], bytes]]:
    """Compressor name -> function giving a zlib stream (what IDAT holds)."""
    out: Dict[str, Callable[[bytes], bytes]] = {}

    def zlib_at(level: int) -> Callable[[bytes], bytes]:
        return lambda raw: zlib.compress(raw, level)

    def libdeflate_at(level: int) -> Callable[[bytes], bytes]:
        return lambda raw: deflate.zlib_compress(raw, level)  # a bytearray

    for level in (1, 3, 6, 9):
        out[f"zlib-{level}"] = zlib_at(level)

    def rle(raw: bytes) -> bytes:
        c = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
        return c.compress(raw) + c.flush()

    out["zlib-rle-1"] = rle
    for level in (1, 3, 6, 9, 12):
        out[f"libdeflate-{level}"] = libdeflate_at(level)
    return out


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
def kind_arrays(instance_ids: np.ndarray, label_ids: np.ndarray, color: np.ndarray,
                train_table: np.ndarray) -> Dict[str, np.ndarray]:
    pan = np.empty(instance_ids.shape + (3,), np.uint8)
    ids = instance_ids.astype(np.uint32)
    pan[..., 0], pan[..., 1], pan[..., 2] = ids & 255, (ids >> 8) & 255, ids >> 16
    return {"gray16": instance_ids.astype(np.uint16), "gray8": label_ids.astype(np.uint8), "rgba": color,
            "paletted": label_ids.astype(np.uint8), "panoptic": pan,
            "trainids": train_table[label_ids].astype(np.uint8)}


def sample_frames() -> List[Tuple[str, Dict[str, np.ndarray]]]:
    """The frames of the sample shipped in the package, decoded by Pillow."""
    import glob

    import cityscapes_io

    root = cityscapes_io.sample_path()
    out = []
    for inst_path in sorted(glob.glob(os.path.join(root, "gtFine", "*", "*", "*_gtFine_instanceIds.png"))):
        stem = inst_path[: -len("instanceIds.png")]
        arrays = [np.asarray(Image.open(stem + part)) for part in ("instanceIds.png", "labelIds.png", "color.png")]
        out.append((os.path.basename(stem).rstrip("_"), dict(zip(("instanceIds", "labelIds", "color"), arrays))))
    return out


def synthetic_frames(n: int, size: Tuple[int, int]) -> List[Tuple[str, Dict[str, np.ndarray]]]:
    from cityscapes_io.testing import make_frame

    return [(f"synthetic {i}", make_frame(size, seed=0, index=i, photos=False)) for i in range(n)]


# ------------------------------------------------------------------------------------------------
# The writer of this script
# ------------------------------------------------------------------------------------------------
def raw_rows(arr: np.ndarray, kind: Kind) -> np.ndarray:
    """The image as PNG scanline bytes, H x (W * bpp) uint8 (16-bit samples big-endian)."""
    if kind.depth == 16:
        arr = np.ascontiguousarray(arr, dtype=">u2")
    return np.ascontiguousarray(arr).view(np.uint8).reshape(arr.shape[0], -1)


def filtered(rows: np.ndarray, bpp: int, how: str) -> np.ndarray:
    """H x (1 + W * bpp): each row's filter type byte, then its filtered bytes."""
    h, n = rows.shape
    out = np.empty((h, n + 1), np.uint8)
    x = rows
    if how == "none":
        out[:, 0] = 0
        out[:, 1:] = x
        return out
    if how == "sub":
        out[:, 0] = 1
        out[:, 1:bpp + 1] = x[:, :bpp]
        np.subtract(x[:, bpp:], x[:, :-bpp], out=out[:, bpp + 1:])
        return out
    if how == "up":
        out[:, 0] = 2
        out[0, 1:] = x[0]
        np.subtract(x[1:], x[:-1], out=out[1:, 1:])
        return out
    xi: np.ndarray = x.astype(np.int16)
    a = np.zeros_like(xi)
    a[:, bpp:] = xi[:, :-bpp]
    b = np.zeros_like(xi)
    b[1:] = xi[:-1]
    c = np.zeros_like(xi)
    c[1:, bpp:] = xi[:-1, :-bpp]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth_pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    paeth = (xi - paeth_pred).astype(np.uint8)
    if how == "paeth":
        out[:, 0] = 4
        out[:, 1:] = paeth
        return out
    assert how == "minsad"
    candidates = np.stack([x, (xi - a).astype(np.uint8), (xi - b).astype(np.uint8),
                           (xi - ((a + b) >> 1)).astype(np.uint8), paeth])  # 5 x H x N
    sad = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)  # 5 x H
    best = sad.argmin(axis=0)  # ties: the lowest type, None first
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(h)]
    return out


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def assemble(arr: np.ndarray, kind: Kind, idat: bytes) -> bytes:
    h, w = arr.shape[:2]
    head = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, kind.depth, kind.color, 0, 0, 0))
    if kind.palette is not None:
        head += chunk(b"PLTE", kind.palette.tobytes())
    return SIGNATURE + head + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def pillow_encode(arr: np.ndarray, kind: Kind, level: int) -> bytes:
    if kind.palette is not None:
        img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
        img.putpalette(kind.palette.tobytes())
    else:
        img = Image.fromarray(arr)
    with io.BytesIO() as buf:
        img.save(buf, format="PNG", compress_level=level)
        return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
def idat_of(data: bytes) -> bytes:
    pos, parts = 8, []
    while pos < len(data):
        length, name = struct.unpack_from(">I4s", data, pos)
        if name == b"IDAT":
            parts.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    return b"".join(parts)


def pillow_decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def round_trips(data: bytes, arr: np.ndarray, kind: Kind) -> bool:
    im = pillow_decode(data)
    got = np.asarray(im)
    if got.shape != arr.shape or not np.array_equal(got.astype(np.int64), arr.astype(np.int64)):
        return False
    if kind.palette is not None:
        pal = im.getpalette() or []
        return bytes(pal[:len(kind.palette.tobytes())]) == kind.palette.tobytes()
    return True


SLOW_MS = 500.0  # a call slower than this is timed once (``--slow-ms``): far out of the running anyway


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in ms (one call when the first is slower than
    ``SLOW_MS``: such an encoding is far slower than today's writers, the bound of the choice)."""
    times: List[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if times[0] * 1e3 > SLOW_MS:
            break
    return min(times) * 1e3


# ------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    source: str
    kind: str
    encoding: str
    size: List[int] = field(default_factory=list)
    encode_ms: List[float] = field(default_factory=list)
    inflate_ms: List[float] = field(default_factory=list)
    pillow_ms: List[float] = field(default_factory=list)
    rows: Dict[int, int] = field(default_factory=dict)
    ok: bool = True

    def mean(self, name: str) -> float:
        values = getattr(self, name)
        return float(sum(values)) / len(values)

    @property
    def cost(self) -> float:
        total = sum(self.rows.values())
        return sum(COST[t] * n for t, n in self.rows.items()) / total

    def mix(self) -> str:
        total = sum(self.rows.values())
        parts = sorted(self.rows.items(), key=lambda kv: -kv[1])
        return " ".join(f"{TYPE_NAME[t]} {100 * n / total:.0f}%" for t, n in parts if 100 * n / total >= 0.5) \
            or "—"


def measure(source: str, kind: Kind, images: Sequence[np.ndarray], repeat: int) -> List[Result]:
    results: Dict[str, Result] = {}

    def read_side(res: Result, data: bytes, arr: np.ndarray, raw_size: int) -> None:
        idat = idat_of(data)
        inflated = deflate.zlib_decompress(idat, raw_size)
        res.inflate_ms.append(best(lambda: deflate.zlib_decompress(idat, raw_size), repeat))
        stride = raw_size // arr.shape[0]
        for t, n in zip(*np.unique(np.frombuffer(inflated, np.uint8)[::stride], return_counts=True)):
            res.rows[int(t)] = res.rows.get(int(t), 0) + int(n)
        res.pillow_ms.append(best(lambda: pillow_decode(data), repeat))
        res.size.append(len(data))
        if not round_trips(data, arr, kind):
            res.ok = False

    comp = compressors()
    for arr in images:
        rows = raw_rows(arr, kind)
        raw_size = rows.shape[0] * (rows.shape[1] + 1)
        for level in PILLOW_LEVELS:
            res = results.setdefault(f"pillow-{level}", Result(source, kind.name, f"pillow-{level}"))
            data = pillow_encode(arr, kind, level)
            res.encode_ms.append(best(lambda: pillow_encode(arr, kind, level), repeat))
            read_side(res, data, arr, raw_size)
        for how in FILTERS:
            filter_ms = best(lambda: filtered(raw_rows(arr, kind), kind.bpp, how), repeat)
            raw = filtered(rows, kind.bpp, how).tobytes()
            for cname, fn in comp.items():
                name = f"{how}+{cname}"
                res = results.setdefault(name, Result(source, kind.name, name))
                data = assemble(arr, kind, fn(raw))
                res.encode_ms.append(filter_ms + best(lambda: assemble(arr, kind, fn(raw)), repeat))
                read_side(res, data, arr, raw_size)
    return list(results.values())


def choose(results: Sequence[Result], kind: Kind) -> Tuple[Optional[Result], Result, Result]:
    """(the choice or None, the reference, today's writer)."""
    by_name = {r.encoding: r for r in results}
    ref, today = by_name["pillow-6"], by_name[kind.today]
    fits = [r for r in results if r.ok and r.mean("size") <= ref.mean("size")
            and r.mean("encode_ms") <= today.mean("encode_ms")]
    fits.sort(key=lambda r: (round(r.cost, 2), r.mean("inflate_ms")))
    return (fits[0] if fits else None), ref, today


def row(r: Result, ref: Result, note: str = "") -> List[object]:
    return [r.kind, r.encoding + note, f"{r.mean('size'):.0f}", f"{r.mean('size') / ref.mean('size'):.2f}",
            f"{r.mean('encode_ms'):.2f}", f"{r.mean('inflate_ms'):.2f}", r.mix(), f"{r.cost:.2f}",
            f"{r.mean('pillow_ms'):.2f}", C.verdict(r.ok)]


HEADER = ["kind", "encoding", "bytes/frame", "vs Pillow 6", "encode ms", "inflate ms (libdeflate)",
          "rows by filter", "unfilter cost", "Pillow decode ms", "round trip"]
ALIGN = "llrrrrlrrl"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=("both", "sample", "synthetic"), default="both")
    ap.add_argument("--frames", type=int, default=4, help="synthetic frames")
    ap.add_argument("--size", default="2048x1024", help="synthetic frame size")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many timings")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    ap.add_argument("--slow-ms", type=float, default=SLOW_MS, help="time once a call slower than this")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    globals()["SLOW_MS"] = args.slow_ms
    size = C.parse_size(args.size, ap)

    from cityscapes_io.labels import LabelMap

    lm = LabelMap.cityscapes()
    train_table = lm.train_id_table()
    palette = lm.color_table().astype(np.uint8)[:256]
    KINDS["paletted"].palette = np.ascontiguousarray(palette)

    info = C.print_machine()
    info["deflate (libdeflate bindings)"] = getattr(deflate, "__version__", "?")
    info["zlib"] = zlib.ZLIB_RUNTIME_VERSION
    print(f"- deflate: {info['deflate (libdeflate bindings)']}, zlib {info['zlib']}\n")

    sources: List[Tuple[str, List[Tuple[str, Dict[str, np.ndarray]]]]] = []
    if args.source in ("both", "sample"):
        sources.append(("sample 256x128", sample_frames()))
    if args.source in ("both", "synthetic"):
        sources.append((f"synthetic {size[0]}x{size[1]}", synthetic_frames(args.frames, size)))

    start = time.perf_counter()
    chosen: List[List[object]] = []
    all_results: List[Result] = []
    for source, frames in sources:
        per_kind: Dict[str, List[np.ndarray]] = {k: [] for k in KINDS}
        for _, f in frames:
            for k, a in kind_arrays(f["instanceIds"], f["labelIds"], f["color"], train_table).items():
                per_kind[k].append(a)
        print(f"## {source}: {len(frames)} frames, best of {args.repeat}, per frame\n")
        table: List[List[object]] = []
        for name in args.kinds.split(","):
            kind = KINDS[name]
            t0 = time.perf_counter()
            results = measure(source, kind, per_kind[name], args.repeat)
            all_results += results
            pick, ref, today = choose(results, kind)
            for r in results:
                note = " (reference)" if r is ref else ""
                note += " (today)" if r is today else ""
                note += " **choice**" if r is pick else ""
                table.append(row(r, ref, note))
            chosen.append([source, kind.name, kind.what, today.encoding, pick.encoding if pick else "none fits"]
                          + (row(pick, ref)[2:] if pick else [""] * 8))
            print(f"  {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        print(C.markdown_table(HEADER, table, ALIGN))
        print()
    bad = [r for r in all_results if not r.ok]
    print("## Choice per kind (size <= Pillow 6, encode <= today's writer; least unfilter cost, then inflate)\n")
    print(C.markdown_table(["source", "kind", "image", "today", "choice"] + HEADER[2:], chosen, "lllll" + ALIGN[2:]))
    print()
    print(f"round trip failures: {len(bad)}" + "".join(f"\n- {r.source} {r.kind} {r.encoding}" for r in bad))
    print(f"load average at the end: {C.load_average()}; {time.perf_counter() - start:.0f} s")
    C.write_json(args.json, {"machine": info, "results": [
        {"source": r.source, "kind": r.kind, "encoding": r.encoding, "bytes": r.mean("size"),
         "encode_ms": r.mean("encode_ms"), "inflate_ms": r.mean("inflate_ms"), "pillow_decode_ms": r.mean("pillow_ms"),
         "rows": {TYPE_NAME[t]: n for t, n in r.rows.items()}, "unfilter_cost": r.cost, "round_trip": r.ok}
        for r in all_results]})
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
