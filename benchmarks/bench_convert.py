#!/usr/bin/env python
"""Conversion benchmark of ``cityscapes_io.convert()`` on synthetic 2048x1024 frames with photos.

Measured in one run, on two synthetic Cityscapes splits written once to a temporary folder
(``photos=True``; ``--distinct`` frame contents whose encoded bytes are copied for the other
frames, so generation takes seconds, not minutes):

1. for each target format (``--formats``, default voc, camvid, cityscapes) and ``save_media``
   False / True: frames/s and ms/frame of ``cityscapes_io.convert()`` over the ``--frames``
   split, on one process. Every conversion runs in a fresh subprocess, which times the
   ``convert()`` call itself (``time.perf_counter()`` around it; interpreter start and imports
   are not counted) and reports its own peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``);
2. the ratio of that throughput to a *reference figure*: Datumaro 1.13's 0.3 s/frame for the
   same conversion, as quoted in the project's targets (``0.3 / seconds per frame``; target
   >= 4x). Datumaro is not installed here: this is not a side-by-side run of Datumaro;
3. a bare baseline measured side by side, in the same kind of fresh subprocess: glob +
   ``imageio.v3.imread`` of every instanceIds PNG of the split (a lower bound of the work of a
   conversion without photos), and the same plus a byte copy of every photo to an output
   folder (a lower bound of the work of a conversion with ``save_media=True``);
4. peak RSS of Cityscapes -> VOC with ``save_media=True`` over the ``--frames`` and the
   ``--frames-large`` splits, and their difference (target: equal within 10%).

All runs (every cell of the table, the baselines and the large-split run) are repeated
``--repeat`` times after one untimed warm-up round, in an order reversed from one round to the
next, so that all see the same page cache and the same load of the shared machine. Every output
folder is deleted after its run (not timed). The statistics used are printed with the results:
times are the best (minimum) of the rounds, RSS the median.

On Linux a process inherits, in ``ru_maxrss``, the peak RSS of the process that forked it (the
kernel carries the old address space's high-water mark over fork and exec). The measured
children are therefore spawned by a small launcher interpreter (``python -S``, a few MiB), so
what they inherit is bounded by the launcher's own peak, not by this script's. ``VmHWM`` of
``/proc/self/status`` (peak RSS of the child's own address space only) is printed as a
cross-check.

Usage::

    python benchmarks/bench_convert.py [--frames 50] [--frames-large 200] [--size 2048x1024]
                                       [--workdir DIR] [--formats voc,camvid,cityscapes]
                                       [--repeat 3] [--distinct 6] [--profile]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cityscapes_io

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

FORMATS = ("voc", "camvid", "cityscapes")
REFERENCE_S_PER_FRAME = 0.3     # Datumaro 1.13, Cityscapes -> VOC (reference figure, not run here)
SPEEDUP_TARGET = 4.0            # x the reference throughput
RSS_TOLERANCE = 0.10            # peak RSS at --frames-large within 10% of the one at --frames

# --------------------------------------------------------------------------------------------
# Child processes, run through the launcher of _common (C.run_child). Each prints one JSON line.
# Peak RSS: ru_maxrss (KiB on Linux) and VmHWM.
# --------------------------------------------------------------------------------------------
_CHILD_CONVERT = C.timed_child(setup=r"""
src, dst, fmt, save_media = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
import cityscapes_io
""", timed=r"""
report = cityscapes_io.convert(src, dst, format=fmt, save_media=save_media)
""", result='"report_seconds": report.seconds, "read": report.read, "written": report.written, '
            '"skipped": len(report.skipped)')

# Bare lower bound: list the split, decode every instanceIds PNG with imageio, and (when asked)
# copy the photo's bytes to an output folder. No label handling, no encoding at all.
_CHILD_BARE = C.timed_child(setup=r"""
src, dst, copy_photos = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
import glob, shutil
import imageio.v3 as iio
""", timed=r"""
paths = sorted(glob.glob(os.path.join(src, "gtFine", "*", "*", "*_gtFine_instanceIds.png")))
pixels = 0
for path in paths:
    pixels += iio.imread(path).size
    if copy_photos:
        rel = os.path.relpath(path, os.path.join(src, "gtFine"))
        photo = rel.replace("_gtFine_instanceIds.png", "_leftImg8bit.png")
        out = os.path.join(dst, photo)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(os.path.join(src, "leftImg8bit", photo), out)
""", result='"read": len(paths), "written": len(paths), "skipped": 0, "pixels": pixels')


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------
class Run:
    """One measured configuration: a fresh subprocess per measurement, output deleted after."""

    def __init__(self, key: str, label: str, frames: int, code: str, args: Sequence[str], out: str):
        self.key, self.label, self.frames = key, label, frames
        self.code, self.args, self.out = code, list(args), out
        self.results: List[Dict] = []

    def __call__(self, keep: bool = True) -> Dict:
        shutil.rmtree(self.out, ignore_errors=True)
        try:
            res = C.run_child(self.code, *self.args)
            res["out_files"], res["out_bytes"] = C.tree_size(self.out)
        finally:
            shutil.rmtree(self.out, ignore_errors=True)
        if res["read"] != self.frames or res["written"] != self.frames or res["skipped"]:
            raise RuntimeError(f"{self.label}: expected {self.frames} frames read and written, got {res}")
        if keep:
            self.results.append(res)
        return res

    # statistics: best time, median RSS
    @property
    def best_s(self) -> float:
        return min(r["seconds"] for r in self.results)

    @property
    def median_s(self) -> float:
        return statistics.median(r["seconds"] for r in self.results)

    def rss_mib(self, key: str = "peak_kib") -> Optional[float]:
        vals = [r.get(key) for r in self.results]
        if not vals or any(v is None for v in vals):
            return None
        return statistics.median(vals) / 1024


def profile_convert(src: str, out: str, fmt: str, save_media: bool, top: int = 12) -> None:
    """cProfile of one in-process conversion; prints the functions with the most own time."""
    import cProfile
    import io
    import pstats

    shutil.rmtree(out, ignore_errors=True)
    prof = cProfile.Profile()
    try:
        prof.enable()
        report = cityscapes_io.convert(src, out, format=fmt, save_media=save_media)
        prof.disable()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = sum(v[2] for v in stats.stats.values())  # own time of all functions
    print(f"### {fmt}, save_media={save_media}: {report.written} frames, {report.seconds:.2f} s under cProfile "
          f"({1000 * report.seconds / max(report.written, 1):.1f} ms/frame)")
    n = max(report.written, 1)
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: kv[1][2],
                                                                reverse=True)[:top]:
        where = f"{os.path.basename(filename)}:{line}" if filename != "~" else "built-in"
        rows.append((f"{1000 * tt / n:.2f}", f"{100 * tt / total:.0f}%", f"{nc / n:.1f}", f"{func} ({where})"))
    print(C.markdown_table(("own time ms/frame", "share", "calls/frame", "function"), rows, "rrrl"))
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50, help="frames of the measured split (default 50)")
    parser.add_argument("--frames-large", type=int, default=200,
                        help="frames of the large split of the RSS check (default 200)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--workdir", help="where to write the synthetic data (kept, and reused when the "
                                          "parameters match); default: a temporary folder, removed at the end")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"target formats, comma-separated (default {','.join(FORMATS)})")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of every run (default 3)")
    parser.add_argument("--distinct", type=int, default=6,
                        help="distinct frame contents per split, copied for the other frames (default 6)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one in-process conversion per format (save_media=True)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is not met")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        parser.error(f"--formats: unknown {', '.join(bad) or '(none)'}; choose among {', '.join(FORMATS)}")
    if args.frames < 1 or args.frames_large <= args.frames:
        parser.error("--frames must be >= 1 and --frames-large larger than --frames")
    if args.repeat < 1 or args.distinct < 1:
        parser.error("--repeat and --distinct must be at least 1")
    size = C.parse_size(args.size, parser)

    info = C.print_machine()

    with C.workdir(args.workdir, "cityscapes_io_bench_convert_") as workdir:
        out = os.path.join(workdir, "out")
        try:
            return measure(args, formats, size, info, workdir, out)
        finally:
            shutil.rmtree(out, ignore_errors=True)


def measure(args: argparse.Namespace, formats: Sequence[str], size: Tuple[int, int], info: Dict[str, str],
            workdir: str, out: str) -> int:
    """The data, the runs and the report of ``main``; ``out`` is the output folder of every run."""
    small = os.path.join(workdir, f"src_{args.frames}")
    large = os.path.join(workdir, f"src_{args.frames_large}")
    wall0 = time.perf_counter()
    # -- data ------------------------------------------------------------------------------
    for root, n in ((small, args.frames), (large, args.frames_large)):
        spent = C.make_split(root, n, size, args.distinct, photos=True)
        files, nbytes = C.tree_size(root)
        note = f"generated in {spent:.1f} s" if spent else "reused"
        print(f"data: {root}: {n} frames of {size[0]}x{size[1]} with photos ({args.distinct} distinct), "
              f"{files} files, {nbytes / 2**20:.0f} MiB, {note}")
    ds = cityscapes_io.open(small)
    first = next(iter(ds))
    assert ds.count() == args.frames, (ds.count(), args.frames)
    assert first.has_image and len(first.image_bytes()) > 0
    print(f"check: {first.id}: photo {len(first.image_bytes()) / 2**20:.2f} MiB, "
          f"{len(first.instances())} segments")
    first.release()
    del ds, first
    print()

    # -- runs ------------------------------------------------------------------------------
    runs: List[Run] = []
    cells: Dict[Tuple[str, bool], Run] = {}
    for fmt in formats:
        for sm in (False, True):
            r = Run(f"{fmt}/{int(sm)}", f"cityscapes -> {fmt}, save_media={sm}", args.frames,
                    _CHILD_CONVERT, [small, out, fmt, "1" if sm else "0"], out)
            cells[fmt, sm] = r
            runs.append(r)
    bare = {sm: Run(f"bare/{int(sm)}", "bare: imread instanceIds" + (" + copy photo" if sm else ""),
                    args.frames, _CHILD_BARE, [small, out, "1" if sm else "0"], out) for sm in (False, True)}
    runs += [bare[False], bare[True]]
    voc_small = cells.get(("voc", True))
    if voc_small is None:  # RSS check needs it even when voc is not among --formats
        voc_small = Run("voc/1", "cityscapes -> voc, save_media=True", args.frames, _CHILD_CONVERT,
                        [small, out, "voc", "1"], out)
        runs.append(voc_small)
    voc_large = Run("voc/1/large", f"cityscapes -> voc, save_media=True, {args.frames_large} frames",
                    args.frames_large, _CHILD_CONVERT, [large, out, "voc", "1"], out)
    runs.append(voc_large)

    print(f"## Runs: each a fresh subprocess (spawned by a small launcher); 1 warm-up round + "
          f"{args.repeat} timed rounds, order reversed every other round; output deleted after each run")
    t_warm = time.perf_counter()
    for r in runs:
        r(keep=False)
    print(f"(warm-up round: {time.perf_counter() - t_warm:.1f} s)")
    C.alternate([(r.key, r) for r in runs], args.repeat)
    for r in runs:
        res = r.results
        out_files, out_mib = res[0]["out_files"], res[0]["out_bytes"] / 2**20
        cpu = statistics.median(x["cpu_s"] / x["seconds"] for x in res)
        hwm = r.rss_mib("hwm_kib")
        print(f"- {r.label}: " + ", ".join(f"{x['seconds']:.3f}" for x in res) +
              f" s; best {1000 * r.best_s / r.frames:.1f} ms/frame, median {1000 * r.median_s / r.frames:.1f}; "
              f"CPU/wall {cpu:.2f}; peak RSS " + ", ".join(f"{x['peak_kib'] / 1024:.1f}" for x in res) +
              f" MiB (after imports {r.rss_mib('baseline_kib'):.1f}" +
              (f", VmHWM {hwm:.1f}" if hwm is not None else "") +
              f"); output {out_files} files, {out_mib:.1f} MiB")
    print()

    if args.profile:
        print("## cProfile of one in-process conversion (save_media=True), top functions by own time")
        for fmt in formats:
            profile_convert(small, out, fmt, True)

    # -- tables ----------------------------------------------------------------------------
    n = args.frames
    print("## Results")
    print(f"Cityscapes -> format, {n} frames of {size[0]}x{size[1]} with photos, one process. "
          f"Time: best of {args.repeat} rounds, measured inside the subprocess around convert(); "
          f"peak RSS: median of {args.repeat} (ru_maxrss). "
          f"'× reference' = {REFERENCE_S_PER_FRAME} s/frame / (s/frame here): a ratio to Datumaro 1.13's "
          f"*reference figure* of {REFERENCE_S_PER_FRAME} s/frame (Datumaro not installed; not a side-by-side "
          f"run), target ≥ {SPEEDUP_TARGET:g}×. 'vs bare' = time here / time of the bare baseline with the "
          f"same save_media.")
    print()
    speedups = {}
    rows = []
    for (fmt, sm), r in cells.items():
        spf = r.best_s / n
        speedups[fmt, sm] = REFERENCE_S_PER_FRAME / spf
        rows.append((fmt, str(sm), f"{n / r.best_s:.1f}", f"{1000 * spf:.1f}", f"{r.rss_mib():.1f}",
                     f"{speedups[fmt, sm]:.1f}×", f"{r.best_s / bare[sm].best_s:.2f}"))
    for sm, r in bare.items():
        rows.append((f"*{r.label}*", str(sm), f"{n / r.best_s:.1f}", f"{1000 * r.best_s / n:.1f}",
                     f"{r.rss_mib():.1f}", "", "1.00"))
    # run_all.py reads this table (header, then one row per line): keep its layout.
    print(C.markdown_table(("format", "save_media", "frames/s", "ms/frame", "peak RSS MiB", "× reference",
                            "vs bare"), rows, "llrrrrr"))
    print()

    rs, rl = voc_small.rss_mib(), voc_large.rss_mib()
    diff = rl - rs
    rel = diff / rs
    print("## Peak RSS vs number of frames (Cityscapes -> VOC, save_media=True, median of "
          f"{args.repeat}, ru_maxrss)")
    print(f"- {args.frames} frames: {rs:.1f} MiB "
          f"({1000 * voc_small.best_s / args.frames:.1f} ms/frame)")
    print(f"- {args.frames_large} frames: {rl:.1f} MiB "
          f"({1000 * voc_large.best_s / args.frames_large:.1f} ms/frame)")
    print(f"- difference: {diff:+.1f} MiB ({100 * rel:+.1f}%; "
          f"{1024 * diff / (args.frames_large - args.frames):+.1f} KiB per extra frame); "
          f"target: within ±{100 * RSS_TOLERANCE:.0f}% -> {C.verdict(abs(rel) <= RSS_TOLERANCE)}")
    print()
    print("## Context")
    print(f"python {info['python']}, numpy {info['numpy']}, Pillow {info['Pillow']}, imageio {info['imageio']}, "
          f"cpu count {info['cpu count']}, load average at start {info['load average (1/5/15 min)']}, "
          f"at end {C.load_average()}; "
          f"data in the page cache (warm), local disk; whole run {time.perf_counter() - wall0:.0f} s")

    failed = [k for k, v in speedups.items() if v < SPEEDUP_TARGET] + ([] if abs(rel) <= RSS_TOLERANCE else ["rss"])
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
