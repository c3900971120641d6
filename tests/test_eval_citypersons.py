"""``evaluate(gt, predictions, task="citypersons")``: the log-average miss rate of CityPersons'
four setups, on hand-computed cases (generated trees with CityPersons files written here), the
check-only problems, zips and the S3 server, the command line; and, opt-in, against the public
reference ``eval_MR_multisetup.py`` run in its own environment with an old numpy."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.errors import CityscapesIOError
from cityscapes_io.evaluation import TASKS, check_predictions, evaluate
from cityscapes_io.evaluation.citypersons import CityPersonsTask
from cityscapes_io.testing import generate

from conftest import upload_dir, write_file, zip_dir

SETUPS = ("Reasonable", "Small", "Heavy", "All")


@pytest.fixture(scope="module", autouse=True)
def _registered():
    """The task under its name, until evaluation/__init__.py registers it."""
    added = "citypersons" not in TASKS
    if added:
        TASKS["citypersons"] = CityPersonsTask()
    yield
    if added:
        del TASKS["citypersons"]


def ped(x, y, w, h, vis=None, label="pedestrian"):
    """A CityPersons object; ``vis``: the visible box (default the full box)."""
    return {"label": label, "instanceId": 0, "bbox": [x, y, w, h], "bboxVis": list(vis or [x, y, w, h])}


def make_gt(root, frames_objects, split="val"):
    """A generated tree of ``len(frames_objects)`` frames of ``split``, each given its CityPersons
    objects (in the dataset's frame order); returns the frame base names in that order."""
    generate(root, splits={split: len(frames_objects)}, size=(64, 32), photos=False)
    ids = [f.id for f in cio.open(root, split=split)]
    for fid, objects in zip(ids, frames_objects):
        write_file(root, f"gtBboxCityPersons/{split}/{fid}_gtBboxCityPersons.json",
                   json.dumps({"imgHeight": 1024, "imgWidth": 2048, "objects": objects}).encode())
    return [fid.split("/")[1] for fid in ids]


def det(image_id, box, score, **extra):
    return {"image_id": image_id, "bbox": list(box), "score": score, **extra}


def write_preds(path, dets):
    with open(path, "w") as f:
        json.dump(dets, f)
    return str(path)


def mr(*pairs):
    """exp(mean(log miss)) over the nine points given as (count, miss rate) pairs."""
    assert sum(n for n, _ in pairs) == 9
    if any(m == 0 for _, m in pairs):
        return 0.0
    return math.exp(sum(n * math.log(m) for n, m in pairs) / 9)


def check(result, expected):
    got = result.to_dict()
    assert list(got) == list(SETUPS)
    for k in SETUPS:
        if math.isnan(expected[k]):
            assert math.isnan(got[k]), (k, got)
        else:
            assert got[k] == pytest.approx(expected[k], abs=1e-12), (k, got)


# -- hand-computed cases ----------------------------------------------------------------------------
def test_perfect_detections_score_zero_everywhere(tmp_path):
    objects = [
        [ped(100, 100, 40, 100), ped(300, 100, 24, 60), ped(500, 100, 40, 100, vis=[500, 100, 40, 50]),
         ped(700, 100, 12, 30), ped(900, 100, 40, 100, label="rider"), ped(1200, 100, 200, 120, label="person group")],
        [ped(100, 200, 30, 75), ped(400, 200, 20, 50, vis=[400, 200, 20, 10])],
        [],
    ]
    names = make_gt(str(tmp_path / "gt"), objects)
    dets, score = [], 1.0
    for name, objs in zip(names, objects):
        for o in objs:
            if o["label"] == "pedestrian":
                score -= 0.05
                dets.append(det(name, o["bbox"], score))
    result = evaluate(str(tmp_path / "gt"), write_preds(tmp_path / "dt.json", dets), task="citypersons")
    check(result, {k: 0.0 for k in SETUPS})
    assert result.frames == 3 and result.detections == 6
    text = str(result)
    assert "Reasonable" in text and "Heavy" in text and "0.00%" in text


def test_one_miss_and_the_inclusive_height_bound(tmp_path):
    # h=60 detected, h=75 (Small's upper bound, inclusive) missed: recall 1/2 at every point.
    names = make_gt(str(tmp_path / "gt"), [[ped(100, 100, 24, 60), ped(300, 100, 30, 75)]])
    pred = write_preds(tmp_path / "dt.json", [det(names[0], [100, 100, 24, 60], 0.9)])
    check(evaluate(str(tmp_path / "gt"), pred, task="citypersons"),
          {"Reasonable": 0.5, "Small": 0.5, "Heavy": float("nan"), "All": 0.5})


def test_one_false_positive_per_image_at_known_scores(tmp_path):
    # Four frames, a pedestrian each (frame 1 has a second one, never detected): 5 regular objects.
    objects = [[ped(100, 100, 40, 100), ped(600, 100, 40, 100)]] + [[ped(100, 100, 40, 100)] for _ in range(3)]
    names = make_gt(str(tmp_path / "gt"), objects)
    tp_scores, fp_scores = (0.9, 0.8, 0.7, 0.6), (0.85, 0.65, 0.3, 0.2)
    dets = []
    for name, t, f in zip(names, tp_scores, fp_scores):
        dets += [det(name, [100, 100, 40, 100], t), det(name, [1500, 300, 40, 100], f)]
    # By score: TP FP TP TP FP TP FP FP; FPPI (4 images) 0 .25 .25 .25 .5 .5 .75 1; recall (/5)
    # .2 .2 .4 .6 .6 .8 .8 .8. Points 0.01..0.1778 read .2, 0.3162 reads .6, 0.5623 and 1 read .8.
    expected = mr((6, 0.8), (1, 0.4), (2, 0.2))
    result = evaluate(str(tmp_path / "gt"), write_preds(tmp_path / "dt.json", dets), task="citypersons")
    check(result, {"Reasonable": expected, "Small": float("nan"), "Heavy": float("nan"), "All": expected})
    assert np.allclose(result.recall["Reasonable"], [.2] * 6 + [.6, .8, .8])


def test_a_detection_inside_an_ignore_region_is_no_false_positive(tmp_path):
    # Ten frames (FPPI steps of 0.1); frame 1: three pedestrians, two detected, and an ignore region.
    region = ped(1000, 100, 200, 300, label="ignore")
    objects = [[ped(100, 100, 40, 100), ped(300, 100, 40, 100), ped(500, 100, 40, 100), region]] + [[]] * 9
    names = make_gt(str(tmp_path / "gt"), objects)
    found = [det(names[0], [100, 100, 40, 100], 0.9), det(names[0], [300, 100, 40, 100], 0.5)]
    inside = write_preds(tmp_path / "in.json", found + [det(names[0], [1050, 150, 40, 100], 0.7)])
    outside = write_preds(tmp_path / "out.json", found + [det(names[0], [1500, 150, 40, 100], 0.7)])
    nan = float("nan")
    check(evaluate(str(tmp_path / "gt"), inside, task="citypersons"),
          {"Reasonable": 1 / 3, "Small": nan, "Heavy": nan, "All": 1 / 3})
    # Outside: TP FP TP, FPPI 0 .1 .1, recall 1/3 1/3 2/3: four points read 1/3, five 2/3.
    expected = mr((4, 2 / 3), (5, 1 / 3))
    check(evaluate(str(tmp_path / "gt"), outside, task="citypersons"),
          {"Reasonable": expected, "Small": nan, "Heavy": nan, "All": expected})


def test_a_heavily_occluded_person_counts_only_in_heavy_and_all(tmp_path):
    occluded = ped(100, 100, 40, 100, vis=[100, 100, 40, 40])  # visibility 0.4, never detected
    names = make_gt(str(tmp_path / "gt"), [[occluded, ped(300, 100, 40, 100)]])
    pred = write_preds(tmp_path / "dt.json", [det(names[0], [300, 100, 40, 100], 0.9)])
    # Heavy: the visible one is ignored (its detection sits on it), the occluded one missed.
    check(evaluate(str(tmp_path / "gt"), pred, task="citypersons"),
          {"Reasonable": 0.0, "Small": float("nan"), "Heavy": 1.0, "All": 0.5})


def test_integer_ids_other_categories_and_the_images_mapping(tmp_path):
    names = make_gt(str(tmp_path / "gt"), [[ped(100, 100, 30, 75), ped(300, 100, 40, 100)], [ped(5, 5, 40, 100)]])
    dets = [det(1, [100, 100, 30, 75], 0.9, category_id=1), det(2, [5, 5, 40, 100], 0.8),
            det(1, [300, 100, 40, 100], 0.95, category_id=2)]  # category 2: not evaluated
    result = evaluate(str(tmp_path / "gt"), write_preds(tmp_path / "dt.json", dets), task="citypersons")
    check(result, {"Reasonable": 1 / 3, "Small": 0.0, "Heavy": float("nan"), "All": 1 / 3})
    assert result.detections == 2
    # The same with the ids of a COCO file's images (frames numbered backwards here).
    images = [{"id": 7, "file_name": f"val/{names[1]}_leftImg8bit.png"}, {"id": 9, "file_name": f"{names[0]}.png"}]
    mapped = [dict(d, image_id={1: 9, 2: 7}[d["image_id"]]) for d in dets]
    with open(tmp_path / "coco.json", "w") as f:
        json.dump({"images": images, "annotations": []}, f)
    again = evaluate(str(tmp_path / "gt"), write_preds(tmp_path / "m.json", mapped), task="citypersons",
                     images=str(tmp_path / "coco.json"))
    assert again.to_dict() == pytest.approx(result.to_dict(), nan_ok=True)
    inline = write_preds(tmp_path / "inline.json", {"images": images, "annotations": mapped})
    assert evaluate(str(tmp_path / "gt"), inline, task="citypersons").to_dict() == pytest.approx(
        result.to_dict(), nan_ok=True)


def test_a_dataset_of_persons_as_predictions(tmp_path):
    objects = [[ped(100, 100, 40, 100), ped(300, 100, 40, 100, label="rider")], [ped(50, 50, 24, 60)]]
    make_gt(str(tmp_path / "gt"), objects)
    pred_objects = [[ped(100, 100, 40, 100)], []]
    make_gt(str(tmp_path / "pred"), pred_objects)
    with pytest.warns(UserWarning, match="no score"):
        result = evaluate(str(tmp_path / "gt"), cio.open(str(tmp_path / "pred"), split="val"), task="citypersons")
    check(result, {"Reasonable": 0.5, "Small": 1.0, "Heavy": float("nan"), "All": 0.5})
    # The ground truth as its own prediction: perfect.
    with pytest.warns(UserWarning):
        same = evaluate(str(tmp_path / "gt"), cio.open(str(tmp_path / "gt"), split="val"), task="citypersons")
    check(same, {"Reasonable": 0.0, "Small": 0.0, "Heavy": float("nan"), "All": 0.0})


# -- problems -------------------------------------------------------------------------------------
def test_check_only_names_the_file_and_every_problem(tmp_path):
    names = make_gt(str(tmp_path / "gt"), [[ped(100, 100, 40, 100)], []])
    bad = [det("nowhere_000000_000001", [1, 1, 40, 100], 0.5), det(names[0], [1, 1, None, 100], 0.5),
           det(names[0], [1, 1, -4, 100], 0.5), det(names[1], [1, 1, 40, 100], "high"), det(3, [1, 1, 40, 100], 0.5)]
    pred = write_preds(tmp_path / "dt.json", bad)
    # A NaN or an overflowing number is refused with the file (our JSON reader refuses non-finite numbers).
    with open(tmp_path / "nan.json", "w") as f:
        f.write(json.dumps([det(names[0], [1, 1, float("nan"), 100], 0.5)]))
    (problem,) = check_predictions(str(tmp_path / "gt"), str(tmp_path / "nan.json"), task="citypersons")
    assert "nan.json" in problem and "NaN" in problem
    problems = check_predictions(str(tmp_path / "gt"), pred, task="citypersons")
    assert len(problems) == 5 and all("dt.json: detection" in p for p in problems)
    assert "no ground-truth frame" in problems[0] and "finite" in problems[1] and "negative size" in problems[2]
    assert "score" in problems[3] and "image_id 3" in problems[4]
    with pytest.raises(CityscapesIOError, match="5 problem"):
        evaluate(str(tmp_path / "gt"), pred, task="citypersons")
    # A frame without its CityPersons file is a problem of the ground truth, named.
    os.remove(os.path.join(str(tmp_path / "gt"), "gtBboxCityPersons", "val",
                           [f.id for f in cio.open(str(tmp_path / "gt"), split="val")][1] + "_gtBboxCityPersons.json"))
    good = write_preds(tmp_path / "ok.json", [det(names[0], [100, 100, 40, 100], 0.5)])
    problems = check_predictions(str(tmp_path / "gt"), good, task="citypersons")
    assert len(problems) == 1 and names[1] in problems[0] and "CityPersons" in problems[0]
    assert check_predictions(str(tmp_path / "gt"), str(tmp_path / "missing.json"), task="citypersons")


# -- storage and the command line -----------------------------------------------------------------
def _case(tmp_path):
    names = make_gt(str(tmp_path / "gt"), [[ped(100, 100, 40, 100), ped(300, 100, 40, 100)], [ped(5, 5, 24, 60)]])
    dets = [det(names[0], [100, 100, 40, 100], 0.9), det(names[1], [5, 5, 24, 60], 0.8),
            det(names[1], [900, 5, 24, 60], 0.7)]
    return str(tmp_path / "gt"), write_preds(tmp_path / "dt.json", dets)


def test_zip_and_s3_give_the_numbers_of_local_disk(tmp_path, s3):
    gt, pred = _case(tmp_path)
    local = evaluate(gt, pred, task="citypersons").to_dict()
    assert local["Reasonable"] == pytest.approx(1 / 3)  # TP TP FP over 3 pedestrians: recall 2/3 throughout
    archive = zip_dir(gt, str(tmp_path / "gt.zip"))
    assert evaluate(archive, pred, task="citypersons").to_dict() == pytest.approx(local, nan_ok=True)
    fs, options, bucket = s3
    upload_dir(fs, gt, f"{bucket}/gt")
    fs.pipe_file(f"{bucket}/pred/dt.json", open(pred, "rb").read())
    remote = evaluate(f"s3://{bucket}/gt", f"s3://{bucket}/pred/dt.json", task="citypersons",
                      storage_options=options, pred_storage_options=options)
    assert remote.to_dict() == pytest.approx(local, nan_ok=True)


def test_the_command_line(tmp_path, capsys):
    from cityscapes_io.cli import main

    gt, pred = _case(tmp_path)
    out = str(tmp_path / "result.json")
    assert main(["eval", gt, pred, "--task", "citypersons", "--json", out, "-q"]) == 0
    assert "Reasonable" in capsys.readouterr().out
    with open(out) as f:
        assert json.load(f)["Reasonable"] == pytest.approx(1 / 3)
    assert main(["eval", gt, pred, "--task", "citypersons", "--check-only", "-q"]) == 0


# -- the reference, opt-in ------------------------------------------------------------------------
REFERENCE = os.environ.get("CITYSCAPES_IO_CITYPERSONS_EVAL")
REFERENCE_PYTHON = os.environ.get("CITYSCAPES_IO_CITYPERSONS_PYTHON")

_DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from coco import COCO
from eval_MR_multisetup import COCOeval
values = []
def watch(frame, event, arg):
    if event == "return" and frame.f_code.co_name == "_summarize":
        values.append(arg)
sys.setprofile(watch)
with open(sys.argv[4], "w") as res_file:
    for id_setup in range(4):  # as eval_demo.py runs it: the ground truth loaded afresh per setup
        cocoGt = COCO(sys.argv[2])
        cocoDt = cocoGt.loadRes(sys.argv[3])
        cocoEval = COCOeval(cocoGt, cocoDt, "bbox")
        cocoEval.params.imgIds = sorted(cocoGt.getImgIds())
        cocoEval.evaluate(id_setup)
        cocoEval.accumulate()
        cocoEval.summarize(id_setup, res_file)
sys.setprofile(None)
print("RESULT " + json.dumps([float(v) for v in values]))
"""


def reference_gt(root, split="val"):
    """Our ground truth as the reference's GT JSON (the layout of CityPersons' val_gt.json: every
    object category 1, ``ignore`` 1 unless a pedestrian, ``height`` the full box's, ``vis_ratio``)."""
    images, anns = [], []
    for k, frame in enumerate(cio.open(root, split=split), 1):
        base = frame.id.split("/")[1]
        images.append({"id": k, "im_name": f"{base}_leftImg8bit.png", "height": 1024, "width": 2048})
        for p in frame.persons():
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": 1, "iscrowd": 0,
                         "ignore": int(p.label != "pedestrian"), "bbox": list(p.bbox), "vis_bbox": list(p.bbox_vis),
                         "height": p.bbox[3], "vis_ratio": p.visibility})
    return {"categories": [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "rider"},
                           {"id": 3, "name": "sitting person"}, {"id": 4, "name": "other person"},
                           {"id": 5, "name": "people group"}, {"id": 0, "name": "ignore region"}],
            "images": images, "annotations": anns}


def _random_case(rng, frames=12):
    """Persons and detections drawn at random: all labels, heights 10..200, occlusions, ignore
    regions; detections near the persons (shifted, rescaled), on ignore regions, and anywhere."""
    labels = ["pedestrian"] * 6 + ["rider", "sitting person", "person (other)", "person group", "ignore"]
    objects, dets = [], []
    for k in range(frames):
        objs = []
        for _ in range(rng.randint(0, 7)):
            h = rng.choice([rng.uniform(10, 200), rng.choice([20, 50, 75, 40, 93.75])])
            w = round(0.41 * h, 1) if rng.random() < 0.7 else rng.uniform(5, 120)
            x, y = rng.uniform(0, 1900), rng.uniform(0, 700)
            vis_h = h * rng.choice([1, 1, rng.uniform(0.1, 1), 0.65, 0.2])
            objs.append(ped(round(x, 1), round(y, 1), w, h, vis=[x, y, w, vis_h], label=rng.choice(labels)))
        objects.append(objs)
        found = []
        for o in objs:
            if rng.random() < 0.7:
                x, y, w, h = o["bbox"]
                s = rng.uniform(0.8, 1.2)
                found.append([x + rng.uniform(-8, 8), y + rng.uniform(-8, 8), w * s, h * s])
        for _ in range(rng.randint(0, 4)):
            h = rng.uniform(15, 220)
            found.append([rng.uniform(0, 1900), rng.uniform(0, 700), 0.41 * h, h])
        dets.append([(b, rng.choice([round(rng.random(), 2), rng.random()])) for b in found])
    return objects, dets


@pytest.mark.skipif(not (REFERENCE and REFERENCE_PYTHON),
                    reason="opt-in: set CITYSCAPES_IO_CITYPERSONS_EVAL to the folder of the public CityPersons "
                           "evaluation/eval_script (eval_MR_multisetup.py, coco.py; cvgroup-njust/CityPersons) and "
                           "CITYSCAPES_IO_CITYPERSONS_PYTHON to a python with numpy<1.18 (its np.linspace takes a "
                           "float count), scipy and matplotlib: python3.7 -m venv V; V/bin/pip install numpy==1.17.5 "
                           "scipy==1.4.1 matplotlib==3.1.3")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_the_reference(tmp_path, seed):
    rng = random.Random(seed)
    objects, frame_dets = _random_case(rng)
    root = str(tmp_path / "gt")
    names = make_gt(root, objects)
    dets = [det(name, b, s, category_id=1) for name, fd in zip(names, frame_dets) for b, s in fd]
    rng.shuffle(dets)
    pred = write_preds(tmp_path / "dt.json", dets)
    ours = evaluate(root, pred, task="citypersons").to_dict()
    # The reference's files: its GT JSON, and the detections with the integer ids of that JSON.
    gt_json = reference_gt(root)
    ids = {img["im_name"].replace("_leftImg8bit.png", ""): img["id"] for img in gt_json["images"]}
    with open(tmp_path / "gt_ref.json", "w") as f:
        json.dump(gt_json, f)
    write_preds(tmp_path / "dt_ref.json", [dict(d, image_id=ids[d["image_id"]]) for d in dets])
    with open(tmp_path / "driver.py", "w") as f:
        f.write(_DRIVER)
    run = subprocess.run([REFERENCE_PYTHON, str(tmp_path / "driver.py"), REFERENCE, str(tmp_path / "gt_ref.json"),
                          str(tmp_path / "dt_ref.json"), str(tmp_path / "results.txt")],
                         capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")][-1]
    theirs = json.loads(line[len("RESULT "):])
    assert len(theirs) == 4
    for name, value in zip(SETUPS, theirs):
        if value == -1:  # the reference's sentinel for a setup without regular objects
            assert math.isnan(ours[name])
        else:
            assert ours[name] == value, (name, ours, theirs)  # the same operations: the same bits
    assert sum(1 for v in theirs if 0 < v < 1) >= 2  # not vacuous: real miss rates
