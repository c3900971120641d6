"""Issue 18: a Cityscapes tree goes through the tar shards and back file for file. The shards carry
a frame's ``_polygons.json`` and, beside official ids, its ``_labelTrainIds.png`` /
``_instanceTrainIds.png`` (original bytes); what cannot follow a change of labels is reported,
never dropped in silence."""
from __future__ import annotations

import glob
import json
import os
import tarfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.png import decode_gray, decode_rgb
from cityscapes_io.testing import generate
from cityscapes_io.validate import validate

from conftest import read_tree

KEY = "aachen/aachen_000000_000019"


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    """A Cityscapes tree with photos, polygons and the train-id files of ``prepare``."""
    root = str(tmp_path_factory.mktemp("wds_cs") / "cs")
    generate(root, splits={"train": 3, "val": 2}, size=(64, 32))
    cio.prepare(root)
    assert glob.glob(os.path.join(root, "gtFine", "val", "*", "*_instanceTrainIds.png"))
    return root


def _same_tree(a, b):
    """The two trees hold the same files: polygons, ids and photos byte for byte; colour and
    train-id PNGs (re-encoded by the Cityscapes writer) pixel for pixel."""
    ta, tb = read_tree(a), read_tree(b)
    frames = sorted(n for n in ta if n.startswith(("gtFine/", "leftImg8bit/")))
    assert frames == sorted(n for n in tb if n.startswith(("gtFine/", "leftImg8bit/")))
    for name in frames:
        if name.endswith(("_color.png", "TrainIds.png")):
            decode = decode_rgb if name.endswith("_color.png") else decode_gray
            assert np.array_equal(decode(ta[name], name), decode(tb[name], name)), name
        else:
            assert ta[name] == tb[name], name
    return frames


def test_the_shards_carry_polygons_and_train_ids_as_members(cs, tmp_path):
    out = str(tmp_path / "shards")
    report = cio.convert(cs, out, format="wds", frames_per_shard=2)
    assert report.ok and report.warnings == []
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        names = [n for n in tf.getnames() if n.startswith(KEY)]
    assert names == [f"{KEY}.image.png", f"{KEY}.instance_ids.png", f"{KEY}.label_ids.png", f"{KEY}.json",
                     f"{KEY}.instance_train_ids.png", f"{KEY}.label_train_ids.png", f"{KEY}.polygons.json"]
    for src, got in zip(cio.open(cs), cio.open(out, format="wds")):
        assert got.id == src.id and got.labels == src.labels
        for kind in ("polygons", "labelTrainIds", "instanceTrainIds", "instanceIds", "labelIds"):
            assert got.read_bytes(kind) == src.read_bytes(kind), (got.id, kind)
        assert np.array_equal(got.rasterize("instanceIds"), src.rasterize("instanceIds"))  # parsed as read
        assert np.array_equal(got.instance_ids(), src.instance_ids())  # the official ids stay the ground truth
    # the carried train-id files agree with the ids they sit beside
    assert [str(p) for p in validate(out, format="wds")] == []


def test_a_tree_goes_through_the_shards_and_back_file_for_file(cs, tmp_path):
    shards, back = str(tmp_path / "shards"), str(tmp_path / "back")
    cio.convert(cs, shards, format="wds")
    report = cio.convert(shards, back, src_format="wds", format="cityscapes", save_media=True, save_train_ids=True)
    assert report.ok and report.written == 5
    frames = _same_tree(cs, back)
    assert len([n for n in frames if n.endswith("_polygons.json")]) == 5
    assert len([n for n in frames if n.endswith("_instanceTrainIds.png")]) == 5


def test_the_cli_round_trip_keeps_every_file(cs, tmp_path):
    shards, back = str(tmp_path / "shards"), str(tmp_path / "back")
    assert main(["convert", cs, shards, "-f", "wds", "-q"]) == 0
    assert main(["convert", shards, back, "-f", "cityscapes", "--save-media", "--save-train-ids", "-q"]) == 0
    _same_tree(cs, back)


def test_the_webdataset_package_reads_the_members_as_one_sample(cs, tmp_path):
    webdataset = pytest.importorskip("webdataset")
    out = str(tmp_path / "shards")
    cio.convert(cs, out, format="wds")
    samples = list(webdataset.WebDataset(sorted(glob.glob(os.path.join(out, "*.tar"))), shardshuffle=False))
    frames = list(cio.open(cs))
    assert [s["__key__"] for s in samples] == [f.id for f in frames]
    for s, f in zip(samples, frames):
        assert s["polygons.json"] == f.read_bytes("polygons")
        assert s["label_train_ids.png"] == f.read_bytes("labelTrainIds")


def test_renamed_labels_rename_the_polygons_in_the_shards(cs, tmp_path):
    out = str(tmp_path / "shards")
    cio.open(cs).remap_labels({"car": "automobile"}).export(out, "wds")
    frame = cio.open(out, format="wds")[0]
    labels = {o["label"] for o in json.loads(frame.read_bytes("polygons"))["objects"]}
    assert "automobile" in labels and "car" not in labels


def test_what_cannot_follow_new_labels_is_reported(cs, tmp_path):
    """Labels merged or dropped: the polygons cannot follow (one warning, as the Cityscapes writer
    says it), and the train-id files of frames read from files are named in the report."""
    out = str(tmp_path / "shards")
    with pytest.warns(UserWarning) as record:
        report = cio.convert(cs, out, format="wds", label_map={"road": (128, 64, 128), "car": (0, 0, 142)})
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2 and messages[0].startswith(f"{out}: labels not in the output label map")
    assert messages[1] == (f"{out}: polygons files not written: labels were merged or dropped for the output label map "
                           "(label_map option) (5 frames)")
    assert report.written == 5
    assert [w for _, _, w in report.warnings] == [
        "instanceTrainIds and labelTrainIds not written: the labels changed for the output label map (train ids "
        "are carried beside unchanged official ids only)"] * 5
    assert "5 frames written incomplete" in report.summary()
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        assert not [n for n in tf.getnames() if n.endswith(("polygons.json", "train_ids.png"))]
    # a train-id dataset: its ids are the train ids; the official polygons cannot follow
    train = str(tmp_path / "train")
    with pytest.warns(UserWarning, match="polygons files not written: labels were merged or dropped"):
        report = cio.open(cs).to_train_ids().export(train, "wds")
    assert report.warnings == []
    with tarfile.open(os.path.join(train, "train-000000.tar")) as tf:
        assert [n for n in tf.getnames() if n.startswith(KEY)] == [
            f"{KEY}.image.png", f"{KEY}.instance_train_ids.png", f"{KEY}.label_train_ids.png", f"{KEY}.json"]


def test_an_iteration_streams_the_members_and_reads_only_the_last_polygons_by_range(cs, tmp_path, monkeypatch):
    from cityscapes_io.formats import wds

    out = str(tmp_path / "shards")
    cio.convert(cs, out, format="wds", frames_per_shard=5)
    want = {f.id: f.read_bytes("polygons") for f in cio.open(cs)}
    ranged = []
    real = wds._ranged
    monkeypatch.setattr(wds, "_ranged", lambda *a: ranged.append(a[2:]) or real(*a))
    for frame in cio.open(out, format="wds"):
        frame.read_bytes("instanceIds")
        assert frame.read_bytes("polygons") == want[frame.id]
    assert len(ranged) == 2  # one a shard: the last frame's polygons lie past the stream's end
