"""VOC's void (255) read back: label 0 where it means "no class", the train ids' ``ignore``
where label 0 is a class (a train-id dataset written as VOC has road at 0)."""
from __future__ import annotations

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.errors import DatasetNotFoundError
from cityscapes_io.formats.voc import with_void
from cityscapes_io.labels import Label, LabelMap


def _pairs(a, b):
    theirs = {f.id: f for f in b}
    return [(f, theirs[f.id]) for f in a]


def test_train_ids_through_voc_keep_ignore_apart_from_road(tmp_path):
    ds = cio.open(cio.sample_path()).to_train_ids()
    ds.export(str(tmp_path / "voc"), format="voc")
    back = cio.open(str(tmp_path / "voc"), format="voc")
    assert back.labels[255].name == "ignore" and back.labels[0].name == "road"
    ignored = 0
    for f, g in _pairs(ds, back):
        a, b = f.label_ids(), g.label_ids()
        ignored += int((a == 255).sum())
        assert np.array_equal(a, b), f.id  # before: every ignore pixel read as road (0)
    assert ignored > 0


def test_official_labels_through_voc_read_void_as_unlabeled(tmp_path):
    ds = cio.open(cio.sample_path())
    ds.export(str(tmp_path / "voc"), format="voc")
    back = cio.open(str(tmp_path / "voc"), format="voc")
    assert 255 not in back.labels and back.labels[0].name == "unlabeled"
    for f, g in _pairs(ds, back):
        assert np.array_equal(f.label_ids(), g.label_ids()), f.id


def test_with_void_adds_ignore_only_where_label_0_is_a_class():
    voc = LabelMap([Label("background", 0, (0, 0, 0)), Label("cat", 1, (64, 0, 0))])
    assert with_void(voc) is voc
    train = LabelMap([Label("road", 0, (128, 64, 128)), Label("car", 1, (0, 0, 142))], source="x")
    added = with_void(train)
    assert [(l.id, l.name) for l in added] == [(0, "road"), (1, "car"), (255, "ignore")]
    assert added.source == "x"
    has_void = LabelMap([*train, Label("void", 255, (1, 2, 3))])
    assert with_void(has_void) is has_void


def test_opening_another_format_as_cityscapes_names_the_format(tmp_path):
    cio.open(cio.sample_path()).export(str(tmp_path / "voc"), format="voc")
    with pytest.raises(DatasetNotFoundError, match=r"it holds a voc dataset \(SegmentationClass/ in .*\): "
                                                   r"pass format='voc'"):
        cio.open(str(tmp_path / "voc"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        cio.open(str(tmp_path / "empty"))
    assert "holds" not in str(info.value)
