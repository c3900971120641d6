#!/usr/bin/env python
"""The release's parts: reading disparity + camera per frame, from local disk and from a local S3
server, against a hand-written loop (issue 21).

A synthetic split with its ``disparity`` and ``camera`` parts (``--frames`` frames of ``--size``,
``--distinct`` frame contents whose bytes are copied for the others) is generated locally and
uploaded to moto's S3 server, run as a separate process on 127.0.0.1. Every figure comes from a
fresh subprocess; the runs alternate (one order on even rounds, the reverse on odd ones), best of
``--repeat``; start-up (imports, opening, the first frame) is reported apart from the per-frame
cost of the other frames.

(a) depth from local disk, decode included:
    - ours: ``for frame in cityscapes_io.open(root): frame.depth()`` (the part folders listed once
      per city, ``(p - 1) / 256`` with NaN at 0, ``baseline * fx / d`` with each frame's camera);
    - hand-written: ``glob`` of ``disparity/`` and ``camera/``, ``imageio.v3.imread`` of the PNG,
      ``json.load`` of the camera, the same formula in numpy (what a training repository writes).
(b) the same parts from the S3 server, bytes and parsing: ``frame.disparity()`` +
    ``frame.camera()`` with the default prefetch (4 frames ahead: the part kinds the loop reads
    are fetched for the next frames) against ``prefetch=0`` (every part file read when asked).
    On a server on 127.0.0.1 a request costs little; on a real bucket each costs a round trip, so
    what prefetch buys there is larger than here.

Usage::

    python benchmarks/bench_parts.py [--frames 24] [--size 2048x1024] [--distinct 4] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

OURS_LOCAL = C.timed_child(
    setup="""
import cityscapes_io, numpy as np
root = sys.argv[1]
ds = cityscapes_io.open(root)
it = iter(ds)
first = next(it)
first.depth()
n = 1
total = 0.0
""",
    timed="""
for frame in it:
    d = frame.depth()
    total += float(np.nanmean(d))
    n += 1
""",
    result='"frames": n - 1, "check": total')

HAND_LOCAL = C.timed_child(
    setup="""
import glob, json, numpy as np, imageio.v3 as iio
root = sys.argv[1]
disp = sorted(glob.glob(os.path.join(root, "disparity", "*", "*", "*_disparity.png")))
cams = [p.replace("/disparity/", "/camera/", 1).replace("_disparity.png", "_camera.json") for p in disp]
def depth(dp, cp):
    p = iio.imread(dp).astype(np.float32)
    with open(cp) as f:
        cam = json.load(f)
    d = (p - 1) / 256
    out = np.full(p.shape, np.nan, np.float32)
    ok = p > 1
    out[ok] = cam["extrinsic"]["baseline"] * cam["intrinsic"]["fx"] / d[ok]
    return out
depth(disp[0], cams[0])
total = 0.0
""",
    timed="""
for dp, cp in zip(disp[1:], cams[1:]):
    total += float(np.nanmean(depth(dp, cp)))
""",
    result='"frames": len(disp) - 1, "check": total')

OURS_S3 = C.timed_child(
    setup="""
import cityscapes_io
url, opts, prefetch = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ds = cityscapes_io.open(url, storage_options=opts, prefetch=None if prefetch == "default" else int(prefetch))
it = iter(ds)
first = next(it)
first.disparity(); first.camera()
first.release()
n = 0
""",
    timed="""
for frame in it:
    frame.disparity()
    frame.camera()
    frame.release()
    n += 1
""",
    result='"frames": n, "prefetch": ds.prefetch')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="2048x1024")
    ap.add_argument("--distinct", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    w, h = C.parse_size(args.size, ap)
    C.print_machine()
    from cityscapes_io.testing import generate

    with C.workdir(args.workdir, "bench-parts-") as work:
        root = os.path.join(work, "cs")
        generate(root, splits={"train": args.frames}, size=(w, h), parts=["disparity", "camera"],
                 distinct=args.distinct, demo_frames=0)
        print(f"\n{args.frames} frames of {w}x{h} with disparity and camera ({args.distinct} distinct)\n")

        runs = C.alternate([("ours", lambda: C.run_child(OURS_LOCAL, root)),
                            ("hand-written", lambda: C.run_child(HAND_LOCAL, root))], args.repeat)
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
        assert abs(best["ours"]["check"] - best["hand-written"]["check"]) < 1e-3 * abs(best["ours"]["check"]), best
        rows = [[name, r["frames"], f"{1000 * r['seconds'] / r['frames']:.1f}", f"{r['peak_kib'] / 1024:.0f}"]
                for name, r in best.items()]
        print("(a) depth from local disk, decode included (per frame after the first)\n")
        print(C.markdown_table(["loop", "frames", "ms/frame", "peak RSS MiB"], rows, "lrrr"))
        ratio = best["hand-written"]["seconds"] / best["ours"]["seconds"]
        print(f"\nours / hand-written speed: {ratio:.2f}x\n")

        import fsspec

        with C.MotoServer() as server:
            opts = C.s3_options(server.endpoint)
            fs = fsspec.filesystem("s3", **opts)
            fs.mkdir("bench")
            fs.put(root, "bench/cs", recursive=True)
            url = "s3://bench/cs"
            s3 = C.alternate([("prefetch 4 (default)", lambda: C.run_child(OURS_S3, url, json_opts(opts), "default")),
                              ("prefetch 0", lambda: C.run_child(OURS_S3, url, json_opts(opts), "0"))], args.repeat)
        best_s3: Dict[str, Dict] = {k: min(v, key=lambda r: r["seconds"]) for k, v in s3.items()}
        rows = [[name, r["frames"], f"{1000 * r['seconds'] / r['frames']:.1f}"] for name, r in best_s3.items()]
        print("(b) disparity + camera from the S3 server on 127.0.0.1 (per frame after the first)\n")
        print(C.markdown_table(["loop", "frames", "ms/frame"], rows, "lrr"))
        gain = best_s3["prefetch 0"]["seconds"] / best_s3["prefetch 4 (default)"]["seconds"]
        print(f"\nprefetch 4 / prefetch 0 speed: {gain:.2f}x")
    return 0


def json_opts(opts: Dict) -> str:
    import json

    return json.dumps(opts)


if __name__ == "__main__":
    sys.exit(main())
