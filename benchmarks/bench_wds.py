#!/usr/bin/env python
"""Tar shards on S3 against loose files on S3: requests per frame and frames/s, on a local S3 server.

A synthetic split (``--frames`` frames of ``--size`` with photos, ``--distinct`` frame contents
whose bytes are copied for the others) is generated locally and converted locally to tar shards
(``convert(..., format="wds", frames_per_shard=--frames-per-shard)``); both trees are uploaded
to moto's S3 server, run as a separate process on 127.0.0.1 (on 2 cores the server has one and
the client the other). Then, side by side, each figure in a fresh interpreter, alternated (loose
first on even rounds, shards first on odd ones), best of ``--repeat``:

- loose files: ``for frame in cityscapes_io.open("s3://.../loose", storage_options=opts)``
  (the Cityscapes layout, default prefetch);
- tar shards: ``for frame in cityscapes_io.open("s3://.../shards", format="wds", ...)`` (one
  sequential read per shard, ``STREAM_BLOCK`` bytes per request);

each pass reading every frame's photo, instanceIds and labelIds bytes (what a sample of the tar
holds besides its small JSON), and once more decoding them instead (``frame.image()`` +
``frame.instance_ids()``). Every child warms up on the first ``WARMUP_FRAMES`` frames (imports,
connections), clears the s3fs listing cache, then times one pass over the split, opening the
dataset included (the listing, or reading ``shards.json``). The S3 requests of the timed pass
are counted by method through s3fs (every request goes through ``S3FileSystem._call_s3``, as in
``bench_s3.py``).

Usage::

    python benchmarks/bench_wds.py [--frames 40] [--frames-per-shard 10] [--size 2048x1024]
                                   [--distinct 4] [--repeat 2] [--workdir DIR] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

WARMUP_FRAMES = 4
BUCKET = "cityscapes-io-bench-wds"
KINDS = ("image", "instanceIds", "labelIds")


# ------------------------------------------------------------------------------------------------
# Child side (a fresh interpreter per figure, through C.run_func)
# ------------------------------------------------------------------------------------------------
def _pass(url: str, opts: Dict, fmt: str, decode: bool, limit=None):
    import cityscapes_io

    n = nbytes = 0
    for frame in cityscapes_io.open(url, format=fmt, storage_options=opts):
        if decode:
            frame.image()
            frame.instance_ids()
        for kind in KINDS:  # cached when decoded: no second request
            nbytes += len(frame.read_bytes(kind))
        n += 1
        if limit is not None and n >= limit:
            break
    return n, nbytes


def child(url: str, opts_json: str, fmt: str, decode: str, moto_pid: str) -> Dict:
    """Warm-up, then one timed pass; frames, bytes, seconds, client and server CPU, requests."""
    import resource

    import bench_s3

    opts = json.loads(opts_json)
    counter = bench_s3._Counter()
    _pass(url, opts, fmt, decode == "1", limit=WARMUP_FRAMES)
    bench_s3._clear_listings()
    counter.take()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    s0 = C.process_cpu_seconds(moto_pid)
    t0 = time.perf_counter()
    n, nbytes = _pass(url, opts, fmt, decode == "1")
    dt = time.perf_counter() - t0
    s1 = C.process_cpu_seconds(moto_pid)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": dt, "frames": n, "bytes": nbytes, "requests": counter.take(),
            "cpu": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime,
            "server_cpu": None if s0 is None or s1 is None else s1 - s0}


# ------------------------------------------------------------------------------------------------
# Parent side
# ------------------------------------------------------------------------------------------------
def _requests(counts: Dict[str, int], frames: int) -> str:
    real = {k: v for k, v in counts.items() if not k.endswith("batches")}
    return ", ".join(f"{k} {v / frames:.2f}" for k, v in sorted(real.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40, help="frames of the split (default 40)")
    parser.add_argument("--frames-per-shard", type=int, default=10, help="frames per tar shard (default 10)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct frame contents (default 4)")
    parser.add_argument("--repeat", type=int, default=2, help="fresh processes per figure (default 2)")
    parser.add_argument("--workdir", help="keep the local synthetic split here (reused when parameters match)")
    parser.add_argument("--json", help="write the result rows to this JSON file")
    args = parser.parse_args(argv)
    size = C.parse_size(args.size, parser)
    if args.frames <= WARMUP_FRAMES or args.frames_per_shard < 1 or args.repeat < 1:
        parser.error(f"--frames > {WARMUP_FRAMES}, --frames-per-shard and --repeat >= 1")
    wall0 = time.perf_counter()
    info = C.print_machine()

    import s3fs

    import bench_s3
    import cityscapes_io

    with C.workdir(args.workdir, "cityscapes_io_bench_wds_") as wd:
        local = os.path.join(wd, f"wdssrc_{args.frames}")
        spent = C.make_split(local, args.frames, size, args.distinct, photos=True)
        shards = os.path.join(wd, f"wdsshards_{args.frames}_{args.frames_per_shard}")
        t0 = time.perf_counter()
        cityscapes_io.convert(local, shards, format="wds", frames_per_shard=args.frames_per_shard, overwrite=True)
        conv = time.perf_counter() - t0
        lfiles, lbytes = C.tree_size(local)
        sfiles, sbytes = C.tree_size(shards)
        print(f"data: {args.frames} frames of {size[0]}x{size[1]} with photos ({args.distinct} distinct), "
              f"{lfiles} loose files, {lbytes / 1e6:.0f} MB, " + (f"generated in {spent:.1f} s" if spent else "reused")
              + f"; {sfiles} shard files ({args.frames_per_shard} frames per shard), {sbytes / 1e6:.0f} MB, "
              f"converted in {conv:.1f} s")

        with C.MotoServer(log=os.path.join(wd, "moto.log")) as server:
            opts = C.s3_options(server.endpoint)
            fs = s3fs.S3FileSystem(**opts)
            fs.mkdir(BUCKET)
            for name, tree in (("loose", local), ("shards", shards)):
                nfiles, nb, dt = bench_s3.upload(fs, tree, f"{BUCKET}/{name}")
                print(f"S3: uploaded {name}: {nfiles} files, {nb / 1e6:.0f} MB in {dt:.1f} s")
            loose_url, shards_url = f"s3://{BUCKET}/loose", f"s3://{BUCKET}/shards"
            a = next(iter(cityscapes_io.open(loose_url, storage_options=opts)))
            b = next(iter(cityscapes_io.open(shards_url, format="wds", storage_options=opts)))
            assert a.id == b.id and all(a.read_bytes(k) == b.read_bytes(k) for k in KINDS)
            print(f"check: {a.id}: same photo, instanceIds and labelIds bytes from both; server pid {server.pid}\n")
            del a, b

            def measure(url: str, fmt: str, decode: bool):
                return lambda: C.run_func("bench_wds", "child", url, json.dumps(opts), fmt, int(decode), server.pid)

            runs = {}
            for decode in (False, True):
                got = C.alternate([("loose", measure(loose_url, "cityscapes", decode)),
                                   ("shards", measure(shards_url, "wds", decode))], args.repeat)
                for name, results in got.items():
                    for r in results:
                        assert r["frames"] == args.frames, r
                    runs[(name, decode)] = min(results, key=lambda r: r["seconds"])

    rows: List[List[object]] = []
    out = []
    for decode in (False, True):
        for name, label in (("loose", "loose files (Cityscapes layout)"),
                            ("shards", f"tar shards ({args.frames_per_shard} frames each)")):
            r = runs[(name, decode)]
            n = r["frames"]
            total = sum(v for k, v in r["requests"].items() if not k.endswith("batches"))
            fps = n / r["seconds"]
            rows.append([label, "decode" if decode else "bytes", f"{fps:.1f}", f"{r['bytes'] / 1e6 / r['seconds']:.0f}",
                         f"{total / n:.2f}", _requests(r["requests"], n), f"{r['cpu'] / r['seconds']:.2f}",
                         "—" if r["server_cpu"] is None else f"{r['server_cpu'] / r['seconds']:.2f}"])
            out.append({"layout": name, "decode": decode, "frames_per_s": fps, "requests_per_frame": total / n,
                        "requests": r["requests"], "seconds": r["seconds"], "frames": n})
    print(f"## {args.frames} frames, {args.repeat} fresh processes per row, alternated, best; one timed pass each "
          f"after a warm-up of {WARMUP_FRAMES} frames (opening and listing included)\n")
    print(C.markdown_table(["layout", "reads", "frames/s", "MB/s", "S3 requests/frame", "by method (per frame)",
                            "client CPU s/s", "server CPU s/s"], rows, "llrrrlrr"))
    for decode in (False, True):
        lo, sh = runs[("loose", decode)], runs[("shards", decode)]
        speed = lo["seconds"] / sh["seconds"]
        req = (sum(v for k, v in lo["requests"].items() if not k.endswith("batches"))
               / max(1, sum(v for k, v in sh["requests"].items() if not k.endswith("batches"))))
        print(f"- {'decode' if decode else 'bytes only'}: shards {speed:.2f}x the frames/s of loose files, "
              f"{req:.1f}x fewer requests")
    print(f"\nwhole run {time.perf_counter() - wall0:.0f} s; load average at end {C.load_average()}; "
          f"cpus {info.get('cpu count', '')}")
    C.write_json(args.json, {"rows": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
