#!/usr/bin/env python
"""PNG decoding per file: the fast path (libdeflate + the C unfilter) against Pillow, on the same bytes.

Files: a synthetic split of ``--frames`` 2048x1024 frames (``--distinct`` contents), each of
its PNG kinds (16-bit instanceIds, 8-bit labelIds, RGBA color, RGB photo, and an 8-bit
prediction written by ``export-predictions``' encoder) in two encodings:

- ``pillow``: re-encoded by Pillow with its defaults, as the official scripts and the release's
  files are (rows filtered by Pillow's choice: Up, Paeth, some Sub);
- ``ours``: as cityscapes_io writes them (``png.encode_label_png``; photos by ``generate``).

Decoders, each in its own fresh interpreter (all files of a kind read into memory first, one
untimed pass, then ``--passes`` timed passes; per-file time is the best pass / files):

- ``fast``: ``png.decode_gray`` / ``png.decode_rgb`` with the fast path (what users get);
- ``pure``: the same calls with ``CITYSCAPES_IO_PURE_PYTHON=1`` (the Pillow path: what users
  without the extension get, and the library before issue 20);
- ``bare``: ``numpy.asarray(PIL.Image.open(io.BytesIO(data)))`` (RGBA converted to RGB).

The three run alternated (order reversed every round), best of ``--repeat``. Import time of the
decoder (interpreter start excluded) is printed apart. Targets (issue 20): instanceIds and
labelIds >= 6x, photos >= 2.5x, fast against pure.

Usage::

    python benchmarks/bench_decode.py [--frames 60] [--distinct 6] [--repeat 3] [--passes 3] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGETS = {"instanceIds": 6.0, "labelIds": 6.0, "photo": 2.5}
KINDS = ("instanceIds", "labelIds", "prediction", "color", "photo")

_CHILD = r"""
import io, json, os, sys, time
method, listing, passes = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
import numpy as np
from PIL import Image
from cityscapes_io import png, decoder
t_import = time.perf_counter() - t0
files = json.load(open(listing))
out = {"import_s": t_import, "decoder": decoder.describe(), "ms": {}}
for key, paths in files.items():
    blobs = [open(p, "rb").read() for p in paths]
    rgb = key.split("/")[1] in ("color", "photo")
    if method == "bare":
        def dec(data, p):
            im = Image.open(io.BytesIO(data))
            return np.asarray(im.convert("RGB") if im.mode == "RGBA" else im)
    else:
        dec = png.decode_rgb if rgb else png.decode_gray
    for data, p in zip(blobs, paths):
        dec(data, p)
    best = 1e9
    for _ in range(passes):
        t = time.perf_counter()
        for data, p in zip(blobs, paths):
            dec(data, p)
        best = min(best, time.perf_counter() - t)
    out["ms"][key] = best / len(blobs) * 1000
print(json.dumps(out))
"""


def prepare_files(work: str, frames: int, distinct: int) -> Dict[str, List[str]]:
    """The listing ``{"<encoding>/<kind>": [paths]}`` (``frames`` files each)."""
    import numpy as np
    from PIL import Image

    from cityscapes_io import png

    root = os.path.join(work, "split")
    C.make_split(root, frames, (2048, 1024), distinct, photos=True)
    found = {
        "instanceIds": sorted(glob.glob(f"{root}/gtFine/train/*/*_instanceIds.png")),
        "labelIds": sorted(glob.glob(f"{root}/gtFine/train/*/*_labelIds.png")),
        "color": sorted(glob.glob(f"{root}/gtFine/train/*/*_color.png")),
        "photo": sorted(glob.glob(f"{root}/leftImg8bit/train/*/*_leftImg8bit.png")),
    }
    listing: Dict[str, List[str]] = {}
    for enc in ("pillow", "ours"):
        os.makedirs(os.path.join(work, enc), exist_ok=True)
        for kind in KINDS:
            paths = []
            for i in range(frames):
                src = found["labelIds" if kind == "prediction" else kind][i % distinct]
                dst = os.path.join(work, enc, f"{kind}_{i % distinct}.png")
                if not os.path.exists(dst):
                    with open(src, "rb") as f:
                        data = f.read()
                    arr = png.decode_rgb(data, src) if kind == "photo" else (
                        np.asarray(Image.open(io.BytesIO(data))))
                    if kind == "prediction":  # a prediction: the labels with a shifted block
                        arr = arr.copy()
                        arr[200:600, 300:900] = arr[250:650, 330:930]
                    if enc == "pillow":
                        buf = io.BytesIO()
                        Image.fromarray(arr).save(buf, format="PNG")
                        blob = buf.getvalue()
                    elif kind == "photo":
                        blob = data
                    else:
                        blob = png.encode_label_png(arr)
                    with open(dst, "wb") as f:
                        f.write(blob)
                paths.append(dst)
            listing[f"{enc}/{kind}"] = paths
    return listing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--distinct", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args()
    info = C.print_machine()
    with C.workdir(args.workdir, "bench_decode_") as work:
        listing = prepare_files(work, args.frames, args.distinct)
        path = os.path.join(work, "listing.json")
        with open(path, "w") as f:
            json.dump(listing, f)
        pure_env = dict(os.environ, CITYSCAPES_IO_PURE_PYTHON="1")
        runs = [(m, (lambda m=m: C.run_child(_CHILD, m, path, str(args.passes), via_launcher=False,
                                             env=pure_env if m == "pure" else None)))
                for m in ("fast", "pure", "bare")]
        got = C.alternate(runs, args.repeat)
        best = {m: {k: min(r["ms"][k] for r in rs) for k in listing} for m, rs in got.items()}
        print(f"decoders: fast = {got['fast'][0]['decoder']}; pure = {got['pure'][0]['decoder']}")
        print("import of the decoder (best): " + ", ".join(
            f"{m} {min(r['import_s'] for r in rs) * 1000:.0f} ms" for m, rs in got.items()))
        rows = []
        for key in listing:
            enc, kind = key.split("/")
            fast, pure, bare = best["fast"][key], best["pure"][key], best["bare"][key]
            target = TARGETS.get(kind)
            rows.append([kind, enc, f"{fast:.2f}", f"{pure:.2f}", f"{bare:.2f}", f"{pure / fast:.1f}x",
                         f"{bare / fast:.1f}x",
                         f">= {target}x: {C.verdict(pure / fast >= target)}" if target else "-"])
        print(f"\n{args.frames} files per kind, 2048x1024; ms per file, best of {args.repeat} processes x "
              f"{args.passes} passes; load average {C.load_average()}\n")
        print(C.markdown_table(["file", "encoded by", "fast ms", "pure ms", "bare Pillow ms", "pure / fast",
                                "bare / fast", "target"], rows))
        C.write_json(args.json, {"best_ms": best, "machine": info})


if __name__ == "__main__":
    main()
