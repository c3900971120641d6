"""COCO panoptic as a dataset (``format="coco_panoptic"``, Datumaro's layout): our records are
``panoptic_frame``'s, the PNGs decode to the kept instanceIds values, round trips through
Cityscapes and VOC, a hand-made foreign dataset, workers / shards / resume / zip give the same
JSON, bad input is refused with the file and the segment named, and (opt-in, in Datumaro's own
environment: ``CITYSCAPES_IO_DATUMARO_PYTHON``) Datumaro reads our output and we read its."""
from __future__ import annotations

import json
import os
import subprocess
import warnings
import zipfile

import numpy as np
import pytest
from conftest import write_file

import cityscapes_io as cio
from cityscapes_io.errors import DatasetNotFoundError, InvalidFileError
from cityscapes_io.formats.coco_panoptic import frame_id_of, segment_values
from cityscapes_io.instances import class_of_array
from cityscapes_io.labels import LabelMap
from cityscapes_io.panoptic import panoptic_categories, panoptic_frame
from cityscapes_io.png import decode_rgb, encode_png
from cityscapes_io.testing import generate

FMT = "coco_panoptic"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth") / "cityscapes")
    generate(root, splits={"train": 3, "val": 2}, size=(96, 48), seed=5, photos=True)
    return root


@pytest.fixture(scope="module")
def ours(synth, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ours") / "coco")
    report = cio.convert(synth, out, format=FMT, save_media=True)
    assert report.ok and report.written == 5
    return out


def seg_ids(path) -> np.ndarray:
    rgb = decode_rgb(open(path, "rb").read(), str(path)).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def kept_values(frame) -> np.ndarray:
    """The frame's instanceIds with the values panoptic_frame leaves out (ignored in evaluation) at 0."""
    ids = frame.instance_ids().astype(np.int64)
    keep = [s["id"] for s in panoptic_frame(frame)[2]["segments_info"]]
    return np.where(np.isin(ids, keep), ids, 0)


def read_json(root, split):
    with open(os.path.join(root, "annotations", f"panoptic_{split}.json"), "rb") as f:
        return f.read()


# -- writing ----------------------------------------------------------------------------------------
def test_records_are_panoptic_frames_and_pixels_the_kept_values(synth, ours):
    src = cio.open(synth)
    for split in ("train", "val"):
        doc = json.loads(read_json(ours, split))
        assert sorted(doc) == ["annotations", "categories", "images"]
        assert doc["categories"] == panoptic_categories(src.labels)
        frames = list(src.frames(split))
        assert [i["id"] for i in doc["images"]] == list(range(1, len(frames) + 1))  # ints from 1, per split
        for frame, image, ann in zip(frames, doc["images"], doc["annotations"]):
            _, ref_image, ref_ann = panoptic_frame(frame)
            assert image == {"id": image["id"], "width": ref_image["width"], "height": ref_image["height"],
                             "file_name": frame.id + ".png"}
            assert ann["image_id"] == image["id"] and ann["file_name"] == frame.id + ".png"
            assert ann["segments_info"] == ref_ann["segments_info"]
            pixels = seg_ids(os.path.join(ours, "annotations", f"panoptic_{split}", ann["file_name"]))
            assert np.array_equal(pixels, kept_values(frame))
            assert os.path.isfile(os.path.join(ours, "images", split, image["file_name"]))


def test_reads_back_exactly_and_to_cityscapes(synth, ours, tmp_path):
    src = {(f.split, f.id): f for f in cio.open(synth)}
    ds = cio.open(ours, format=FMT)
    assert ds.splits() == ["train", "val"]
    assert {l.name: l.has_instances for l in ds.labels}["car"] is True
    assert ds.labels["road"].color == (128, 64, 128) and ds.labels["unlabeled"].id == 0
    assert ds.labels.names == LabelMap.cityscapes().names  # official categories: the whole official map
    back = {(f.split, f.id): f for f in ds}
    assert list(back) == list(src)
    for key, frame in back.items():
        assert np.array_equal(frame.instance_ids(), kept_values(src[key]))  # segment ids kept: exact
        assert frame.image().shape == src[key].image().shape
    out = str(tmp_path / "cityscapes")
    assert cio.convert(ours, out, src_format=FMT, format="cityscapes", save_media=True).ok
    for frame in cio.open(out):
        assert np.array_equal(frame.instance_ids(), kept_values(src[(frame.split, frame.id)]))
        assert frame.has_image


def test_to_voc(synth, ours, tmp_path):
    out = str(tmp_path / "voc")
    assert cio.convert(ours, out, src_format=FMT, format="voc").written == 5
    src = {f.id: f for f in cio.open(synth)}
    for frame in cio.open(out, format="voc"):
        names = {l.id: l.name for l in frame.labels}
        got = np.vectorize(names.get)(frame.label_ids())
        ref_labels = {l.id: l.name for l in src[frame.id].labels}
        expected = np.vectorize(ref_labels.get)(class_of_array(kept_values(src[frame.id])))
        assert (got == expected).all()


def test_train_ids(synth, tmp_path):
    out = str(tmp_path / "train")
    cio.convert(synth, out, format=FMT, train_ids=True)
    doc = json.loads(read_json(out, "val"))
    assert doc["categories"] == panoptic_categories(LabelMap.cityscapes(), train_ids=True)
    assert {c["name"]: c["id"] for c in doc["categories"]}["road"] == 0
    ds = cio.open(out, format=FMT)
    assert ds.labels.names == LabelMap.cityscapes_train().names
    assert ds.labels["road"].id == 0 and ds.labels[255].name == "ignore"  # void is the train map's ignore
    src = {f.id: f for f in cio.open(synth)}
    table = LabelMap.cityscapes().train_id_table(256)
    for frame in ds:
        ref = kept_values(src[frame.id])
        got = frame.instance_ids().astype(np.int64)
        assert np.array_equal(got == 255, ref == 0)
        cls = np.where(ref == 0, 255, table[class_of_array(ref)])
        assert np.array_equal(class_of_array(got), cls)
        # renumbered per class in segments_info order: the same partition into segments
        pairs = set(zip(ref.ravel().tolist(), got.ravel().tolist()))
        assert len(pairs) == len(np.unique(ref)) == len(np.unique(got))


def test_workers_shards_resume_and_zip_give_the_same_json(synth, ours, tmp_path):
    one = {s: read_json(ours, s) for s in ("train", "val")}
    par = str(tmp_path / "par")
    cio.convert(synth, par, format=FMT, save_media=True, workers=2)
    sharded = str(tmp_path / "sharded")
    for k in range(2):
        cio.convert(synth, sharded, format=FMT, save_media=True, shard=(k, 2))
    assert not os.path.exists(os.path.join(sharded, "annotations", "panoptic_train.json"))
    cio.convert(synth, sharded, format=FMT, save_media=True, finalize=True)
    resumed = str(tmp_path / "resumed")
    cio.convert(synth, resumed, format=FMT, save_media=True)
    os.remove(os.path.join(resumed, "annotations", "panoptic_train", "aachen", "aachen_000001_000019.png"))
    os.remove(os.path.join(resumed, "annotations", "panoptic_train.json"))
    report = cio.convert(synth, resumed, format=FMT, save_media=True, resume=True)
    assert report.resumed == 4 and report.written == 5
    for out in (par, sharded, resumed):
        assert {s: read_json(out, s) for s in one} == one, out
    zipped = str(tmp_path / "out.zip")
    cio.convert(synth, zipped, format=FMT, save_media=True)
    with zipfile.ZipFile(zipped) as zf:
        assert {s: zf.read(f"annotations/panoptic_{s}.json") for s in one} == one
    back = cio.open(zipped, format=FMT)
    assert [f.id for f in back] == [f.id for f in cio.open(ours, format=FMT)]
    assert all(f.has_image and f.instance_ids() is not None for f in back)


def test_frames_without_ground_truth_and_label_0_values(tmp_path):
    labels = LabelMap([cio.Label("background", 0, (0, 0, 0)), cio.Label("thing", 1, (9, 9, 9), has_instances=True)])
    inst = cio.Instance.from_mask(np.array([[0, 1, 1], [0, 1, 0]]).astype(bool), label_id=1, id=3)
    frames = [cio.Frame.from_arrays(id="a", image=np.zeros((2, 3, 3), np.uint8), instances=[inst]),
              cio.Frame.from_arrays(id="b", image=np.full((2, 3, 3), 9, np.uint8))]
    out = str(tmp_path / "o")
    report = cio.Dataset.from_iterable(frames, labels=labels).export(out, FMT, save_media=True)
    assert report.written == 2
    doc = json.loads(read_json(out, "default"))
    assert [i["file_name"] for i in doc["images"]] == ["a.png", "b.png"]
    [ann] = doc["annotations"]  # "b" has an image record and no annotation
    assert [s["id"] for s in ann["segments_info"]] == [1003]  # value 0 (background) is void, not a segment
    assert doc["categories"] == [{"id": 0, "name": "background", "color": [0, 0, 0], "supercategory": "", "isthing": 0},
                                 {"id": 1, "name": "thing", "color": [9, 9, 9], "supercategory": "", "isthing": 1}]
    back = {f.id: f for f in cio.open(out, format=FMT)}
    assert back["a"].labels[255].name == "unlabeled"  # category 0 is taken: void is 255
    assert back["a"].instance_ids().tolist() == [[255, 1003, 1003], [255, 1003, 255]]
    assert back["b"].instance_ids() is None and back["b"].has_image


# -- reading other tools' files -----------------------------------------------------------------------
def rgb_of(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    return np.dstack([ids % 256, ids // 256 % 256, ids // 65536]).astype(np.uint8)


CATEGORIES = [{"id": 1, "name": "road", "isthing": 0, "color": [128, 64, 128], "supercategory": "flat"},
              {"id": 2, "name": "car", "isthing": 1, "color": [0, 0, 142], "supercategory": "vehicle"},
              {"id": 3, "name": "person", "isthing": 1}]


def foreign(root, *, segments=None, png_ids=None, images=None, categories=CATEGORIES, split="train"):
    """A COCO panoptic dataset as another tool writes it: random segment ids, string image ids,
    Cityscapes photo names, photos directly under images/."""
    ids = np.zeros((4, 6), np.int64)
    ids[0, :] = 5  # road
    ids[1, 0:2] = 9  # a car
    ids[1, 2:4] = 2000  # a car whose id is already an instanceIds value of car
    ids[2, :] = 123456  # a crowd of cars
    ids[3, 0:3] = 77777  # a person
    if segments is None:
        segments = [{"id": 5, "category_id": 1, "iscrowd": 0}, {"id": 9, "category_id": 2, "iscrowd": 0},
                    {"id": 2000, "category_id": 2, "iscrowd": 0}, {"id": 123456, "category_id": 2, "iscrowd": 1},
                    {"id": 77777, "category_id": 3}]
    doc = {"images": images or [{"id": "x1", "file_name": "city/city_000000_000001_leftImg8bit.png", "width": 6,
                                 "height": 4},
                                {"id": "x2", "file_name": "other.jpg", "width": 6, "height": 4}],
           "annotations": [{"image_id": "x1", "file_name": "city/a.png", "segments_info": segments}],
           "categories": categories}
    write_file(root, f"annotations/panoptic_{split}.json", json.dumps(doc).encode())
    write_file(root, f"annotations/panoptic_{split}/city/a.png", encode_png(rgb_of(ids if png_ids is None else png_ids)))
    write_file(root, "images/city/city_000000_000001_leftImg8bit.png", encode_png(np.zeros((4, 6, 3), np.uint8)))
    return root


def test_foreign_dataset_numbers_instances(tmp_path):
    root = foreign(str(tmp_path / "f"))
    ds = cio.open(root, format=FMT)
    assert [(l.id, l.name, l.has_instances) for l in ds.labels] == [
        (1, "road", False), (2, "car", True), (3, "person", True), (0, "unlabeled", False)]
    a, b = list(ds)
    assert (a.id, b.id) == ("city/city_000000_000001", "other")  # the Cityscapes photo ending left out
    assert a.city == "city" and a.has_image and not b.has_image and b.instance_ids() is None
    assert a.instance_ids().tolist() == [[1] * 6, [2001, 2001, 2000, 2000, 0, 0], [2] * 6, [3000] * 3 + [0] * 3]
    assert [(i.label.name, i.id, i.is_crowd) for i in a.instances()] == [
        ("unlabeled", None, True), ("road", None, True), ("car", None, True), ("car", 0, False), ("car", 1, False),
        ("person", 0, False)]
    out = str(tmp_path / "cs")
    assert cio.convert(root, out, src_format=FMT, format="cityscapes").written == 2
    [back] = [f for f in cio.open(out) if f.has_annotations]
    assert np.array_equal(back.instance_ids(), a.instance_ids())


def test_segment_values_rule():
    labels = LabelMap([cio.Label("wall", 12, has_instances=False), cio.Label("car", 26, has_instances=True)])
    assert segment_values([(26003, 26, False), (12, 12, False), (26, 26, True)], labels) == [26003, 12, 26]
    assert segment_values([(4, 26, False), (26000, 26, False), (7, 26, False), (99, 12, False), (26001, 26, True)],
                          labels) == [26001, 26000, 26002, 12, 26]
    assert frame_id_of("a/b_gtFine_leftImg8bit.png") == "a/b" and frame_id_of("x.jpg") == "x"
    assert frame_id_of("_leftImg8bit.png") == "_leftImg8bit"


# -- bad input --------------------------------------------------------------------------------------
def test_not_coco_panoptic(tmp_path):
    root = str(tmp_path / "a")
    write_file(root, "annotations/panoptic_train.json", b"{not json")
    with pytest.raises(InvalidFileError, match=r"panoptic_train\.json: not valid JSON"):
        cio.open(root, format=FMT)
    instances = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "car"}],
                 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, 1, 1, 0]]}]}
    write_file(root, "annotations/panoptic_train.json", json.dumps(instances).encode())
    with pytest.raises(InvalidFileError, match=r"panoptic_train\.json: not a COCO panoptic file.*COCO instances"):
        cio.open(root, format=FMT)
    write_file(root, "annotations/panoptic_train.json", b'{"images": []}')
    with pytest.raises(InvalidFileError, match="no 'annotations' list"):
        cio.open(root, format=FMT)
    with pytest.raises(DatasetNotFoundError, match="not a COCO panoptic dataset"):
        cio.open(str(tmp_path), format=FMT)


def test_png_segment_missing_from_segments_info(tmp_path):
    root = foreign(str(tmp_path / "f"), segments=[{"id": 5, "category_id": 1}, {"id": 9, "category_id": 2},
                                                  {"id": 2000, "category_id": 2}, {"id": 77777, "category_id": 3}])
    frame = next(iter(cio.open(root, format=FMT)))
    with pytest.raises(InvalidFileError, match=r"panoptic_train/city/a\.png: segment id 123456 .*x=0, y=2.*"
                                               r"not in the segments_info"):
        frame.instance_ids()
    report = cio.convert(root, str(tmp_path / "o"), src_format=FMT, format="camvid", on_error="skip")
    assert report.written == 1 and report.skipped[0][1] == "city/city_000000_000001"
    assert "123456" in report.skipped[0][2]


def test_listed_segment_absent_from_png_warns(tmp_path):
    ids = np.full((4, 6), 5)
    root = foreign(str(tmp_path / "f"), png_ids=ids)
    frame = next(iter(cio.open(root, format=FMT)))
    with pytest.warns(UserWarning, match=r"a\.png: segments_info .* absent from the PNG: 9, 2000, 77777, 123456"):
        assert (frame.instance_ids() == 1).all()


def test_unknown_category_and_wrong_size(tmp_path):
    segments = [{"id": 5, "category_id": 1}, {"id": 9, "category_id": 42}]
    root = foreign(str(tmp_path / "f"), segments=segments)
    with pytest.raises(InvalidFileError, match=r"panoptic_train\.json: city/a\.png: segment 9 has category_id 42"):
        list(cio.open(root, format=FMT))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(cio.open(root, format=FMT, on_error="skip"))
    assert [f.id for f in frames] == ["other"] and "category_id 42" in str(caught[0].message)
    images = [{"id": "x1", "file_name": "city/city_000000_000001_leftImg8bit.png", "width": 8, "height": 4}]
    root = foreign(str(tmp_path / "g"), images=images)
    with pytest.raises(InvalidFileError, match=r"a\.png: PNG is 6x4 but its image record .* says 8x4"):
        next(iter(cio.open(root, format=FMT))).instance_ids()


def test_missing_png_and_unsafe_names(tmp_path):
    root = foreign(str(tmp_path / "f"))
    os.remove(os.path.join(root, "annotations", "panoptic_train", "city", "a.png"))
    with pytest.raises(DatasetNotFoundError, match=r"a\.png: the PNG of 'city/city_000000_000001'.* is missing"):
        list(cio.open(root, format=FMT))
    images = [{"id": "x1", "file_name": "../../etc/passwd", "width": 6, "height": 4}]
    root = foreign(str(tmp_path / "g"), images=images)
    with pytest.raises(InvalidFileError, match="refused file_name"):
        list(cio.open(root, format=FMT))


# -- Datumaro (opt-in) --------------------------------------------------------------------------------
DATUMARO_PYTHON = os.environ.get("CITYSCAPES_IO_DATUMARO_PYTHON")
needs_datumaro = pytest.mark.skipif(not DATUMARO_PYTHON,
                                    reason="opt-in: set CITYSCAPES_IO_DATUMARO_PYTHON (README, Development)")

#: Imports a tree with Datumaro; saves each item's segment id (0: none) and label index (-1)
#: per pixel as ``<dir>/<id with / as __>.npz``; prints labels and ``{id: [subset, has photo]}``.
READ = r"""
import json, sys, os, numpy as np, datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], "coco_panoptic")
items = {}
for item in ds:
    masks = [a for a in item.annotations if a.type == dm.AnnotationType.mask]
    if masks:
        h, w = masks[0].image.shape
        seg, cls = np.zeros((h, w), np.int64), np.full((h, w), -1, np.int64)
        for m in masks:
            seg[m.image.astype(bool)] = m.id
            cls[m.image.astype(bool)] = m.label
        np.savez(os.path.join(sys.argv[2], item.id.replace("/", "__") + ".npz"), seg=seg, cls=cls)
    items[item.id] = [item.subset, bool(item.media and os.path.isfile(item.media.path))]
print(json.dumps({"labels": [l.name for l in ds.categories()[dm.AnnotationType.label]], "items": items}))
"""

#: Builds a dataset in Datumaro (masks with their own segment ids), exports it as
#: coco_panoptic with photos, saves each item's label index per pixel (-1: none).
MAKE = r"""
import json, os, sys, numpy as np, datumaro as dm
from datumaro.components.annotation import AnnotationType, LabelCategories
out = sys.argv[1]
names = ["road", "sky", "car", "person"]
H, W = 12, 16
items, listing = [], {}
for n, (item_id, subset) in enumerate([("frankfurt/frankfurt_000000_000294", "train"), ("lindau/lindau_000001_000019", "val")]):
    cls = np.full((H, W), -1, np.int64)
    anns = []
    for label, seg_id, sl in [(1, 11, (slice(0, 4), slice(0, W))), (0, 12, (slice(8, 12), slice(0, W))),
                              (2, 301 + n, (slice(5, 8), slice(1, 5))), (2, 40000, (slice(5, 8), slice(6, 9))),
                              (3, 7, (slice(4, 8), slice(11, 13 + n)))]:
        m = np.zeros((H, W), bool)
        m[sl] = True
        cls[m] = label
        anns.append(dm.Mask(image=m, label=label, id=seg_id))
    items.append(dm.DatasetItem(id=item_id, subset=subset, media=dm.Image.from_numpy(np.full((H, W, 3), 60, np.uint8)),
                                annotations=anns))
    np.save(os.path.join(out, item_id.replace("/", "__") + ".npy"), cls)
ds = dm.Dataset.from_iterable(items, categories={AnnotationType.label: LabelCategories.from_iterable(names)})
ds.export(os.path.join(out, "coco"), "coco_panoptic", save_media=True)
print(json.dumps({"labels": names}))
"""


def run_datumaro(script, *args):
    run = subprocess.run([DATUMARO_PYTHON, "-c", script, *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@needs_datumaro
def test_datumaro_reads_our_output(ours, tmp_path):
    result = run_datumaro(READ, ours, tmp_path)
    ds = cio.open(ours, format=FMT)
    frames = list(ds)
    assert result["items"] == {f.id: [f.split, True] for f in frames}
    names = {l.id: l.name for l in ds.labels}
    for frame in frames:
        got = np.load(tmp_path / (frame.id.replace("/", "__") + ".npz"))
        ids = frame.instance_ids().astype(np.int64)
        assert np.array_equal(got["seg"], ids)  # every pixel in the segment of its instanceIds value (void: 0)
        theirs = np.array([result["labels"][c] if c >= 0 else "unlabeled" for c in got["cls"].ravel()])
        ours_names = np.array([names[c] for c in class_of_array(ids).ravel()])
        assert (theirs == ours_names).all()


@needs_datumaro
def test_we_read_datumaro_export(tmp_path):
    result = run_datumaro(MAKE, tmp_path)
    ds = cio.open(str(tmp_path / "coco"), format=FMT)
    assert [l.name for l in ds.labels] == result["labels"] + ["unlabeled"]
    frames = list(ds)
    assert [(f.split, f.id) for f in frames] == [("train", "frankfurt/frankfurt_000000_000294"),
                                                 ("val", "lindau/lindau_000001_000019")]
    for frame in frames:
        expected = np.load(tmp_path / (frame.id.replace("/", "__") + ".npy"))
        names = {l.id: l.name for l in ds.labels}
        got = np.array([names[c] for c in class_of_array(frame.instance_ids()).ravel()]).reshape(expected.shape)
        want = np.where(expected >= 0, np.array(result["labels"] + ["unlabeled"])[expected], "unlabeled")
        assert (got == want).all()
        assert frame.has_image and frame.image().shape == expected.shape + (3,)
        # Datumaro writes isthing 0 for every category: the cars are one region of their class
        assert sorted(i.label.name for i in frame.instances()) == ["car", "person", "road", "sky", "unlabeled"]
    out = str(tmp_path / "cs")
    assert cio.convert(str(tmp_path / "coco"), out, src_format=FMT, format="cityscapes").ok
