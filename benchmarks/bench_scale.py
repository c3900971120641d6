#!/usr/bin/env python
"""Scaling benchmark: Cityscapes -> VOC conversion with ``workers=1`` and ``workers=2``.

On a synthetic split (``--frames`` frames of 2048x1024 with photos, ``--distinct`` frame
contents whose bytes are copied for the others), ``cityscapes_io.convert(src, out,
format="voc", save_media=True, workers=W)`` runs in a fresh subprocess (spawned by a small
``python -S`` launcher, so that its ``ru_maxrss`` is its own), one untimed warm-up round, then
``--repeat`` rounds with the order of W=1 and W=2 reversed every other round. The child times
the ``convert()`` call itself (interpreter start and imports are not counted; the worker pool's
start-up is, as a user pays it). Reported:

- frames/s for W=1 and W=2 (best of the rounds) and the speedup (target >= 1.7x from the second
  worker; the machine's ``nproc`` is printed: with 2 CPUs the parent process, which lists the
  frames, pickles them and writes the index files, shares them with the two workers);
- the steady-state speedup, from the times at which the first and the last frame were done
  (``progress`` callback), which leaves out the pool's start-up (spawning two interpreters that
  import numpy, Pillow and the library), and that start-up cost itself;
- peak RSS of the W=2 run: the parent's own ``ru_maxrss`` (RUSAGE_SELF), and the workers'
  ``ru_maxrss`` (RUSAGE_CHILDREN after the pool is joined: the largest of the waited-for
  children, not a sum), reported separately, with each worker's ``VmHWM`` sampled from /proc
  during the run as a cross-check. Note: on Linux a child started by fork/vfork + exec inherits
  in ``ru_maxrss`` the peak of its parent at that moment, so RUSAGE_CHILDREN is at least the
  parent's RSS when the pool started; ``VmHWM`` is the worker's own address space only.

Usage::

    python benchmarks/bench_scale.py [--frames 96] [--size 2048x1024] [--distinct 6] [--repeat 3]
                                     [--workdir DIR] [--json PATH] [--check]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SPEEDUP_TARGET = 1.7

_CHILD = C.timed_child(setup=r"""
import threading

src, dst, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
# workers == 0: one process with its default decode-ahead thread; otherwise single-threaded processes
ahead = workers == 0
workers = max(workers, 1)
import cityscapes_io

me = os.getpid()


def children():
    pids = set()
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children") as fh:
                pids.update(int(p) for p in fh.read().split())
    except OSError:
        pass
    return pids


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


hwm = {}            # worker pid -> largest VmHWM seen (KiB)
stop = threading.Event()


def sample():
    while not stop.is_set():
        for pid in children():
            if pid not in hwm:
                cmd = cmdline(pid)
                if "spawn_main" not in cmd:      # the resource tracker, not a worker
                    continue
                hwm[pid] = 0
            v = vm_hwm_kib(pid)
            if v:
                hwm[pid] = max(hwm[pid], v)
        stop.wait(0.05)


sampler = threading.Thread(target=sample, daemon=True)
if workers > 1:
    sampler.start()
done = []
""", timed=r"""
report = cityscapes_io.convert(src, dst, format="voc", save_media=True, workers=workers, decode_ahead=ahead,
                               progress=lambda k: done.append(time.perf_counter()))
""", after=r"""
stop.set()
if workers > 1:
    sampler.join()
child_kib, child_cpu = usage(resource.RUSAGE_CHILDREN)
""", result='"first_s": done[0] - t0 if done else None, "steady_s": done[-1] - done[0] if len(done) > 1 else None, '
            '"done": len(done), "read": report.read, "written": report.written, "skipped": len(report.skipped), '
            '"children_cpu_s": child_cpu, "children_maxrss_kib": child_kib, "workers_hwm_kib": sorted(hwm.values())')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=96, help="frames of the split (default 96; at least 40)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--distinct", type=int, default=6, help="distinct frame contents (default 6)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--workdir", help="keep the synthetic split here (reused when parameters match)")
    parser.add_argument("--json", help="write the result rows to this JSON file (for run_all.py)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    size = C.parse_size(args.size)
    if args.frames < 2 or args.repeat < 1:
        parser.error("--frames >= 2 and --repeat >= 1")
    if args.frames < 40:
        print(f"note: --frames {args.frames} < 40: the pool's start-up weighs more in the end-to-end figure")
    wall0 = time.perf_counter()
    info = C.print_machine()
    nproc = C.usable_cpus()

    with C.workdir(args.workdir, "cityscapes_io_bench_scale_") as wd:
        src = os.path.join(wd, f"scale_{args.frames}")
        out = os.path.join(wd, "scale_out")
        spent = C.make_split(src, args.frames, size, args.distinct, photos=True)
        files, nbytes = C.tree_size(src)
        print(f"data: {src}: {args.frames} frames of {size[0]}x{size[1]} with photos ({args.distinct} distinct), "
              f"{files} files, {nbytes / 2**20:.0f} MiB, " + (f"generated in {spent:.1f} s" if spent else "reused"))
        print(f"nproc: {nproc}")
        print()

        # 1: one single-threaded process; 2: two of them; 0: one process with its decode-ahead thread
        results: Dict[int, List[Dict]] = {1: [], 2: [], 0: []}

        def run(workers: int, keep: bool = True):
            def go():
                shutil.rmtree(out, ignore_errors=True)
                try:
                    r = C.run_child(_CHILD, src, out, str(workers))
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                if r["written"] != args.frames or r["skipped"]:
                    raise RuntimeError(f"workers={workers}: expected {args.frames} frames written, got {r}")
                if keep:
                    results[workers].append(r)
                return r
            return go

        print(f"## Runs: fresh subprocess each (launcher), 1 warm-up round + {args.repeat} rounds alternated; "
              f"output deleted after each run")
        t = time.perf_counter()
        run(1, False)(), run(2, False)(), run(0, False)()
        print(f"(warm-up round: {time.perf_counter() - t:.1f} s)")
        C.alternate([("w1", run(1)), ("w2", run(2)), ("w1+thread", run(0))], args.repeat)

        n = args.frames
        best = {w: min(r["seconds"] for r in rs) for w, rs in results.items()}
        steady = {w: max((n - 1) / r["steady_s"] for r in rs if r["steady_s"]) for w, rs in results.items()}
        first = {w: statistics.median(r["first_s"] for r in rs) for w, rs in results.items()}
        for w, rs in results.items():
            print(f"- {'workers=1 + decode-ahead thread' if w == 0 else f'workers={w}, single-threaded'}: " + ", ".join(f"{r['seconds']:.2f}" for r in rs) +
                  f" s; best {n / best[w]:.1f} frames/s ({1000 * best[w] / n:.1f} ms/frame); first frame done after "
                  f"{1000 * first[w]:.0f} ms (median); steady state (first to last frame done) {steady[w]:.1f} frames/s; "
                  f"CPU parent {statistics.median(r['cpu_s'] / r['seconds'] for r in rs):.2f} s/s"
                  + (f", workers {statistics.median(r['children_cpu_s'] / r['seconds'] for r in rs):.2f} s/s"
                     if w > 1 else ""))
        threaded = best[1] / best[0]
        speedup = best[1] / best[2]
        speedup_steady = steady[2] / steady[1]
        paired = [a["seconds"] / b["seconds"] for a, b in zip(results[1], results[2])]
        startup = first[2] - first[1]
        print(f"- speedup workers=2 / workers=1 (best/best): {speedup:.2f}x (per round: "
              + ", ".join(f"{x:.2f}" for x in paired) + f"); steady state: {speedup_steady:.2f}x; "
              f"pool start-up ≈ {1000 * startup:.0f} ms (first frame done, workers=2 minus workers=1)")
        print()

        r2 = results[2]
        parent = statistics.median(r["peak_kib"] for r in r2) / 1024
        parent1 = statistics.median(r["peak_kib"] for r in results[1]) / 1024
        kids = statistics.median(r["children_maxrss_kib"] for r in r2) / 1024
        hwms = [h for r in r2 for h in r["workers_hwm_kib"]]
        hwm_max = max(hwms) / 1024 if hwms else None
        nworkers = statistics.median(len(r["workers_hwm_kib"]) for r in r2)
        total = parent + (hwm_max or kids) * max(nworkers, 2)
        print(f"## Peak RSS (median of {args.repeat})")
        print(f"- workers=1: process {parent1:.1f} MiB")
        print(f"- workers=2: parent (RUSAGE_SELF) {parent:.1f} MiB; workers (RUSAGE_CHILDREN, largest child) "
              f"{kids:.1f} MiB; workers' own VmHWM sampled (each worker of each run): "
              + (", ".join(f"{h / 1024:.1f}" for h in hwms) + " MiB" if hwms else "n/a")
              + f"; all together at most ≈ {total:.1f} MiB (parent + {int(max(nworkers, 2))} × worker)")
        print()

    rows = [
        (f"VOC save_media, workers=1 single-threaded, {n} frames {size[0]}x{size[1]}", f"{n / best[1]:.1f} frames/s",
         "", ""),
        ("VOC save_media, workers=2 (single-threaded each)", f"{n / best[2]:.1f} frames/s", "", ""),
        ("VOC save_media, workers=1 with its decode-ahead thread (the default)", f"{n / best[0]:.1f} frames/s "
         f"({threaded:.2f}× single-threaded)", "", ""),
        (f"speedup from the 2nd worker (nproc {nproc})", f"{speedup:.2f}×", f"≥ {SPEEDUP_TARGET}×",
         C.verdict(speedup >= SPEEDUP_TARGET)),
        ("speedup, steady state (pool start-up excluded)", f"{speedup_steady:.2f}×", "", ""),
        ("workers=2 pool start-up", f"{1000 * startup:.0f} ms", "", ""),
        ("workers=2 peak RSS, parent (ru_maxrss self)", f"{parent:.1f} MiB", "", ""),
        ("workers=2 peak RSS, per worker (ru_maxrss children)",
         f"{kids:.1f} MiB" + (f" (VmHWM {hwm_max:.1f})" if hwm_max else ""), "", ""),
    ]
    print("## Results")
    print(f"(time: best of {args.repeat} alternated rounds, inside the subprocess around convert(); RSS: median; "
          f"whole run {time.perf_counter() - wall0:.0f} s; load average at end {C.load_average()})")
    print()
    print(C.markdown_table(("metric", "value", "target", "result"), rows))
    C.write_json(args.json, {"bench": "scale", "rows": rows, "machine": info})
    return 1 if args.check and any(r[3] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
