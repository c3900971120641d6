"""cityscapes_io.evaluate, task "instance": hand-computed small cases (always), the problems of a
submission (API and command line), processes, prediction Datasets, distances from disparity, and
the official evalInstanceLevelSemanticLabeling run in its own environment as the oracle (opt-in)."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import CITYSCAPESSCRIPTS, needs_cityscapesscripts, traced_peak, write_file, write_frame

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.evaluation.instance import INSTANCE_LABELS, average_precision
from cityscapes_io.png import encode_png
from cityscapes_io.testing import generate

ORACLE = CITYSCAPESSCRIPTS
needs_oracle = needs_cityscapesscripts

FRAME = "aachen/aachen_000000_000019"
BASE = "aachen_000000_000019"
# The hand-made frame: road, void on top, two cars of 150 px, a person of 120 px, a group of
# cars (150 px) and a car of 40 px (below the minimum region size of 100).
GT = np.full((40, 60), 7, np.uint16)
GT[0:4, :] = 0
GT[5:15, 2:17] = 26001
GT[5:15, 20:35] = 26002
GT[20:35, 2:10] = 24001
GT[20:30, 40:55] = 26
GT[36:40, 40:50] = 26003


def box(y0, y1, x0, x1, shape=GT.shape):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _write_preds(preds_root, base, preds, txt=None):
    txt = txt or f"{base}_pred.txt"
    folder = os.path.dirname(txt)
    lines = []
    for k, (mask, label, conf) in enumerate(preds):
        write_file(preds_root, os.path.join(folder, f"{base}_masks/m{k}.png"), encode_png(mask.astype(np.uint8) * 255))
        lines.append(f"{base}_masks/m{k}.png {label} {conf}")
    write_file(preds_root, txt, ("\n".join(lines) + "\n").encode())


def _eval(tmp_path, preds, gt=GT):
    root, pred_root = str(tmp_path / "gt"), str(tmp_path / "pred")
    write_frame(root, "val", FRAME, gt, photo=False)
    _write_preds(pred_root, BASE, preds)
    return cio.evaluate(root, pred_root, task="instance")


PERFECT = [(GT == 26001, 26, 0.9), (GT == 26002, 26, 0.8), (GT == 24001, 24, 0.7)]


def test_perfect_predictions_score_one(tmp_path):
    r = _eval(tmp_path, PERFECT)
    d = r.to_dict()
    assert d["averages"]["classes"]["car"] == {"ap": 1.0, "ap50%": 1.0}
    assert d["averages"]["classes"]["person"]["ap"] == 1.0
    assert math.isnan(d["averages"]["classes"]["rider"]["ap"])
    assert d["averages"]["allAp"] == d["averages"]["allAp50%"] == 1.0
    assert d["instLabels"] == INSTANCE_LABELS == ["person", "rider", "car", "truck", "bus", "train", "motorcycle",
                                                  "bicycle"]
    assert np.array(d["resultApMatrix"]).shape == (1, 8, 10)
    assert d["minRegionSizes"] == [100, 1000, 1000] and d["distanceThresholds"][1:] == [100.0, 50.0]
    assert "allAp100m" not in d["averages"] and math.isnan(r.ap_100m) and not r.distance_available
    assert "average        :          1.000          1.000" in str(r)
    assert repr(r) == "InstanceResult(frames=1, AP=1.0000, AP50=1.0000)"


def test_a_missed_instance_halves_the_ap(tmp_path):
    r = _eval(tmp_path, PERFECT[:1] + PERFECT[2:])
    assert r.class_ap["car"] == 0.5 and r.class_ap["person"] == 1.0  # precision 1 up to recall 1/2
    assert r.ap == 0.75


def test_a_false_positive_by_its_confidence(tmp_path):
    fp = box(16, 19, 20, 60)  # 120 px of road
    high = _eval(tmp_path / "high", PERFECT + [(fp, 26, 0.95)])
    # Scores 0.8 T, 0.9 T, 0.95 F: (p, r) = (2/3, 1), (1/2, 1/2), (0, 0) and (1, 0); steps 1/4, 1/2, 1/4, 0.
    assert high.class_ap["car"] == pytest.approx(2 / 3 * 0.25 + 0.5 * 0.5, abs=1e-15)
    low = _eval(tmp_path / "low", PERFECT + [(fp, 26, 0.5)])
    assert low.class_ap["car"] == 1.0  # below every true positive: no step of the curve loses
    assert low.class_ap["person"] == 1.0


def test_a_duplicate_match_is_a_false_positive():
    # One instance matched twice (0.9 and 0.6): a true positive at 0.9, a false one at 0.6.
    assert average_precision(np.array([1.0, 0.0]), np.array([0.9, 0.6]), 0) == 1.0
    assert average_precision(np.array([1.0, 0.0]), np.array([0.6, 0.9]), 0) == pytest.approx(0.25)
    assert average_precision(np.zeros(0), np.zeros(0), 3) == 0.0


def test_predictions_on_void_and_groups_are_ignored(tmp_path):
    on_void = box(0, 4, 0, 60)  # 240 px, all void
    on_group = box(20, 30, 40, 55)  # the group exactly: matches it, neither true nor false
    r = _eval(tmp_path, PERFECT + [(on_void, 26, 0.99), (on_group, 26, 0.98)])
    assert r.class_ap["car"] == 1.0
    # 170 px, 150 on the group: a match of the group (IoU 15/17) up to 0.85; at 0.9 and 0.95 its
    # ignored share 15/17 is not above the threshold: a false positive there (the official rule)
    r = _eval(tmp_path / "a", PERFECT + [(box(20, 30, 38, 55), 26, 0.97)])
    assert r.ap_matrix[0, 2, :8].tolist() == [1.0] * 8 and r.ap_matrix[0, 2, 8:].max() < 1
    mostly_road = box(20, 30, 45, 60)  # 150 px, 100 on the group: 2/3 ignored
    r = _eval(tmp_path / "b", PERFECT + [(mostly_road, 26, 0.99)])
    # a false positive for the thresholds >= 2/3 only (0.7 .. 0.95: 6 of 10)
    assert r.ap_matrix[0, 2, :4].tolist() == [1.0] * 4
    assert all(v < 1 for v in r.ap_matrix[0, 2, 4:])


def test_small_ground_truth_is_not_scored(tmp_path):
    small = GT == 26003
    r = _eval(tmp_path, PERFECT + [(small, 26, 0.99)])  # matches a segment: not a false positive
    assert r.class_ap["car"] == 1.0
    only = GT.copy()
    only[(only == 26001) | (only == 26002)] = 7
    r = _eval(tmp_path / "b", [(small, 26, 0.5)], gt=only)
    assert math.isnan(r.class_ap["car"])  # no scored car at all
    grown = box(34, 40, 40, 50)  # 60 px, 40 on the small car: not a match (IoU 2/3 > 0.5 but ...)
    r = _eval(tmp_path / "c", PERFECT + [(grown, 26, 0.99)])
    # IoU 40/60 matches the small car up to 0.65: ignored there; above, 2/3 of it is "ignore" pixels
    assert r.ap_matrix[0, 2, :4].tolist() == [1.0] * 4
    assert r.class_ap["car"] < 1.0


def test_other_labels_and_empty_masks_are_skipped(tmp_path):
    empty = np.zeros(GT.shape, bool)
    r = _eval(tmp_path, PERFECT + [(box(16, 19, 20, 60), 7, 0.99), (empty, 26, 0.99), (box(16, 19, 20, 60), -1, 1)])
    assert r.ap == 1.0


def _problem_tree(tmp_path):
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    for frame in ("aachen/aachen_000000_000019", "aachen/aachen_000001_000019", "bremen/bremen_000000_000019"):
        write_frame(root, "val", frame, GT, photo=False)
    write_file(preds, "a/aachen_000000_000019_pred.txt", b"m.png 26 0.5\nbad line\nm.png 40 0.5\n"
                                                          b"missing.png 26 0.5\nsmall.png 24 1\n../../x.png 26 1\n")
    write_file(preds, "a/m.png", encode_png((GT == 26001).astype(np.uint8)))
    write_file(preds, "a/small.png", encode_png(np.ones((3, 3), np.uint8)))
    write_file(preds, "stray_000009_000009.txt", b"")
    write_file(preds, "bremen_000000_000019.txt", b"")
    return root, preds


def test_problems_are_listed_with_file_names(tmp_path, capsys):
    root, preds = _problem_tree(tmp_path)
    problems = cio.check_predictions(root, preds, task="instance")
    text = "\n".join(problems)
    assert "stray_000009_000009.txt: matches no ground-truth frame" in text
    assert "no prediction for frame aachen/aachen_000001_000019" in text
    assert "aachen_000000_000019_pred.txt, line 2: expected '<mask path> <label id> <confidence>'" in text
    assert "line 3: label id 40 is not in the official label table" in text
    assert "missing.png" in text and "small.png: size 3x3, the ground truth is 60x40" in text
    assert "_pred.txt: line 6: path '../../x.png' leads outside its root (refused)" in text
    assert "a/missing.png: the mask does not exist (named in" in text
    assert len(problems) == 7
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.evaluate(root, preds, task="instance")
    assert all(p in str(info.value) for p in problems)
    assert main(["eval", root, preds, "--task", "instance", "--check-only"]) == 1
    out = capsys.readouterr()
    assert "stray_000009_000009.txt: matches no ground-truth frame" in out.out
    assert main(["eval", root, preds, "--task", "instance"]) == 1
    assert "label id 40 is not in the official label table" in capsys.readouterr().err


def test_cli_prints_the_table(tmp_path, capsys):
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    write_frame(root, "val", FRAME, GT, photo=False)
    _write_preds(preds, BASE, PERFECT)
    out = str(tmp_path / "r.json")
    assert main(["eval", root, preds, "--task", "instance", "--json", out]) == 0
    assert "car            :          1.000          1.000" in capsys.readouterr().out
    with open(out) as f:
        assert json.load(f)["averages"]["allAp"] == 1.0


def _random_tree(tmp_path, frames=4, seed=0, size=(256, 128), per_frame=25):
    """Synthetic ground truth and many random predictions: perturbed instances (shifted,
    grown, cut), duplicates, wrong classes, boxes on anything."""
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    generate(root, splits={"val": frames}, size=size, photos=False)
    rng = np.random.default_rng(seed)
    ds = cio.open(root, split="val")
    out = []
    for k, frame in enumerate(ds):
        inst = frame.instance_ids()
        h, w = inst.shape
        values = [int(v) for v in np.unique(inst) if v >= 1000 and 24 <= v // 1000 <= 33 or 24 <= v <= 33]
        items = []
        for _ in range(per_frame):
            kind = rng.integers(0, 4)
            if values and kind < 3:
                v = values[rng.integers(0, len(values))]
                m = inst == v
                m = np.roll(m, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
                if kind == 1:
                    m |= np.roll(m, int(rng.integers(1, 8)), axis=1)
                if kind == 2:
                    m &= rng.random(m.shape) < 0.8
                label = (v // 1000 if v >= 1000 else v) if rng.random() < 0.8 else int(rng.choice([24, 25, 26, 33]))
            else:
                y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
                m = box(y, y + int(rng.integers(4, 60)), x, x + int(rng.integers(4, 90)), (h, w))
                label = int(rng.choice([24, 25, 26, 27, 28, 31, 32, 33]))
            conf = round(float(rng.random()), 3) if rng.random() < 0.9 else 0.5  # ties too
            items.append((m, label, conf))
        base = os.path.basename(frame.id)
        _write_preds(preds, base, items, txt=f"{'deep/' if k % 2 else ''}{base}_pred.txt")
        out.append((frame.id, items))
    return root, preds, out


def test_workers_and_datasets_give_identical_results(tmp_path):
    root, preds, items = _random_tree(tmp_path, frames=4)
    done = []
    one = cio.evaluate(root, preds, task="instance", progress=done.append)
    two = cio.evaluate(root, preds, task="instance", workers=2)
    assert done == [1, 2, 3, 4]
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    assert 0 < one.ap < 1
    frames = []
    for frame_id, preds_of in items:
        instances = [cio.Instance.from_mask(m, label_id=label, score=conf) for m, label, conf in preds_of]
        frames.append(cio.Frame.from_arrays(id=frame_id, split="val", instances=instances))
    ds = cio.Dataset.from_iterable(frames)
    assert json.dumps(cio.evaluate(root, ds, task="instance").to_dict()) == json.dumps(one.to_dict())


def _add_distances(root, seed=0):
    """Disparity and camera files for every val frame: depth from 5 to 200 m, holes."""
    rng = np.random.default_rng(seed)
    for frame in cio.open(root, split="val"):
        h, w = frame.instance_ids().shape
        depth = np.linspace(5, 200, w)[None, :] * np.ones((h, 1)) * rng.uniform(0.5, 1.5)
        disp = 0.2 * 2000 / depth
        p = np.round(disp * 256 + 1).astype(np.uint16)
        p[rng.random(p.shape) < 0.3] = 0
        p[: h // 4, : w // 3] = 0  # a region without disparity
        write_file(root, f"disparity/val/{frame.id}_disparity.png", encode_png(p))
        write_file(root, f"camera/val/{frame.id}_camera.json",
                   json.dumps({"extrinsic": {"baseline": 0.2, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1,
                                             "yaw": -0.01, "z": 1.2},
                               "intrinsic": {"fx": 2000.0, "fy": 2000.0, "u0": w / 2, "v0": h / 2}}).encode())


def test_distances_from_disparity(tmp_path):
    root, preds, _ = _random_tree(tmp_path, frames=2, size=(512, 256))
    _add_distances(root)
    r = cio.evaluate(root, preds, task="instance")
    assert r.distance_available and r.ap_matrix.shape == (3, 8, 10)
    d = r.to_dict()
    assert {"allAp50m", "allAp100m", "allAp50%50m"} <= set(d["averages"])
    assert set(d["averages"]["classes"]["car"]) == {"ap", "ap50%", "ap50m", "ap100m", "ap50%50m"}
    assert "AP_100m" in str(r) and "AP100m=" in repr(r)


# -- the official script as the oracle --------------------------------------------------------------
_RUN_OFFICIAL = r"""
import json, sys
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as e
e.args.gtInstancesFile = sys.argv[1]
e.args.distanceAvailable = sys.argv[2] == "1"
e.args.quiet = True
e.args.colorized = False
sys.argv = [sys.argv[0]]
e.main()
"""

_MAKE_GT = r"""
import json, sys, glob
from cityscapesscripts.evaluation.instances2dict import instances2dict
files = sorted(glob.glob(sys.argv[1] + "/gtFine/val/*/*_gtFine_instanceIds.png"))
d = instances2dict(files)
extra = json.load(open(sys.argv[3]))
for key, labels in d.items():
    for name, insts in labels.items():
        for inst in insts:
            med, conf = extra[key.rsplit("/", 1)[1].replace("_gtFine_instanceIds.png", "")][str(inst["instID"])]
            inst["medDist"], inst["distConf"] = med, conf
json.dump(d, open(sys.argv[2], "w"))
"""


def _our_distances(root):
    """medDist / distConf of every segment as ours computes them, per frame base name."""
    from cityscapes_io.evaluation.instance import distances

    out = {}
    for frame in cio.open(root, split="val"):
        inst = frame.instance_ids()
        values = np.unique(inst)
        med, conf = distances(frame, inst, values)
        out[os.path.basename(frame.id)] = {str(int(v)): [float(m), float(c)] for v, m, c in zip(values, med, conf)}
    return out


def _run_official(tmp_path, root, preds, distance):
    copy = str(tmp_path / "official")
    shutil.copytree(os.path.join(root, "gtFine"), os.path.join(copy, "gtFine"))
    cache = str(tmp_path / "gtInstances.json")
    if distance:
        extra = str(tmp_path / "dist.json")
        with open(extra, "w") as f:
            json.dump(_our_distances(root), f)
        subprocess.run([ORACLE, "-c", _MAKE_GT, copy, cache, extra], check=True, capture_output=True,
                       cwd=str(tmp_path))
    env = {**os.environ, "CITYSCAPES_DATASET": copy, "CITYSCAPES_RESULTS": preds}
    subprocess.run([ORACLE, "-c", _RUN_OFFICIAL, cache, "1" if distance else "0"], env=env, check=True,
                   capture_output=True, cwd=str(tmp_path))
    with open(os.path.join(copy, "evaluationResults", "resultInstanceLevelSemanticLabeling.json")) as f:
        return json.load(f)


def _same(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{k}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-9, (path, a, b)
    else:
        assert a == b, path


@needs_oracle
def test_equal_to_the_official_script(tmp_path):
    root, preds, _ = _random_tree(tmp_path, frames=4, seed=1, size=(512, 256), per_frame=40)
    official = _run_official(tmp_path, root, preds, False)
    ours = cio.evaluate(root, preds, task="instance").to_dict()
    _same(ours, official)
    assert 0 < ours["averages"]["allAp"] < 1


@needs_oracle
def test_distance_aps_equal_to_the_official_script(tmp_path):
    root, preds, _ = _random_tree(tmp_path, frames=4, seed=2, size=(512, 256), per_frame=40)
    _add_distances(root, seed=2)
    official = _run_official(tmp_path, root, preds, True)
    ours = cio.evaluate(root, preds, task="instance").to_dict()
    _same(ours, official)
    assert not math.isnan(ours["averages"]["allAp100m"])


def test_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    peaks = {}
    for n in (4, 16):
        root, preds, _ = _random_tree(tmp_path / f"n{n}", frames=n, seed=1, size=(512, 256), per_frame=12)
        peaks[n] = traced_peak(cio.evaluate, root, preds, task="instance")
    # a frame's arrays are about 0.4 MB and its masks 1.5 MB; holding 12 more frames would add 20 MB
    assert peaks[16] < peaks[4] + 4 * 2**20, peaks  # two frames at once in threads: one frame's worth of noise


def test_one_bit_masks_are_read_as_the_official_reads_them(tmp_path):
    """Image.fromarray(bool mask).save() writes 1-bit PNGs: a common way to write masks."""
    from PIL import Image

    root, pred_root = str(tmp_path / "gt"), str(tmp_path / "pred")
    write_frame(root, "val", FRAME, GT, photo=False)
    lines = []
    for k, (mask, label, conf) in enumerate(PERFECT):
        path = os.path.join(pred_root, f"{BASE}_masks", f"m{k}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(mask).save(path)
        lines.append(f"{BASE}_masks/m{k}.png {label} {conf}")
    write_file(pred_root, f"{BASE}_pred.txt", ("\n".join(lines) + "\n").encode())
    assert Image.open(os.path.join(pred_root, f"{BASE}_masks", "m0.png")).mode == "1"
    got = cio.evaluate(root, pred_root, task="instance").to_dict()
    assert json.dumps(got) == json.dumps(_eval(tmp_path / "b", PERFECT).to_dict()) and got["averages"]["allAp"] == 1.0


def test_prediction_frames_are_released(tmp_path):
    root = str(tmp_path / "gt")
    write_frame(root, "val", FRAME, GT, photo=False)
    frames = [cio.Frame.from_arrays(id=FRAME, split="val",
                                    instances=[cio.Instance.from_mask(m, label_id=lab, id=k, score=c)
                                               for k, (m, lab, c) in enumerate(PERFECT)])]
    ds = cio.Dataset.from_iterable(frames)
    for task in ("instance", "semantic"):
        cio.evaluate(root, ds, task=task)
        assert frames[0]._cache == {}, task  # nothing decoded is kept past its frame
