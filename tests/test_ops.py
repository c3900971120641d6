"""Lazy dataset operations: filter, remap, train ids, rename splits, merge."""
import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.testing import generate

from conftest import SEMANTIC, write_frame


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ops") / "cs")
    generate(root, splits={"train": 4, "val": 2}, size=(96, 48), seed=5)
    return root


def test_filter_by_split_city_id_and_label(synth, tree):
    ds = cio.open(synth)
    assert [f.split for f in ds.filter(split="val")] == ["val", "val"]
    assert {f.city for f in ds.filter(cities=["bad-honnef"])} == {"bad-honnef"}
    ids = [f.id for f in ds.filter(ids="aachen/*")]
    assert ids and all(i.startswith("aachen/") for i in ids)
    first = next(iter(ds)).id
    assert [f.id for f in ds.filter(ids=[first])] == [first]
    # frames containing a label: decodes to decide
    t = cio.open(tree)
    assert [f.id for f in t.filter(labels=["person"])] == [f.id for f in t if f.has_annotations]
    assert list(t.filter(labels="train")) == []
    with pytest.raises(cio.CityscapesIOError, match="no label"):
        t.filter(labels="elephant")
    with pytest.raises(cio.DatasetNotFoundError):
        t.filter(split="test")


def test_remap_labels_rename_merge_drop(tree, tmp_path):
    ds = cio.open(tree).remap_labels({"car": "vehicle", "person": "vehicle", "road": None}, default="keep")
    assert "vehicle" in ds.labels.names and "car" not in ds.labels.names and "road" not in ds.labels.names
    assert ds.labels.names[0] == "unlabeled" and ds.labels.is_dense
    frame = ds.frame("aachen/aachen_000010_000019")
    got = {(i.label.name, i.id, i.is_crowd): i.area for i in frame.instances()}
    # cars 0, 3, 5 and person 1 all become vehicles; the crowd of cars a vehicle crowd;
    # road pixels go to the background
    assert got[("vehicle", 0, False)] == 20 and got[("vehicle", 3, False)] == 20
    assert got[("vehicle", 1, False)] == 20 and got[("vehicle", None, True)] == 12
    assert got[("unlabeled", None, True)] == (SEMANTIC == 0).sum() + (SEMANTIC == 7).sum()
    out = str(tmp_path / "out")
    ds.export(out, "cityscapes")
    back = cio.open(out)
    assert [n.replace("_", " ") for n in back.labels.names] == ds.labels.names  # label_colors.txt: one word
    assert np.array_equal(back.frame("aachen/aachen_000010_000019").label_ids(), frame.label_ids())
    only = cio.open(tree).remap_labels({"car": "car"}, default="delete")
    assert only.labels.names == ["background", "car"]
    assert {i.label.name for i in only.frame("aachen/aachen_000010_000019").instances()} == {"background", "car"}


def test_to_train_ids(tree, tmp_path):
    ds = cio.open(tree).to_train_ids()
    frame = ds.frame("aachen/aachen_000010_000019")
    lab = frame.label_ids()
    assert lab[SEMANTIC == 7].tolist() == [0] * int((SEMANTIC == 7).sum())  # road is train id 0
    assert set(lab[SEMANTIC == 0].tolist()) == {255}
    assert set(frame.instance_ids()[SEMANTIC == 26003].tolist()) == {13003}  # car 3 keeps its number
    for fmt in ("cityscapes", "voc"):
        out = str(tmp_path / f"out-{fmt}")
        ds.export(out, fmt, save_media=True)
        back = cio.open(out, format=fmt).frame("aachen/aachen_000010_000019")
        if fmt == "cityscapes":
            assert np.array_equal(back.label_ids(), lab)  # 255 kept (dataset_meta.json holds the gap)
        else:
            assert np.array_equal(back.label_ids()[lab != 255], lab[lab != 255])  # VOC 255 is void
    # CamVid numbers labels by line: the ignore label (255) is written at index 19, after bicycle.
    ds.export(str(tmp_path / "out-camvid"), "camvid")
    back = cio.open(str(tmp_path / "out-camvid"), format="camvid")
    assert back.labels.names[-1] == "ignore" and back.labels["ignore"].id == 19
    assert np.array_equal(back.frame("aachen/aachen_000010_000019").label_ids(), np.where(lab == 255, 19, lab))


def test_rename_splits(tree):
    ds = cio.open(tree).rename_splits({"train": "training"})
    assert ds.splits() == ["training", "val"]
    assert {f.split for f in ds} == {"training", "val"}
    assert ds.count() == 6


def test_merge_unifies_labels_and_handles_duplicates(tree, tmp_path):
    other = str(tmp_path / "other")
    inst = np.array([[0, 1, 1002, 1002]], np.uint16)
    write_frame(other, "train", "aachen/aachen_000010_000019", inst)  # same id as in tree
    write_frame(other, "train", "zurich/zurich_000000_000001", inst)
    (tmp_path / "other" / "label_colors.txt").write_text("0 0 0 unlabeled\n1 2 3 elephant\n")
    a, b = cio.open(tree), cio.open(other)
    with pytest.raises(cio.CityscapesIOError, match="duplicate frame id"):
        list(cio.merge(a, b))
    merged = cio.merge(a, b, on_duplicate="rename")
    assert merged.labels.names[:35] == a.labels.names and merged.labels.names[35:] == ["elephant"]
    frames = list(merged.frames("train"))
    ids = [f.id for f in frames]
    assert "aachen/aachen_000010_000019_1" in ids and "zurich/zurich_000000_000001" in ids
    zurich = next(f for f in frames if f.city == "zurich")
    eleph = merged.labels["elephant"].id
    assert zurich.instance_ids().tolist() == [[0, eleph, eleph * 1000 + 2, eleph * 1000 + 2]]
    assert len(list(cio.merge(a, b, on_duplicate="first").frames("train"))) == 5
    out = str(tmp_path / "merged")
    report = merged.export(out, "voc")
    assert report.written == 8
