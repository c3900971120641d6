"""CityPersons end to end: the coco_citypersons export's image ids evaluate against the ground truth
(issue 23), in Python and on the command line, with the export's ``images`` as the id mapping and without."""
from __future__ import annotations

import json
import os

import pytest

import cityscapes_io as cio
from cityscapes_io.testing import generate


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    work = tmp_path_factory.mktemp("citypersons")
    root = str(work / "cs")
    generate(root, splits={"val": 3}, size=(256, 128), parts=["gtBboxCityPersons"], demo_frames=0)
    out = str(work / "coco")
    cio.convert(root, out, format="coco_citypersons")
    with open(os.path.join(out, "annotations", "citypersons_val.json")) as f:
        doc = json.load(f)
    return root, out, doc


def _results(doc, *, drop_tallest=False):
    """The export's pedestrian boxes as detections with its integer image ids (what a detector
    trained on the export gives back), optionally without the tallest one (one every setup of
    its height counts)."""
    kept = [a for a in doc["annotations"] if a["category_id"] == 1 and not a["ignore"]]
    if drop_tallest:
        kept.remove(max(kept, key=lambda a: a["height"]))
    return [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in kept]


def test_the_exports_integer_ids_evaluate(exported, tmp_path):
    root, out, doc = exported
    assert any(not a["ignore"] for a in doc["annotations"])
    preds = str(tmp_path / "results.json")
    with open(preds, "w") as f:
        json.dump(_results(doc), f)
    result = cio.evaluate(root, preds, task="citypersons")
    scores = result.to_dict()
    assert set(scores) >= {"Reasonable", "Small", "Heavy", "All"}
    assert scores["All"] == 0.0
    # The same ids mapped through the export's own images (images= names its JSON).
    mapped = cio.evaluate(root, preds, task="citypersons",
                          images=os.path.join(out, "annotations", "citypersons_val.json"))
    assert json.dumps(mapped.to_dict()) == json.dumps(scores)
    with open(preds, "w") as f:
        json.dump(_results(doc, drop_tallest=True), f)
    assert max(a["height"] for a in doc["annotations"] if not a["ignore"]) >= 20  # (All counts it)
    assert cio.evaluate(root, preds, task="citypersons").to_dict()["All"] > 0


def test_the_command_line_evaluates_citypersons(exported, tmp_path, capsys):
    from cityscapes_io.cli import main

    root, coco, doc = exported
    preds = str(tmp_path / "results.json")
    with open(preds, "w") as f:
        json.dump(_results(doc), f)
    out = str(tmp_path / "mr.json")
    assert main(["eval", root, preds, "--task", "citypersons", "--json", out, "-q"]) == 0
    with open(out) as f:
        assert json.load(f)["All"] == 0.0
    assert "Reasonable" in capsys.readouterr().out
    assert main(["eval", root, preds, "--task", "citypersons", "--images",
                 os.path.join(coco, "annotations", "citypersons_val.json"), "-q"]) == 0
    assert main(["eval", root, preds, "--images", "x.json", "-q"]) == 2
