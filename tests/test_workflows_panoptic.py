"""Panoptic predictions in the forms the tools produce (issue 18): the COCO panoptic JSON written
by our own ``coco_panoptic`` writer (integer ``image_id``s naming entries of ``images``) is
evaluated as it is. Real files, the real writer, the real CLI."""
from __future__ import annotations

import json
import os

import pytest

import cityscapes_io as cio
from cityscapes_io import synthetic
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
