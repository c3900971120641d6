"""COCO from the command line: the formats are detected from annotations/, and the
coco_instances writer options are flags (refused for other formats)."""
from __future__ import annotations

import json
import os

import pytest

from cityscapes_io.cli import main
from cityscapes_io.formats import detect_format
from cityscapes_io.testing import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco-cli") / "cs")
    generate(root, splits={"val": 2}, size=(96, 48), seed=2)
    return root


def test_coco_outputs_are_detected_even_with_photos_in_leftimg8bit(synth, tmp_path):
    inst, pan = str(tmp_path / "inst"), str(tmp_path / "pan")
    assert main(["convert", synth, inst, "-f", "coco_instances", "--save-media", "-q"]) == 0
    assert os.path.isdir(os.path.join(inst, "leftImg8bit"))
    assert detect_format(inst) == "coco_instances"
    assert main(["convert", synth, pan, "-f", "coco_panoptic", "--save-media", "-q"]) == 0
    assert detect_format(pan) == "coco_panoptic"
    assert main(["convert", inst, str(tmp_path / "back"), "-f", "cityscapes", "-q"]) == 0
    assert detect_format(synth) == "cityscapes"


def test_coco_instances_writer_flags(synth, tmp_path, capsys):
    out = str(tmp_path / "all")
    assert main(["convert", synth, out, "-f", "coco_instances", "--classes", "all", "--segmentation", "polygon",
                 "--category-ids", "contiguous", "-q"]) == 0
    doc = json.load(open(os.path.join(out, "annotations", "instancesonly_filtered_gtFine_val.json")))
    assert [c["id"] for c in doc["categories"]] == list(range(1, len(doc["categories"]) + 1))
    assert len(doc["categories"]) > 8
    assert all(isinstance(a["segmentation"], list) for a in doc["annotations"])
    some = str(tmp_path / "some")
    assert main(["convert", synth, some, "-f", "coco_instances", "--classes", "car,person", "-q"]) == 0
    doc = json.load(open(os.path.join(some, "annotations", "instancesonly_filtered_gtFine_val.json")))
    assert sorted(c["name"] for c in doc["categories"]) == ["car", "person"]
    assert main(["convert", synth, str(tmp_path / "voc"), "-f", "voc", "--segmentation", "rle"]) == 2
    assert "applies to -f coco_instances and -f yolo only" in capsys.readouterr().err
