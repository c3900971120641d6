#!/usr/bin/env python
"""COCO panoptic preparation: ``prepare(kinds="panoptic")`` against the official
``csCreatePanopticImgs`` (cityscapesScripts 2.3.0, run in its own environment), side by side.

On a synthetic ``val`` split of ``--frames`` 2048x1024 frames (``--distinct`` contents copied
under further names; no photos), each run in a fresh interpreter, alternated (official first on
even rounds), best of ``--repeat`` after one warm-up round, every output deleted before each
run. Timed inside the child around the official ``convert2panoptic`` / around ``prepare``
(imports excluded). Target (issue 11): ours at least 5 times as fast on one process.

Usage::

    python benchmarks/bench_panoptic.py [--frames 20] [--distinct 4] [--repeat 3]
                                        [--official-python PATH] [--workdir DIR]
"""
from __future__ import annotations

import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET = 5.0

_OFFICIAL = C.timed_child(setup=r"""
root = sys.argv[1]
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
import io, contextlib
""", timed=r"""
with contextlib.redirect_stdout(io.StringIO()):
    convert2panoptic(os.path.join(root, "gtFine"), None, False, ["val"])
""")

_OURS = C.timed_child(setup=r"""
root, workers = sys.argv[1], int(sys.argv[2])
import cityscapes_io
""", timed=r"""
report = cityscapes_io.prepare(root, kinds="panoptic", workers=workers)
assert report.ok
""")


def clean(root: str) -> None:
    for path in glob.glob(os.path.join(root, "gtFine", "cityscapes_panoptic_*")):
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def main() -> None:
    ap = C.official_parser()
    args, size, info = C.parse_official(ap)
    with C.workdir(args.workdir, "bench-panoptic-") as work:
        root = os.path.join(work, f"val-{args.frames}-{size[0]}x{size[1]}")
        from cityscapes_io.testing import generate

        if not os.path.isdir(root):
            generate(root, splits={"val": args.frames}, size=size, photos=False, distinct=args.distinct, seed=0)
        runs = []
        if args.official_python:
            runs.append(("official", lambda: (clean(root), C.run_child(_OFFICIAL, root, python=args.official_python))[1]))
        runs.append(("ours w1", lambda: (clean(root), C.run_child(_OURS, root, "1"))[1]))
        runs.append(("ours w2", lambda: (clean(root), C.run_child(_OURS, root, "2"))[1]))
        C.against_official(runs, args.repeat, args.frames, size, TARGET, info)


if __name__ == "__main__":
    main()
