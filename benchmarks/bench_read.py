#!/usr/bin/env python
"""Read benchmark of ``cityscapes_io`` against a bare PNG decode, on synthetic 2048x1024 frames.

Measured side by side in one run, on two synthetic splits written to a temporary folder
(ground truth only, ``photos=False``; ``distinct`` frame contents whose bytes are copied for
the other frames, so generation takes seconds):

1. frames/s of ``open()`` + iterate + ``frame.instances()`` over the small split;
2. frames/s of ``glob`` + ``imageio.v3.imread(path)`` of the very same instanceIds PNG files;
3. their ratio (time of ours / time of the bare decode; target <= 1/3 since issue 20: the fast
   PNG path makes iterating with ``instances()`` at least 3 times as fast as a bare decode);
4. time to first frame (``open()`` + ``next(iter(ds))`` + its ``instances()``) for the small
   and the large split, each in a fresh subprocess (target: independent of split size);
5. peak RSS (``ru_maxrss``) of a fresh subprocess that iterates a whole split calling
   ``instances()`` and building one full-frame mask per frame, for both splits, and the growth
   per frame between them (target < 64 KiB per frame).

Every figure is measured in fresh interpreters, ours and the bare decode (or the small and the
large split) alternately: ours first on even repeats, second on odd ones, so that both see the
same page cache and the same load of the shared machine. A throughput process makes one untimed
warm-up pass and then times two passes. Fresh processes matter here: a 2048x1024 decode takes
~7 ms longer when the C allocator has to fault in fresh pages for its buffers than when it
reuses memory, and which happens depends on the process's history (the minor page faults per
frame are printed to show which regime was measured). Times: best of the repeats; RSS: median.
A diagnostic section splits the time of ``instances()`` into its steps (``--no-breakdown``
skips it). The run ends with a markdown table (metric, value, target, result).

Usage::

    python benchmarks/bench_read.py [--frames-small 50] [--frames-large 500] [--size 2048x1024]
                                    [--workdir DIR] [--repeat 3] [--distinct 20]
                                    [--no-breakdown] [--check]

``--workdir`` keeps the generated data and reuses it on the next run with the same parameters;
``--check`` exits with status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import time
from typing import Dict, List, Tuple

import numpy as np

import cityscapes_io

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

# Targets of the README.
RATIO_TARGET = 0.33             # time of ours / time of the bare decode (issue 20: >= 3x; was 1.3)
RSS_GROWTH_TARGET_KIB = 64.0    # per frame, between the small and the large split
TTFF_RATIO_TARGET = 1.5         # "independent of split size": TTFF(large) / TTFF(small)

PASSES_PER_PROCESS = 2          # timed passes in each throughput subprocess (after a warm-up)

# --------------------------------------------------------------------------------------------
# Child processes (fresh interpreters: nothing cached in-process, OS page cache is shared).
# --------------------------------------------------------------------------------------------
_CHILD_TTFF = r"""
import json, sys, time
t0 = time.perf_counter()
import cityscapes_io
cityscapes_io.open, cityscapes_io.Frame  # (the package imports its public names on first use)
t1 = time.perf_counter()
ds = cityscapes_io.open(sys.argv[1])
frame = next(iter(ds))
insts = frame.instances()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "ttff_s": t2 - t1, "frame": frame.id, "instances": len(insts)}))
"""

# Peak RSS: run through the launcher of _common (C.run_child), so that ru_maxrss is this
# child's own, not this benchmark's (see _common).
_CHILD_RSS = C.timed_child(setup=r"""
import cityscapes_io
""", timed=r"""
ds = cityscapes_io.open(sys.argv[1])
frames = instances = 0
for frame in ds:
    insts = frame.instances()
    inst = insts[len(insts) // 2]
    mask = inst.mask                      # one full-frame mask per frame, built and dropped
    if int(mask.sum()) != inst.area:
        raise SystemExit(f"{frame.id}: mask of {inst.value} has {int(mask.sum())} px, area says {inst.area}")
    frames += 1
    instances += len(insts)
""", result='"frames": frames, "instances": instances')

# Throughput and the breakdown also run in fresh interpreters (C.run_func): the time of a
# 2048x1024 decode depends on whether the C allocator hands back memory it kept or fresh pages
# that must be faulted in (several ms per frame), and that depends on what the process did
# before (writing the data in this process would make both loops look ~1.5x faster than in a
# user's process).


def run_func(func: str, *args: object) -> Dict:
    """Run ``func(*args)`` of this module in a fresh interpreter; returns its JSON result."""
    return C.run_func("bench_read", func, *args, via_launcher=False)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def instance_files(root: str) -> List[str]:
    return sorted(glob.glob(os.path.join(root, "gtFine", "*", "*", "*_gtFine_instanceIds.png")))


# --------------------------------------------------------------------------------------------
# Timed passes
# --------------------------------------------------------------------------------------------
def pass_ours(root: str) -> Tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for frame in cityscapes_io.open(root):
        frame.instances()
        n += 1
    return time.perf_counter() - start, n


def pass_bare(root: str) -> Tuple[float, int]:
    import imageio.v3 as iio

    start = time.perf_counter()
    n = 0
    for path in instance_files(root):
        iio.imread(path)
        n += 1
    return time.perf_counter() - start, n


def child_passes(kind: str, root: str, passes: str) -> Dict:
    """Child entry point: one untimed warm-up pass, then ``passes`` timed passes of ``kind``
    (with the minor page faults of each)."""
    fn = {"ours": pass_ours, "bare": pass_bare}[kind]
    fn(root)
    out: Dict[str, list] = {"times": [], "frames": [], "faults": []}
    for _ in range(int(passes)):
        f0 = _minflt()
        t, n = fn(root)
        out["faults"].append((_minflt() - f0) / n)
        out["times"].append(t)
        out["frames"].append(n)
    return out


def _minflt() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def breakdown(root: str, repeat) -> Dict[str, Tuple[float, float]]:
    """Diagnostic: ``{step: (ms per frame, minor page faults per frame)}`` of the steps of
    ``Frame.instances()``, each the best of ``repeat`` passes after a warm-up pass.

    The loops drop every reference at the end of each frame, as ``for frame in ds:
    frame.instances()`` does: whether a decode reuses memory or faults in fresh pages depends
    on what is still alive when it allocates (see the page-fault counts)."""
    import imageio.v3 as iio
    from PIL import Image
    import io

    from cityscapes_io import png
    from cityscapes_io.instances import segment_stats

    repeat = int(repeat)
    steps = ("read bytes (fs.cat_file)", "png.decode_gray", "segment_stats",
             "instances() given the decoded array (segment_stats again + Instance objects)")
    best = {k: float("inf") for k in steps}
    faults = float("inf")
    for _ in range(repeat + 1):  # the first pass is a warm-up
        t = dict.fromkeys(steps, 0.0)
        n, f0 = 0, _minflt()
        for frame in cityscapes_io.open(root):
            t0 = time.perf_counter()
            data = frame.read_bytes("instanceIds")
            t1 = time.perf_counter()
            arr = png.decode_gray(data, frame.path("instanceIds"))
            t2 = time.perf_counter()
            segment_stats(arr)
            t3 = time.perf_counter()
            frame._cache["instanceIds"] = arr  # so that instances() does not decode again
            frame.instances()
            t4 = time.perf_counter()
            for k, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k] += dt
            n += 1
            del data, arr
            frame.release()
        faults = min(faults, (_minflt() - f0) / n)
        for k, v in t.items():
            best[k] = min(best[k], 1000 * v / n)

    # What png.decode_gray costs beyond Pillow's own decode (np.asarray(img) copies the image
    # through img.tobytes(); imageio opens a request and its plugin per file), and a decode that
    # skips that copy.
    paths = instance_files(root)
    data0 = open(paths[0], "rb").read()
    direct0 = _decode_into_numpy(data0)
    direct_ok = direct0 is not None and np.array_equal(direct0, png.decode_gray(data0, paths[0]))
    del data0, direct0

    def pillow_load(data):
        Image.open(io.BytesIO(data)).load()

    def imageio_open(data):
        iio.imopen(data, "r", plugin="pillow").close()

    def timed(decode) -> Tuple[float, float]:
        b_t = b_f = float("inf")
        for _ in range(repeat + 1):
            t_sum, f0 = 0.0, _minflt()
            for path in paths:
                with open(path, "rb") as fh:
                    data = fh.read()
                t0 = time.perf_counter()
                decode(data)
                t_sum += time.perf_counter() - t0
                del data
            b_t, b_f = min(b_t, 1000 * t_sum / len(paths)), min(b_f, (_minflt() - f0) / len(paths))
        return b_t, b_f

    out: Dict[str, Tuple[float, float]] = {}
    for k in steps:
        out[k] = (best[k], faults if k == "png.decode_gray" else float("nan"))
        if k == "png.decode_gray":
            out["  of which Pillow Image.open + load() alone (the rest is np.asarray(img) and imageio's open)"] = (
                timed(pillow_load))
            out["  of which imageio's own per-file cost: imopen(plugin='pillow') + close, nothing decoded"] = (
                timed(imageio_open))
            if direct_ok:
                out["  alternative, not in the library: Pillow decoding straight into a numpy array"] = (
                    timed(_decode_into_numpy))
    return out


def _decode_into_numpy(data: bytes):
    """Diagnostic prototype: let Pillow's PNG decoder write into a numpy array's memory (an
    image mapped onto it with Image.frombuffer), saving the tobytes() copy of np.asarray(img).
    Relies on ImageFile.load() keeping an ``im`` of the right mode and size; returns None when
    that does not hold (other Pillow versions)."""
    from PIL import Image
    import io

    img = Image.open(io.BytesIO(data))
    if img.mode != "I;16":
        return None
    w, h = img.size
    out = np.empty((h, w), dtype="<u2")
    target = Image.frombuffer("I;16", (w, h), out, "raw", "I;16", 0, 1)
    try:
        img.im = target.im
        img.load()
    except Exception:
        return None
    return out if img.im is target.im else None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def fmt_ms(s: float) -> str:
    return f"{1000 * s:.1f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-small", type=int, default=50, help="frames of the small split (default 50)")
    parser.add_argument("--frames-large", type=int, default=500, help="frames of the large split (default 500)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--workdir", help="where to write the synthetic data (kept, and reused when the "
                                          "parameters match); default: a temporary folder, removed at the end")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats of every measurement (default 3)")
    parser.add_argument("--distinct", type=int, default=20,
                        help="distinct frame contents per split, copied for the other frames (default 20)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-step diagnostic of instances()")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is not met")
    args = parser.parse_args(argv)
    if args.frames_large <= args.frames_small:
        parser.error("--frames-large must be larger than --frames-small")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    size = C.parse_size(args.size, parser)

    info = C.print_machine()

    with C.workdir(args.workdir, "cityscapes_io_bench_") as workdir:
        small = os.path.join(workdir, f"small_{args.frames_small}")
        large = os.path.join(workdir, f"large_{args.frames_large}")
        # -- data ------------------------------------------------------------------------------
        for root, n in ((small, args.frames_small), (large, args.frames_large)):
            spent = C.make_split(root, n, size, args.distinct, photos=False)
            note = f"generated in {spent:.1f} s" if spent else "reused"
            files = instance_files(root)
            mib = sum(os.path.getsize(p) for p in files) / 2**20
            print(f"data: {root}: {n} frames of {size[0]}x{size[1]} ({args.distinct} distinct), "
                  f"instanceIds {mib:.1f} MiB in all, {note}")
        files = instance_files(small)
        assert len(files) == args.frames_small, (len(files), args.frames_small)

        # Sanity: both read the same pixels, and ours finds every distinct value of the frame.
        import imageio.v3 as iio

        first = next(iter(cityscapes_io.open(small)))
        bare = iio.imread(first.path("instanceIds"))
        assert np.array_equal(first.instance_ids(), bare), "ours and imageio decode different pixels"
        assert [i.value for i in first.instances()] == np.unique(bare).tolist()
        assert sum(i.area for i in first.instances()) == bare.size
        print(f"check: {first.id}: {len(first.instances())} segments, same pixels as imageio ({bare.dtype})")
        print()

        # -- 1-3: throughput, alternated -------------------------------------------------------
        print(f"## Throughput over the small split ({args.frames_small} frames): {args.repeat} fresh "
              f"subprocesses each, alternated; each makes an untimed warm-up pass, then "
              f"{PASSES_PER_PROCESS} timed passes and keeps the faster")
        res = C.alternate([("ours", lambda: run_func("child_passes", "ours", small, PASSES_PER_PROCESS)),
                           ("bare", lambda: run_func("child_passes", "bare", small, PASSES_PER_PROCESS))],
                          args.repeat)
        # One figure per process: its faster timed pass.
        t_ours = [min(r["times"]) for r in res["ours"]]
        t_bare = [min(r["times"]) for r in res["bare"]]
        flt = {k: statistics.median(f for r in v for f in r["faults"]) for k, v in res.items()}
        res = {k: [(t, n) for r in v for t, n in zip(r["times"], r["frames"])] for k, v in res.items()}
        assert all(n == args.frames_small for _, n in res["ours"] + res["bare"])
        n = args.frames_small
        for name, ts in (("ours (open + iterate + instances())", t_ours), ("bare (glob + imageio.v3.imread)", t_bare)):
            print(f"- {name}: per process " + ", ".join(f"{t:.3f}" for t in ts) +
                  f" s; best {n / min(ts):.1f} frames/s ({1000 * min(ts) / n:.2f} ms/frame), median "
                  f"{n / statistics.median(ts):.1f} frames/s; {flt[name.split()[0]]:.0f} minor page faults/frame")
        ratio_best = min(t_ours) / min(t_bare)
        ratios_paired = [a / b for a, b in zip(t_ours, t_bare)]
        print(f"- ratio ours/bare: best/best {ratio_best:.3f}; per repeat " +
              ", ".join(f"{r:.3f}" for r in ratios_paired) +
              f" (median {statistics.median(ratios_paired):.3f})")
        print("- statistic used in the table: best (minimum) over the processes of their faster pass; "
              "ratio = best ours / best bare")
        print()

        if not args.no_breakdown:
            print(f"## Diagnostic: ms per frame of each step of instances() (fresh subprocess, best of "
                  f"{args.repeat} after a warm-up)")
            bd = run_func("breakdown", small, args.repeat)
            for k, (ms, faults) in bd.items():
                line = f"{k.strip()}: {ms:.2f} ms" + ("" if faults != faults else f" ({faults:.0f} minor page faults/frame in this loop)")
                print(f"  - {line}" if k.startswith("  ") else f"- {line}")
            print(f"- bare imageio.v3.imread: {1000 * min(t_bare) / n:.2f} ms (from the passes above)")
            print()

        # -- 4: time to first frame, fresh subprocesses, alternated ----------------------------
        print(f"## Time to first frame: open() + next(iter(ds)) + instances(), fresh subprocess, "
              f"{args.repeat} alternated runs each")

        def ttff_run(root: str) -> Dict:
            return C.run_child(_CHILD_TTFF, root, via_launcher=False)

        ttff_run(small), ttff_run(large)  # warm-up (page cache, .pyc)
        res = C.alternate([("small", lambda: ttff_run(small)), ("large", lambda: ttff_run(large))], args.repeat)
        ttff = {}
        for key, frames_ in (("small", args.frames_small), ("large", args.frames_large)):
            ts = [r["ttff_s"] for r in res[key]]
            imp = [r["import_s"] for r in res[key]]
            ttff[key] = min(ts)
            print(f"- {frames_} frames: " + ", ".join(fmt_ms(t) for t in ts) +
                  f"; best {fmt_ms(min(ts))}, median {fmt_ms(statistics.median(ts))} "
                  f"(import cityscapes_io, not counted: best {fmt_ms(min(imp))})")
        ttff_ratio = ttff["large"] / ttff["small"]
        print(f"- TTFF({args.frames_large}) / TTFF({args.frames_small}) = {ttff_ratio:.3f}")
        print("- statistic used in the table: best (minimum) of the runs")
        print()

        # -- 5: peak RSS, fresh subprocesses, alternated ---------------------------------------
        print(f"## Peak RSS (ru_maxrss) of a fresh subprocess (forked by a small launcher) iterating the whole split, instances() and "
              f"one full-frame mask per frame, {args.repeat} alternated runs each")
        res = C.alternate([("small", lambda: C.run_child(_CHILD_RSS, small)),
                           ("large", lambda: C.run_child(_CHILD_RSS, large))], args.repeat)
        rss = {}
        for key, frames_ in (("small", args.frames_small), ("large", args.frames_large)):
            assert all(r["frames"] == frames_ for r in res[key]), res[key]
            peaks = [r["peak_kib"] for r in res[key]]
            rss[key] = statistics.median(peaks)
            print(f"- {frames_} frames: peaks " + ", ".join(f"{p / 1024:.1f}" for p in peaks) +
                  f" MiB; median {rss[key] / 1024:.1f} MiB (after imports: "
                  f"{statistics.median(r['baseline_kib'] for r in res[key]) / 1024:.1f} MiB"
                  + (f"; VmHWM {statistics.median(r['hwm_kib'] for r in res[key]) / 1024:.1f} MiB"
                     if all(r["hwm_kib"] for r in res[key]) else "") + ")")
        growth = (rss["large"] - rss["small"]) / (args.frames_large - args.frames_small)
        print(f"- growth per frame: ({rss['large']:.0f} - {rss['small']:.0f}) KiB / "
              f"{args.frames_large - args.frames_small} = {growth:.2f} KiB")
        print("- statistic used in the table: median of the runs")
        print()

        # -- table -------------------------------------------------------------------------------
        ns, nl = args.frames_small, args.frames_large
        rows = [
            (f"iterate + instances(), {ns} frames {size[0]}x{size[1]}", f"{n / min(t_ours):.1f} frames/s", "", ""),
            ("bare imageio.v3.imread of the same files", f"{n / min(t_bare):.1f} frames/s", "", ""),
            ("time ours / time bare decode", f"{ratio_best:.2f}", f"≤ {RATIO_TARGET}", C.verdict(ratio_best <= RATIO_TARGET)),
            (f"time to first frame, {ns}-frame split", fmt_ms(ttff["small"]), "", ""),
            (f"time to first frame, {nl}-frame split", fmt_ms(ttff["large"]),
             f"≤ {TTFF_RATIO_TARGET}× the {ns}-frame one ({ttff_ratio:.2f}×)", C.verdict(ttff_ratio <= TTFF_RATIO_TARGET)),
            (f"peak RSS, {ns} frames", f"{rss['small'] / 1024:.1f} MiB", "", ""),
            (f"peak RSS, {nl} frames", f"{rss['large'] / 1024:.1f} MiB", "", ""),
            ("RSS growth per frame", f"{growth:.1f} KiB", f"< {RSS_GROWTH_TARGET_KIB:.0f} KiB",
             C.verdict(growth < RSS_GROWTH_TARGET_KIB)),
        ]
        print("## Results")
        print(f"(times: best of {args.repeat} alternated runs; RSS: median of {args.repeat}; "
              f"python {platform.python_version()}, numpy {np.__version__}, "
              f"Pillow {info['Pillow']}, {os.cpu_count()} CPUs)")
        print()
        print(C.markdown_table(("metric", "value", "target", "result"), rows))
        failed = [r[0] for r in rows if r[3] == "FAIL"]
        return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
