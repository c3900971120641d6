#!/usr/bin/env python
"""Evaluation against the official scripts per frame, start-up apart: each of ``bench_eval.py``,
``bench_eval_instance.py`` and ``bench_eval_panoptic.py`` on two split sizes.

A run of N frames takes ``start-up + N × per-frame``; with the best times of a small and a large
split (``--frames 20,60`` by default, each script run side by side with the official in one
invocation, alternated, best of ``--repeat``) this prints, per run, the per-frame cost
``(T_large - T_small) / (N_large - N_small)`` and the start-up ``T_small - N_small × per-frame``
(for ours: the thread or process pool, reading the label tables; for the official: its own
set-up), and the per-frame ratio official / ours. Targets (issue 20): semantic and instance ≥ 10×
on one process, panoptic ≥ 5× with as many processes as the official uses (2 here).

Usage::

    python benchmarks/bench_eval_perframe.py [--frames 20,60] [--repeat 2] [--official-python PATH] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = {  # task: (script, the run held to the target, target)
    "semantic": ("bench_eval.py", "ours w1", 10.0),
    "instance": ("bench_eval_instance.py", "ours w1", 10.0),
    "panoptic": ("bench_eval_panoptic.py", "ours w2, gt files", 5.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", default="20,60")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--official-python", default=os.environ.get("CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON"))
    ap.add_argument("--workdir")
    ap.add_argument("--tasks", default=",".join(SCRIPTS))
    args = ap.parse_args()
    small, large = (int(n) for n in args.frames.split(","))
    if not args.official_python:
        raise SystemExit("--official-python (or CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON) is needed: the official "
                         "scripts are the anchor")
    C.print_machine()
    rows: List[List[str]] = []
    with C.workdir(args.workdir, "bench-eval-perframe-") as work:
        for task in args.tasks.split(","):
            script, held, target = SCRIPTS[task]
            best: Dict[int, Dict[str, float]] = {}
            for n in (small, large):
                out = os.path.join(work, f"{task}-{n}.json")
                cmd = [sys.executable, os.path.join(HERE, script), "--frames", str(n), "--repeat", str(args.repeat),
                       "--official-python", args.official_python, "--workdir", os.path.join(work, task),
                       "--json", out]
                print(f"== {task}, {n} frames: {' '.join(cmd[1:])}", flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True)
                print("\n".join(proc.stdout.strip().splitlines()[-9:]), flush=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{script} failed:\n{proc.stderr[-3000:]}")
                with open(out) as f:
                    best[n] = json.load(f)["best_s"]
            per = {name: (best[large][name] - best[small][name]) / (large - small) for name in best[small]}
            start = {name: best[small][name] - small * per[name] for name in best[small]}
            for name in best[small]:
                ratio = per["official"] / per[name] if per[name] > 0 else float("inf")
                verdict = f"≥ {target:.0f}×: {C.verdict(ratio >= target)}" if name == held else "-"
                rows.append([task, name, f"{best[small][name] / small * 1000:.1f}",
                             f"{best[large][name] / large * 1000:.1f}", f"{per[name] * 1000:.1f}",
                             f"{start[name] * 1000:.0f}", f"{ratio:.1f}×" if name != "official" else "-", verdict])
    print(f"\nper frame = (T({large}) - T({small})) / {large - small}; start-up = T({small}) - {small} × per frame; "
          f"best of {args.repeat} alternated fresh processes each; load average {C.load_average()}\n")
    print(C.markdown_table(["task", "run", f"ms/frame over {small}", f"ms/frame over {large}", "ms per frame",
                            "start-up ms", "per frame vs official", "target"], rows))


if __name__ == "__main__":
    main()
