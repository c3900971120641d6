#!/usr/bin/env python
"""Panoptic evaluation: ``cityscapes_io.evaluate(task="panoptic")`` against the official
``evalPanopticSemanticLabeling`` (cityscapesScripts 2.3.0, in its own environment), side by side.

A synthetic ``val`` split of ``--frames`` 2048x1024 frames (``--distinct`` contents copied under
further names; no photos), its official panoptic ground truth (``gtFine/cityscapes_panoptic_val.json``
and folder, made by :func:`cityscapes_io.prepare`) and a COCO panoptic submission (the ground
truth's segments shifted, one segment dropped, one relabelled, a new box per frame). The official
script uses a process per core (``multiprocessing.cpu_count()``); ours runs with as many
(``--workers``, default every core), reading the ground truth from the official files and,
in a copy of the tree without them, deriving it from the instanceIds; and on one process. Each run
in a fresh interpreter, alternated, best of ``--repeat`` after a warm-up, timed inside the child
around ``evaluatePanoptic`` / around ``evaluate`` (imports excluded). Target (issue 12): ours at
least 5 times as fast with as many processes as the official.

Usage::

    python benchmarks/bench_eval_panoptic.py [--frames 20] [--repeat 3] [--official-python PATH] [--workdir DIR]
"""
from __future__ import annotations

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET = 5.0

_OFFICIAL = C.timed_child(setup=r"""
gt, pred, out = sys.argv[1], sys.argv[2], sys.argv[3]
import io, contextlib
from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as e
""", timed=r"""
with contextlib.redirect_stdout(io.StringIO()):
    e.evaluatePanoptic(gt + ".json", gt, pred + ".json", pred, out)
""")

_OURS = C.timed_child(setup=r"""
root, pred, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
import cityscapes_io
""", timed=r"""
result = cityscapes_io.evaluate(root, pred, task="panoptic", workers=workers)
""", result='"pq": result.all["pq"]')


def make_predictions(root: str, stem: str) -> None:
    """The submission ``stem``.json + folder from the panoptic ground truth under ``root``."""
    import numpy as np

    from cityscapes_io import png

    gt = os.path.join(root, "gtFine", "cityscapes_panoptic_val")
    with open(gt + ".json") as f:
        doc = json.load(f)
    cats = [c["id"] for c in doc["categories"]]
    rng = np.random.default_rng(0)
    os.makedirs(stem, exist_ok=True)
    anns = []
    for ann in doc["annotations"]:
        with open(os.path.join(gt, ann["file_name"]), "rb") as f:
            rgb = png.decode_rgb(f.read(), ann["file_name"]).astype(np.int64)
        ids = np.roll(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], (5, 9), (0, 1))
        seg = {s["id"]: s["category_id"] for s in ann["segments_info"]}
        keys = list(seg)
        drop, relabel = rng.choice(len(keys), size=2, replace=False)
        ids[ids == keys[drop]] = 0
        seg[keys[relabel]] = int(rng.choice(cats))
        h, w = ids.shape
        ids[h // 3: h // 3 + 100, w // 2: w // 2 + 200] = 90000
        seg[90000] = int(rng.choice(cats))
        present = set(np.unique(ids).tolist())
        name = ann["image_id"] + "_pred.png"
        out = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        with open(os.path.join(stem, name), "wb") as f:
            f.write(png.encode_png(out))
        anns.append({"image_id": ann["image_id"], "file_name": name,
                     "segments_info": [{"id": int(v), "category_id": c} for v, c in seg.items() if v in present]})
    with open(stem + ".json", "w") as f:
        json.dump({"annotations": anns, "categories": doc["categories"]}, f)


def main() -> None:
    ap = C.official_parser()
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args, size, info = C.parse_official(ap)
    with C.workdir(args.workdir, "bench-eval-panoptic-") as work:
        derived = os.path.join(work, f"val-{args.frames}-{size[0]}x{size[1]}")
        root = derived + "-panoptic"
        pred = root + "-pred"
        result = root + "-result.json"
        if not os.path.isdir(root):
            from cityscapes_io.prepare import prepare
            from cityscapes_io.testing import generate

            generate(derived, splits={"val": args.frames}, size=size, photos=False, distinct=args.distinct, seed=0)
            shutil.copytree(derived, root)
            prepare(root, kinds=["panoptic"])
        if not os.path.isdir(pred):
            make_predictions(root, pred)
        gt = os.path.join(root, "gtFine", "cityscapes_panoptic_val")
        w = str(args.workers)
        runs = []
        if args.official_python:
            runs.append(("official", lambda: C.run_child(_OFFICIAL, gt, pred, result, python=args.official_python)))
        runs.append((f"ours w{w}, gt files", lambda: C.run_child(_OURS, root, pred + ".json", w)))
        runs.append((f"ours w{w}, gt derived", lambda: C.run_child(_OURS, derived, pred + ".json", w)))
        runs.append(("ours w1, gt files", lambda: C.run_child(_OURS, root, pred + ".json", "1")))
        for _, run in runs:  # warm-up
            run()
        got = C.alternate(runs, args.repeat)
        best = {name: min(r["seconds"] for r in results) for name, results in got.items()}
        C.write_json(args.json, {"frames": args.frames, "best_s": best})
        rss = {name: sorted(r["peak_kib"] for r in results)[len(results) // 2] for name, results in got.items()}
        rows = [[f"{name}, {args.frames} frames {size[0]}x{size[1]}", f"{best[name] / args.frames * 1000:.0f} ms/frame",
                 f"{rss[name] / 1024:.0f} MiB", f"{best['official'] / best[name]:.1f}x" if "official" in best else "-"]
                for name in best]
        print(C.markdown_table(["run", "time", "peak RSS", "speed vs official"], rows))
        pqs = {round(r["pq"], 12) for name, results in got.items() if name != "official" for r in results}
        print(f"\nPQ (ours, every run): {', '.join(map(str, sorted(pqs)))}")
        if "official" in best:
            with open(result) as f:
                print(f"PQ (official): {json.load(f)['All']['pq']}")
            ratio = best["official"] / best[f"ours w{w}, gt files"]
            print(f"{w} processes each: {ratio:.1f}x the official script (target >= {TARGET:.0f}x): "
                  f"{C.verdict(ratio >= TARGET)}")
        print(f"load average at end: {C.load_average()}; cpus {info.get('cpu count', '')}")


if __name__ == "__main__":
    main()
