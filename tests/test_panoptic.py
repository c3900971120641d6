"""COCO panoptic files as ``csCreatePanopticImgs`` writes them (``prepare(kinds="panoptic")``):
the rules checked on a hand-made frame whose every segment is known, and the layout, resume,
processes, train ids and archives on synthetic data. The official script itself is the oracle
in tests/test_official_scripts.py."""
from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.errors import CityscapesIOError
from cityscapes_io.labels import LabelMap
from cityscapes_io.testing import generate

from conftest import write_frame

# prepare() into a destination without the photos says so (a warning); these trees are the
# ground truth alone on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*no photos written")

OFFICIAL = LabelMap.cityscapes()


def hand_frame(root: str) -> np.ndarray:
    inst = np.full((20, 30), 7, np.uint16)      # road (stuff)
    inst[0:2] = 0                                # unlabeled: ignored in evaluation, left out
    inst[2:4, 0:10] = 23                         # sky
    inst[5:9, 2:7] = 26000                       # car 0
    inst[5:9, 10:13] = 26003                     # car 3
    inst[10:12, 1:5] = 26                        # a group of cars: iscrowd 1
    inst[12:16, 20:25] = 24001                   # person 1
    inst[16:18, 20:25] = 29000                   # caravan: ignored in evaluation
    inst[18:20, 0:3] = 17                        # pole (stuff): never a crowd
    write_frame(root, "val", "lindau/lindau_000000_000019", inst)
    return inst


def test_segments_follow_the_official_rules(tmp_path):
    root = str(tmp_path / "cs")
    inst = hand_frame(root)
    report = cio.prepare(root, kinds="panoptic")
    assert report.ok and report.written == 1
    doc = json.load(open(os.path.join(root, "gtFine", "cityscapes_panoptic_val.json")))
    assert doc["images"] == [{"id": "lindau_000000_000019", "width": 30, "height": 20,
                              "file_name": "lindau_000000_000019_gtFine_leftImg8bit.png"}]
    (ann,) = doc["annotations"]
    assert ann["image_id"] == "lindau_000000_000019" and ann["file_name"] == "lindau_000000_000019_gtFine_panoptic.png"
    segs = {s["id"]: s for s in ann["segments_info"]}
    assert list(segs) == [7, 17, 23, 26, 24001, 26000, 26003]  # increasing values; 0 and 29000 left out
    assert {v: s["iscrowd"] for v, s in segs.items()} == {7: 0, 17: 0, 23: 0, 26: 1, 24001: 0, 26000: 0, 26003: 0}
    assert {v: s["category_id"] for v, s in segs.items()} == {7: 7, 17: 17, 23: 23, 26: 26, 24001: 24, 26000: 26,
                                                              26003: 26}
    for v, s in segs.items():
        ys, xs = np.nonzero(inst == v)
        assert s["area"] == len(xs)
        assert s["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    png = np.asarray(Image.open(os.path.join(root, "gtFine", "cityscapes_panoptic_val",
                                             "lindau_000000_000019_gtFine_panoptic.png")))
    assert png.shape == (20, 30, 3) and png.dtype == np.uint8
    px = png.astype(np.int64)
    decoded = px[..., 0] + 256 * px[..., 1] + 65536 * px[..., 2]
    kept = np.isin(inst, list(segs))
    assert np.array_equal(decoded[kept], inst[kept]) and (decoded[~kept] == 0).all()
    cats = doc["categories"]
    assert [c["name"] for c in cats] == [l.name for l in OFFICIAL if not l.ignore_in_eval]
    assert {c["name"]: c["isthing"] for c in cats}["car"] == 1 and {c["name"]: c["isthing"] for c in cats}["road"] == 0
    assert cats[0] == {"id": 7, "name": "road", "color": [128, 64, 128], "supercategory": "flat", "isthing": 0}


def test_train_ids_name_and_number_the_categories(tmp_path):
    root = str(tmp_path / "cs")
    hand_frame(root)
    assert main(["prepare", root, "--kinds", "panoptic", "--train-ids", "-q"]) == 0
    doc = json.load(open(os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId.json")))
    assert [c["id"] for c in doc["categories"]] == list(range(19))
    segs = {s["id"]: s["category_id"] for s in doc["annotations"][0]["segments_info"]}
    assert segs == {7: 0, 17: 5, 23: 10, 26: 13, 24001: 11, 26000: 13, 26003: 13}
    assert os.path.isfile(os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId",
                                       "lindau_000000_000019_gtFine_panoptic.png"))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("panoptic") / "cs")
    generate(root, splits={"train": 4, "val": 2}, size=(128, 64), seed=7, coarse={"train": 2, "train_extra": 2})
    return root


def panoptic_files(root: str) -> dict:
    out = {}
    for dirpath, _, files in os.walk(os.path.join(root, "gtFine")):
        for name in files:
            if "panoptic" in name:
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root)] = open(full, "rb").read()
    return out


def test_layout_resume_processes_and_archive(synth, tmp_path):
    one = str(tmp_path / "one")
    shutil.copytree(synth, one)
    report = cio.prepare(one, kinds="panoptic")
    assert report.ok and report.written == 6  # gtFine only, as the official script: no coarse frames
    ref = panoptic_files(one)
    assert sorted(k for k in ref if k.endswith(".json")) == [os.path.join("gtFine", "cityscapes_panoptic_train.json"),
                                                            os.path.join("gtFine", "cityscapes_panoptic_val.json")]
    assert len([k for k in ref if k.endswith(".png")]) == 6
    assert not [n for _, _, fs in os.walk(os.path.join(one, "gtCoarse")) for n in fs if "panoptic" in n]
    # Resumed after losing one PNG and the JSON: the same bytes.
    victim = sorted(k for k in ref if k.endswith(".png"))[0]
    os.remove(os.path.join(one, victim))
    os.remove(os.path.join(one, "gtFine", "cityscapes_panoptic_train.json"))
    again = cio.prepare(one, kinds="panoptic")
    assert (again.written, again.resumed) == (6, 5) and panoptic_files(one) == ref
    # Two processes, into a mirrored tree: the same bytes.
    two = str(tmp_path / "two")
    assert cio.prepare(synth, kinds="panoptic", dst=two, workers=2).ok
    assert panoptic_files(two) == ref
    # Into an archive.
    archive = str(tmp_path / "panoptic.zip")
    assert cio.prepare(synth, kinds=("panoptic", "labelTrainIds"), dst=archive).ok
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert {k.replace(os.sep, "/"): z.read(k.replace(os.sep, "/")) for k in ref} == {
            k.replace(os.sep, "/"): v for k, v in ref.items()}
    assert len([n for n in names if n.endswith("_gtCoarse_labelTrainIds.png")]) == 4  # train ids: both trees


def test_panoptic_refusals(synth, tmp_path):
    with pytest.raises(ValueError, match="made from gtFine"):
        cio.prepare(synth, kinds="panoptic", annotations="gtCoarse", dst=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="not available from polygons"):
        cio.prepare(synth, kinds="panoptic", source="polygons", dst=str(tmp_path / "y"))
    root = str(tmp_path / "clash")
    write_frame(root, "val", "a/x_000000_000019")
    write_frame(root, "val", "b/x_000000_000019")
    with pytest.raises(CityscapesIOError, match="the panoptic folder of a split is flat"):
        cio.prepare(root, kinds="panoptic")


def test_panoptic_json_streamed_to_s3(synth, s3, tmp_path):
    """The split's JSON goes to the bucket as a stream (a multipart upload), equal to the local
    file."""
    from conftest import upload_dir

    fs, opts, bucket = s3
    local = str(tmp_path / "local")
    shutil.copytree(synth, local)
    cio.prepare(local, kinds="panoptic")
    ref = panoptic_files(local)
    upload_dir(fs, synth, f"{bucket}/cs")
    assert cio.prepare(f"s3://{bucket}/cs", kinds="panoptic", storage_options=opts).ok
    fs.invalidate_cache()
    for rel, data in ref.items():
        assert fs.cat_file(f"{bucket}/cs/{rel.replace(os.sep, '/')}") == data
