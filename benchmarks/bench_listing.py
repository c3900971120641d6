#!/usr/bin/env python
"""Time to the first frame of a 20 000-frame coarse split (``gtCoarse/train_extra``) against a
50-frame one: the listing must stay lazy (a split is listed city by city as iteration reaches
each city), so the first frame comes as fast from the large split as from the small one.

Two trees in a temporary folder, the same 2048x1024 coarse frame (instanceIds, labelIds, color,
polygons) and its photo hard-linked under every frame name (no disk space, real files):

- small: ``train_extra`` with 50 frames in 2 cities;
- large: ``train_extra`` with 20 000 frames in 20 cities (1 000 each, like the real split's
  largest cities).

Each figure is measured in fresh interpreters, small and large alternately (best of
``--repeat``): ``open(root, annotations="gtCoarse")`` + ``next(iter(ds.frames("train_extra")))``
+ its ``instances()``, and, for reference, ``ds.count()`` (which lists the whole split).

Usage::

    python benchmarks/bench_listing.py [--frames-large 20000] [--repeat 5] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import cityscapes_io as cio
from cityscapes_io.names import gt_path, image_path
from cityscapes_io.testing import generate

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import cityscapes_io as cio
t1 = time.perf_counter()
ds = cio.open(sys.argv[1], annotations="gtCoarse")
frame = next(iter(ds.frames("train_extra")))
n = len(frame.instances())
t2 = time.perf_counter()
count = ds.count() if sys.argv[2] == "count" else None
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "count": t3 - t2, "n": count, "instances": n}))
"""


def build(root: str, frames: int, cities: int, seed_root: str) -> None:
    """``frames`` coarse train_extra frames in ``cities`` cities, hard links to one real frame."""
    if os.path.isdir(root):
        return
    src = cio.open(seed_root, annotations="gtCoarse")
    frame = next(iter(src.frames("train_extra")))
    files = {k: frame.path(k) for k in ("instanceIds", "labelIds", "color", "polygons", "image")}
    per_city = frames // cities
    for c in range(cities):
        city = f"city{c:02d}"
        for k in range(per_city):
            fid = f"{city}/{city}_{c:06d}_{k:06d}"
            for kind, path in files.items():
                rel = image_path("train_extra", fid) if kind == "image" else gt_path("train_extra", fid, kind, "gtCoarse")
                dest = os.path.join(root, rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.link(path, dest)


def probe(root: str, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, root, what], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames-small", type=int, default=50)
    ap.add_argument("--frames-large", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="bench-listing-")
    seed_root = os.path.join(work, "seed")
    if not os.path.isdir(seed_root):
        generate(seed_root, splits={"train": 1}, coarse={"train_extra": 1}, size=(2048, 1024), seed=0)
    t = time.perf_counter()
    small, large = os.path.join(work, f"small-{args.frames_small}"), os.path.join(work, f"large-{args.frames_large}")
    build(small, args.frames_small, 2, seed_root)
    build(large, args.frames_large, 20, seed_root)
    print(f"trees ready in {time.perf_counter() - t:.1f} s under {work}")
    best = {"small": {"first": 1e9, "count": 1e9}, "large": {"first": 1e9, "count": 1e9}}
    counts = {}
    for r in range(args.repeat):
        order = [("small", small), ("large", large)] if r % 2 == 0 else [("large", large), ("small", small)]
        for name, root in order:
            got = probe(root, "first")
            best[name]["first"] = min(best[name]["first"], got["first"])
            got = probe(root, "count")
            best[name]["count"] = min(best[name]["count"], got["count"])
            counts[name] = got["n"]
    print(f"{'split':<28} {'first frame (s)':>16} {'count() (s)':>12}")
    for name in ("small", "large"):
        print(f"{name + ' (' + str(counts[name]) + ' frames)':<28} {best[name]['first']:>16.3f} "
              f"{best[name]['count']:>12.3f}")
    ratio = best["large"]["first"] / best["small"]["first"]
    print(f"\nfirst frame, large / small: {ratio:.2f}x (target: about 1; the whole listing, count(), "
          f"is {best['large']['count'] / best['small']['count']:.0f}x)")


if __name__ == "__main__":
    main()
