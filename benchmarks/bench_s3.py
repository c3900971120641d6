#!/usr/bin/env python
"""S3 benchmark of ``cityscapes_io`` against hand-written batched s3fs reads, on a local S3 server.

A synthetic split (``--frames`` frames of 2048x1024 with photos, ``--distinct`` frame contents
whose bytes are copied for the others) is generated locally, then uploaded to moto's S3 server
running as a separate process on 127.0.0.1 (so that the server's CPU does not share the
benchmark's GIL; on 2 cores the server has one core and the client the other). Measured side by
side, every figure in fresh subprocesses, alternated (ours first on even rounds, second on odd
ones), best of ``--repeat``:

(a) I/O path, bytes only, no decode:
    - ours: ``for frame in cityscapes_io.open(url, storage_options=opts): frame.image_bytes();
      frame.read_bytes("instanceIds")``, with the default prefetch (4 frames ahead on S3);
    - ours with ``prefetch=0`` (what prefetch buys);
    - raw: ``fs.find(prefix)`` to list the same keys, then ``fs.cat(paths)`` over batches of
      ``--batch`` frames' files (photo + instanceIds), the best a hand-written loop does.
    MB/s, frames/s, ratio ours/raw (target >= 0.8). Listing is timed in both (ours lists the
    city folders as it reaches them; raw does one recursive listing).
(b) decode included: ours with ``frame.instances()`` + ``frame.image()`` vs raw batched fetch +
    ``imageio.v3.imread`` of both files.
(c) writing to S3: ``cityscapes_io.convert(local split, "s3://bucket/out", format="voc",
    save_media=True)`` in a fresh subprocess (launcher); frames/s, peak RSS (``ru_maxrss``) and
    S3 requests per frame, for the whole split and for one of its two cities (half the frames:
    bounded memory means about the same peak for both), and the same conversion to local disk
    as a reference.

Every throughput child makes an untimed warm-up (the first ``WARMUP_FRAMES`` frames: imports,
connection pool, allocator) and then ``--passes`` timed passes, keeping its fastest. Before each
pass the s3fs listing cache is cleared; the connection pool is kept (a long-running reader keeps
it too). The client's CPU time and the moto server's (read from /proc) are printed per second of
pass: a server near 1.0 s/s is saturated and bounds both loops.

The diagnostic section (with ``--diagnose``, and automatically when the ratio target is missed)
counts the S3 requests of each loop by method (every s3fs request goes through
``S3FileSystem._call_s3``), measures how long the consumer waits for a frame's bytes, sweeps the
prefetch depth and the raw batch size, and runs benchmark-side *emulations* of fixes (s3fs
patched in the child process only; the library is not modified): ``keep-listing`` (the reader's
listing cache kept), ``range-get`` (a whole-file read sent as one ``Range: bytes=0-`` GET, which
needs no size), and ``head`` (the raw loop with a HEAD before each GET, as ours does).

Usage::

    python benchmarks/bench_s3.py [--frames 60] [--size 2048x1024] [--distinct 6] [--repeat 3]
                                  [--passes 2] [--decode-passes 1] [--batch 8] [--workdir DIR]
                                  [--diagnose] [--no-decode] [--no-write] [--json PATH] [--check]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

RATIO_TARGET = 0.8          # ours MB/s / raw MB/s, bytes only
DIAG_ROUNDS = 2             # fresh processes per configuration of the diagnostic
WARMUP_FRAMES = 8           # frames read untimed at the start of each throughput child
BUCKET = "cityscapes-io-bench"

# ------------------------------------------------------------------------------------------------
# Child side (run in fresh interpreters through C.run_func)
# ------------------------------------------------------------------------------------------------


def _fs(opts: Dict):
    import fsspec

    return fsspec.filesystem("s3", **opts)


def _clear_listings() -> None:
    """Drop s3fs's listing cache of every live instance (keeps connections)."""
    import s3fs

    for inst in list(getattr(s3fs.S3FileSystem, "_cache", {}).values()):
        inst.dircache.clear()


# Diagnostic variants: benchmark-side patches of s3fs that emulate a change in the library
# (the library itself is not modified), or degrade the raw loop the same way ours is degraded.
VARIANTS = {
    "plain": "as shipped",
    "keep-listing": "s3fs invalidate_cache() made a no-op (the reader's per-city cache drop undone)",
    "range-get": "whole-file reads sent as one GET with 'Range: bytes=0-' (cat_file(path, start=0))",
    "head": "raw with the listing cache dropped after listing (a HEAD before each GET)",
}


def _apply_variant(variant: str) -> None:
    import s3fs

    if variant == "keep-listing":
        s3fs.S3FileSystem.invalidate_cache = lambda self, path=None: None
    elif variant == "range-get":
        cat_file = s3fs.S3FileSystem._cat_file

        async def ranged(self, path, version_id=None, start=None, end=None, **kw):
            if start is None and end is None:
                start = 0  # "bytes=0-": the whole object in one GET, no size probe (HEAD)
            return await cat_file(self, path, version_id=version_id, start=start, end=end, **kw)

        s3fs.S3FileSystem._cat_file = ranged
    elif variant not in ("plain", "head"):
        raise ValueError(variant)


class _Counter:
    """Counts the S3 requests a loop sends (every request of s3fs goes through
    ``S3FileSystem._call_s3(method, ...)``) and the batched ``fs.cat`` calls."""

    def __init__(self):
        import s3fs

        self.counts: Dict[str, int] = {}
        self._lock = threading.Lock()
        call_s3, cat = s3fs.S3FileSystem._call_s3, s3fs.S3FileSystem._cat

        async def counted_call(fs, method, *a, **kw):
            self._add(method if isinstance(method, str) else getattr(method, "__name__", "?"))
            return await call_s3(fs, method, *a, **kw)

        async def counted_cat(fs, *a, **kw):
            self._add("cat() batches")
            return await cat(fs, *a, **kw)

        s3fs.S3FileSystem._call_s3 = counted_call
        s3fs.S3FileSystem._cat = counted_cat

    def _add(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def take(self) -> Dict[str, int]:
        with self._lock:
            out, self.counts = self.counts, {}
        return out


def pass_ours(url: str, opts: Dict, prefetch: Optional[int], decode: bool, limit: Optional[int] = None,
              wait_stats: Optional[List[float]] = None) -> Tuple[int, int]:
    """One pass of ours; returns (frames, bytes)."""
    import cityscapes_io

    n = nbytes = 0
    for frame in cityscapes_io.open(url, storage_options=opts, prefetch=prefetch):
        if decode:
            frame.instances()
            frame.image()
            nbytes += len(frame.image_bytes())  # cached by image(): no second request
        elif wait_stats is not None:
            t0 = time.perf_counter()
            nbytes += len(frame.image_bytes()) + len(frame.read_bytes("instanceIds"))
            wait_stats.append(time.perf_counter() - t0)
        else:
            nbytes += len(frame.image_bytes()) + len(frame.read_bytes("instanceIds"))
        n += 1
        if limit is not None and n >= limit:
            break
    return n, nbytes


def list_raw(fs, prefix: str) -> List[Tuple[str, str]]:
    """(photo path, instanceIds path) of every frame under ``prefix``, sorted by frame."""
    photos, insts = {}, {}
    for p in fs.find(prefix):
        rel = p[len(prefix):].lstrip("/")
        parts = rel.split("/", 1)
        if len(parts) != 2:
            continue
        if parts[0] == "leftImg8bit" and p.endswith("_leftImg8bit.png"):
            photos[parts[1][: -len("_leftImg8bit.png")]] = p
        elif parts[0] == "gtFine" and p.endswith("_gtFine_instanceIds.png"):
            insts[parts[1][: -len("_gtFine_instanceIds.png")]] = p
    return [(photos[k], insts[k]) for k in sorted(photos.keys() & insts.keys())]


def pass_raw(prefix: str, opts: Dict, batch: int, decode: bool, limit: Optional[int] = None,
             head: bool = False) -> Tuple[int, int]:
    """One pass of the hand-written loop; returns (frames, bytes)."""
    fs = _fs(opts)
    frames = list_raw(fs, prefix)
    if head:  # diagnostic: no listing cache left, so s3fs probes each object's size first
        fs.dircache.clear()
    if limit is not None:
        frames = frames[:limit]
    if decode:
        import imageio.v3 as iio
    n = nbytes = 0
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        paths = [p for pair in chunk for p in pair]
        data = fs.cat(paths)
        for photo, inst in chunk:
            a, b = data[photo], data[inst]
            nbytes += len(a) + len(b)
            if decode:
                iio.imread(a, extension=".png")
                iio.imread(b, extension=".png")
            n += 1
    return n, nbytes


def child_passes(kind: str, url: str, opts_json: str, param: str, decode: str, passes: str,
                 moto_pid: str, diagnose: str = "0", variant: str = "plain") -> Dict:
    """Child entry point: warm-up over the first WARMUP_FRAMES frames, then ``passes`` timed
    passes. ``kind`` is "ours" (param: prefetch, "default" for None) or "raw" (param: batch)."""
    import resource

    opts = json.loads(opts_json)
    decode_b = decode == "1"
    prefix = url.split("://", 1)[1].rstrip("/")
    _apply_variant(variant)
    counter = _Counter() if diagnose == "1" else None

    def run(limit=None, waits=None):
        if kind == "ours":
            return pass_ours(url, opts, None if param == "default" else int(param), decode_b, limit, waits)
        return pass_raw(prefix, opts, int(param), decode_b, limit, head=variant == "head")

    run(limit=WARMUP_FRAMES)
    out: Dict[str, list] = {"times": [], "frames": [], "bytes": [], "cpu": [], "server_cpu": [], "requests": [],
                            "wait_ms": []}
    for _ in range(int(passes)):
        _clear_listings()
        if counter is not None:
            counter.take()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        s0 = C.process_cpu_seconds(moto_pid)
        waits: Optional[List[float]] = [] if (diagnose == "1" and kind == "ours" and not decode_b) else None
        t0 = time.perf_counter()
        n, nbytes = run(waits=waits)
        dt = time.perf_counter() - t0
        s1 = C.process_cpu_seconds(moto_pid)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        out["times"].append(dt)
        out["frames"].append(n)
        out["bytes"].append(nbytes)
        out["cpu"].append(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
        out["server_cpu"].append(None if s0 is None or s1 is None else s1 - s0)
        out["requests"].append(counter.take() if counter is not None else None)
        out["wait_ms"].append(1000 * sum(waits) if waits is not None else None)
    return out


_CHILD_CONVERT = C.timed_child(setup=r"""
src, dst, opts, cities = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
import cityscapes_io
counter = None
if dst.startswith("s3://"):
    import s3fs  # imported before the baseline: "after imports" then includes the S3 client
    sys.path.insert(0, sys.argv[5])
    import bench_s3
    counter = bench_s3._Counter()
""", timed=r"""
report = cityscapes_io.convert(src, dst, format="voc", save_media=True, dst_storage_options=opts,
                               cities=cities.split(",") if cities else None)
""", result='"written": report.written, "read": report.read, "skipped": len(report.skipped), '
            '"requests": counter.take() if counter is not None else None')


# ------------------------------------------------------------------------------------------------
# Parent side
# ------------------------------------------------------------------------------------------------
class Measure:
    """One configuration measured in fresh children; keeps each child's fastest pass."""

    def __init__(self, label: str, kind: str, url: str, opts: Dict, param, decode: bool, passes: int,
                 moto_pid: int, diagnose: bool = False, variant: str = "plain"):
        self.label, self.kind = label, kind
        self.args = (kind, url, json.dumps(opts), str(param), "1" if decode else "0", str(passes), str(moto_pid),
                     "1" if diagnose else "0", variant)
        self.children: List[Dict] = []

    def __call__(self) -> Dict:
        res = C.run_func("bench_s3", "child_passes", *self.args, via_launcher=False)
        self.children.append(res)
        return res

    def best(self) -> Dict:
        """The fastest pass over all children: time, frames, bytes, cpu, server cpu."""
        cands = [(t, i, j) for i, r in enumerate(self.children) for j, t in enumerate(r["times"])]
        t, i, j = min(cands)
        r = self.children[i]
        return {k: r[k][j] for k in r} | {"time": t}

    def per_child(self) -> List[float]:
        return [min(r["times"]) for r in self.children]

    def mbps(self) -> float:
        b = self.best()
        return b["bytes"] / 1e6 / b["time"]

    def fps(self) -> float:
        b = self.best()
        return b["frames"] / b["time"]


def upload(fs, local: str, dest: str, chunk_bytes: int = 64 << 20) -> Tuple[int, int, float]:
    """Upload every file under ``local`` to ``dest`` with batched, concurrent puts."""
    t0 = time.perf_counter()
    batch: Dict[str, bytes] = {}
    size = files = 0
    pending = 0
    for dirpath, _, names in os.walk(local):
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            with open(full, "rb") as fh:
                data = fh.read()
            batch[f"{dest}/{rel}"] = data
            pending += len(data)
            size += len(data)
            files += 1
            if pending >= chunk_bytes:
                fs.pipe(batch)
                batch, pending = {}, 0
    if batch:
        fs.pipe(batch)
    fs.invalidate_cache()
    return files, size, time.perf_counter() - t0


def describe(m: Measure, n_expected: int) -> str:
    for r in m.children:
        assert all(f == n_expected for f in r["frames"]), (m.label, r["frames"], n_expected)
    b = m.best()
    sc = b.get("server_cpu")
    per = ", ".join(f"{t:.3f}" for t in m.per_child())
    return (f"- {m.label}: per process {per} s; best {b['time']:.3f} s = {m.mbps():.1f} MB/s, {m.fps():.1f} frames/s; "
            f"client CPU {b['cpu'] / b['time']:.2f} s/s, {1000 * b['cpu'] / (b['bytes'] / 1e6):.1f} ms/MB"
            + (f"; server CPU {sc / b['time']:.2f} s/s" if sc is not None else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames of the split (default 60)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--distinct", type=int, default=6, help="distinct frame contents (default 6)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measurement (default 3)")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per process, bytes only (default 2)")
    parser.add_argument("--decode-passes", type=int, default=1,
                        help="timed passes per process with decode (default 1)")
    parser.add_argument("--batch", type=int, default=8, help="frames per fs.cat() call of the raw loop (default 8)")
    parser.add_argument("--workdir", help="keep the local synthetic split here (reused when parameters match)")
    parser.add_argument("--no-decode", action="store_true", help="skip the decode comparison")
    parser.add_argument("--no-write", action="store_true", help="skip the conversion to S3")
    parser.add_argument("--diagnose", action="store_true",
                        help="always run the diagnostic section (it also runs when the ratio target is missed)")
    parser.add_argument("--json", help="write the result rows to this JSON file (for run_all.py)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    size = C.parse_size(args.size)
    if args.frames < 2 or args.repeat < 1 or args.passes < 1 or args.batch < 1:
        parser.error("--frames >= 2, --repeat, --passes and --batch >= 1")
    wall0 = time.perf_counter()
    info = C.print_machine()

    import s3fs

    with C.workdir(args.workdir, "cityscapes_io_bench_s3_") as wd:
        local = os.path.join(wd, f"s3src_{args.frames}")
        spent = C.make_split(local, args.frames, size, args.distinct, photos=True)
        files, nbytes = C.tree_size(local)
        print(f"data: {local}: {args.frames} frames of {size[0]}x{size[1]} with photos ({args.distinct} distinct), "
              f"{files} files, {nbytes / 1e6:.0f} MB, " + (f"generated in {spent:.1f} s" if spent else "reused"))

        with C.MotoServer(log=os.path.join(wd, "moto.log")) as server:
            opts = C.s3_options(server.endpoint)
            fs = s3fs.S3FileSystem(**opts)
            fs.mkdir(BUCKET)
            url = f"s3://{BUCKET}/src"
            nfiles, nb, dt = upload(fs, local, f"{BUCKET}/src")
            print(f"S3: moto server pid {server.pid} at {server.endpoint} (separate process); uploaded {nfiles} files, "
                  f"{nb / 1e6:.0f} MB in {dt:.1f} s ({nb / 1e6 / dt:.0f} MB/s)")

            # Sanity: both loops see the same frames and bytes.
            import cityscapes_io

            pairs = list_raw(fs, f"{BUCKET}/src")
            assert len(pairs) == args.frames, (len(pairs), args.frames)
            first = next(iter(cityscapes_io.open(url, storage_options=opts, prefetch=0)))
            assert first.image_bytes() == fs.cat_file(pairs[0][0])
            assert first.read_bytes("instanceIds") == fs.cat_file(pairs[0][1])
            print(f"check: {first.id}: same photo and instanceIds bytes as {pairs[0][0]}")
            del first
            print()

            n = args.frames
            mk = lambda label, kind, param, decode, passes, diag=False, variant="plain": Measure(  # noqa: E731
                label, kind, url, opts, param, decode, passes, server.pid, diag, variant)

            # -- (a) bytes only --------------------------------------------------------------------
            print(f"## (a) I/O path, bytes only: {args.repeat} fresh processes each, alternated; each warms up on "
                  f"{WARMUP_FRAMES} frames, then {args.passes} timed passes over {n} frames (listing included)")
            ours = mk("ours, default prefetch (4)", "ours", "default", False, args.passes)
            ours0 = mk("ours, prefetch=0", "ours", 0, False, args.passes)
            raw = mk(f"raw: fs.find + fs.cat over batches of {args.batch} frames", "raw", args.batch, False, args.passes)
            C.alternate([("ours", ours), ("raw", raw), ("ours0", ours0)], args.repeat)
            for m in (ours, raw, ours0):
                print(describe(m, n))
            ratio = ours.mbps() / raw.mbps()
            ratio0 = ours0.mbps() / raw.mbps()
            paired = [r / o for o, r in zip(ours.per_child(), raw.per_child())]
            print(f"- ratio ours/raw (MB/s, best/best): {ratio:.3f} (per round: "
                  + ", ".join(f"{x:.3f}" for x in paired) + f"); prefetch=0: {ratio0:.3f}; "
                  f"prefetch buys {ours.mbps() / ours0.mbps():.2f}x")
            print()

            # -- (b) decode included -----------------------------------------------------------------
            dec = None
            if not args.no_decode:
                print(f"## (b) Decode included: {args.repeat} fresh processes each, alternated, "
                      f"{args.decode_passes} timed pass(es) each after the warm-up")
                d_ours = mk("ours: instances() + image(), default prefetch", "ours", "default", True, args.decode_passes)
                d_raw = mk(f"raw: fs.cat batches of {args.batch} + imageio.v3.imread of both files", "raw", args.batch,
                           True, args.decode_passes)
                C.alternate([("ours", d_ours), ("raw", d_raw)], args.repeat)
                for m in (d_ours, d_raw):
                    print(describe(m, n))
                dec = (d_ours, d_raw, d_ours.fps() / d_raw.fps())
                print(f"- ratio ours/raw (frames/s): {dec[2]:.3f}")
                print()

            # -- (c) writing to S3 -------------------------------------------------------------------
            wr = None
            if not args.no_write:
                half = sorted(os.listdir(os.path.join(local, "gtFine", "train")))[0]
                n_half = len([f for f in os.listdir(os.path.join(local, "gtFine", "train", half))
                              if f.endswith("_instanceIds.png")])
                print(f"## (c) Writing to S3: convert(local split -> s3://{BUCKET}/out, format='voc', save_media=True), "
                      f"fresh subprocess (launcher), {args.repeat} alternated rounds; output deleted after each run")
                results: Dict[str, List[Dict]] = {"all": [], "half": [], "local": []}
                local_out = os.path.join(wd, "s3bench_local_out")

                def write_run(key: str, cities: str, expect: int):
                    def go():
                        dst = local_out if key == "local" else f"s3://{BUCKET}/out"
                        try:
                            r = C.run_child(_CHILD_CONVERT, local, dst, json.dumps(opts if key != "local" else {}),
                                            cities, C.HERE)
                        finally:
                            if key == "local":
                                shutil.rmtree(local_out, ignore_errors=True)
                            else:
                                if fs.exists(f"{BUCKET}/out"):
                                    fs.rm(f"{BUCKET}/out", recursive=True)
                                fs.invalidate_cache()
                        assert r["written"] == expect and not r["skipped"], r
                        results[key].append(r)
                        return r
                    return go

                C.alternate([("all", write_run("all", "", n)), ("half", write_run("half", half, n_half)),
                             ("local", write_run("local", "", n))], args.repeat)
                for key, frames in (("all", n), ("half", n_half), ("local", n)):
                    rs = results[key]
                    best = min(r["seconds"] for r in rs)
                    where = {"all": "", "half": f" (city {half})", "local": " to local disk instead (reference)"}[key]
                    print(f"- {frames} frames{where}: "
                          + ", ".join(f"{r['seconds']:.2f}" for r in rs)
                          + f" s; best {frames / best:.1f} frames/s; CPU/wall "
                          f"{statistics.median(r['cpu_s'] / r['seconds'] for r in rs):.2f}; peak RSS "
                          + ", ".join(f"{r['peak_kib'] / 1024:.1f}" for r in rs)
                          + f" MiB (after imports {statistics.median(r['baseline_kib'] for r in rs) / 1024:.1f}, "
                          f"VmHWM {statistics.median(r['hwm_kib'] or 0 for r in rs) / 1024:.1f})"
                          + ("; S3 requests per frame: " + ", ".join(
                              f"{k} {v / frames:.2f}" for k, v in sorted(rs[0]["requests"].items()))
                             if rs[0].get("requests") else ""))
                rss_all = statistics.median(r["peak_kib"] for r in results["all"]) / 1024
                rss_half = statistics.median(r["peak_kib"] for r in results["half"]) / 1024
                fps_all = n / min(r["seconds"] for r in results["all"])
                fps_local = n / min(r["seconds"] for r in results["local"])
                wr = (fps_all, rss_all, rss_half, n_half, fps_local)
                print(f"- peak RSS {n} vs {n_half} frames: {rss_all:.1f} vs {rss_half:.1f} MiB "
                      f"({rss_all - rss_half:+.1f} MiB)")
                print()

            # -- diagnostics -------------------------------------------------------------------------
            diag = None
            if args.diagnose or ratio < RATIO_TARGET:
                why = "requested" if args.diagnose else f"ratio {ratio:.2f} < {RATIO_TARGET}"
                print(f"## Diagnostic ({why}): S3 requests per pass, consumer wait, client CPU per MB, "
                      f"prefetch depth, and benchmark-side emulations of fixes ({DIAG_ROUNDS} fresh processes each, "
                      f"alternated, best of their {args.passes + 1} passes; the library is not modified)")
                for k, v in VARIANTS.items():
                    print(f"- variant {k}: {v}")
                configs = [("ours", f"ours, prefetch={d}", d, "plain") for d in (0, 2, 4, 8, 16)]
                configs += [("ours", "ours, prefetch=4, keep-listing", 4, "keep-listing"),
                            ("ours", "ours, prefetch=4, range-get", 4, "range-get"),
                            ("ours", "ours, prefetch=8, range-get", 8, "range-get"),
                            ("raw", f"raw, batch={args.batch}", args.batch, "plain"),
                            ("raw", f"raw, batch={args.batch}, head", args.batch, "head"),
                            ("raw", "raw, batch=1", 1, "plain"),
                            ("raw", f"raw, batch={n} (one fs.cat)", n, "plain")]
                measures = [mk(label, kind, param, False, args.passes + 1, True, variant)
                            for kind, label, param, variant in configs]
                C.alternate([(m.label, m) for m in measures], DIAG_ROUNDS)  # each keeps its best
                rows, diag = [], {}
                for m, (kind, label, param, variant) in zip(measures, configs):
                    b = m.best()
                    diag[label] = (m.mbps(), b["requests"] or {})
                    rows.append((label, f"{m.mbps():.1f}", f"{m.mbps() / raw.mbps():.2f}", f"{m.fps():.1f}",
                                 f"{b['wait_ms'] / b['frames']:.1f}" if b["wait_ms"] is not None else "",
                                 f"{1000 * b['cpu'] / (b['bytes'] / 1e6):.1f}",
                                 f"{b['server_cpu'] / b['time']:.2f}" if b["server_cpu"] is not None else "",
                                 _fmt_requests(b["requests"])))
                print()
                print(C.markdown_table(("loop", "MB/s", "÷ raw (a)", "frames/s", "consumer wait ms/frame",
                                        "client CPU ms/MB", "server CPU s/s", "requests per pass"), rows,
                                       "lrrrrrrl"))
                print()
        # server stopped here

    # -- table --------------------------------------------------------------------------------------
    rows = [
        (f"S3 read, bytes only, ours (prefetch 4), {n} frames {size[0]}x{size[1]}",
         f"{ours.mbps():.1f} MB/s ({ours.fps():.1f} frames/s)", "", ""),
        ("S3 read, bytes only, ours prefetch=0", f"{ours0.mbps():.1f} MB/s ({ours0.fps():.1f} frames/s)", "", ""),
        (f"S3 read, bytes only, raw fs.cat batches of {args.batch}",
         f"{raw.mbps():.1f} MB/s ({raw.fps():.1f} frames/s)", "", ""),
        ("S3 read ours / raw (MB/s)", f"{ratio:.2f}", f"≥ {RATIO_TARGET}", C.verdict(ratio >= RATIO_TARGET)),
    ]
    if diag:
        def per_frame(label):
            req = diag[label][1]
            return sum(v for k, v in req.items() if k != "cat() batches") / n

        ours_l, raw_l = "ours, prefetch=4", f"raw, batch={args.batch}"
        rows += [("S3 requests per frame, ours vs raw (diagnostic)",
                  f"{per_frame(ours_l):.2f} vs {per_frame(raw_l):.2f}", "", "")]
        for label in ("ours, prefetch=4, keep-listing", "ours, prefetch=4, range-get", "ours, prefetch=8, range-get"):
            rows.append((f"diagnostic: {label} (emulated fix) / raw", f"{diag[label][0] / raw.mbps():.2f}",
                         "", ""))
    if dec is not None:
        rows += [("S3 read + decode (instances + image), ours", f"{dec[0].fps():.1f} frames/s", "", ""),
                 ("S3 read + decode, raw fs.cat + imageio", f"{dec[1].fps():.1f} frames/s", "", ""),
                 ("S3 read + decode ours / raw (frames/s)", f"{dec[2]:.2f}", "", "")]
    if wr is not None:
        rows += [("convert local → S3 VOC save_media", f"{wr[0]:.1f} frames/s", "", ""),
                 ("same conversion to local disk (reference)", f"{wr[4]:.1f} frames/s", "", ""),
                 (f"convert → S3 peak RSS, {n} vs {wr[3]} frames", f"{wr[1]:.1f} vs {wr[2]:.1f} MiB",
                  "bounded (within 10%)", C.verdict(abs(wr[1] - wr[2]) <= 0.1 * wr[2]))]
    print("## Results")
    print(f"(times: best of {args.repeat} alternated fresh processes × their passes; RSS: median; moto server "
          f"in its own process on 127.0.0.1; whole run {time.perf_counter() - wall0:.0f} s; load average at end "
          f"{C.load_average()})")
    print()
    print(C.markdown_table(("metric", "value", "target", "result"), rows))
    C.write_json(args.json, {"bench": "s3", "rows": rows, "machine": info})
    return 1 if args.check and any(r[3] == "FAIL" for r in rows) else 0


def _fmt_requests(req: Optional[Dict[str, int]]) -> str:
    if not req:
        return ""
    return ", ".join(f"{k} {v}" for k, v in sorted(req.items()))


if __name__ == "__main__":
    sys.exit(main())
