"""cityscapes_io.evaluate, task "panoptic": hand-computed small cases (always), the problems of a
submission, processes, ground truth from the official files or derived on the fly, and the
official evalPanopticSemanticLabeling run in its own environment as the oracle (opt-in)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import CITYSCAPESSCRIPTS, needs_cityscapesscripts, traced_peak, write_file, write_frame

import cityscapes_io as cio
from cityscapes_io.errors import CityscapesIOError
from cityscapes_io.png import decode_rgb, encode_png
from cityscapes_io.prepare import prepare
from cityscapes_io.testing import generate

ORACLE = CITYSCAPESSCRIPTS
needs_oracle = needs_cityscapesscripts

FRAME = "aachen/aachen_000000_000019"
IMAGE = "aachen_000000_000019"
# instanceIds: void row, road (7), one car (26001, 8 px), a crowd of cars (26, 8 px), one person
# (24001, 4 px) and a parking patch (9: ignored in evaluation, VOID in the panoptic ground truth).
GT = np.full((6, 10), 7, np.uint16)
GT[0, :] = 0
GT[1:3, 0:4] = 26001
GT[4:6, 6:10] = 26
GT[4:6, 0:2] = 24001
GT[5, 4] = 9
VOID = (GT == 0) | (GT == 9)
# The perfect prediction: segment ids and their categories.
PERFECT = {7: 1, 26001: 2, 26: 3, 24001: 4}
CATS = {1: 7, 2: 26, 3: 26, 4: 24}


def _perfect_ids() -> np.ndarray:
    ids = np.zeros(GT.shape, np.int64)
    for v, seg in PERFECT.items():
        ids[GT == v] = seg
    return ids


def _rgb(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def _write_pred(folder: str, anns, name: str = "pred") -> str:
    """A COCO panoptic submission: ``anns`` maps image ids to (segment id array, {id: category})."""
    records = []
    for image_id, (ids, cats) in anns.items():
        records.append({"image_id": image_id, "file_name": f"{image_id}.png",
                        "segments_info": [{"id": int(i), "category_id": int(c)} for i, c in cats.items()]})
        write_file(folder, f"{name}/{image_id}.png", encode_png(_rgb(ids)))
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"annotations": records}, f)
    return path


def _eval(tmp_path, ids, cats=None, gt=GT):
    root = str(tmp_path / "gt")
    if not os.path.exists(root):
        write_frame(root, "val", FRAME, gt, photo=False)
    pred = _write_pred(str(tmp_path / "sub"), {IMAGE: (ids, CATS if cats is None else cats)})
    return cio.evaluate(root, pred, task="panoptic")


def _car(r):
    return r.tp[26], r.fp[26], r.fn[26], r.per_class[26]


def test_perfect_prediction_scores_one(tmp_path):
    r = _eval(tmp_path, _perfect_ids())
    assert r.all == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 3}
    assert r.things["n"] == 2 and r.stuff["n"] == 1
    # The crowd predicted as a car: not matched, not an FP (all of it on the crowd region).
    assert (r.tp[26], r.fp[26], r.fn[26]) == (1, 0, 0)
    assert r.per_class[8] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}  # sidewalk: nothing, not averaged
    d = r.to_dict()
    assert list(d) == ["All", "Stuff", "Things", "per_class"]
    assert list(d["per_class"])[:3] == ["7", "8", "11"] and len(d["per_class"]) == 19
    text = str(r)
    assert text.splitlines()[0] == "Category      |    PQ     SQ     RQ"
    assert "car           | 100.0  100.0  100.0" in text and "All           | 100.0  100.0  100.0     3" in text
    assert repr(r) == "PanopticResult(frames=1, PQ=1.0000, SQ=1.0000, RQ=1.0000)"


def test_split_segment(tmp_path):
    ids = _perfect_ids()
    ids[1:3, 0] = 5  # 2 of the car's 8 px: a second car segment (an FP), the rest IoU 6/8
    r = _eval(tmp_path, ids, {**CATS, 5: 26})
    tp, fp, fn, scores = _car(r)
    assert (tp, fp, fn) == (1, 1, 0)
    assert scores == pytest.approx({"pq": 0.75 / 1.5, "sq": 0.75, "rq": 1 / 1.5})
    assert r.iou[26] == 0.75


def test_union_leaves_out_void_and_half_void_is_not_an_fp(tmp_path):
    ids = _perfect_ids()
    ids[0, 0:4] = 2  # the car segment spills over 4 VOID px: IoU still 8/8
    ids[0, 5:9] = 5  # a person on 4 VOID px of its 5: not an FP
    ids[1, 8] = 5
    ids[0, 9] = 6  # a person wholly on VOID (the parking patch counts as VOID too): not an FP
    ids[5, 4] = 6
    r = _eval(tmp_path, ids, {**CATS, 5: 24, 6: 24})
    assert _car(r)[:3] == (1, 0, 0) and r.iou[26] == 1.0
    assert (r.tp[24], r.fp[24], r.fn[24]) == (1, 0, 0)
    assert r.tp[7] == 1 and r.iou[7] < 1  # road lost a pixel


def test_exactly_half_void_is_an_fp(tmp_path):
    ids = _perfect_ids()
    ids[0, 5:7] = 5  # 2 of 4 px on VOID: not more than half
    ids[1, 5:7] = 5
    r = _eval(tmp_path, ids, {**CATS, 5: 24})
    assert (r.tp[24], r.fp[24], r.fn[24]) == (1, 1, 0)


def test_crowd(tmp_path):
    ids = _perfect_ids()
    ids[3, 6:10] = 5  # a car: 4 px of road above the crowd, 8 px on the car crowd -> not an FP
    ids[4:6, 6:10] = 5
    ids[3, 4:6] = 6  # a person on 2 px of road and 2 px of the car crowd: an FP (another category)
    ids[4, 4:6] = 6
    ids[4, 6:8] = 6
    r = _eval(tmp_path, ids, {1: 7, 2: 26, 4: 24, 5: 26, 6: 24})
    assert _car(r)[:3] == (1, 0, 0)  # and the crowd is no FN
    assert (r.tp[24], r.fp[24], r.fn[24]) == (1, 1, 0)


def test_iou_exactly_half_is_no_match(tmp_path):
    ids = _perfect_ids()
    ids[1:3, 2:4] = 1  # the car predicted on 4 of its 8 px only: IoU 0.5
    r = _eval(tmp_path, ids)
    assert _car(r)[:3] == (0, 1, 1) and r.per_class[26]["pq"] == 0.0
    ids[1, 2] = 2  # 5 of 8: a match
    r = _eval(tmp_path, ids)
    assert _car(r)[:3] == (1, 0, 0) and r.iou[26] == 5 / 8


def test_wrong_category_is_no_match(tmp_path):
    r = _eval(tmp_path, _perfect_ids(), {**CATS, 2: 27})  # the car predicted as a truck
    assert _car(r)[:3] == (0, 0, 1) and (r.tp[27], r.fp[27], r.fn[27]) == (0, 1, 0)
    assert r.things["n"] == 3


FRAMES = ["aachen/aachen_000000_%06d" % k for k in range(1, 8)]


def test_problems(tmp_path):
    root = str(tmp_path / "gt")
    for f in FRAMES:
        write_frame(root, "val", f, GT, photo=False)
    base = [f.split("/")[1] for f in FRAMES]
    ok = (_perfect_ids(), CATS)
    bad_png_id = _perfect_ids()
    bad_png_id[0, 0] = 77
    anns = {base[0]: ok, base[1]: ok, base[2]: (bad_png_id, CATS), base[3]: (_perfect_ids(), {**CATS, 9: 26}),
            base[4]: (_perfect_ids(), {**CATS, 2: 99}), base[5]: (_perfect_ids()[:5], CATS),
            "aachen_000000_000099": ok}
    sub = str(tmp_path / "sub")
    pred = _write_pred(sub, anns)
    os.remove(os.path.join(sub, "pred", base[1] + ".png"))
    problems = cio.check_predictions(root, pred, task="panoptic")
    text = "\n".join(problems)
    assert len(problems) == 7, text
    assert "annotation of image aachen_000000_000099 matches no ground-truth frame" in text
    assert f"no prediction for frame {FRAMES[6]}" in text
    assert f"pred/{base[1]}.png" in text
    assert f"pred/{base[2]}.png: segment ids in the PNG that segments_info does not list: 77" in text
    assert f"pred/{base[3]}.png: segments_info ids absent from the PNG: 9" in text
    assert f"annotation of image {base[4]}: unknown category ids [99]" in text
    assert f"pred/{base[5]}.png: size 10x5, the ground truth {FRAMES[5]} is 10x6" in text
    with pytest.raises(CityscapesIOError) as err:
        cio.evaluate(root, pred, task="panoptic")
    assert all(p in str(err.value) for p in problems)
    assert cio.check_predictions(root, pred, task="panoptic", workers=2) == problems
    big = _write_pred(str(tmp_path / "big"), {base[k]: ok for k in range(7)})
    with open(big) as f:
        doc = json.load(f)
    doc["annotations"][0]["segments_info"].append({"id": 1 << 24, "category_id": 26})
    with open(big, "w") as f:
        json.dump(doc, f)
    problems = cio.check_predictions(root, big, task="panoptic")
    assert (f"big/pred.json: annotation of image {base[0]}: segment id 16777216 cannot be a colour of the PNG "
            "(ids are 0..16777215)") in problems[0], problems
    with open(pred, "w") as f:
        f.write("{not json")
    problems = cio.check_predictions(root, pred, task="panoptic")
    assert len(problems) == 1 and "pred.json: not valid JSON" in problems[0]
    with open(pred, "w") as f:
        json.dump({"images": []}, f)
    assert "no list of 'annotations'" in cio.check_predictions(root, pred, task="panoptic")[0]


# -- synthetic data ---------------------------------------------------------------------------------
def _perturbed(root: str, out: str, seed: int = 0) -> str:
    """Predictions made from the official-layout panoptic ground truth under ``root``: shifted,
    a segment dropped to VOID, one relabelled, one split, a new box of a random category."""
    rng = np.random.default_rng(seed)
    with open(os.path.join(root, "gtFine", "cityscapes_panoptic_val.json")) as f:
        doc = json.load(f)
    cats = [c["id"] for c in doc["categories"]]
    anns = {}
    for ann in doc["annotations"]:
        with open(os.path.join(root, "gtFine", "cityscapes_panoptic_val", ann["file_name"]), "rb") as f:
            rgb = decode_rgb(f.read(), ann["file_name"]).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        ids = np.roll(ids, (int(rng.integers(-3, 4)), int(rng.integers(-6, 7))), (0, 1))
        seg = {s["id"]: s["category_id"] for s in ann["segments_info"]}
        keys = list(seg)
        h, w = ids.shape
        for k in rng.choice(len(keys), size=min(3, len(keys)), replace=False):
            kind = rng.integers(3)
            v = keys[k]
            if kind == 0:
                ids[ids == v] = 0
            elif kind == 1:
                seg[v] = int(rng.choice(cats))
            else:
                ys, xs = np.nonzero(ids == v)
                if ys.size:
                    ids[(ids == v) & (np.arange(w)[None, :] < np.median(xs))] = 70000 + k
                    seg[70000 + k] = seg[v]
        y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 40))
        ids[y:y + int(rng.integers(5, 20)), x:x + int(rng.integers(5, 40))] = 80000
        seg[80000] = int(rng.choice(cats))
        present = set(np.unique(ids).tolist())
        anns[ann["image_id"]] = (ids, {v: c for v, c in seg.items() if v in present})
    return _write_pred(out, anns, "cityscapes_panoptic_val")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A synthetic val split (4 frames, 512x256) with its official-layout panoptic files in a
    copy, and perturbed predictions."""
    base = tmp_path_factory.mktemp("panoptic")
    plain, prepared = str(base / "plain"), str(base / "prepared")
    generate(plain, splits={"val": 4}, size=(512, 256), photos=False, seed=3)
    shutil.copytree(plain, prepared)
    prepare(prepared, kinds=["panoptic"])
    pred = _perturbed(prepared, str(base / "results"), seed=5)
    return plain, prepared, pred


def test_gt_files_and_derived_agree_and_workers(synthetic):
    plain, prepared, pred = synthetic
    done = []
    derived = cio.evaluate(plain, pred, task="panoptic", progress=done.append)
    files = cio.evaluate(prepared, pred, task="panoptic")
    two = cio.evaluate(plain, pred, task="panoptic", workers=2)
    assert done == [1, 2, 3, 4]
    assert json.dumps(derived.to_dict()) == json.dumps(files.to_dict()) == json.dumps(two.to_dict())
    assert 0.2 < derived.all["pq"] < 0.95 and derived.things["n"] > 0 and derived.stuff["n"] > 0
    assert sum(derived.fp.values()) > 0 and sum(derived.fn.values()) > 0


@needs_oracle
def test_equal_to_the_official_script(synthetic, tmp_path):
    plain, _, pred = synthetic
    gt = str(tmp_path / "official")
    os.makedirs(gt)
    # The official ground truth made by the official csCreatePanopticImgs, from the plain tree.
    subprocess.run([ORACLE, "-c", "import sys; from cityscapesscripts.preparation.createPanopticImgs import "
                    "convert2panoptic as c; c(sys.argv[1], sys.argv[2], setNames=['val'])",
                    os.path.join(plain, "gtFine"), gt], check=True, capture_output=True, cwd=str(tmp_path))
    result = str(tmp_path / "result.json")
    subprocess.run([ORACLE, "-m", "cityscapesscripts.evaluation.evalPanopticSemanticLabeling",
                    "--gt-json-file", os.path.join(gt, "cityscapes_panoptic_val.json"),
                    "--prediction-json-file", pred, "--results_file", result],
                   check=True, capture_output=True, cwd=str(tmp_path))
    with open(result) as f:
        official = json.load(f)
    # Ours with the ground truth derived on the fly, and from the official script's files.
    with_files = str(tmp_path / "with_files")
    shutil.copytree(plain, with_files)
    for name in ("cityscapes_panoptic_val.json", "cityscapes_panoptic_val"):
        src, dst = os.path.join(gt, name), os.path.join(with_files, "gtFine", name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    for root in (plain, with_files):
        ours = cio.evaluate(root, pred, task="panoptic").to_dict()
        assert list(ours) == list(official)
        assert list(ours["per_class"]) == list(official["per_class"])
        for key in ("All", "Things", "Stuff"):
            assert ours[key]["n"] == official[key]["n"]
            for m in ("pq", "sq", "rq"):
                assert abs(ours[key][m] - official[key][m]) <= 1e-9, (key, m)
        for c, scores in official["per_class"].items():
            for m in ("pq", "sq", "rq"):
                assert abs(ours["per_class"][c][m] - scores[m]) <= 1e-9, (c, m)
    assert 0 < official["All"]["pq"] < 1


def test_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    peaks = {}
    for n in (4, 16):
        root = str(tmp_path / f"n{n}")
        generate(root, splits={"val": n}, size=(512, 256), photos=False, seed=3, distinct=4)
        prepare(root, kinds=["panoptic"])
        pred = _perturbed(root, str(tmp_path / f"results{n}"), seed=5)
        peaks[n] = traced_peak(cio.evaluate, root, pred, task="panoptic")
    # a frame's two id images are about 1 MB; holding 12 more frames would add 12 MB
    assert peaks[16] < peaks[4] + 4 * 2**20, peaks  # two frames at once in threads: one frame's worth of noise
