"""Issue 18: the command line of what the other issue-18 changes offer in Python: synthetic's
progress line, prepare --save-media, coco --layout datumaro, voc --save-dataset-meta, and info
listing the panoptic ground truth apart from the splits."""
from __future__ import annotations

import json
import os

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import EXIT_REFUSED, EXIT_USAGE, main

from test_workflows_cli2 import drawn, on_terminal


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from cityscapes_io.testing import generate

    root = str(tmp_path_factory.mktemp("cli3") / "Cityscapes")
    generate(root, splits={"train": 3, "val": 2}, size=(64, 32), seed=3)
    return root


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(root) for n in ns)


def test_synthetic_draws_a_progress_line_per_frame(tmp_path, monkeypatch):
    # Before: 200 frames and minutes with no output at all.
    status, text = on_terminal(monkeypatch, ["synthetic", str(tmp_path / "s"), "--splits", "train=3,val=2",
                                             "--coarse", "train_extra=2", "--size", "64x32"])
    assert status == 0, text
    assert drawn(text, "synthetic") == ([1, 2, 3, 4, 5, 6, 7], {7})
    assert len(cio.open(str(tmp_path / "s"))) == 5


def test_prepare_save_media_gives_a_tree_with_its_photos(synth, tmp_path, capsys):
    out = str(tmp_path / "prepared")
    assert main(["prepare", synth, "-o", out, "--save-media"]) == 0
    files = _files(out)
    photos = [f for f in files if f.endswith("_leftImg8bit.png")]
    assert len(photos) == 5
    for photo in photos:  # mmsegmentation's pairing: every photo has its labelTrainIds
        split, city, name = photo.split(os.sep)[1:]
        assert os.path.join("gtFine", split, city, name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")) \
            in files
        with open(os.path.join(out, photo), "rb") as a, open(os.path.join(synth, photo), "rb") as b:
            assert a.read() == b.read()
    assert "no photos written" not in capsys.readouterr().err
    # Without it the terminal says the output has no photos.
    assert main(["prepare", synth, "-o", str(tmp_path / "bare")]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "no photos written" in err and "--save-media" in err, err
    # Without -o it has nowhere to copy to.
    assert main(["prepare", synth, "--save-media"]) == EXIT_USAGE
    assert "give -o DST" in capsys.readouterr().err


def test_coco_layout_datumaro_on_the_command_line(synth, tmp_path):
    out = str(tmp_path / "coco")
    assert main(["convert", synth, out, "-f", "coco_instances", "--layout", "datumaro", "--save-media", "-q"]) == 0
    files = _files(out)
    assert os.path.join("annotations", "instances_train.json") in files
    assert any(f.startswith(os.path.join("images", "val", "")) for f in files)
    assert len(cio.open(out, format="coco_instances")) == 5
    assert main(["convert", synth, str(tmp_path / "v"), "-f", "voc", "--layout", "datumaro"]) == EXIT_USAGE


def test_voc_save_dataset_meta_on_the_command_line(synth, tmp_path):
    out = str(tmp_path / "voc")
    # Before: refused ("applies to -f cityscapes only").
    assert main(["convert", synth, out, "-f", "voc", "--save-dataset-meta", "-q"]) == 0
    assert os.path.exists(os.path.join(out, "dataset_meta.json")) and not os.path.exists(
        os.path.join(out, "labelmap.txt"))
    assert cio.open(out, format="voc").labels.names == cio.open(synth).labels.names
    assert main(["convert", synth, str(tmp_path / "c"), "-f", "camvid", "--save-dataset-meta"]) == EXIT_USAGE


def test_info_lists_the_panoptic_ground_truth_apart_from_the_splits(synth, tmp_path, capsys):
    out = str(tmp_path / "pan")
    cio.prepare(synth, kinds=("panoptic", "labelTrainIds"), dst=out, save_media=True)
    capsys.readouterr()
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert "cityscapes_panoptic_val:" not in text and "panoptic ground truth (not splits):" in text
    assert "  val: " in text and text.rstrip().endswith("cityscapes_panoptic_val.json")
    assert main(["info", out, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(info["splits"]) == ["train", "val"]
    assert [p["split"] for p in info["panoptic"]] == ["train", "val"]


def test_missing_label_map_file_is_refused(synth, tmp_path, capsys):
    assert main(["convert", synth, str(tmp_path / "o"), "-f", "voc", "--label-map", str(tmp_path / "x.txt")]) \
        == EXIT_REFUSED
    assert "label map file not found" in capsys.readouterr().err
