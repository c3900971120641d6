#!/usr/bin/env python
"""The Parquet index (issue 22): frames per second and peak memory of ``build_index`` against the
number of frames, beside a hand-written loop that holds its rows until the end.

For each ``--frames`` count (default 8, 32, 128, 512) a train split of that many frames of ``--size``
(default 512x256) with ``disparity`` and ``camera`` is generated, ``--frames-per-city`` frames
(default 32) to a city folder (``--distinct`` frame contents whose bytes are copied for the
others), then indexed in fresh subprocesses:

- ours: ``cityscapes_io.index.build_index(ds, out, workers=W)``: one streaming pass, row groups
  written as rows come (with the default row group budget, and with ``--row-group-rows``: the
  buffers hold at most a row group) (``frames.parquet`` with every file's URL and the parts present,
  ``instances.parquet`` with label, box, area and the RLE of every segment);
- hand-written: ``glob`` of the ``_instanceIds.png`` files, ``imageio.v3.imread``, per value
  ``pycocotools.mask.encode`` of ``ids == v`` (a full-frame mask each), ``area`` and ``toBBox``,
  rows kept in a list and written by ``pyarrow.Table.from_pylist`` + ``pq.write_table`` at the
  end (what a training repository writes; it has no paths of parts). Skipped when pycocotools or
  imageio is missing.

Each run is timed in its own process, after a warm-up that loads what the first write loads
(peak RSS above the process's after imports, opening and the warm-up: "growth"), and run again under ``tracemalloc`` for the peak of Python and numpy allocations
during the build (the more sensitive measure of what grows with the frames). Memory flat in the
number of frames is the claim: what ours holds is one city's listings (a reader lists a city at a
time) and at most a row group of rows (2048 rows as Python objects, the rest as Arrow data), so it
levels off, at the row group budget; the hand-written loop's keeps growing with its rows.

Usage::

    python benchmarks/bench_index.py [--frames 8,32,128,512] [--size 512x256] [--distinct 4] [--workers 1]
                                     [--repeat 1] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

_OURS_SETUP = """
import cityscapes_io, pyarrow, pyarrow.parquet
from cityscapes_io.index import build_index
src, out, workers, traced = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
options = {"row_group_rows": int(sys.argv[5])} if int(sys.argv[5]) else {}
ds = cityscapes_io.open(src)
# warm-up (not timed): pyarrow's writer and the modules the build imports, on the first frame
first = next(iter(ds))
build_index(ds.filter(ids=[first.id]), out + "-warm", overwrite=True)
if traced:
    import tracemalloc
    tracemalloc.start()
"""

OURS = C.timed_child(
    setup=_OURS_SETUP,
    timed="report = build_index(ds, out, workers=workers, overwrite=True, **options)",
    after="traced_peak = tracemalloc.get_traced_memory()[1] if traced else None",
    result='"frames": report.frames, "instances": report.instances, "row_groups": list(report.row_groups), '
           '"traced_peak": traced_peak')

HAND = C.timed_child(
    setup="""
import glob, numpy as np, imageio.v3 as iio, pyarrow as pa, pyarrow.parquet as pq
from pycocotools import mask as cocomask
src, out, traced = sys.argv[1], sys.argv[2], sys.argv[4] == "1"
paths = sorted(glob.glob(os.path.join(src, "gtFine", "*", "*", "*_gtFine_instanceIds.png")))
os.makedirs(out, exist_ok=True)
# warm-up (not timed): pyarrow's writer and pycocotools
pq.write_table(pa.Table.from_pylist([{"a": 1, "rle": {"size": [1, 1], "counts": "1"}}]), os.path.join(out, "warm"))
cocomask.encode(np.asfortranarray(np.ones((2, 2), np.uint8)))
if traced:
    import tracemalloc
    tracemalloc.start()
""",
    timed="""
rows = []
for path in paths:
    ids = iio.imread(path)
    frame_id = os.path.basename(path)[: -len("_gtFine_instanceIds.png")]
    for v in np.unique(ids).tolist():
        enc = cocomask.encode(np.asfortranarray((ids == v).astype(np.uint8)))
        x, y, w, h = cocomask.toBbox(enc).tolist()
        rows.append({"frame_id": frame_id, "value": v, "label_id": v // 1000 if v >= 1000 else v,
                     "instance_id": v % 1000 if v >= 1000 else None, "area": int(cocomask.area(enc)),
                     "bbox": [x, y, w, h], "rle": {"size": list(enc["size"]), "counts": enc["counts"].decode()}})
pq.write_table(pa.Table.from_pylist(rows), os.path.join(out, "instances.parquet"))
""",
    after="traced_peak = tracemalloc.get_traced_memory()[1] if traced else None",
    result='"frames": len(paths), "instances": len(rows), "traced_peak": traced_peak')


def _hand_available() -> bool:
    try:
        import imageio.v3  # noqa: F401
        import pycocotools.mask  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", default="8,32,128,512", help="comma-separated frame counts")
    ap.add_argument("--size", default="512x256")
    ap.add_argument("--distinct", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--frames-per-city", type=int, default=32,
                    help="frames of a city folder (the release's hold 50 to 500; a reader lists a city at a time)")
    ap.add_argument("--row-group-rows", default="default,256",
                    help="ours: comma-separated row group sizes in rows ('default': build_index's, "
                         "ROW_GROUP_ROWS or ROW_GROUP_BYTES of Arrow data)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per count and loop (best kept)")
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    w, h = C.parse_size(args.size, ap)
    counts = [int(n) for n in args.frames.split(",") if n.strip()]
    groups = ["0" if g.strip() == "default" else str(int(g)) for g in args.row_group_rows.split(",") if g.strip()]
    C.print_machine()
    from cityscapes_io.testing import generate

    hand = _hand_available()
    rows: List[List[object]] = []
    with C.workdir(args.workdir, "bench-index-") as work:
        for n in counts:
            root = os.path.join(work, f"cs-{n}-{w}x{h}-{args.frames_per_city}")
            if not os.path.isdir(root):
                cities = [f"city{i:03d}" for i in range(max(1, -(-n // args.frames_per_city)))]
                generate(root, splits={"train": n}, size=(w, h), parts=["disparity", "camera"],
                         distinct=min(args.distinct, n), demo_frames=0, cities=cities)
            loops = [(f"ours, row groups {'default' if rg == '0' else rg + ' rows'}", OURS, str(args.workers), rg)
                     for rg in groups] + ([("hand-written", HAND, "1", "0")] if hand else [])
            for name, code, workers, rg in loops:
                out = os.path.join(work, f"out-{len(rows)}")
                timed: Dict = min((C.run_child(code, root, out, workers, "0", rg) for _ in range(args.repeat)),
                                  key=lambda r: r["seconds"])
                traced = C.run_child(code, root, out, workers, "1", rg)
                rows.append([name, n, timed["instances"], f"{timed['seconds']:.2f}",
                             f"{n / timed['seconds']:.1f}", f"{timed['peak_kib'] / 1024:.0f}",
                             f"{(timed['peak_kib'] - timed['baseline_kib']) / 1024:.1f}",
                             f"{traced['traced_peak'] / 2**20:.1f}",
                             "/".join(map(str, timed.get("row_groups", []))) or "1"])
    print(f"\nindex of N frames of {w}x{h} with disparity and camera ({args.distinct} distinct contents), "
          f"ours with workers={args.workers}\n")
    print(C.markdown_table(["loop", "frames", "segments", "seconds", "frames/s", "peak RSS MiB",
                            "RSS growth MiB", "traced peak MiB", "row groups"], rows, "lrrrrrrrr"))
    if not hand:
        print("\n(hand-written loop skipped: it needs pycocotools and imageio)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
