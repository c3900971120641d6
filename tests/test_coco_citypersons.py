"""``-f coco_citypersons``: Frame.persons() as COCO in the layout of the CityPersons evaluation's
val_gt.json (issue 23), checked value by value against the CityPersons files of a generated
tree, loaded by pycocotools, and read back into the same persons from a folder, a zip and the
S3 test server."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from conftest import upload_dir, zip_dir

import cityscapes_io as cio
from cityscapes_io import formats
from cityscapes_io.cli import main
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.testing import generate

FMT = "coco_citypersons"
#: The frame whose CityPersons file the fixture removes (image kept, no annotation).
NO_FILE = ("train", "bad-honnef/bad-honnef_000000_000019")


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The format, registered for these tests when the registry does not list it yet."""
    added = FMT not in formats.FORMATS
    if added:
        formats.register(FMT, "cityscapes_io.formats.coco_citypersons", "CocoCityPersonsReader",
                         "CocoCityPersonsWriter", rank=15)
    yield
    if added:
        formats.unregister(FMT)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A generated tree with CityPersons files (one of them removed)."""
    root = str(tmp_path_factory.mktemp("cp") / "cs")
    generate(root, splits={"train": 2, "val": 2}, size=(128, 64), parts=["gtBboxCityPersons"])
    split, fid = NO_FILE
    city, base = fid.split("/")
    os.remove(os.path.join(root, "gtBboxCityPersons", split, city, f"{base}_gtBboxCityPersons.json"))
    return root


@pytest.fixture(scope="module")
def expected(src):
    """``{(split, id): persons or None}`` of the source, in frame order."""
    return {(f.split, f.id): f.persons() for f in cio.open(src)}


@pytest.fixture(scope="module")
def out(src, tmp_path_factory):
    dst = str(tmp_path_factory.mktemp("cpout") / "coco")
    report = cio.convert(src, dst, format=FMT, save_media=True)
    assert report.written == 4 and not report.skipped
    assert [(s, i) for s, i, _ in report.warnings] == [NO_FILE]
    assert "no CityPersons file" in report.warnings[0][2]
    return dst


def load(root, split):
    with open(os.path.join(root, "annotations", f"citypersons_{split}.json")) as fh:
        return json.load(fh)


def test_the_source_has_every_kind_of_box(expected):
    labels = {p.label for persons in expected.values() for p in persons or ()}
    assert {"pedestrian", "rider", "person group", "ignore"} <= labels
    assert expected[NO_FILE] is None
    assert sum(len(p or ()) for p in expected.values()) == 12


def test_the_json_holds_each_person_as_val_gt_json_does(out, expected, src):
    for split in ("train", "val"):
        doc = load(out, split)
        assert list(doc) == ["categories", "images", "annotations"]
        assert doc["categories"] == [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "rider"},
                                     {"id": 3, "name": "sitting person"}, {"id": 4, "name": "person (other)"},
                                     {"id": 5, "name": "person group"}, {"id": 0, "name": "ignore"}]
        frames = [(s, i) for s, i in expected if s == split]
        assert [img["id"] for img in doc["images"]] == list(range(1, len(frames) + 1))
        assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))
        for img, key in zip(doc["images"], frames):
            fid = key[1]
            base = fid.split("/")[1]
            assert img == {"id": img["id"], "file_name": f"{fid}_leftImg8bit.png", "im_name": f"{base}_leftImg8bit.png",
                           "height": 64, "width": 128, "frame_id": fid, "has_persons": key != NO_FILE}
            # the photo, copied byte for byte where file_name says
            with open(os.path.join(out, "leftImg8bit", split, img["file_name"]), "rb") as a, \
                    open(os.path.join(src, "leftImg8bit", split, img["file_name"]), "rb") as b:
                assert a.read() == b.read()
            anns = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
            persons = expected[key] or []
            assert len(anns) == len(persons)
            for ann, p in zip(anns, persons):
                x, y, w, h = (int(v) for v in p.bbox)
                vx, vy, vw, vh = (int(v) for v in p.bbox_vis)
                assert ann["bbox"] == [x, y, w, h] and ann["vis_bbox"] == [vx, vy, vw, vh]
                assert all(type(v) is int for v in ann["bbox"] + ann["vis_bbox"])
                assert ann["height"] == h and ann["area"] == w * h
                assert ann["vis_ratio"] == pytest.approx(vw * vh / (w * h), abs=1e-15)
                assert ann["category_id"] == 1
                assert ann["ignore"] == (0 if p.label == "pedestrian" else 1)
                assert ann["iscrowd"] == (1 if p.label in ("person group", "ignore") else 0)
                assert ann["label"] == p.label and ann["instance_id"] == p.instance_id
    occluded = [a for s in ("train", "val") for a in load(out, s)["annotations"] if a["vis_ratio"] < 1]
    assert occluded  # visibility below 1 is represented


def test_pycocotools_loads_it_and_finds_the_boxes(out, expected):
    from pycocotools.coco import COCO

    for split in ("train", "val"):
        coco = COCO(os.path.join(out, "annotations", f"citypersons_{split}.json"))
        assert sorted(coco.getCatIds()) == [0, 1, 2, 3, 4, 5]
        by_frame = {img["frame_id"]: img["id"] for img in coco.loadImgs(coco.getImgIds())}
        mine = {fid: persons or [] for (s, fid), persons in expected.items() if s == split}
        assert set(by_frame) == set(mine)
        for fid, persons in mine.items():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_frame[fid]]))
            assert [a["bbox"] for a in anns] == [[int(v) for v in p.bbox] for p in persons]
            assert [a["vis_bbox"] for a in anns] == [[int(v) for v in p.bbox_vis] for p in persons]
        everyone = [p for persons in mine.values() for p in persons]
        assert len(coco.getAnnIds(catIds=[1])) == len(everyone)  # category 1 for every box, as val_gt.json
        assert len(coco.getAnnIds(catIds=[1], iscrowd=True)) == sum(
            p.label in ("person group", "ignore") for p in everyone)
        assert sum(1 - a["ignore"] for a in coco.loadAnns(coco.getAnnIds())) == sum(
            p.label == "pedestrian" for p in everyone)
    assert len(coco.getAnnIds(iscrowd=True)) == 3  # (val: a group and two ignore regions)


def test_label_ids_as_categories(src, tmp_path, expected):
    from pycocotools.coco import COCO

    dst = str(tmp_path / "lab")
    cio.convert(src, dst, format=FMT, split="val", persons_category="label")
    coco = COCO(os.path.join(dst, "annotations", "citypersons_val.json"))
    for name, cid in (("rider", 2), ("pedestrian", 1), ("ignore", 0), ("person group", 5)):
        want = [[int(v) for v in p.bbox] for (s, _), ps in expected.items() if s == "val" for p in ps or ()
                if p.label == name]
        assert [a["bbox"] for a in coco.loadAnns(coco.getAnnIds(catIds=[cid]))] == want
    back = {f.id: f.persons() for f in cio.open(dst, format=FMT)}
    assert back == {i: p for (s, i), p in expected.items() if s == "val"}
    with pytest.raises(ValueError, match="persons_category"):
        cio.convert(src, str(tmp_path / "bad"), format=FMT, persons_category="contiguous")


def check_read_back(url, expected, storage_options=None, photos=True):
    ds = cio.open(url, format=FMT, storage_options=storage_options)
    assert formats.detect(url, storage_options)[0] == FMT
    frames = list(ds)
    assert [(f.split, f.id) for f in frames] == list(expected)
    for f in frames:
        assert f.persons() == expected[(f.split, f.id)]
        assert f.has_part("gtBboxCityPersons") == (expected[(f.split, f.id)] is not None)
        assert not f.has_annotations and f.size() == (64, 128)
        assert f.has_image == photos
    if photos:
        assert frames[0].image().shape == (64, 128, 3)
    again = pickle.loads(pickle.dumps(frames[0]))
    assert again.persons() == expected[(frames[0].split, frames[0].id)]


def test_read_back_from_the_folder(out, expected, src):
    check_read_back(out, expected)
    first = next(iter(cio.open(out, format=FMT)))
    source = next(iter(cio.open(src)))
    assert np.array_equal(first.image(), source.image())


def test_read_back_from_a_zip(out, expected, tmp_path):
    check_read_back(zip_dir(out, str(tmp_path / "cp.zip")), expected)


def test_written_to_and_read_back_from_the_s3_server(src, out, expected, s3):
    fs, opts, bucket = s3
    upload_dir(fs, out, f"{bucket}/up")
    check_read_back(f"s3://{bucket}/up", expected, opts)
    report = cio.convert(src, f"s3://{bucket}/direct", format=FMT, dst_storage_options=opts)
    assert report.written == 4
    check_read_back(f"s3://{bucket}/direct", expected, opts, photos=False)
    assert json.loads(fs.cat_file(f"{bucket}/direct/annotations/citypersons_val.json")) == load(out, "val")


def test_persons_go_back_into_a_cityscapes_tree(out, expected, tmp_path):
    back = str(tmp_path / "cs")
    cio.convert(out, back, src_format=FMT, format="cityscapes", save_media=True, parts="gtBboxCityPersons")
    # (frames without segmentation: the tree holds photos and the CityPersons files)
    city, base = "aachen", "aachen_000000_000019"
    with open(os.path.join(back, "gtBboxCityPersons", "train", city, f"{base}_gtBboxCityPersons.json")) as fh:
        doc = json.load(fh)
    assert doc["imgHeight"] == 64 and doc["imgWidth"] == 128
    assert [o["label"] for o in doc["objects"]] == [p.label for p in expected[("train", f"{city}/{base}")]]


def test_the_command_line(src, tmp_path, expected):
    dst = str(tmp_path / "cli")
    assert main(["convert", src, dst, "-f", FMT, "--split", "train", "--persons-category", "label", "-q"]) == 0
    doc = load(dst, "train")
    labels = [a["label"] for a in doc["annotations"]]
    assert [a["category_id"] for a in doc["annotations"]] == [
        {"pedestrian": 1, "rider": 2, "person group": 5, "ignore": 0}[x] for x in labels]
    assert "rider" in labels


def test_a_val_gt_json_laid_out_file_is_read(tmp_path):
    """The evaluation's own file: ``im_name`` only, every box category 1, no label of ours."""
    root = tmp_path / "vg"
    (root / "annotations").mkdir(parents=True)
    doc = {"categories": [{"id": 1, "name": "pedestrian"}, {"id": 0, "name": "ignore region"}],
           "images": [{"id": 1, "im_name": "frankfurt_000000_000294_leftImg8bit.png", "height": 1024, "width": 2048}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "ignore": 0, "bbox": [947, 406, 17, 40],
                "vis_bbox": [950, 407, 14, 39], "height": 40, "vis_ratio": 0.802941176471},
               {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "ignore": 1, "bbox": [1839, 382, 31, 71],
                "vis_bbox": [1839, 382, 31, 71], "height": 71, "vis_ratio": 1}]}
    (root / "annotations" / "citypersons_val.json").write_text(json.dumps(doc))
    (frame,) = cio.open(str(root), format=FMT)
    assert frame.id == "frankfurt/frankfurt_000000_000294" and frame.size() == (1024, 2048)
    assert [(p.label, p.bbox, p.bbox_vis, p.instance_id) for p in frame.persons()] == [
        ("pedestrian", (947.0, 406.0, 17.0, 40.0), (950.0, 407.0, 14.0, 39.0), 0),
        ("ignore", (1839.0, 382.0, 31.0, 71.0), (1839.0, 382.0, 31.0, 71.0), 0)]


def test_bad_files_are_named(tmp_path):
    root = tmp_path / "bad"
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "citypersons_val.json"
    img = {"id": 1, "file_name": "a/a_000000_000001_leftImg8bit.png", "height": 8, "width": 8}
    path.write_text(json.dumps({"categories": [], "images": [img],
                                "annotations": [{"id": 1, "image_id": 7, "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(InvalidFileError, match=r"citypersons_val\.json.*annotation id 1"):
        list(cio.open(str(root), format=FMT))
    with pytest.warns(UserWarning, match="annotation id 1"):
        assert [f.id for f in cio.open(str(root), format=FMT, on_error="skip")] == ["a/a_000000_000001"]
    path.write_text(json.dumps({"categories": [], "images": [img],
                                "annotations": [{"id": 1, "image_id": 1, "label": "pedestrian", "bbox": [0, 0, -1, 1]}]}))
    (frame,) = cio.open(str(root), format=FMT)
    with pytest.raises(InvalidFileError, match=r"citypersons_val\.json \(image id 1\).*negative size"):
        frame.persons()
    path.write_text(json.dumps({"categories": [], "images": [dict(img, height=0)]}))
    with pytest.raises(InvalidFileError, match="height and width"):
        list(cio.open(str(root), format=FMT))
