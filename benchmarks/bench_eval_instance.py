#!/usr/bin/env python
"""Instance evaluation: ``cityscapes_io.evaluate(task="instance")`` against the official
``evalInstanceLevelSemanticLabeling`` (cityscapesScripts 2.3.0, in its own environment), side by side.

A synthetic ``val`` split of ``--frames`` 2048x1024 frames (``--distinct`` contents copied under
further names; no photos) and per frame one txt with a prediction per ground-truth instance of an
evaluated class (its mask shifted, grown or cut, a random confidence) plus ``--extra`` random
boxes, the masks 0/255 PNGs. Each run in a fresh interpreter, alternated, best of ``--repeat``
after a warm-up, timed inside the child around the official ``main()`` / around ``evaluate``
(imports excluded). The official's ground-truth cache (``gtInstances.json``) is deleted before
each of its runs: both sides read the ground truth from the PNGs. Target (issue 20): ours at
least 10 times as fast on one process (issue 12: 5).

Usage::

    python benchmarks/bench_eval_instance.py [--frames 20] [--repeat 3] [--official-python PATH] [--workdir DIR]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET = 10.0  # issue 20 (issue 12: 5)

_OFFICIAL = C.timed_child(setup=r"""
root, preds, cache = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = sys.argv[:1]  # its main() takes file lists from the command line; none: the whole val split
os.environ.update(CITYSCAPES_DATASET=root, CITYSCAPES_RESULTS=preds)
os.chdir(os.path.dirname(cache))  # it writes matches.json in the current folder
if os.path.exists(cache):
    os.remove(cache)
import io, contextlib
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as e
e.args.gtInstancesFile = cache
e.args.quiet = True
""", timed=r"""
with contextlib.redirect_stdout(io.StringIO()):
    e.main()
""")

_OURS = C.timed_child(setup=r"""
root, preds, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
import cityscapes_io
""", timed=r"""
result = cityscapes_io.evaluate(root, preds, task="instance", workers=workers)
""")


def make_predictions(root: str, preds: str, extra: int) -> None:
    import numpy as np

    import cityscapes_io as cio
    from cityscapes_io import png

    rng = np.random.default_rng(0)
    for frame in cio.open(root, split="val"):
        inst = frame.instance_ids()
        h, w = inst.shape
        base = frame.id.rsplit("/", 1)[-1]
        folder = os.path.join(preds, base + "_masks")
        os.makedirs(folder, exist_ok=True)
        lines = []
        values = [int(v) for v in np.unique(inst) if v >= 1000 and 24 <= v // 1000 <= 33]
        masks = []
        for v in values:
            m = np.roll(inst == v, (int(rng.integers(-8, 9)), int(rng.integers(-8, 9))), axis=(0, 1))
            masks.append((m, v // 1000))
        for _ in range(extra):
            y, x = int(rng.integers(0, h - 64)), int(rng.integers(0, w - 64))
            m = np.zeros((h, w), bool)
            m[y:y + int(rng.integers(16, 200)), x:x + int(rng.integers(16, 300))] = True
            masks.append((m, int(rng.choice([24, 25, 26, 27, 28, 31, 32, 33]))))
        for k, (m, label) in enumerate(masks):
            with open(os.path.join(folder, f"{k}.png"), "wb") as f:
                f.write(png.encode_png(m.astype(np.uint8) * 255))
            lines.append(f"{base}_masks/{k}.png {label} {rng.random():.4f}")
        with open(os.path.join(preds, base + "_pred.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


def main() -> None:
    ap = C.official_parser()
    ap.add_argument("--extra", type=int, default=10, help="random box predictions per frame")
    args, size, info = C.parse_official(ap)
    with C.workdir(args.workdir, "bench-eval-instance-") as work:
        root = os.path.join(work, f"val-{args.frames}-{size[0]}x{size[1]}")
        preds = root + f"-instpred-{args.extra}"
        cache = os.path.join(work, "official-cwd", "gtInstances.json")
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        if not os.path.isdir(root):
            from cityscapes_io.testing import generate

            generate(root, splits={"val": args.frames}, size=size, photos=False, distinct=args.distinct, seed=0)
        if not os.path.isdir(preds):
            make_predictions(root, preds, args.extra)
        runs = []
        if args.official_python:
            runs.append(("official", lambda: C.run_child(_OFFICIAL, root, preds, cache, python=args.official_python)))
        runs.append(("ours w1", lambda: C.run_child(_OURS, root, preds, "1")))
        runs.append(("ours w2", lambda: C.run_child(_OURS, root, preds, "2")))
        C.against_official(runs, args.repeat, args.frames, size, TARGET, info, args.json)


if __name__ == "__main__":
    main()
