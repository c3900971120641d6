"""cityscapes_io.evaluate, task "semantic": hand-computed small cases (always), the official
evalPixelLevelSemanticLabeling run in its own environment as the oracle (opt-in), processes,
the prediction problems and the command line."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import CITYSCAPESSCRIPTS, needs_cityscapesscripts, label_ids_of, traced_peak, write_file, write_frame

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.evaluation import AVG_CLASS_SIZE
from cityscapes_io.png import encode_png
from cityscapes_io.testing import generate

ORACLE = CITYSCAPESSCRIPTS
needs_oracle = needs_cityscapesscripts

FRAME = "aachen/aachen_000000_000019"
# instanceIds of the hand-made frame: void (0), parking (9, ignored in evaluation), road (7),
# sidewalk (8), one car (26001, 4 px) and one person (24001, 2 px).
GT = np.array([
    [0, 9, 7, 7, 7, 7],
    [7, 7, 7, 7, 7, 7],
    [26001, 26001, 26001, 26001, 8, 8],
    [24001, 24001, 8, 8, 8, 8],
], np.uint16)
# The prediction: void predicted car (not counted), parking predicted road (not a road FP), one
# road pixel predicted static (4, ignored class: a road FN), half the car predicted road, one
# sidewalk pixel predicted car.
PRED = np.array([
    [26, 7, 7, 7, 7, 7],
    [4, 7, 7, 7, 7, 7],
    [7, 7, 26, 26, 8, 26],
    [24, 24, 8, 8, 8, 8],
], np.uint8)


def _tree(tmp_path, pred, gt=GT, name="aachen_000000_000019_pred.png"):
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    write_frame(root, "val", FRAME, gt, photo=False)
    write_file(preds, f"sub/{name}", encode_png(pred))
    return root, preds


def test_perfect_prediction_scores_one(tmp_path):
    root, preds = _tree(tmp_path, label_ids_of(GT))
    r = cio.evaluate(root, preds)
    d = r.to_dict()
    for name in ("road", "sidewalk", "car", "person"):
        assert d["classScores"][name] == 1.0
    assert d["classInstScores"]["car"] == d["classInstScores"]["person"] == 1.0
    assert math.isnan(d["classScores"]["parking"]) and math.isnan(d["classScores"]["wall"])
    assert math.isnan(d["classInstScores"]["road"]) and math.isnan(d["classInstScores"]["truck"])
    assert d["averageScoreClasses"] == d["averageScoreInstClasses"] == 1.0
    assert d["averageScoreCategories"] == d["averageScoreInstCategories"] == 1.0
    assert math.isnan(d["categoryScores"]["void"]) and math.isnan(d["categoryScores"]["construction"])
    assert "Score Average : 1.000    1.000" in str(r)


def test_a_known_confusion_gives_the_hand_computed_scores(tmp_path):
    root, preds = _tree(tmp_path, PRED)
    d = cio.evaluate(root, preds).to_dict()
    m = np.array(d["confMatrix"])
    assert m.shape == (34, 34) and m.sum() == GT.size
    assert m[0, 26] == 1 and m[9, 7] == 1 and m[7, 4] == 1 and m[26, 7] == 2 and m[8, 26] == 1
    road, sidewalk, car, person = 9 / 12, 5 / 6, 2 / 5, 1.0  # tp / (tp + fp + fn), void and parking rows left out
    assert d["classScores"]["road"] == pytest.approx(road, abs=1e-15)
    assert d["classScores"]["sidewalk"] == pytest.approx(sidewalk, abs=1e-15)
    assert d["classScores"]["car"] == pytest.approx(car, abs=1e-15)
    assert d["classScores"]["person"] == person
    assert math.isnan(d["classScores"]["static"])  # predicted, but ignored in evaluation
    assert d["averageScoreClasses"] == pytest.approx((road + sidewalk + car + person) / 4, abs=1e-15)
    w = AVG_CLASS_SIZE["car"] / 4
    car_i = 2 * w / (2 * w + 1 + 2 * w)  # weighted tp / (weighted tp + fp + weighted fn)
    assert d["classInstScores"]["car"] == pytest.approx(car_i, abs=1e-15)
    assert d["classInstScores"]["person"] == 1.0
    assert d["averageScoreInstClasses"] == pytest.approx((car_i + 1) / 2, abs=1e-15)
    flat, vehicle = 14 / 18, 2 / 5
    assert d["categoryScores"]["flat"] == pytest.approx(flat, abs=1e-15)
    assert d["categoryScores"]["vehicle"] == pytest.approx(vehicle, abs=1e-15)
    assert d["categoryScores"]["human"] == 1.0
    assert d["averageScoreCategories"] == pytest.approx((flat + vehicle + 1) / 3, abs=1e-15)
    assert d["categoryInstScores"]["vehicle"] == pytest.approx(car_i, abs=1e-15)
    assert d["averageScoreInstCategories"] == pytest.approx((car_i + 1) / 2, abs=1e-15)
    assert d["priors"]["road"] == 10 / 24 and d["labels"]["bicycle"] == 33


def test_void_ground_truth_is_not_counted(tmp_path):
    gt = np.zeros((4, 6), np.uint16)  # all void
    gt[0, 0] = 7
    pred = np.full((4, 6), 7, np.uint8)
    root, preds = _tree(tmp_path, pred, gt=gt)
    d = cio.evaluate(root, preds).to_dict()
    assert d["classScores"]["road"] == 1.0
    assert all(math.isnan(v) for k, v in d["classScores"].items() if k != "road")


def test_train_ids_are_mapped_and_255_refused(tmp_path):
    lut = np.full(256, 255, np.uint8)
    for label in cio.LabelMap.cityscapes():
        if label.id >= 0 and label.train_id is not None and label.train_id != 255:
            lut[label.id] = label.train_id
    pred = lut[PRED]
    pred[0, 0] = pred[1, 0] = 0  # void and static have no train id
    root, preds = _tree(tmp_path, pred)
    got = cio.evaluate(root, preds, pred_train_ids=True).to_dict()
    fixed = PRED.copy()
    fixed[0, 0] = fixed[1, 0] = 7
    root2, preds2 = _tree(tmp_path / "ids", fixed)
    assert json.dumps(got) == json.dumps(cio.evaluate(root2, preds2).to_dict())
    pred[3, 3] = 255
    root3, preds3 = _tree(tmp_path / "bad", pred)
    with pytest.raises(cio.CityscapesIOError, match=r"aachen_000000_000019_pred\.png: train id 255"):
        cio.evaluate(root3, preds3, pred_train_ids=True)


def test_problems_are_listed_with_file_names(tmp_path):
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    for k, frame in enumerate(["aachen/aachen_000000_000019", "aachen/aachen_000001_000019",
                               "bremen/bremen_000000_000019", "bremen/bremen_000003_000019"]):
        write_frame(root, "val", frame, GT, photo=False)
    write_file(preds, "a/aachen_000000_000019.png", encode_png(label_ids_of(GT)))
    write_file(preds, "b/aachen_000000_000019_again.png", encode_png(label_ids_of(GT)))  # twice
    write_file(preds, "bremen_000000_000019.png", encode_png(np.zeros((3, 3), np.uint8)))  # wrong size
    write_file(preds, "bremen_000003_000019.png", encode_png(np.full(GT.shape, 40, np.uint8)))  # not label ids
    write_file(preds, "stray_000009_000009.png", encode_png(label_ids_of(GT)))  # no frame
    write_file(preds, "notes.txt", b"ignored")
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.evaluate(root, preds)
    text = str(info.value)
    assert "stray_000009_000009.png: matches no ground-truth frame" in text
    assert "several predictions for frame aachen/aachen_000000_000019" in text
    assert "no prediction for frame aachen/aachen_000001_000019" in text
    os.remove(os.path.join(preds, "b/aachen_000000_000019_again.png"))
    os.remove(os.path.join(preds, "stray_000009_000009.png"))
    write_file(preds, "aachen_000001_000019.png", encode_png(label_ids_of(GT)))
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.evaluate(root, preds)
    text = str(info.value)
    assert "bremen_000000_000019.png: size 3x3, the ground truth bremen/bremen_000000_000019 is 6x4" in text
    assert "bremen_000003_000019.png: values that are not label ids (0..33): 40" in text
    assert "2 problem(s)" in text


def test_unknown_task_and_option(tmp_path):
    root, preds = _tree(tmp_path, PRED)
    with pytest.raises(ValueError, match="unknown task 'depth'; the tasks are: semantic"):
        cio.evaluate(root, preds, task="depth")
    with pytest.raises(TypeError, match="bogus"):
        cio.evaluate(root, preds, bogus=1)


def _perturbed_tree(tmp_path, seed=0):
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    generate(root, splits={"val": 4}, size=(256, 128), photos=False)
    rng = np.random.default_rng(seed)
    for k, frame in enumerate(cio.open(root, split="val")):
        labels = frame.label_ids().astype(np.int64)
        pred = labels.copy()
        present = np.unique(labels)
        for _ in range(3):  # random label swaps on random halves of the classes' pixels
            a, b = rng.choice(present, 2), rng.integers(0, 34)
            sel = (labels == a[0]) & (rng.random(labels.shape) < 0.5)
            pred[sel] = b
        y, x = rng.integers(0, 96), rng.integers(0, 200)
        pred[y:y + 32, x:x + 56] = np.roll(labels, (7, -11), axis=(0, 1))[y:y + 32, x:x + 56]  # a shifted block
        pred[rng.random(labels.shape) < 0.02] = rng.integers(0, 34)  # noise
        base = os.path.basename(frame.id)
        write_file(preds, f"{'deep/' if k % 2 else ''}{base}_leftImg8bit.png", encode_png(pred.astype(np.uint8)))
    return root, preds


def test_workers_give_identical_results(tmp_path):
    root, preds = _perturbed_tree(tmp_path)
    done = []
    one = cio.evaluate(root, preds, progress=done.append)
    two = cio.evaluate(root, preds, workers=2)
    assert done == [1, 2, 3, 4]
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    assert 0 < one.average_classes < 1 and 0 < one.average_inst_classes < 1


def test_cli(tmp_path, capsys):
    root, preds = _tree(tmp_path, PRED)
    out = str(tmp_path / "result.json")
    assert main(["eval", root, preds, "--task", "semantic", "--split", "val", "-j", "1", "--json", out]) == 0
    printed = capsys.readouterr().out
    assert "classes          IoU      nIoU" in printed and "car           : 0.400" in printed
    with open(out) as f:
        assert json.dumps(json.load(f)) == json.dumps(cio.evaluate(root, preds).to_dict())
    os.remove(os.path.join(preds, "sub", "aachen_000000_000019_pred.png"))
    assert main(["eval", root, preds]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no prediction for frame aachen/aachen_000000_000019" in err


@needs_oracle
def test_equal_to_the_official_script(tmp_path):
    root, preds = _perturbed_tree(tmp_path, seed=1)
    copy, export = str(tmp_path / "official"), str(tmp_path / "export")
    shutil.copytree(os.path.join(root, "gtFine"), os.path.join(copy, "gtFine"))  # it writes beside its dataset
    os.makedirs(export)
    env = {**os.environ, "CITYSCAPES_DATASET": copy, "CITYSCAPES_RESULTS": preds, "CITYSCAPES_EXPORT_DIR": export}
    subprocess.run([ORACLE, "-c", "from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as e; "
                    "e.main()"], env=env, check=True, capture_output=True, cwd=str(tmp_path))
    with open(os.path.join(export, "resultPixelLevelSemanticLabeling.json")) as f:
        official = json.load(f)
    ours = cio.evaluate(root, preds).to_dict()
    assert set(ours) == set(official)
    assert ours["confMatrix"] == official["confMatrix"]
    assert ours["labels"] == official["labels"]
    for key in ("priors", "classScores", "classInstScores", "categoryScores", "categoryInstScores"):
        assert set(ours[key]) == set(official[key]), key  # the official file has its keys sorted
        for name, value in official[key].items():
            got = ours[key][name]
            assert (math.isnan(value) and math.isnan(got)) or abs(got - value) <= 1e-9, (key, name, got, value)
    for key in ("averageScoreClasses", "averageScoreInstClasses", "averageScoreCategories",
                "averageScoreInstCategories"):
        assert abs(ours[key] - official[key]) <= 1e-9, key
    assert not math.isnan(ours["averageScoreInstClasses"])


# -- predictions as a Dataset, check-only, export-predictions, memory -------------------------------
def _pred_dataset(arr, frame_id=FRAME, split="val"):
    """A prediction made in Python: one region per label id present in ``arr``."""
    instances = [cio.Instance.from_mask(arr == v, label_id=int(v), is_crowd=True) for v in np.unique(arr)]
    return cio.Dataset.from_iterable([cio.Frame.from_arrays(id=frame_id, split=split, instances=instances)])


def test_a_dataset_of_predictions_equals_the_same_files(tmp_path):
    root, preds = _tree(tmp_path, PRED)
    files = cio.evaluate(root, preds).to_dict()
    made = cio.evaluate(root, _pred_dataset(PRED)).to_dict()
    assert json.dumps(made) == json.dumps(files)
    # the ground truth read back as a dataset, in train ids: labels matched by name, and its
    # ignore value (255, on void and parking) refused since every pixel must be predicted
    with pytest.raises(cio.CityscapesIOError, match="values that are not labels the official table knows: 255"):
        cio.evaluate(root, cio.open(root).to_train_ids())


def test_dataset_predictions_name_missing_and_extra_frames(tmp_path):
    root, _ = _tree(tmp_path, PRED)
    other = _pred_dataset(PRED, frame_id="bonn/bonn_000000_000019")
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.evaluate(root, other)
    text = str(info.value)
    assert "prediction bonn/bonn_000000_000019 matches no ground-truth frame" in text
    assert "no prediction for frame aachen/aachen_000000_000019" in text


def test_check_only_lists_every_problem_without_evaluating(tmp_path, capsys):
    root, preds = str(tmp_path / "gt"), str(tmp_path / "pred")
    for k, city in enumerate(("aachen", "bremen", "bonn")):
        write_frame(root, "val", f"{city}/{city}_00000{k}_000019", GT, photo=False)
    write_file(preds, "aachen_000000_000019.png", encode_png(PRED))
    write_file(preds, "bremen_000001_000019.png", encode_png(PRED[:2]))  # wrong size
    write_file(preds, "x/bremen_000001_000019_again.png", encode_png(PRED))  # a second one
    write_file(preds, "zurich_000009_000019.png", encode_png(PRED))  # no such frame
    write_file(preds, "notes.txt", b"not a prediction")
    problems = cio.check_predictions(root, preds)
    assert len(problems) == 4
    assert any("zurich_000009_000019.png: matches no ground-truth frame" in p for p in problems)
    assert any("several predictions for frame bremen/bremen_000001_000019" in p for p in problems)
    assert any("no prediction for frame bonn/bonn_000002_000019" in p for p in problems)
    # the size is checked once the names are right
    os.remove(os.path.join(preds, "x", "bremen_000001_000019_again.png"))
    problems = cio.check_predictions(root, preds)
    assert any("bremen_000001_000019.png: size 6x2, the ground truth bremen/bremen_000001_000019 is 6x4" in p
               for p in problems) and len(problems) == 3
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.evaluate(root, preds)
    assert all(p in str(info.value) for p in problems)
    assert main(["eval", root, preds, "--check-only"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == problems and "3 problem(s)" in err
    os.remove(os.path.join(preds, "zurich_000009_000019.png"))
    write_file(preds, "bremen_000001_000019.png", encode_png(PRED))
    write_file(preds, "bonn_000002_000019.png", encode_png(PRED))
    assert main(["eval", root, preds, "--check-only"]) == 0
    assert "no problems" in capsys.readouterr().err


def test_export_predictions_semantic_makes_a_valid_submission(tmp_path, capsys):
    root, _ = _tree(tmp_path, PRED)
    made = str(tmp_path / "model-output")
    pred = np.where(PRED == 4, 8, PRED)  # a model predicts train classes only
    _pred_dataset(pred).to_train_ids().export(made, "cityscapes", save_train_ids=True)  # as a model writes it
    out = str(tmp_path / "submission")
    assert main(["export-predictions", made, out, "--task", "semantic"]) == 0
    assert "1 frame(s) written" in capsys.readouterr().err
    written = os.path.join(out, "aachen", "aachen_000000_000019_pred.png")
    assert np.array_equal(cio.png.decode_gray(open(written, "rb").read(), written), pred)  # label ids again
    assert cio.check_predictions(root, out) == []
    assert json.dumps(cio.evaluate(root, out).to_dict()) == json.dumps(cio.evaluate(root, _pred_dataset(pred)).to_dict())
    with pytest.raises(cio.CityscapesIOError, match="not empty|exists"):
        cio.export_predictions(made, out)
    assert cio.export_predictions(made, out, overwrite=True) == {"frames": 1, "skipped_regions": 0}


def test_export_predictions_refuses_unpredicted_pixels_and_writes_the_rest(tmp_path):
    ids = ("aachen/aachen_000000_000019", "aachen/aachen_000001_000019")
    frames = [cio.Frame.from_arrays(id=ids[0], split="val",
                                    instances=[cio.Instance.from_mask(np.ones((4, 6), bool), label_id=7)]),
              cio.Frame.from_arrays(id=ids[1], split="val",
                                    instances=[cio.Instance.from_mask(np.eye(4, 6, dtype=bool), label_id=7)])]
    ds = cio.Dataset.from_iterable(frames).to_train_ids()  # the second: 255 off the diagonal
    out = str(tmp_path / "sub")
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.export_predictions(ds, out)
    assert "1 frame(s) not exported" in str(info.value) and "aachen_000001_000019" in str(info.value)
    assert "every pixel must be predicted" in str(info.value) and ": 255" in str(info.value)
    assert os.listdir(os.path.join(out, "aachen")) == ["aachen_000000_000019_pred.png"]


def test_export_predictions_instance_layout(tmp_path):
    h, w = 8, 10
    car = np.zeros((h, w), bool)
    car[1:4, 1:5] = True
    person = np.zeros((h, w), bool)
    person[5:8, 6:9] = True
    road = ~(car | person)
    frame = cio.Frame.from_arrays(id=FRAME, split="val", instances=[
        cio.Instance.from_mask(road, label_id=7, is_crowd=True),
        cio.Instance.from_mask(car, label_id=26, id=0),
        cio.Instance.from_mask(person, label_id=24, id=3)])
    ds = cio.Dataset.from_iterable([frame])
    out = str(tmp_path / "sub.zip")
    assert cio.export_predictions(ds, out, task="instance") == {"frames": 1, "skipped_regions": 1}
    import zipfile

    from cityscapes_io.png import decode_gray
    with zipfile.ZipFile(out) as zf:
        txt = zf.read("aachen/aachen_000000_000019_pred.txt").decode().splitlines()
        masks = {line.split()[1]: decode_gray(zf.read("aachen/" + line.split()[0]), line) for line in txt}
        assert sorted(line.split(" ", 1)[1] for line in txt) == ["24 1.0", "26 1.0"]
    assert np.array_equal(masks["26"] > 0, car) and np.array_equal(masks["24"] > 0, person)
    assert set(np.unique(masks["26"])) == {0, 255}


def test_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    sizes = {}
    for n in (6, 30):
        root, preds = str(tmp_path / f"gt{n}"), str(tmp_path / f"pred{n}")
        generate(root, splits={"val": n}, size=(512, 256), photos=False, distinct=2)
        for frame in cio.open(root, split="val"):
            write_file(preds, os.path.basename(frame.id) + ".png", encode_png(frame.label_ids()))
        sizes[n] = traced_peak(cio.evaluate, root, preds)
    # A frame's arrays are about 0.5 MB: holding the 24 extra frames would add 12 MB. Two frames
    # are worked on at once in threads, so the peak varies by about one frame's working set.
    assert sizes[30] < sizes[6] + 4 * 2**20, sizes


def test_export_predictions_instance_keeps_scores_and_overlaps(tmp_path):
    """Instances made in memory are exported as they were given: each its own whole mask (an
    overlap is not cut by painting) and its score, also through a view such as to_train_ids."""
    h, w = 40, 60
    gt = np.full((h, w), 7, np.uint16)
    gt[5:20, 5:30] = 26000
    gt[10:30, 20:50] = 26001
    root = str(tmp_path / "gt")
    write_frame(root, "val", FRAME, gt, photo=False)
    a, b = np.zeros((h, w), bool), np.zeros((h, w), bool)
    a[5:20, 5:30] = True
    b[10:30, 20:50] = True
    frame = cio.Frame.from_arrays(id=FRAME, split="val", instances=[
        cio.Instance.from_mask(a, label_id=26, id=0, score=0.9),
        cio.Instance.from_mask(b, label_id=26, id=1, score=0.3)])
    ds = cio.Dataset.from_iterable([frame])
    direct = cio.evaluate(root, ds, task="instance").to_dict()
    for n, source in enumerate((ds, ds.to_train_ids())):
        out = str(tmp_path / f"sub{n}")
        cio.export_predictions(source, out, task="instance")
        with open(os.path.join(out, "aachen", "aachen_000000_000019_pred.txt")) as f:
            lines = f.read().splitlines()
        assert [line.split()[1:] for line in lines] == [["26", "0.9"], ["26", "0.3"]]
        mask = cio.png.decode_gray(open(os.path.join(out, "aachen", lines[0].split()[0]), "rb").read(), "m")
        assert int((mask > 0).sum()) == a.sum()  # whole, though the second car covers part of it
        assert json.dumps(cio.evaluate(root, out, task="instance").to_dict()) == json.dumps(direct)
    assert json.dumps(cio.evaluate(root, ds.to_train_ids(), task="instance").to_dict()) == json.dumps(direct)
