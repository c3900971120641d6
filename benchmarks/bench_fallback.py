#!/usr/bin/env python
"""The pure-Python path against the library before issue 20, and the fast path beside them.

Issue 20's fast path (the C extensions ``_png`` and ``_count``, libdeflate) is optional; without
it (no compiler, another platform, or ``CITYSCAPES_IO_PURE_PYTHON=1``) every figure must stay where
it was. This script runs the same workloads, each in a fresh interpreter, timed inside the child
(imports excluded), alternated, best of ``--repeat``:

- ``before``: the package at ``--baseline`` (default 4ae301e, the last commit before issue 20),
  checked out into a temporary git worktree and put first on ``PYTHONPATH``;
- ``fallback``: this tree with ``CITYSCAPES_IO_PURE_PYTHON=1``;
- ``fast``: this tree as installed (the extensions built).

Workloads on synthetic 2048x1024 splits (``--frames``; made here, or reused from ``--workdir``):
iterate + ``instances()``; ``evaluate`` semantic, instance and panoptic on one process; ``convert``
to VOC with ``save_media``.

Usage::

    python benchmarks/bench_fallback.py [--frames 20] [--repeat 3] [--baseline REV] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

_CHILD = C.timed_child(setup=r"""
task, root, extra = sys.argv[1], sys.argv[2], sys.argv[3]
import cityscapes_io
for _name in cityscapes_io.__all__:
    getattr(cityscapes_io, _name)
if os.path.exists(os.path.join(os.path.dirname(cityscapes_io.__file__), "decoder.py")):
    from cityscapes_io import decoder
    decoder_name = decoder.describe()
else:  # (the baseline: its package has no decoder module)
    decoder_name = "Pillow (before issue 20, " + os.path.dirname(cityscapes_io.__file__) + ")"
""", timed=r"""
if task == "iterate":
    n = sum(len(f.instances()) for f in cityscapes_io.open(root))
elif task == "convert":
    cityscapes_io.convert(root, extra, format="voc", save_media=True, overwrite=True)
else:
    cityscapes_io.evaluate(root, extra, task=task, workers=1)
""", result='"decoder": decoder_name')


def _worktree(rev: str, where: str) -> str:
    path = os.path.join(where, "baseline")
    if not os.path.isdir(path):
        subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", path, rev], check=True,
                       capture_output=True)
    return path


def _data(work: str, frames: int) -> Dict[str, List[str]]:
    """The workloads' arguments: ``name -> [task, root, extra]``."""
    import bench_eval
    import bench_eval_instance
    import bench_eval_panoptic

    from cityscapes_io.prepare import prepare
    from cityscapes_io.testing import generate

    val = os.path.join(work, f"val-{frames}")
    if not os.path.isdir(val):
        generate(val, splits={"val": frames}, size=(2048, 1024), photos=True, distinct=4, seed=0)
    sem = val + "-semantic-pred"
    if not os.path.isdir(sem):
        bench_eval.make_predictions(val, sem)
    inst = val + "-instance-pred"
    if not os.path.isdir(inst):
        bench_eval_instance.make_predictions(val, inst, 8)
    pan = val + "-panoptic"
    if not os.path.isdir(pan):
        shutil.copytree(val, pan)
        prepare(pan, kinds=["panoptic"])
    pan_pred = pan + "-pred"
    if not os.path.isdir(pan_pred):
        bench_eval_panoptic.make_predictions(pan, pan_pred)
    return {
        "iterate + instances()": ["iterate", val, ""],
        "evaluate semantic": ["semantic", val, sem],
        "evaluate instance": ["instance", val, inst],
        "evaluate panoptic (gt files)": ["panoptic", pan, pan_pred + ".json"],
        "convert to VOC, save_media": ["convert", val, os.path.join(work, "voc-out")],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", default="4ae301e")
    ap.add_argument("--workdir")
    ap.add_argument("--only", help="comma-separated workload names (substrings)")
    args = ap.parse_args()
    info = C.print_machine()
    with C.workdir(args.workdir, "bench-fallback-") as work:
        base = _worktree(args.baseline, work)
        workloads = _data(work, args.frames)
        if args.only:
            keys = [k.strip() for k in args.only.split(",")]
            workloads = {n: w for n, w in workloads.items() if any(k in n for k in keys)}
        env_base = dict(os.environ, PYTHONPATH=base + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env_pure = dict(os.environ, CITYSCAPES_IO_PURE_PYTHON="1")
        rows = []
        worst: Optional[float] = None
        for name, argv in workloads.items():
            def run(env: Dict[str, str], argv: List[str] = argv) -> Dict:
                # from a neutral folder: the checkout's own folder on sys.path would shadow PYTHONPATH's
                return C.run_child(_CHILD, *argv, env=env, cwd=tempfile.gettempdir())
            runs = [("before", lambda: run(env_base)), ("fallback", lambda: run(env_pure)),
                    ("fast", lambda: run(dict(os.environ)))]
            for _, r in runs:
                r()  # warm-up (page cache, bytecode)
            got = C.alternate(runs, args.repeat)
            best = {k: min(r["seconds"] for r in v) for k, v in got.items()}
            ratio = best["fallback"] / best["before"]
            worst = ratio if worst is None else max(worst, ratio)
            rows.append([name, f"{best['before'] / args.frames * 1000:.1f}", f"{best['fallback'] / args.frames * 1000:.1f}",
                         f"{ratio:.2f}", f"{best['fast'] / args.frames * 1000:.1f}",
                         f"{best['before'] / best['fast']:.1f}x"])
            print(f"- {name}: decoders {got['before'][0]['decoder']} / {got['fallback'][0]['decoder']} / "
                  f"{got['fast'][0]['decoder']}", flush=True)
        print(f"\n{args.frames} frames 2048x1024, ms per frame, best of {args.repeat} alternated fresh processes, "
              f"imports excluded; baseline {args.baseline}; load average {C.load_average()}\n")
        print(C.markdown_table(["workload", "before (ms/frame)", "fallback (ms/frame)", "fallback / before",
                                "fast (ms/frame)", "fast vs before"], rows))
        if worst is not None:
            print(f"\nslowest fallback against before: {worst:.2f}x the time (target: no regression, <= 1.10 "
                  f"within this machine's noise): {C.verdict(worst <= 1.10)}")
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", base], capture_output=True)
        print(f"cpus {info.get('cpu count', '')}")


if __name__ == "__main__":
    main()
