#!/usr/bin/env python
"""Metrics in a training loop against ``evaluate()`` from files, per frame, for each task.

A synthetic ``val`` split of ``--frames`` frames (``--size``, ``--distinct`` contents copied
under further names, no photos) and predictions made from its ground truth with noise, kept in
two forms: as the official submissions (semantic PNGs; instance txt files and mask PNGs; a COCO
panoptic JSON and its PNGs) and as ``.npz`` arrays, the model's output of a training loop.

Runs, each in a fresh interpreter, alternated, best of ``--repeat`` after a warm-up:

- ``evaluate``: ``cityscapes_io.evaluate(root, submission, task=..., workers=1)``: reads the
  ground truth and the prediction files (writing them is not counted: a loop that evaluates
  through files pays that too).
- ``metric, Frame``: ``metric.update(prediction, frame)`` for each frame of
  ``cityscapes_io.open(root, split="val")`` (the ground truth read from files, as evaluate reads
  it), then ``compute()``. Only ``update`` and ``compute`` are timed; the predictions are loaded
  from the ``.npz`` outside the timer (in a loop they come from the model).
- ``metric, array``: the same with the ground truth given as an instanceIds array (decoded
  outside the timer, as a DataLoader hands it over).

Each prints ms per frame and the ratio to ``evaluate``; the results are checked to be equal
(``to_dict()``) to evaluate's; the bytes of the metric's state per frame are printed too.

Usage::

    python benchmarks/bench_metrics.py [--frames 20] [--size 2048x1024] [--repeat 3]
                                       [--tasks semantic,instance,panoptic] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

_EVALUATE = C.timed_child(setup=r"""
root, submission, task = sys.argv[1], sys.argv[2], sys.argv[3]
import cityscapes_io
""", timed=r"""
result = cityscapes_io.evaluate(root, submission, task=task, workers=1)
""", result=r'"result": json.dumps(result.to_dict())')

_METRIC = C.timed_child(setup=r"""
root, arrays, task, form = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
import numpy as np
import cityscapes_io
from cityscapes_io.metrics import InstanceMetric, PanopticMetric, SemanticMetric

metric = {"semantic": SemanticMetric, "instance": InstanceMetric, "panoptic": PanopticMetric}[task]()
frames = list(cityscapes_io.open(root, split="val"))


def load(frame):
    with np.load(os.path.join(arrays, os.path.basename(frame.id) + ".npz")) as z:
        if task == "semantic":
            return z["semantic"]
        if task == "instance":
            return {"masks": np.unpackbits(z["masks"], axis=-1, count=int(z["width"])).astype(bool),
                    "labels": z["labels"], "scores": z["scores"]}
        return {"ids": z["ids"], "segments": json.loads(str(z["segments"]))}
""", timed=r"""
spent = 0.0
for frame in frames:
    prediction = load(frame)
    target, kw = (frame, {}) if form == "frame" else (frame.fresh().instance_ids(), {"id": frame.id})
    t0 = time.perf_counter()
    metric.update(prediction, target, **kw)
    spent += time.perf_counter() - t0
t0 = time.perf_counter()
result = metric.compute()
spent += time.perf_counter() - t0
""", result=r'"result": json.dumps(result.to_dict()), "update_s": spent, "state_bytes": len(metric.to_bytes())')


def _rgb(ids):
    import numpy as np

    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def make_predictions(root: str, out: str) -> None:
    """Predictions of every task from the ground truth with noise: submissions and arrays."""
    import numpy as np

    import cityscapes_io as cio
    from cityscapes_io import png

    rng = np.random.default_rng(0)
    paths = {k: os.path.join(out, k) for k in ("semantic", "instance", "panoptic", "arrays")}
    for path in paths.values():
        os.makedirs(path, exist_ok=True)
    os.makedirs(os.path.join(paths["panoptic"], "pred"), exist_ok=True)
    annotations = []
    for frame in cio.open(root, split="val"):
        name = os.path.basename(frame.id)
        inst = frame.instance_ids()
        h, w = inst.shape
        lab = frame.label_ids().copy()
        lab[h // 4: h // 2, w // 4: w // 2] = lab[h // 4 + 7: h // 2 + 7, w // 4 + 11: w // 2 + 11]
        noise = rng.random(lab.shape) < 0.02
        lab[noise] = rng.integers(0, 34, size=int(noise.sum()))
        with open(os.path.join(paths["semantic"], name + "_pred.png"), "wb") as f:
            f.write(png.encode_label_png(lab))
        values = [int(v) for v in np.unique(inst) if v >= 1000 and 24 <= v // 1000 <= 33]
        masks, labels, scores, lines = [], [], [], []
        os.makedirs(os.path.join(paths["instance"], name), exist_ok=True)
        for k, v in enumerate(values + values[:5]):
            m = np.roll(inst == v, (int(rng.integers(-8, 9)), int(rng.integers(-8, 9))), axis=(0, 1))
            masks.append(m)
            labels.append(v // 1000)
            scores.append(round(float(rng.random()), 3))
            with open(os.path.join(paths["instance"], name, f"{k}.png"), "wb") as f:
                f.write(png.encode_png(m.astype(np.uint8) * 255))
            lines.append(f"{name}/{k}.png {v // 1000} {scores[-1]!r}")
        with open(os.path.join(paths["instance"], name + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        ids = np.zeros(inst.shape, np.int64)
        segments = []
        for k, v in enumerate(int(v) for v in np.unique(inst)):
            label = v // 1000 if v >= 1000 else v
            if frame.labels[label].ignore_in_eval:
                continue
            ids[inst == v] = k + 1
            segments.append({"id": k + 1, "category_id": label})
        ids = np.roll(ids, (3, 7), (0, 1))
        present = set(np.unique(ids).tolist())
        segments = [s for s in segments if s["id"] in present]
        with open(os.path.join(paths["panoptic"], "pred", name + ".png"), "wb") as f:
            f.write(png.encode_png(_rgb(ids)))
        annotations.append({"image_id": name, "file_name": name + ".png", "segments_info": segments})
        stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        np.savez(os.path.join(paths["arrays"], name + ".npz"), semantic=lab, masks=np.packbits(stack, axis=-1),
                 width=w, labels=np.array(labels, np.int64), scores=np.array(scores), ids=ids,
                 segments=json.dumps(segments))
    with open(os.path.join(paths["panoptic"], "pred.json"), "w") as f:
        json.dump({"annotations": annotations}, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--distinct", type=int, default=4)
    ap.add_argument("--size", default="2048x1024")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tasks", default="semantic,instance,panoptic")
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="write the best times to this JSON file")
    args = ap.parse_args()
    size = C.parse_size(args.size, ap)
    info = C.print_machine()
    rows: List[List[str]] = []
    best_all: Dict[str, Dict[str, float]] = {}
    with C.workdir(args.workdir, "bench-metrics-") as work:
        root = os.path.join(work, f"val-{args.frames}-{size[0]}x{size[1]}")
        preds = root + "-pred"
        if not os.path.isdir(root):
            from cityscapes_io.testing import generate

            generate(root, splits={"val": args.frames}, size=size, photos=False, distinct=args.distinct, seed=0)
        if not os.path.isdir(preds):
            make_predictions(root, preds)
        submissions = {"semantic": os.path.join(preds, "semantic"), "instance": os.path.join(preds, "instance"),
                       "panoptic": os.path.join(preds, "panoptic", "pred.json")}
        arrays = os.path.join(preds, "arrays")
        for task in args.tasks.split(","):
            runs = [("evaluate", lambda t=task: C.run_child(_EVALUATE, root, submissions[t], t)),
                    ("metric, Frame", lambda t=task: C.run_child(_METRIC, root, arrays, t, "frame")),
                    ("metric, array", lambda t=task: C.run_child(_METRIC, root, arrays, t, "array"))]
            for _, run in runs:  # warm-up
                run()
            got = C.alternate(runs, args.repeat)
            want = got["evaluate"][0]["result"]
            for name, results in got.items():
                if any(r["result"] != want for r in results):
                    raise SystemExit(f"{task}: {name} does not give evaluate()'s numbers")
            best = {"evaluate": min(r["seconds"] for r in got["evaluate"])}
            for name in ("metric, Frame", "metric, array"):
                best[name] = min(r["update_s"] for r in got[name])
            best_all[task] = best
            state = got["metric, Frame"][0]["state_bytes"]
            for name, seconds in best.items():
                ratio = best["evaluate"] / seconds
                rows.append([task, name, f"{seconds / args.frames * 1000:.1f} ms/frame",
                             "-" if name == "evaluate" else f"{ratio:.2f}x",
                             "-" if name == "evaluate" else f"{state / args.frames:.0f} B/frame"])
    print(f"\n{args.frames} frames {size[0]}x{size[1]}, best of {args.repeat}; numbers equal to evaluate()'s: yes\n")
    print(C.markdown_table(["task", "run", "time", "speed vs evaluate", "state"], rows, "llrrr"))
    print(f"load average at end: {C.load_average()}; cpus {info.get('cpu count', '')}")
    if args.json:
        C.write_json(args.json, {"frames": args.frames, "best_s": best_all})


if __name__ == "__main__":
    main()
