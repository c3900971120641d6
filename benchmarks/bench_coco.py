#!/usr/bin/env python
"""COCO instances: ``convert(format="coco_instances")`` on 50 and 500 frames: frames/s and peak
RSS, to show that memory does not grow with the number of frames (issue 11: the JSON of a split
is spooled and streamed, never held).

On synthetic ``train`` splits of ``--frames`` and ``--frames-large`` 2048x1024 frames without
photos (``--distinct`` contents copied under further names), each run in a fresh interpreter
started by the launcher of ``_common`` (so ``ru_maxrss`` is the child's own), one warm-up round,
then ``--repeat`` alternated rounds; time measured inside the child around ``convert()``
(imports excluded), output deleted after every run. Times: best of the rounds; RSS: median.

``--reference`` also runs, side by side, what users otherwise run, in the shape of mmdetection's
``tools/dataset_converters/cityscapes.py`` (whose own environment, mmcv + mmengine +
cityscapesscripts, is not installed here): per frame ``np.unique`` of the instanceIds, one
full-frame mask and one ``pycocotools.mask.encode`` per instance, every record kept in a list,
one ``json.dump`` at the end; it needs pycocotools.

Usage::

    python benchmarks/bench_coco.py [--frames 50] [--frames-large 500] [--size 2048x1024]
                                    [--distinct 4] [--repeat 3] [--reference] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

RSS_TOLERANCE = 0.10  # peak RSS at --frames-large within 10% of the one at --frames

_OURS = C.timed_child(setup=r"""
src, dst = sys.argv[1], sys.argv[2]
fmt = sys.argv[3] if len(sys.argv) > 3 else "coco_instances"
import cityscapes_io
""", timed=r"""
report = cityscapes_io.convert(src, dst, format=fmt)
""", result='"read": report.read, "written": report.written, "skipped": len(report.skipped)')

# The reference: mmdetection's converter loop, on pycocotools (see the module docstring).
_REFERENCE = C.timed_child(setup=r"""
src, dst = sys.argv[1], sys.argv[2]
import glob
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image
THINGS = {24: "person", 25: "rider", 26: "car", 27: "truck", 28: "bus", 31: "train", 32: "motorcycle",
          33: "bicycle"}
""", timed=r"""
gt = os.path.join(src, "gtFine", "train")
images, annotations = [], []
for k, path in enumerate(sorted(glob.glob(os.path.join(gt, "*", "*_gtFine_instanceIds.png")))):
    inst = np.asarray(Image.open(path))
    for v in np.unique(inst[inst >= 24]).tolist():
        cat = v // 1000 if v >= 1000 else v
        if cat not in THINGS:
            continue
        mask_rle = mask_utils.encode(np.asarray(inst == v, dtype=np.uint8, order="F"))
        annotations.append({"iscrowd": int(v < 1000), "category_id": cat,
                            "bbox": mask_utils.toBbox(mask_rle).tolist(), "area": int(mask_utils.area(mask_rle)),
                            "segmentation": {"size": mask_rle["size"], "counts": mask_rle["counts"].decode()},
                            "image_id": k, "id": len(annotations)})
    rel = os.path.relpath(path, gt)
    images.append({"file_name": rel.replace("_gtFine_instanceIds.png", "_leftImg8bit.png"),
                   "height": inst.shape[0], "width": inst.shape[1], "id": k})
os.makedirs(os.path.join(dst, "annotations"), exist_ok=True)
with open(os.path.join(dst, "annotations", "instancesonly_filtered_gtFine_train.json"), "w") as fh:
    json.dump({"images": images, "categories": [{"id": i, "name": n} for i, n in THINGS.items()],
               "annotations": annotations}, fh)
""", result='"read": len(images), "written": len(images), "skipped": 0')


class Run:
    def __init__(self, label: str, frames: int, code: str, src: str, out: str, *extra: str):
        self.label, self.frames, self.code, self.src, self.out = label, frames, code, src, out
        self.extra = extra
        self.results: List[Dict] = []

    def __call__(self, keep: bool = True) -> Dict:
        shutil.rmtree(self.out, ignore_errors=True)
        try:
            res = C.run_child(self.code, self.src, self.out, *self.extra)
            res["json_bytes"] = sum(os.path.getsize(os.path.join(self.out, "annotations", n))
                                    for n in os.listdir(os.path.join(self.out, "annotations")) if n.endswith(".json"))
        finally:
            shutil.rmtree(self.out, ignore_errors=True)
        if (res["read"], res["written"], res["skipped"]) != (self.frames, self.frames, 0):
            raise RuntimeError(f"{self.label}: expected {self.frames} frames read and written, got {res}")
        if keep:
            self.results.append(res)
        return res

    @property
    def best_s(self) -> float:
        return min(r["seconds"] for r in self.results)

    def rss_mib(self, key: str = "peak_kib") -> float:
        return statistics.median(r[key] for r in self.results) / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--format", choices=("coco_instances", "coco_panoptic"), default="coco_instances")
    ap.add_argument("--frames-large", type=int, default=500)
    ap.add_argument("--size", default="2048x1024")
    ap.add_argument("--distinct", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference", action="store_true", help="also run the pycocotools reference (mmdetection's loop)")
    ap.add_argument("--workdir", help="where the synthetic data is written (kept and reused); default: temporary")
    ap.add_argument("--check", action="store_true", help="exit with status 1 when RSS grows beyond the tolerance")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.frames_large <= args.frames or args.repeat < 1 or args.distinct < 1:
        ap.error("need 1 <= --frames < --frames-large, --repeat >= 1, --distinct >= 1")
    if args.reference and args.format != "coco_instances":
        ap.error("--reference is the coco_instances loop")
    size = C.parse_size(args.size, ap)
    info = C.print_machine()
    with C.workdir(args.workdir, "bench-coco-") as work:
        out = os.path.join(work, "out")
        runs: List[Run] = []
        for n in (args.frames, args.frames_large):
            root = os.path.join(work, f"train-{n}-{size[0]}x{size[1]}-d{args.distinct}")
            spent = C.make_split(root, n, size, args.distinct, photos=False)
            print(f"data: {root}: {n} frames, {C.tree_size(root)[1] / 2**20:.0f} MiB, "
                  + (f"generated in {spent:.1f} s" if spent else "reused"))
            runs.append(Run(f"ours, {n} frames", n, _OURS, root, out, args.format))
            if args.reference:
                runs.append(Run(f"reference (pycocotools loop), {n} frames", n, _REFERENCE, root, out))
        print()
        for r in runs:  # warm-up (page cache, imports compiled)
            r(keep=False)
        C.alternate([(r.label, r) for r in runs], args.repeat)
        rows = []
        for r in runs:
            rows.append([r.label, f"{r.frames / r.best_s:.1f}", f"{1000 * r.best_s / r.frames:.1f}",
                         f"{r.rss_mib():.1f}", f"{r.rss_mib('baseline_kib'):.1f}",
                         f"{r.results[0]['json_bytes'] / 2**20:.1f}"])
        print(f"## {args.format}, {size[0]}x{size[1]} frames without photos, one process (decode-ahead on); "
              f"best of {args.repeat} / median RSS (ru_maxrss)")
        print(C.markdown_table(["run", "frames/s", "ms/frame", "peak RSS MiB", "after imports MiB", "JSON MiB"],
                               rows, "lrrrrr"))
        small, large = runs[0], runs[2 if args.reference else 1]
        diff = large.rss_mib() - small.rss_mib()
        rel = diff / small.rss_mib()
        ok = abs(rel) <= RSS_TOLERANCE
        print(f"\npeak RSS, ours: {small.rss_mib():.1f} MiB at {small.frames} frames, {large.rss_mib():.1f} MiB at "
              f"{large.frames} ({diff:+.1f} MiB, {100 * rel:+.1f}%, "
              f"{1024 * diff / (large.frames - small.frames):+.1f} KiB per extra frame); "
              f"target within ±{100 * RSS_TOLERANCE:.0f}%: {C.verdict(ok)}")
        if args.reference:
            ref_small, ref_large = runs[1], runs[3]
            print(f"peak RSS, reference: {ref_small.rss_mib():.1f} MiB -> {ref_large.rss_mib():.1f} MiB; speed: ours "
                  f"{ref_large.best_s / large.best_s:.1f}x the reference at {large.frames} frames")
        print(f"load average at end: {C.load_average()}; cpus {info.get('cpu count', '')}")
        print(json.dumps({"rss_small_mib": small.rss_mib(), "rss_large_mib": large.rss_mib(),
                          "fps_small": small.frames / small.best_s, "fps_large": large.frames / large.best_s}))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
