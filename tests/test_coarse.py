"""Coarse annotations: ``open(annotations="gtCoarse")`` and ``--annotations``, the ``train_extra``
split, gtFine by default, ``info`` naming the trees, converting / preparing / validating a coarse
tree, and a lazy listing of a 20 000-frame split."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import png
from cityscapes_io.cli import main
from cityscapes_io.errors import DatasetNotFoundError
from cityscapes_io.validate import validate

from conftest import SEMANTIC, label_ids_of, write_file, write_frame, zip_dir

COARSE = np.zeros((24, 32), dtype=np.uint16)  # mostly unlabeled, as coarse annotations are
COARSE[12:, :] = 7
COARSE[4:8, 4:10] = 26  # coarse objects are regions


def write_coarse(root: str, split: str, frame_id: str, inst=COARSE, photo: bool = False) -> None:
    write_file(root, f"gtCoarse/{split}/{frame_id}_gtCoarse_instanceIds.png", png.encode_png(inst))
    write_file(root, f"gtCoarse/{split}/{frame_id}_gtCoarse_labelIds.png", png.encode_png(label_ids_of(inst)))
    h, w = inst.shape
    poly = {"imgHeight": h, "imgWidth": w, "objects": [
        {"label": "road", "polygon": [[0, 12], [w - 1, 12], [w - 1, h - 1], [0, h - 1]], "deleted": 0}]}
    write_file(root, f"gtCoarse/{split}/{frame_id}_gtCoarse_polygons.json", json.dumps(poly).encode())
    if photo:
        write_frame(root, split, frame_id, inst, gt=False)


@pytest.fixture
def both(tmp_path):
    """gtFine train/val, gtCoarse train/val/train_extra (same ids in train), photos for all."""
    root = str(tmp_path / "cs")
    for split, fid in (("train", "aachen/aachen_000000_000019"), ("val", "lindau/lindau_000000_000019")):
        write_frame(root, split, fid)
        write_coarse(root, split, fid)
    for k in range(3):
        write_coarse(root, "train_extra", f"augsburg/augsburg_000000_{k:06d}", photo=True)
    return root


def test_gtfine_by_default_and_train_extra_belongs_to_coarse(both):
    ds = cio.open(both)
    assert ds.splits() == ["train", "val"] and ds.reader.annotations == "gtFine"
    assert ds.reader.trees == ["gtFine", "gtCoarse"]
    frame = ds[0]
    assert frame.annotations == "gtFine" and frame.path("instanceIds").endswith("_gtFine_instanceIds.png")
    assert np.array_equal(frame.instance_ids(), SEMANTIC)


def test_coarse_tree_with_train_extra(both):
    ds = cio.open(both, annotations="gtCoarse")
    assert ds.splits() == ["train", "train_extra", "val"]
    extra = list(ds.frames("train_extra"))
    assert [f.id for f in extra] == [f"augsburg/augsburg_000000_{k:06d}" for k in range(3)]
    for f in extra:
        assert f.annotations == "gtCoarse" and f.has_image
        assert f.path("labelIds").endswith("_gtCoarse_labelIds.png")
        assert np.array_equal(f.instance_ids(), COARSE)
        assert f.polygons().objects[0].label == "road"
        assert (f.label_ids() == 0).mean() > 0.4  # coarse: much of it unlabeled
    assert [i.value for i in ds.frame("aachen/aachen_000000_000019").instances()] == [0, 7, 26]


def test_only_coarse_is_read_without_asking(tmp_path):
    root = str(tmp_path / "c")
    write_coarse(root, "train_extra", "augsburg/augsburg_000000_000001", photo=True)
    ds = cio.open(root)
    assert ds.reader.annotations == "gtCoarse" and ds.splits() == ["train_extra"] and len(ds) == 1
    with pytest.raises(DatasetNotFoundError, match="no gtFine/ annotations"):
        cio.open(root, annotations="gtFine")
    with pytest.raises(ValueError, match="annotations must be one of"):
        cio.open(root, annotations="gtMedium")


def test_convert_keeps_the_tree_and_prepare_writes_coarse_names(both, tmp_path):
    out = str(tmp_path / "out")
    cio.convert(both, out, annotations="gtCoarse", save_media=True)
    assert os.path.isdir(os.path.join(out, "gtCoarse", "train_extra")) and not os.path.exists(os.path.join(out, "gtFine"))
    back = cio.open(out)
    assert back.reader.annotations == "gtCoarse" and len(back) == 5
    assert all(f.has("polygons") for f in back)
    report = cio.prepare(both)  # every tree, as the official scripts do
    assert report.ok and report.written == 2 + 5
    names = sorted(n for _, _, files in os.walk(both) for n in files if "TrainIds" in n)
    assert len([n for n in names if "_gtCoarse_labelTrainIds.png" in n]) == 5
    assert len([n for n in names if "_gtFine_labelTrainIds.png" in n]) == 2
    only = cio.prepare(both, annotations="gtCoarse", overwrite=True, kinds="labelTrainIds")
    assert only.written == 5 and only.resumed == 0


def test_cli_annotations_info_validate_and_zip(both, tmp_path, capsys):
    assert main(["info", both, "--annotations", "gtCoarse", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["annotations"] == {"trees": ["gtFine", "gtCoarse"], "read": "gtCoarse"}
    assert info["frames"] == 5 and set(info["splits"]) == {"train", "train_extra", "val"}
    assert main(["info", both]) == 0
    assert "annotations: gtFine (read), gtCoarse" in capsys.readouterr().out
    assert main(["validate", both, "--annotations", "gtCoarse", "-q"]) == 0
    assert [p for p in validate(both, annotations="gtCoarse") if p.severity == "error"] == []
    archive = zip_dir(both, str(tmp_path / "cs.zip"))
    assert len(cio.open(archive, annotations="gtCoarse")) == 5
    assert main(["convert", archive, str(tmp_path / "voc"), "-f", "voc", "--annotations", "gtCoarse", "-q"]) == 0
    assert len(cio.open(str(tmp_path / "voc"), format="voc")) == 5


def test_listing_a_20000_frame_split_is_lazy(tmp_path):
    """The first frame of a split comes from the first city's listing alone: once it is out,
    deleting the other cities' folders leaves only the first city's frames to come (an eager
    listing would have found all 20 000)."""
    root = tmp_path / "big"
    empty = png.encode_png(np.zeros((2, 2), np.uint16))
    for c in range(20):
        city = f"city{c:02d}"
        d = root / "gtCoarse" / "train_extra" / city
        d.mkdir(parents=True)
        for k in range(1000):
            (d / f"{city}_000000_{k:06d}_gtCoarse_instanceIds.png").write_bytes(empty)
    ds = cio.open(str(root))
    it = ds.frames("train_extra")
    first = next(it)
    assert first.id == "city00/city00_000000_000000"
    for c in range(1, 20):
        shutil.rmtree(root / "gtCoarse" / "train_extra" / f"city{c:02d}")
    assert 1 + sum(1 for _ in it) == 1000


def test_prepare_split_and_city_filters_span_the_trees(both, capsys):
    """train_extra is in gtCoarse only, test-like splits in gtFine only: a filter takes each
    tree for what it has, and a split that no tree has is an error naming the trees."""
    assert cio.prepare(both, split="train_extra").written == 3
    assert cio.prepare(both, split="val", overwrite=True).written == 2  # val: in both trees
    assert cio.prepare(both, cities="augsburg", overwrite=True).written == 3
    with pytest.raises(DatasetNotFoundError, match="no split 'extra' in gtFine, gtCoarse"):
        cio.prepare(both, split="extra")
    assert main(["info", both, "--split", "train_extra"]) == 3
    assert "--annotations gtCoarse" in capsys.readouterr().err


def test_links_to_folders_inside_a_city_are_not_followed(tmp_path):
    root = str(tmp_path / "cs")
    write_frame(root, "train", "aachen/aachen_000000_000019")
    os.symlink("..", os.path.join(root, "gtFine", "train", "aachen", "up"))
    assert [f.id for f in cio.open(root)] == ["aachen/aachen_000000_000019"]
