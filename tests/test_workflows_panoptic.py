"""Panoptic predictions in the forms the tools produce (issue 18): the COCO panoptic JSON written
by our own ``coco_panoptic`` writer (integer ``image_id``s naming entries of ``images``) is
evaluated as it is. Real files, the real writer, the real CLI."""
from __future__ import annotations

import json
import os

import pytest

import cityscapes_io as cio
from cityscapes_io.testing import synthetic
from cityscapes_io.cli import main


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A small synthetic tree and our coco_panoptic writer's output of it."""
    top = tmp_path_factory.mktemp("panoptic_workflow")
    gt = str(top / "gt")
    synthetic.generate(gt, splits={"val": 2}, size=(128, 64), seed=1)
    out = str(top / "coco")
    cio.convert(gt, out, format="coco_panoptic")
    return gt, os.path.join(out, "annotations", "panoptic_val.json")


def _copy(tmp_path, pred_json, edit):
    """The writer's JSON edited by ``edit`` (its PNG folder linked beside the copy)."""
    with open(pred_json) as f:
        doc = json.load(f)
    edit(doc)
    path = str(tmp_path / "panoptic_val.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    os.symlink(pred_json[:-5], str(tmp_path / "panoptic_val"))
    return path


def test_the_writer_output_has_integer_image_ids(written):
    _, pred = written
    with open(pred) as f:
        doc = json.load(f)
    assert all(isinstance(a["image_id"], int) for a in doc["annotations"])
    assert {i["id"] for i in doc["images"]} == {a["image_id"] for a in doc["annotations"]}


def test_our_coco_panoptic_output_evaluates_to_pq_1(written):
    gt, pred = written
    result = cio.evaluate(gt, pred, task="panoptic")
    assert result.pq == 1.0
    assert result.frames == 2
    assert result.all["n"] > 0 and result.all["sq"] == 1.0 and result.all["rq"] == 1.0
    assert all(fp == 0 for fp in result.fp.values()) and all(fn == 0 for fn in result.fn.values())


def test_our_coco_panoptic_output_has_no_problem(written):
    gt, pred = written
    assert cio.check_predictions(gt, pred, task="panoptic") == []


def test_the_cli_evaluates_our_coco_panoptic_output(written, capsys):
    gt, pred = written
    assert main(["eval", gt, pred, "--task", "panoptic"]) == 0
    out = capsys.readouterr().out
    assert "100.0" in out and "problem" not in out


def test_the_cli_check_only_accepts_our_coco_panoptic_output(written):
    gt, pred = written
    assert main(["eval", gt, pred, "--task", "panoptic", "--check-only"]) == 0


def test_an_integer_id_without_an_images_entry_is_a_problem(written, tmp_path):
    gt, pred = written

    def drop_first_image(doc):
        doc["images"] = [i for i in doc["images"] if i["id"] != doc["annotations"][0]["image_id"]]

    path = _copy(tmp_path, pred, drop_first_image)
    problems = cio.check_predictions(gt, path, task="panoptic")
    assert f"{path}: annotation of image 1: image_id 1 is not a frame id and no entry of 'images' has that id" \
        in problems
    assert any("no prediction for frame aachen/aachen_000000_000019" in p for p in problems)
    assert len(problems) == 2


def test_an_images_entry_naming_no_frame_is_a_problem(written, tmp_path):
    gt, pred = written

    def rename(doc):
        doc["images"][0]["file_name"] = "photo.png"

    path = _copy(tmp_path, pred, rename)
    problems = cio.check_predictions(gt, path, task="panoptic")
    assert any(p.startswith(f"{path}: annotation of image 1: the file_name of its entry in 'images' holds no "
                            f"frame id") for p in problems)
    with pytest.raises(cio.CityscapesIOError, match="holds no frame id"):
        cio.evaluate(gt, path, task="panoptic")


def test_the_images_file_name_may_be_the_photo(written, tmp_path):
    """COCO panoptic files name the photo in ``images`` (``<frame>_leftImg8bit.png``)."""
    gt, pred = written

    def photos(doc):
        for image in doc["images"]:
            image["file_name"] = image["file_name"].replace(".png", "_leftImg8bit.png")

    path = _copy(tmp_path, pred, photos)
    assert cio.evaluate(gt, path, task="panoptic").pq == 1.0


def test_two_integer_ids_of_one_frame_are_a_duplicate(written, tmp_path):
    gt, pred = written

    def same_frame(doc):
        doc["images"][1]["file_name"] = doc["images"][0]["file_name"]

    path = _copy(tmp_path, pred, same_frame)
    problems = cio.check_predictions(gt, path, task="panoptic")
    assert f"{path}: duplicate image_id aachen_000000_000019: several annotations for one image" in problems
    assert any("no prediction for frame bad-honnef/bad-honnef_000000_000019" in p for p in problems)


def test_an_integer_id_still_resolves_its_png_inside_the_folder(written, tmp_path):
    gt, pred = written

    def escape(doc):
        doc["annotations"][0]["file_name"] = "../../elsewhere.png"

    path = _copy(tmp_path, pred, escape)
    problems = cio.check_predictions(gt, path, task="panoptic")
    assert any("'../../elsewhere.png' leads outside its root" in p for p in problems)


def test_string_image_ids_are_matched_as_before(written, tmp_path):
    gt, pred = written

    def official(doc):
        for ann in doc["annotations"]:
            ann["image_id"] = os.path.basename(ann["file_name"])[:-4]
        del doc["images"]

    path = _copy(tmp_path, pred, official)
    assert cio.evaluate(gt, path, task="panoptic").pq == 1.0

    def unknown(doc):
        doc["annotations"][0]["image_id"] = "1"

    other = tmp_path / "other"
    other.mkdir()
    path = _copy(other, pred, unknown)
    problems = cio.check_predictions(gt, path, task="panoptic")
    assert f"{path}: annotation of image 1 matches no ground-truth frame" in problems


# -- export-predictions --task panoptic ---------------------------------------------------------------
def test_export_predictions_panoptic_round_trip(written, tmp_path):
    gt, _ = written
    out = str(tmp_path / "sub")
    report = cio.export_predictions(gt, out, task="panoptic", split="val")
    assert report == {"frames": 2, "skipped_regions": 0}
    assert sorted(os.listdir(out)) == ["cityscapes_panoptic_val", "cityscapes_panoptic_val.json"]
    assert sorted(os.listdir(os.path.join(out, "cityscapes_panoptic_val"))) == [
        "aachen_000000_000019_panoptic.png", "bad-honnef_000000_000019_panoptic.png"]
    with open(os.path.join(out, "cityscapes_panoptic_val.json")) as f:
        doc = json.load(f)
    # The official layout: image_id the frame's base name.
    assert [a["image_id"] for a in doc["annotations"]] == ["aachen_000000_000019", "bad-honnef_000000_000019"]
    assert {c["id"] for c in doc["categories"]} >= {7, 24, 26}
    pred = os.path.join(out, "cityscapes_panoptic_val.json")
    assert cio.check_predictions(gt, pred, task="panoptic") == []
    result = cio.evaluate(gt, pred, task="panoptic")
    assert result.pq == 1.0 and result.all["n"] > 0


def test_export_predictions_panoptic_from_a_train_id_dataset(written, tmp_path):
    gt, _ = written
    out = str(tmp_path / "sub")
    cio.export_predictions(cio.open(gt).to_train_ids(), out, task="panoptic", split="val")
    assert cio.evaluate(gt, os.path.join(out, "cityscapes_panoptic_val.json"), task="panoptic").pq == 1.0


def _memory_frame():
    import numpy as np

    road = np.ones((8, 8), bool)
    car = np.zeros((8, 8), bool)
    car[2:5, 2:6] = True
    road[car] = False
    # Train ids: 0 road, 13 car; the label map given says the official ids.
    instances = [cio.Instance.from_mask(road, label_id=0), cio.Instance.from_mask(car, label_id=13)]
    frame = cio.Frame.from_arrays(id="aachen/aachen_000000_000019", split="val", instances=instances,
                                  labels=cio.LabelMap.cityscapes())
    return cio.Dataset.from_iterable([frame])


def test_export_predictions_panoptic_train_ids(tmp_path):
    out = str(tmp_path / "sub")
    cio.export_predictions(_memory_frame(), out, task="panoptic", train_ids=True)
    with open(os.path.join(out, "cityscapes_panoptic_val.json")) as f:
        doc = json.load(f)
    segments = doc["annotations"][0]["segments_info"]
    assert sorted(s["category_id"] for s in segments) == [7, 26]  # road, car
    assert all(s["id"] != 0 for s in segments)


def test_the_cli_exports_and_evaluates_a_panoptic_submission(written, tmp_path, capsys):
    gt, _ = written
    out = str(tmp_path / "sub")
    assert main(["export-predictions", gt, out, "--task", "panoptic", "--split", "val"]) == 0
    assert "2 frame(s) written" in capsys.readouterr().err
    assert main(["eval", gt, os.path.join(out, "cityscapes_panoptic_val.json"), "--task", "panoptic"]) == 0
    assert "100.0" in capsys.readouterr().out


def test_export_predictions_panoptic_refuses_labels_with_no_official_id(tmp_path):
    import numpy as np

    labels = cio.LabelMap([cio.Label("thing", 1, (1, 2, 3))])
    frame = cio.Frame.from_arrays(id="aachen/aachen_000000_000019", split="val",
                                  instances=[cio.Instance.from_mask(np.ones((4, 4), bool), label_id=1)],
                                  labels=labels)
    with pytest.raises(cio.CityscapesIOError, match="labels with no official label id: thing"):
        cio.export_predictions(cio.Dataset.from_iterable([frame], labels), str(tmp_path / "sub"), task="panoptic")
