#!/usr/bin/env python
"""Synthetic dataset generation: ``cityscapes_io.testing.generate`` (photos included) now,
against the same function at a baseline commit, side by side in one run.

The baseline is ``git show COMMIT:cityscapes_io/synthetic.py`` (``--baseline``, default
``c783ab9``, the last commit before the speed-up of issue 18; ``HEAD`` compares uncommitted
changes with the last commit), copied at run time to a temporary folder outside the checkout and loaded there as a
module of the installed ``cityscapes_io`` package (so it runs on today's helpers: ``png``,
``polygons``, ``names``, ...). For each size (``--sizes``, default 2048x1024 and 1024x512) each
version runs in a fresh interpreter, ``--repeat`` rounds in an order reversed every other round,
and in each run:

- a first call on one 64x32 frame (what the first call pays once: lazy imports), then
  ``generate(dst1, frames=1)`` and ``generate(dst2, frames=F)`` (``--frames``, default 4), timed
  inside the child (wall and CPU time of the process, every thread included);
- per frame: ``(t_F - t_1) / (F - 1)``, what one more frame costs (best of the rounds);
- start-up: the child's whole wall time (measured by this script: interpreter start, imports,
  the three calls) less ``t_F`` and one frame, i.e. what a command pays once (best of the rounds);
- the mean size of the photos written.

Reported: a table of both versions at each size, the speed-up, the estimate for 200 frames
(start-up + 200 frames), and the verdict of the target of issue 18 (at most 0.15 s a frame at
2048x1024 with photos, in one process).

Usage::

    python benchmarks/bench_synthetic.py [--baseline c783ab9] [--sizes 2048x1024,1024x512] [--frames 4]
                                   [--repeat 3] [--json PATH] [--check]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: issue 18: seconds per 2048x1024 frame with its photo, one process
TARGET = 0.15
FULL = (2048, 1024)
#: the last commit before the speed-up of issue 18
BASELINE = "c783ab9"

# argv: module file ("-": the checkout's cityscapes_io.testing), width, height, frames, folder.
_CHILD = r"""
import glob, importlib.util, json, os, sys, time
source, width, height, frames, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if source == "-":
    from cityscapes_io.testing import generate
else:
    import cityscapes_io
    spec = importlib.util.spec_from_file_location("cityscapes_io._synthetic_baseline", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generate = module.generate


def timed(dst, n):
    cpu, t = time.process_time(), time.perf_counter()
    generate(dst, frames=n, size=(width, height), seed=0, photos=True)
    return time.perf_counter() - t, time.process_time() - cpu


generate(os.path.join(out, "warm"), frames=1, size=(64, 32), seed=0, photos=True)  # lazy imports
one, one_cpu = timed(os.path.join(out, "one"), 1)
many, many_cpu = timed(os.path.join(out, "many"), frames)
photos = glob.glob(os.path.join(out, "many", "leftImg8bit", "*", "*", "*.png"))
assert len(photos) == frames, photos
print(json.dumps({"one_s": one, "many_s": many, "one_cpu_s": one_cpu, "many_cpu_s": many_cpu,
                  "photo_bytes": sum(os.path.getsize(p) for p in photos) / frames}))
"""


def baseline_module(commit: str, folder: str) -> str:
    """``cityscapes_io/synthetic.py`` at ``commit``, written under ``folder``; its path."""
    proc = subprocess.run(["git", "-C", REPO, "show", f"{commit}:cityscapes_io/synthetic.py"], capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"--baseline {commit}: git show failed: {proc.stderr.decode(errors='replace').strip()}")
    path = os.path.join(folder, "synthetic_baseline.py")
    with open(path, "wb") as fh:
        fh.write(proc.stdout)
    return path


def run(source: str, size: Tuple[int, int], frames: int, folder: str) -> Dict[str, float]:
    """One fresh child: its times, per frame and start-up."""
    out = tempfile.mkdtemp(prefix="run_", dir=folder)
    try:
        t = time.perf_counter()
        r = C.run_child(_CHILD, source, str(size[0]), str(size[1]), str(frames), out, via_launcher=False)
        r["process_s"] = time.perf_counter() - t
    finally:
        shutil.rmtree(out, ignore_errors=True)
    r["frame_s"] = (r["many_s"] - r["one_s"]) / (frames - 1)
    r["frame_cpu_s"] = (r["many_cpu_s"] - r["one_cpu_s"]) / (frames - 1)
    r["startup_s"] = r["process_s"] - r["many_s"] - r["frame_s"]
    return r


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE,
                        help=f"commit of the version to compare with (default {BASELINE}, before issue 18's speed-up)")
    parser.add_argument("--sizes", default="2048x1024,1024x512", help="frame sizes WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--frames", type=int, default=4, help="frames of the timed call (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each version in a fresh process (default 3)")
    parser.add_argument("--json", help="write the result rows to this JSON file")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when the target is missed")
    args = parser.parse_args(argv)
    sizes = [C.parse_size(s, parser) for s in args.sizes.split(",") if s]
    if args.frames < 2 or args.repeat < 1 or not sizes:
        parser.error("--frames >= 2, --repeat >= 1 and at least one size")
    wall0 = time.perf_counter()
    info = C.print_machine()
    rows: List[Tuple[str, str, str, str]] = []
    failed = False
    with C.workdir(None, "cityscapes_io_bench_synthetic_") as wd:
        versions = {f"before ({args.baseline})": baseline_module(args.baseline, wd), "after (checkout)": "-"}
        print(f"## Runs: {args.repeat} rounds alternated, each version in a fresh interpreter; generate(frames=1) "
              f"then generate(frames={args.frames}), photos on")
        for size in sizes:
            label = f"{size[0]}x{size[1]}"
            got = C.alternate([(name, lambda src=src: run(src, size, args.frames, wd))
                               for name, src in versions.items()], args.repeat)
            best = {name: {key: min(r[key] for r in rs) for key in ("frame_s", "frame_cpu_s", "startup_s")}
                    for name, rs in got.items()}
            for name, rs in got.items():
                print(f"- {label} {name}: per frame " + ", ".join(f"{r['frame_s']:.3f}" for r in rs)
                      + " s; start-up " + ", ".join(f"{r['startup_s']:.2f}" for r in rs)
                      + f" s; photo {rs[0]['photo_bytes'] / 1e6:.2f} MB")
                b = best[name]
                rows.append((f"{label} {name}: per frame (CPU, all threads)",
                             f"{b['frame_s']:.3f} s ({b['frame_cpu_s']:.3f} s)", "", ""))
                rows.append((f"{label} {name}: start-up; 200 frames", f"{b['startup_s']:.2f} s; "
                             f"{b['startup_s'] + 200 * b['frame_s']:.0f} s", "", ""))
            before, after = (best[name]["frame_s"] for name in versions)
            target = result = ""
            if size == FULL:
                target, result = f"≤ {TARGET} s a frame", C.verdict(after <= TARGET)
                failed |= after > TARGET
            rows.append((f"{label}: speed-up per frame", f"{before / after:.1f}×", target, result))
    print()
    print("## Results")
    print(f"(best of {args.repeat} rounds; whole run {time.perf_counter() - wall0:.0f} s; load average at end "
          f"{C.load_average()}; cpus {info.get('cpu count', '')})")
    print()
    print(C.markdown_table(("metric", "value", "target", "result"), rows))
    C.write_json(args.json, {"bench": "synthetic", "rows": rows, "machine": info})
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
