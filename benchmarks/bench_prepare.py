#!/usr/bin/env python
"""Preparation benchmark: ``prepare()`` against the official ``csCreateTrainIdLabelImgs`` /
``csCreateTrainIdInstanceImgs`` (cityscapesScripts 2.3.0), side by side in one run.

On a synthetic split (``--frames`` frames of 2048x1024 without photos, ``--distinct`` frame
contents whose bytes are copied for the others; the generator writes the ``_polygons.json``
beside the PNGs), each of these runs in a fresh subprocess, one untimed warm-up round, then
``--repeat`` rounds in an order reversed every other round:

- the official script, in the official environment (``--official-python``, default
  ``$CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON``; without it the official rows are left out with a
  note), on a copy of the tree (``CITYSCAPES_DATASET``); its outputs are deleted before each run
  so that every file is written afresh;
- ``cityscapes_io.prepare(src, kinds=(KIND,), source=S, dst=OUT, workers=W)`` for ``S`` in
  ``png`` / ``polygons`` and ``W`` in 1, 2 (default ``decode_ahead``), ``OUT`` deleted before each
  run, so nothing is skipped as existing.

Both are timed inside the child, around the official ``main()`` and around ``prepare()``
(interpreter start and imports excluded; the worker pool's start-up included). Reported, per
kind (``labelTrainIds``, ``instanceTrainIds``): ms/frame (best of the rounds), the official time
divided by ours (> 1: ours is faster), the steady-state rate of ``workers=2`` against
``workers=1`` (first to last frame done, the pool's start-up left out), CPU seconds per second,
and peak RSS (``ru_maxrss`` of the process; of the largest worker for ``workers=2``).

``--profile KIND:SOURCE`` also prints a cProfile of ``prepare(..., workers=1,
decode_ahead=False)`` on the same tree (top functions by own time and by cumulative time).

Usage::

    python benchmarks/bench_prepare.py [--frames 40] [--size 2048x1024] [--distinct 4] [--repeat 3]
                                       [--official-python PATH] [--workdir DIR] [--json PATH]
                                       [--profile labelTrainIds:polygons] [--check]
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

KINDS = ("labelTrainIds", "instanceTrainIds")
OFFICIAL_SCRIPT = {"labelTrainIds": "createTrainIdLabelImgs", "instanceTrainIds": "createTrainIdInstanceImgs"}
#: ours (single process) at least as fast as the official script: official time / ours >= 1
MATCH_TARGET = 1.0

_OURS = C.timed_child(setup=r"""
src, dst, kind, source, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
import cityscapes_io
done = []
""", timed=r"""
report = cityscapes_io.prepare(src, kinds=(kind,), source=source, dst=dst, workers=workers,
                               progress=lambda k: done.append(time.perf_counter()))
""", after=r"""
child_kib, child_cpu = usage(resource.RUSAGE_CHILDREN)
""", result='"first_s": done[0] - t0 if done else None, "steady_s": done[-1] - done[0] if len(done) > 1 else None, "written": report.written, '
            '"resumed": getattr(report, "resumed", 0), "skipped": len(report.skipped), '
            '"children_cpu_s": child_cpu, "children_maxrss_kib": child_kib')

# The official script's main() (it globs $CITYSCAPES_DATASET/gt*/*/*/*_polygons.json and writes
# next to each file); its progress line has no newline, hence the print() before the JSON line.
_OFFICIAL = C.timed_child(setup=r"""
import importlib
main = importlib.import_module("cityscapesscripts.preparation." + sys.argv[1]).main
""", timed="main()", after="print()")

_PROFILE = r"""
import cProfile, pstats, sys
import cityscapes_io
src, dst, kind, source = sys.argv[1:5]
prof = cProfile.Profile()
prof.enable()
cityscapes_io.prepare(src, kinds=(kind,), source=source, dst=dst, workers=1, decode_ahead=False)
prof.disable()
stats = pstats.Stats(prof)
stats.sort_stats("tottime").print_stats(14)
stats.sort_stats("cumulative").print_stats(18)
"""


def busy_jiffies() -> Optional[Tuple[int, int]]:
    """(busy, total) CPU jiffies of the whole machine from /proc/stat (Linux), None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy(fn):
    """Run ``fn()`` (which returns a result dict) and add ``machine_cpu``: the CPUs the whole
    machine kept busy meanwhile (ours and anybody else's), to tell a loaded machine."""
    a, t0 = busy_jiffies(), time.perf_counter()
    r = fn()
    b, t1 = busy_jiffies(), time.perf_counter()
    if a and b:
        r["machine_cpu"] = (b[0] - a[0]) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
        r["wall_s"] = t1 - t0
    return r


def official_version(python: str) -> Optional[str]:
    code = ("import importlib.metadata as m, PIL, numpy; "
            "print(m.version('cityscapesScripts'), PIL.__version__, numpy.__version__)")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40, help="frames of the split (default 40)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct frame contents (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--official-python", default=os.environ.get("CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON"),
                        help="python of an environment with cityscapesscripts==2.3.0 (numpy < 2, Pillow < 11.3); "
                             "default $CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON")
    parser.add_argument("--workdir", help="keep the synthetic split here (reused when parameters match)")
    parser.add_argument("--json", help="write the result rows to this JSON file")
    parser.add_argument("--profile", metavar="KIND:SOURCE", action="append", default=[],
                        help="also print a cProfile of prepare() workers=1 for this kind and source")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    size = C.parse_size(args.size, parser)
    if args.frames < 2 or args.repeat < 1:
        parser.error("--frames >= 2 and --repeat >= 1")
    for spec in args.profile:
        kind, _, source = spec.partition(":")
        if kind not in KINDS or source not in ("png", "polygons"):
            parser.error(f"--profile {spec!r}: expected KIND:SOURCE, KIND in {', '.join(KINDS)}, SOURCE png or polygons")
    wall0 = time.perf_counter()
    info = C.machine()
    official = args.official_python
    version = official_version(official) if official else None
    note = None
    if not official:
        note = ("official rows left out: no official environment (give --official-python or set "
                "CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON; make it with `python3 -m venv /tmp/csvenv && "
                "/tmp/csvenv/bin/pip install cityscapesscripts==2.3.0 numpy==1.26.4 'pillow<11.3'`)")
    elif version is None:
        note = f"official rows left out: {official} cannot import cityscapesscripts"
    else:
        info["official (cityscapesScripts, Pillow, numpy)"] = version
    C.print_machine(info)
    nproc = C.usable_cpus()
    n = args.frames

    with C.workdir(args.workdir, "cityscapes_io_bench_prepare_") as wd:
        src = os.path.join(wd, f"prepare_{n}")
        spent = C.make_split(src, n, size, args.distinct, photos=False)
        files, nbytes = C.tree_size(src)
        polygons = len(glob.glob(os.path.join(src, "gtFine", "*", "*", "*_polygons.json")))
        print(f"data: {src}: {n} frames of {size[0]}x{size[1]} without photos ({args.distinct} distinct), "
              f"{files} files, {nbytes / 2**20:.0f} MiB, {polygons} polygons files, "
              + (f"generated in {spent:.1f} s" if spent else "reused"))
        print(f"nproc: {nproc}")
        sources = ["png"] + (["polygons"] if polygons == n else [])
        if polygons != n:
            print(f"note: {polygons} of {n} frames have a polygons file: source='polygons' left out")
        out = os.path.join(wd, "prepare_out")
        copy = os.path.join(wd, "official_tree")
        use_official = note is None
        if use_official:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(src, copy)
        if note:
            print(f"note: {note}")
        print()

        results: Dict[Tuple[str, str], List[Dict]] = {}

        def ours(kind: str, source: str, workers: int, keep: bool = True):
            def go():
                shutil.rmtree(out, ignore_errors=True)
                try:
                    r = machine_busy(lambda: C.run_child(_OURS, src, out, kind, source, str(workers)))
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                if r["written"] != n or r["skipped"] or r["resumed"]:
                    raise RuntimeError(f"{kind} {source} workers={workers}: expected {n} frames written, got {r}")
                if keep:
                    results.setdefault((kind, f"{source} w{workers}"), []).append(r)
                return r
            return go

        def theirs(kind: str, keep: bool = True):
            def go():
                for old in glob.glob(os.path.join(copy, "gt*", "*", "*", f"*_{kind}.png")):
                    os.remove(old)
                r = machine_busy(lambda: C.run_child(_OFFICIAL, OFFICIAL_SCRIPT[kind], python=official,
                                                     env={**os.environ, "CITYSCAPES_DATASET": copy}))
                made = len(glob.glob(os.path.join(copy, "gt*", "*", "*", f"*_{kind}.png")))
                if made != n:
                    raise RuntimeError(f"official {OFFICIAL_SCRIPT[kind]}: expected {n} files, found {made}")
                if keep:
                    results.setdefault((kind, "official"), []).append(r)
                return r
            return go

        configs = [(f"{s} w{w}", s, w) for s in sources for w in (1, 2)]
        print(f"## Runs: fresh subprocess each (launcher), 1 warm-up round + {args.repeat} rounds alternated; "
              f"our output deleted before each run, the official outputs deleted before each of its runs")
        for kind in KINDS:
            runs = ([("official", theirs(kind))] if use_official else []) + \
                   [(name, ours(kind, s, w)) for name, s, w in configs]
            t = time.perf_counter()
            for _, fn in ([("official", theirs(kind, False))] if use_official else []) + \
                         [(name, ours(kind, s, w, False)) for name, s, w in configs]:
                fn()
            print(f"({kind}: warm-up round {time.perf_counter() - t:.1f} s)")
            C.alternate(runs, args.repeat)

        rows = []
        best = {key: min(r["seconds"] for r in rs) for key, rs in results.items()}
        print()
        for (kind, name), rs in results.items():
            cpu = statistics.median(r["cpu_s"] / r["seconds"] for r in rs)
            kids = statistics.median(r.get("children_cpu_s", 0) / r["seconds"] for r in rs)
            print(f"- {kind} {name}: " + ", ".join(f"{r['seconds']:.2f}" for r in rs)
                  + f" s; best {1000 * best[kind, name] / n:.1f} ms/frame; CPU {cpu:.2f} s/s"
                  + (f" (+ workers {kids:.2f} s/s)" if name.endswith("w2") else "")
                  + (f"; first frame done after {1000 * statistics.median(r['first_s'] for r in rs):.0f} ms"
                     if rs[0].get("first_s") is not None else "")
                  + (f"; whole machine busy {statistics.median(r['machine_cpu'] for r in rs):.2f} CPUs during the "
                     f"subprocess (interpreter start included)" if "machine_cpu" in rs[0] else ""))
        print()
        failed = False
        for kind in KINDS:
            ref = best.get((kind, "official"))
            peak = {}
            for (k, name), rs in results.items():
                if k != kind:
                    continue
                own = statistics.median(r["peak_kib"] for r in rs) / 1024
                kids = statistics.median(r.get("children_maxrss_kib", 0) for r in rs) / 1024
                peak[name] = f"{own:.0f} MiB" + (f" + {kids:.0f} MiB per worker" if name.endswith("w2") else "")
            if ref is not None:
                rows.append((f"{kind}: official {OFFICIAL_SCRIPT[kind]}, {n} frames {size[0]}x{size[1]}",
                             f"{1000 * ref / n:.1f} ms/frame, {peak['official']}", "", ""))
            for name, source, workers in configs:
                t = best[kind, name]
                value = f"{1000 * t / n:.1f} ms/frame, {peak[name]}"
                target = result = ""
                if ref is not None:
                    ratio = ref / t
                    value += f", {ratio:.2f}× official speed"
                    if workers == 1:
                        target, result = f"≥ {MATCH_TARGET:.1f}×", C.verdict(ratio >= MATCH_TARGET)
                        failed |= ratio < MATCH_TARGET
                rows.append((f"{kind}: ours source={source} workers={workers}", value, target, result))
            for source in sources:
                one, two = results[kind, f"{source} w1"], results[kind, f"{source} w2"]
                end = best[kind, f"{source} w1"] / best[kind, f"{source} w2"]
                steady = max((n - 1) / r["steady_s"] for r in two) / max((n - 1) / r["steady_s"] for r in one)
                rows.append((f"{kind}: {source} speedup workers=2 / workers=1 (nproc {nproc})",
                             f"{end:.2f}× end to end, {steady:.2f}× steady state (pool start-up excluded)", "", ""))

        for spec in args.profile:
            kind, _, source = spec.partition(":")
            shutil.rmtree(out, ignore_errors=True)
            print(f"## cProfile: prepare(kinds=({kind!r},), source={source!r}, workers=1, decode_ahead=False)")
            proc = subprocess.run([sys.executable, "-c", _PROFILE, src, out, kind, source], capture_output=True,
                                  text=True)
            shutil.rmtree(out, ignore_errors=True)
            print(proc.stdout if proc.returncode == 0 else proc.stderr[-3000:])

    print("## Results")
    print(f"(time: best of {args.repeat} alternated rounds, inside the subprocess around prepare() / the official "
          f"main(); RSS: median ru_maxrss; whole run {time.perf_counter() - wall0:.0f} s; load average at end "
          f"{C.load_average()})")
    if note:
        print(f"note: {note}")
    print()
    print(C.markdown_table(("metric", "value", "target", "result"), rows))
    C.write_json(args.json, {"bench": "prepare", "rows": rows, "machine": info, "note": note})
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
