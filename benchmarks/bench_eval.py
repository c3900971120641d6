#!/usr/bin/env python
"""Semantic evaluation: ``cityscapes_io.evaluate(task="semantic")`` against the official
``evalPixelLevelSemanticLabeling`` (cityscapesScripts 2.3.0, in its own environment), side by side.

A synthetic ``val`` split of ``--frames`` 2048x1024 frames (``--distinct`` contents copied under
further names; no photos) and one prediction PNG per frame (the ground truth's labelIds with a
shifted block and swapped labels). Each run in a fresh interpreter, alternated, best of
``--repeat`` after a warm-up, timed inside the child around the official ``main()`` / around
``evaluate`` (imports excluded). Target (issue 20): ours at least 10 times as fast on one process (issue 12: 5).

Usage::

    python benchmarks/bench_eval.py [--frames 20] [--repeat 3] [--official-python PATH] [--workdir DIR]
"""
from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET = 10.0  # issue 20 (issue 12: 5)

_OFFICIAL = C.timed_child(setup=r"""
root, preds, export = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = sys.argv[:1]  # its main() takes file lists from the command line; none: the whole val split
os.environ.update(CITYSCAPES_DATASET=root, CITYSCAPES_RESULTS=preds, CITYSCAPES_EXPORT_DIR=export)
import io, contextlib
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as e
""", timed=r"""
with contextlib.redirect_stdout(io.StringIO()):
    e.main()
""")

_OURS = C.timed_child(setup=r"""
root, preds, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
import cityscapes_io
""", timed=r"""
result = cityscapes_io.evaluate(root, preds, task="semantic", workers=workers)
""")


def make_predictions(root: str, preds: str) -> None:
    import numpy as np

    import cityscapes_io as cio
    from cityscapes_io import png

    os.makedirs(preds, exist_ok=True)
    rng = np.random.default_rng(0)
    for frame in cio.open(root, split="val"):
        lab = frame.label_ids().copy()
        h, w = lab.shape
        lab[h // 4: h // 2, w // 4: w // 2] = lab[h // 4 + 7: h // 2 + 7, w // 4 + 11: w // 2 + 11]
        swap = rng.integers(0, 34, size=lab.shape, dtype=np.uint8)
        noise = rng.random(lab.shape) < 0.02
        lab[noise] = swap[noise]
        name = frame.id.rsplit("/", 1)[-1] + "_pred.png"
        with open(os.path.join(preds, name), "wb") as f:
            f.write(png.encode_label_png(lab))


def main() -> None:
    ap = C.official_parser()
    args, size, info = C.parse_official(ap)
    with C.workdir(args.workdir, "bench-eval-") as work:
        root = os.path.join(work, f"val-{args.frames}-{size[0]}x{size[1]}")
        preds = root + "-pred"
        export = root + "-export"
        if not os.path.isdir(root):
            from cityscapes_io.testing import generate

            generate(root, splits={"val": args.frames}, size=size, photos=False, distinct=args.distinct, seed=0)
        if not os.path.isdir(preds):
            make_predictions(root, preds)
        runs = []
        if args.official_python:
            def official():
                shutil.rmtree(export, ignore_errors=True)
                os.makedirs(export)
                return C.run_child(_OFFICIAL, root, preds, export, python=args.official_python)
            runs.append(("official", official))
        runs.append(("ours w1", lambda: C.run_child(_OURS, root, preds, "1")))
        runs.append(("ours w2", lambda: C.run_child(_OURS, root, preds, "2")))
        C.against_official(runs, args.repeat, args.frames, size, TARGET, info, args.json)


if __name__ == "__main__":
    main()
