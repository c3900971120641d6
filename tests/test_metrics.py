"""cityscapes_io.metrics: the metrics of a training loop give the numbers of evaluate() on files,
bit for bit, for any partition of the frames, any order of updates and merges, and any form of
target (Frame, instanceIds array with id=, (id, array) pair); their state as bytes and pickles;
the problems they refuse. The helpers that build the data (a synthetic val split, predictions
derived from its ground truth with noise, written as submissions and kept as arrays) are used
by test_metrics_distributed.py and test_metrics_adapters.py too."""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from conftest import write_file
from hypothesis import given, settings
from hypothesis import strategies as st

import cityscapes_io as cio
from cityscapes_io.metrics import InstanceMetric, PanopticMetric, SemanticMetric
from cityscapes_io.png import encode_png
from cityscapes_io.testing import generate

METRICS = {"semantic": SemanticMetric, "instance": InstanceMetric, "panoptic": PanopticMetric}
# Label ids the noise draws from: stuff, things, ignored classes (void 0, parking 9, caravan 29).
_SEM_IDS = np.array([0, 4, 7, 8, 9, 11, 17, 20, 21, 23, 24, 25, 26, 27, 29, 32, 33])
_THING_IDS = [24, 25, 26, 27, 28, 29, 31, 32, 33]


@dataclass
class Data:
    """A val split, its predictions as arrays (per frame id, dataset order) and evaluate()'s
    results on the same predictions written as submissions."""

    root: str
    ids: List[str]
    semantic: Dict[str, np.ndarray] = field(default_factory=dict)  # label ids
    train: Dict[str, np.ndarray] = field(default_factory=dict)  # train ids
    instance: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)  # torchvision-style dicts
    panoptic: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # {"ids", "segments"}
    gt: Dict[str, np.ndarray] = field(default_factory=dict)  # instanceIds
    submissions: Dict[str, Tuple[str, Dict[str, Any]]] = field(default_factory=dict)

    def evaluate(self, task: str):
        """evaluate() of the task's submission (``"train"``: the semantic one of train ids)."""
        where, options = self.submissions[task]
        return cio.evaluate(self.root, where, task="semantic" if task == "train" else task, **options)

    def prediction(self, task: str, frame_id: str) -> Any:
        return getattr(self, task)[frame_id]


def _rgb(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def _semantic_noise(rng, lab: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``lab`` with 15% of the pixels and two blocks replaced by values drawn from ``values``."""
    out = lab.astype(np.int64).copy()
    noise = rng.random(lab.shape) < 0.15
    out[noise] = rng.choice(values, size=int(noise.sum()))
    h, w = lab.shape
    for _ in range(2):
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        out[y:y + int(rng.integers(4, 20)), x:x + int(rng.integers(4, 40))] = int(rng.choice(values))
    return out


def _instances(rng, inst: np.ndarray) -> Dict[str, np.ndarray]:
    """Instance predictions made from the ground truth: shifted, grown, cut, relabelled, boxes on
    anything, a road prediction (skipped), scores with ties."""
    h, w = inst.shape
    values = [int(v) for v in np.unique(inst) if (v >= 1000 and v // 1000 in _THING_IDS) or v in _THING_IDS]
    masks, labels, scores = [], [], []
    for _ in range(12):
        kind = int(rng.integers(0, 4))
        if values and kind < 3:
            v = values[int(rng.integers(0, len(values)))]
            m = np.roll(inst == v, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
            if kind == 1:
                m |= np.roll(m, int(rng.integers(1, 6)), axis=1)
            if kind == 2:
                m &= rng.random(m.shape) < 0.8
            label = (v // 1000 if v >= 1000 else v) if rng.random() < 0.8 else int(rng.choice(_THING_IDS))
        else:
            m = np.zeros((h, w), bool)
            y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
            m[y:y + int(rng.integers(4, 30)), x:x + int(rng.integers(4, 50))] = True
            label = int(rng.choice(_THING_IDS + [7]))
        masks.append(m)
        labels.append(label)
        scores.append(int(rng.integers(0, 16)) / 16)  # exact in float32 too; ties
    return {"masks": np.stack(masks), "labels": np.array(labels, np.int64), "scores": np.array(scores)}


def _panoptic(rng, inst: np.ndarray) -> Dict[str, Any]:
    """A panoptic prediction made from the ground truth: segments renumbered, shifted, one
    dropped to VOID, one relabelled, one split, a box of a random category."""
    ids = np.zeros(inst.shape, np.int64)
    segments: Dict[int, int] = {}
    for k, v in enumerate(int(v) for v in np.unique(inst)):
        label = v // 1000 if v >= 1000 else v
        if label in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30):  # void / ignored: left VOID
            continue
        seg = 3 * k + 5
        ids[inst == v] = seg
        segments[seg] = label
    ids = np.roll(ids, (int(rng.integers(-2, 3)), int(rng.integers(-4, 5))), (0, 1))
    keys = list(segments)
    cats = sorted(set(segments.values()))
    if keys:
        ids[ids == keys[int(rng.integers(0, len(keys)))]] = 0
        segments[keys[int(rng.integers(0, len(keys)))]] = int(rng.choice(cats))
        v = keys[int(rng.integers(0, len(keys)))]
        ys, xs = np.nonzero(ids == v)
        if xs.size:
            ids[(ids == v) & (np.arange(ids.shape[1])[None, :] < np.median(xs))] = 70001
            segments[70001] = segments[v]
    h, w = ids.shape
    y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 20))
    ids[y:y + int(rng.integers(3, 10)), x:x + int(rng.integers(3, 20))] = 80001
    segments[80001] = int(rng.choice([7, 8, 11, 21, 24, 26]))
    present = set(np.unique(ids).tolist())
    return {"ids": ids, "segments": [{"id": s, "category_id": c} for s, c in segments.items() if s in present]}


def build(base: str, frames: int = 6, seed: int = 0, size=(128, 64)) -> Data:
    """A val split of ``frames`` frames under ``base``/gt, predictions of every task as arrays,
    and the same predictions written as submissions (``Data.evaluate(task)``)."""
    root = os.path.join(base, "gt")
    generate(root, splits={"val": frames}, size=size, photos=False, seed=seed)
    ds = cio.open(root, split="val")
    data = Data(root, [f.id for f in ds])
    rng = np.random.default_rng(seed)
    records = []
    for frame in ds:
        fid, name = frame.id, os.path.basename(frame.id)
        inst = frame.instance_ids()
        data.gt[fid] = inst
        data.semantic[fid] = _semantic_noise(rng, frame.label_ids(), _SEM_IDS)
        write_file(base, f"sem/{frame.city}/{name}_pred.png", encode_png(data.semantic[fid].astype(np.uint8)))
        data.train[fid] = _semantic_noise(rng, np.where(frame.train_ids() == 255, 0, frame.train_ids()),
                                          np.arange(19))
        write_file(base, f"train/{name}.png", encode_png(data.train[fid].astype(np.uint8)))
        pred = data.instance[fid] = _instances(rng, inst)
        lines = []
        for k, (m, label, score) in enumerate(zip(pred["masks"], pred["labels"], pred["scores"])):
            write_file(base, f"inst/{name}/m{k}.png", encode_png(m.astype(np.uint8) * 255))
            lines.append(f"{name}/m{k}.png {int(label)} {float(score)!r}")
        write_file(base, f"inst/{name}_pred.txt", ("\n".join(lines) + "\n").encode())
        pan = data.panoptic[fid] = _panoptic(rng, inst)
        write_file(base, f"pan/pred/{name}.png", encode_png(_rgb(pan["ids"])))
        records.append({"image_id": name, "file_name": f"{name}.png", "segments_info": pan["segments"]})
    with open(os.path.join(base, "pan", "pred.json"), "w") as f:
        json.dump({"annotations": records}, f)
    data.submissions = {"semantic": (os.path.join(base, "sem"), {}), "train": (os.path.join(base, "train"),
                                                                               {"pred_train_ids": True}),
                        "instance": (os.path.join(base, "inst"), {}),
                        "panoptic": (os.path.join(base, "pan", "pred.json"), {})}
    return data


def same(got, want) -> None:
    """The same result: the official JSON (NaN included) and tables."""
    assert type(got) is type(want)
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())
    assert str(got) == str(want)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build(str(tmp_path_factory.mktemp("metrics")))


@pytest.fixture(scope="module")
def expected(data):
    out = {task: data.evaluate(task) for task in ("semantic", "instance", "panoptic")}
    out["train"] = data.evaluate("train")
    # The data scores something, not all or nothing.
    assert 0.2 < out["semantic"].average_classes < 0.95 and 0.2 < out["semantic"].average_inst_classes < 0.95
    assert 0.1 < out["instance"].ap < 0.9 and 0.1 < out["panoptic"].pq < 0.9
    return out


def _target(data: Data, fid: str, form: str):
    """One frame's target in one of the forms update() takes; (target, keyword arguments)."""
    if form == "frame":
        return cio.open(data.root, split="val")[fid], {}
    if form == "array":
        return data.gt[fid], {"id": fid}
    if form == "pair":
        return (fid, data.gt[fid]), {}
    return {"id": fid, "split": "val", "instance_ids": data.gt[fid]}, {}


FORMS = ("frame", "array", "pair", "sample")


@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_one_metric_over_all_frames_equals_evaluate(data, expected, task):
    metric = METRICS[task]()
    for k, fid in enumerate(data.ids):
        target, kw = _target(data, fid, FORMS[k % len(FORMS)])
        metric.update(data.prediction(task, fid), target, **kw)
    assert len(metric) == len(data.ids)
    same(metric.compute(), expected[task])


@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(draw=st.data())
def test_any_partition_and_order_equals_evaluate(data, expected, task, draw):
    n = len(data.ids)
    order = draw.draw(st.permutations(range(n)), label="update order")
    parts = draw.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n), label="part of each frame")
    forms = draw.draw(st.lists(st.sampled_from(FORMS), min_size=n, max_size=n), label="target forms")
    merge_order = draw.draw(st.permutations(range(4)), label="merge order")
    through_bytes = draw.draw(st.lists(st.booleans(), min_size=4, max_size=4), label="through bytes")
    metrics = [METRICS[task]() for _ in range(4)]
    for k in order:
        fid = data.ids[k]
        target, kw = _target(data, fid, forms[k])
        metrics[parts[k]].update(data.prediction(task, fid), target, **kw)
    metrics = [type(m).from_bytes(m.to_bytes()) if b else m for m, b in zip(metrics, through_bytes)]
    total = metrics[merge_order[0]]
    for j in merge_order[1:]:
        total = total.merge(metrics[j])
    assert len(total) == n
    same(total.compute(), expected[task])


def test_train_ids_are_mapped_as_evaluate_maps_them(data, expected):
    metric = SemanticMetric(ids="train")
    for fid in reversed(data.ids):
        metric.update(data.train[fid], cio.open(data.root, split="val")[fid])
    same(metric.compute(), expected["train"])
    with pytest.warns(UserWarning, match="ids='train'"):  # the same read as label ids: the hint
        plain = SemanticMetric()
        for fid in data.ids:
            plain.update(data.train[fid], data.gt[fid], id=fid)
        plain.compute()


def test_tensors_and_float_masks(data, expected):
    torch = pytest.importorskip("torch", reason="tensors need PyTorch (extra torch)")
    sem, inst, pan = SemanticMetric(), InstanceMetric(), PanopticMetric()
    for fid in data.ids:
        gt = torch.from_numpy(data.gt[fid].astype(np.int32))
        sem.update(torch.from_numpy(data.semantic[fid]), gt, id=fid)
        p = data.instance[fid]
        probs = torch.from_numpy(p["masks"]).float()[:, None] * 0.75 + 0.125  # N×1×H×W, 0.875 / 0.125
        inst.update({"masks": probs, "labels": torch.from_numpy(p["labels"]),
                     "scores": torch.from_numpy(p["scores"]).float()}, gt, id=fid)
        q = data.panoptic[fid]
        pan.update({"ids": torch.from_numpy(q["ids"]), "segments_info": q["segments"]}, gt, id=fid)
    same(sem.compute(), expected["semantic"])
    same(inst.compute(), expected["instance"])
    same(pan.compute(), expected["panoptic"])


def test_a_label_id_map_is_a_ground_truth_without_instances(data, expected):
    metric = SemanticMetric()
    for fid in data.ids:
        label_ids = np.where(data.gt[fid] >= 1000, data.gt[fid] // 1000, data.gt[fid]).astype(np.uint8)
        metric.update(data.semantic[fid], label_ids, id=fid)
    got = metric.compute()
    assert got.class_scores == pytest.approx(expected["semantic"].class_scores, nan_ok=True)
    assert np.array_equal(got.confusion_matrix, expected["semantic"].confusion_matrix)
    # No instance: iIoU weighs none (0 with false positives, as evaluate() on such a tree).
    assert all(np.isnan(v) or v == 0 for v in got.class_inst_scores.values())
    assert got.class_inst_scores["car"] == 0


def test_distances_come_from_the_frames_parts(tmp_path):
    small = build(str(tmp_path), frames=2, seed=4, size=(256, 128))
    rng = np.random.default_rng(1)
    for fid, inst in small.gt.items():  # disparity and camera for every frame: AP100m, AP50m
        h, w = inst.shape
        depth = np.linspace(5, 200, w)[None, :] * np.ones((h, 1)) * rng.uniform(0.5, 1.5)
        p = np.round(0.2 * 2000 / depth * 256 + 1).astype(np.uint16)
        p[rng.random(p.shape) < 0.3] = 0
        write_file(small.root, f"disparity/val/{fid}_disparity.png", encode_png(p))
        write_file(small.root, f"camera/val/{fid}_camera.json", json.dumps(
            {"extrinsic": {"baseline": 0.2, "pitch": 0.0, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.2},
             "intrinsic": {"fx": 2000.0, "fy": 2000.0, "u0": w / 2, "v0": h / 2}}).encode())
    want = small.evaluate("instance")
    assert want.distance_available
    metric = InstanceMetric()
    for frame in cio.open(small.root, split="val"):
        metric.update(small.instance[frame.id], frame)
    same(metric.compute(), want)
    arrays = InstanceMetric()  # an array target has no parts: no distances
    for fid in small.ids:
        arrays.update(small.instance[fid], small.gt[fid], id=fid)
    assert not arrays.compute().distance_available


def test_panoptic_ground_truth_files_give_the_same_numbers(tmp_path):
    from cityscapes_io.prepare import prepare

    small = build(str(tmp_path), frames=3, seed=2)
    prepare(small.root, kinds=["panoptic"])  # evaluate() now reads the official panoptic files
    want = small.evaluate("panoptic")
    metric = PanopticMetric()
    for frame in cio.open(small.root, split="val"):
        metric.update(small.panoptic[frame.id], frame)
    same(metric.compute(), want)


# -- the state ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_state_pickles_and_round_trips_as_bytes(data, expected, task):
    metric = METRICS[task]()
    for fid in data.ids:
        metric.update(data.prediction(task, fid), data.gt[fid], id=fid)
    blob = metric.to_bytes()
    per_frame = len(blob) / len(data.ids)
    assert per_frame < 4000, per_frame  # no pixels: statistics only
    same(type(metric).from_bytes(blob).compute(), expected[task])
    same(pickle.loads(pickle.dumps(metric)).compute(), expected[task])
    assert type(metric).from_bytes(blob).to_bytes() == blob
    for bad in (blob[:-3], blob[:20], b"nonsense" * 4, blob + b"\x00"):
        with pytest.raises(ValueError):
            type(metric).from_bytes(bad)
    other = SemanticMetric if task != "semantic" else InstanceMetric
    with pytest.raises(ValueError, match="not of a"):
        other.from_bytes(blob)


def test_reset_and_empty_metrics(data, expected):
    metric = SemanticMetric()
    metric.update(data.semantic[data.ids[0]], data.gt[data.ids[0]], id=data.ids[0])
    metric.reset()
    assert len(metric) == 0
    for fid in data.ids:
        metric.update(data.semantic[fid], data.gt[fid], id=fid)
    same(metric.compute(), expected["semantic"])
    assert np.isnan(SemanticMetric().compute().average_classes)
    assert SemanticMetric().merge(SemanticMetric()).compute().frames == 0


def test_sync_without_a_process_group_does_nothing(data, expected):
    metric = PanopticMetric()
    for fid in data.ids:
        metric.update(data.panoptic[fid], data.gt[fid], id=fid)
    metric.sync()
    same(metric.compute(), expected["panoptic"])


# -- what is refused ------------------------------------------------------------------------------------
def test_a_frame_is_counted_once(data):
    fid = data.ids[0]
    one = SemanticMetric()
    one.update(data.semantic[fid], data.gt[fid], id=fid)
    with pytest.raises(ValueError, match="counted already"):
        one.update(data.semantic[fid], cio.open(data.root, split="val")[fid])  # the same frame as a Frame
    with pytest.raises(ValueError, match="counted already"):
        one.update(data.semantic[fid], data.gt[fid], id=os.path.basename(fid))  # its base name
    two = SemanticMetric()
    two.update(data.semantic[fid], data.gt[fid], id=fid)
    two.update(data.semantic[data.ids[1]], data.gt[data.ids[1]], id=data.ids[1])
    with pytest.raises(ValueError, match="counted twice"):
        one.merge(two)
    assert len(one) == 1  # unchanged by the refused merge
    other_split = SemanticMetric()
    other_split.update(data.semantic[fid], data.gt[fid], id=fid, split="test")
    assert len(one.merge(other_split)) == 2  # another split: another frame


def test_merge_refuses_other_kinds_and_options():
    with pytest.raises(TypeError):
        SemanticMetric().merge(InstanceMetric())  # type: ignore[arg-type]
    cats = [{"id": 7, "name": "road", "isthing": 0}, {"id": 26, "name": "car", "isthing": 1}]
    with pytest.raises(ValueError, match="different options"):
        PanopticMetric().merge(PanopticMetric(categories=cats))
    with pytest.raises(ValueError, match="ids must be"):
        SemanticMetric(ids="trainIds")


def test_problems_are_refused_with_their_reasons(data):
    fid = data.ids[0]
    gt = data.gt[fid]
    h, w = gt.shape
    sem = SemanticMetric()
    with pytest.raises(cio.CityscapesIOError, match=r"size 10x5, the ground truth"):
        sem.update(np.zeros((5, 10), np.int64), gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="not label ids"):
        sem.update(np.full(gt.shape, 40), gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="negative"):
        sem.update(np.full(gt.shape, -1), gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="argmax"):
        sem.update(np.zeros(gt.shape, np.float32), gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="train id 255"):
        SemanticMetric(ids="train").update(np.full(gt.shape, 255), gt, id=fid)
    with pytest.raises(TypeError, match="frame's id"):
        sem.update(data.semantic[fid], gt)
    assert len(sem) == 0  # nothing counted by a refused update
    inst = InstanceMetric()
    p = data.instance[fid]
    with pytest.raises(cio.CityscapesIOError, match="label id 99 is not in the official"):
        inst.update({**p, "labels": np.full(p["labels"].shape, 99)}, gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="not a finite number"):
        inst.update({**p, "scores": np.full(p["scores"].shape, np.nan)}, gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="masks of shape"):
        inst.update({**p, "masks": p["masks"][:, :-1]}, gt, id=fid)
    with pytest.raises(ValueError, match="not train ids"):
        InstanceMetric(ids="train").update(p, gt, id=fid)
    pan = PanopticMetric()
    q = data.panoptic[fid]
    with pytest.raises(cio.CityscapesIOError, match="unknown category ids"):
        pan.update({"ids": q["ids"], "segments": [{**s, "category_id": 99} for s in q["segments"]]}, gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="segments_info does not list"):
        pan.update({"ids": q["ids"], "segments": q["segments"][1:]}, gt, id=fid)
    with pytest.raises(cio.CityscapesIOError, match="absent from the PNG"):
        pan.update({"ids": q["ids"], "segments": q["segments"] + [{"id": 999, "category_id": 7}]}, gt, id=fid)
    with pytest.raises(ValueError, match="not H×W"):
        pan.update(q, gt[None], id=fid)
    train_frame = cio.open(data.root, split="val").to_train_ids()[fid]
    with pytest.raises(ValueError, match="train ids"):
        sem.update(data.semantic[fid], train_frame)
    assert len(inst) == len(pan) == 0
