"""COCO instances (issue 11): the writer against pycocotools on synthetic Cityscapes frames, the
options, round trips through the reader, COCO -> VOC / CamVid, workers / shards / resume / zip
giving the same bytes as one run, and bad input named by file and annotation."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.errors import CityscapesIOError, InvalidFileError, UnsafePathError
from cityscapes_io.instances import class_of
from cityscapes_io.labels import LabelMap
from cityscapes_io.png import encode_png
from cityscapes_io.testing import generate
from conftest import write_file

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")

FMT = "coco_instances"
THINGS = [(24, "person"), (25, "rider"), (26, "car"), (27, "truck"), (28, "bus"), (31, "train"),
          (32, "motorcycle"), (33, "bicycle")]
SPLITS = {"train": 4, "val": 2}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco") / "src")
    generate(root, splits=SPLITS, size=(192, 96), seed=5)
    return root


@pytest.fixture(scope="module")
def coco(synth, tmp_path_factory):
    """The synthetic tree as COCO instances, photos included."""
    out = str(tmp_path_factory.mktemp("coco") / "out")
    report = cio.convert(synth, out, format=FMT, save_media=True)
    assert report.ok and report.written == sum(SPLITS.values())
    return out


def jpath(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"instancesonly_filtered_gtFine_{split}.json")


def load(root: str, split: str) -> dict:
    with open(jpath(root, split)) as fh:
        return json.load(fh)


def json_bytes(root: str):
    return {s: open(jpath(root, s), "rb").read() for s in SPLITS}


def expected_values(frame, classes=None):
    """The segment values an annotation is written for, in the order they are written."""
    keep = classes if classes is not None else {cid for cid, _ in THINGS}
    return [i.value for i in frame.instances() if i.label_id in keep]


def fortran(mask: np.ndarray) -> np.ndarray:
    return np.asfortranarray(mask.astype(np.uint8))


# -- the writer, checked by pycocotools -----------------------------------------------------------
def test_pycocotools_reads_every_mask_as_written(synth, coco, capsys):
    src = cio.open(synth)
    for split in SPLITS:
        doc = load(coco, split)
        assert list(doc) == ["categories", "images", "annotations"]
        assert doc["categories"] == [{"id": i, "name": n} for i, n in THINGS]
        api = COCO(jpath(coco, split))
        frames = list(src.frames(split))
        assert [img["id"] for img in doc["images"]] == list(range(len(frames)))
        assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))  # from 1, as COCO
        for img, frame in zip(doc["images"], frames):
            ids = frame.instance_ids()
            assert img == {"id": img["id"], "file_name": f"{frame.id}_leftImg8bit.png", "height": ids.shape[0],
                           "width": ids.shape[1], "segm_file": f"{frame.id}_gtFine_labelIds.png"}
            assert os.path.isfile(os.path.join(coco, "leftImg8bit", split, img["file_name"]))
            anns = api.loadAnns(api.getAnnIds(imgIds=[img["id"]]))
            values = expected_values(frame)
            assert len(anns) == len(values) > 0
            for ann, v in zip(anns, values):
                mask = ids == v
                assert np.array_equal(api.annToMask(ann).astype(bool), mask), (frame.id, v)
                ref = mask_utils.encode(fortran(mask))
                assert ann["segmentation"] == {"size": list(mask.shape), "counts": ref["counts"].decode()}
                assert ann["area"] == int(mask_utils.area(ref)) and isinstance(ann["area"], int)
                assert ann["bbox"] == mask_utils.toBbox(ref).tolist()
                assert ann["category_id"] == class_of(v)
                assert ann["iscrowd"] == int(v < 1000)  # mmdetection: iscrowd = value < 1000
    capsys.readouterr()


def test_classes_segmentation_and_category_ids_options(synth, tmp_path, capsys):
    src = cio.open(synth, split="train")
    labels = LabelMap.cityscapes()
    evaluated = [l for l in labels if l.id >= 0 and not l.ignore_in_eval]
    out = str(tmp_path / "all")
    cio.convert(synth, out, format=FMT, split="train", classes="all", segmentation="polygon",
                category_ids="contiguous")
    doc = load(out, "train")
    assert doc["categories"] == [{"id": k + 1, "name": l.name} for k, l in enumerate(evaluated)]
    contiguous = {l.id: k + 1 for k, l in enumerate(evaluated)}
    api = COCO(jpath(out, "train"))
    stuff_seen = False
    for img, frame in zip(doc["images"], src):
        ids = frame.instance_ids()
        anns = api.loadAnns(api.getAnnIds(imgIds=[img["id"]]))
        values = expected_values(frame, set(contiguous))
        assert len(anns) == len(values)
        for ann, v in zip(anns, values):
            label = labels[class_of(v)]
            mask = ids == v
            assert isinstance(ann["segmentation"], list) and all(len(p) >= 6 for p in ann["segmentation"])
            assert np.array_equal(api.annToMask(ann).astype(bool), mask), (frame.id, v)
            assert ann["area"] == int(mask.sum())
            assert ann["bbox"] == mask_utils.toBbox(mask_utils.encode(fortran(mask))).tolist()
            assert ann["category_id"] == contiguous[label.id]
            # COCO's crowd flag only for groups of objects: stuff regions are never crowds.
            assert ann["iscrowd"] == int(label.has_instances and v < 1000)
            stuff_seen |= not label.has_instances
    assert stuff_seen
    out = str(tmp_path / "list")
    cio.convert(synth, out, format=FMT, split="train", classes=["road", "Car"])
    doc = load(out, "train")
    assert doc["categories"] == [{"id": 7, "name": "road"}, {"id": 26, "name": "car"}]
    assert {a["category_id"] for a in doc["annotations"]} == {7, 26}
    with pytest.raises(ValueError, match="no label 'spaceship'"):
        cio.convert(synth, str(tmp_path / "bad"), format=FMT, classes=["spaceship"])
    for bad in ({"classes": "stuff"}, {"segmentation": "mask"}, {"category_ids": "dense"}):
        with pytest.raises(ValueError):
            cio.writer(str(tmp_path / "bad2"), FMT, **bad)
    capsys.readouterr()


def test_no_annotation_key_for_a_split_without_annotations(tmp_path):
    ids = np.full((8, 12), 7, np.uint16)  # road only: no thing at all
    write_file(str(tmp_path / "src"), "gtFine/val/a/a_000000_000001_gtFine_instanceIds.png", encode_png(ids))
    cio.convert(str(tmp_path / "src"), str(tmp_path / "out"), format=FMT)
    doc = load(str(tmp_path / "out"), "val")
    assert list(doc) == ["categories", "images"] and len(doc["images"]) == 1


# -- reading back ---------------------------------------------------------------------------------
def test_cityscapes_coco_cityscapes_keeps_ids_and_instance_ids(synth, coco, tmp_path):
    back = cio.open(coco, format=FMT)
    assert back.splits() == sorted(SPLITS)
    # Every category is an official label with its own id: the whole official map.
    assert back.labels == cio.LabelMap.cityscapes() and back.labels[0].name == "unlabeled"
    assert back.labels["car"].color == (0, 0, 142)
    out = str(tmp_path / "cs")
    report = cio.convert(coco, out, src_format=FMT, save_media=True)
    assert report.ok
    src, again = cio.open(synth), cio.open(out)
    pairs = list(zip(src, again))
    assert [(f.split, f.id) for f, _ in pairs] == [(g.split, g.id) for _, g in pairs] and len(pairs) == 6
    for f, g in pairs:
        # The same instanceIds for the classes written, gaps in the numbering included (the
        # writer keeps each instance's value in the annotation: COCO has no instance number).
        assert np.array_equal(g.instance_ids(), things_only(f)), f.id
        assert g.image_bytes() == f.image_bytes()
    assert [f for f, _ in pairs if not np.array_equal(renumbered(f), things_only(f))], "no frame with gaps"


def test_foreign_coco_is_numbered_in_file_order(synth, coco, tmp_path):
    """Without the kept values (COCO from another tool), instances are numbered per category
    from 0 in annotation order."""
    import glob
    import shutil

    foreign = str(tmp_path / "foreign")
    shutil.copytree(coco, foreign)
    for path in glob.glob(os.path.join(foreign, "annotations", "*.json")):
        doc = json.load(open(path))
        for ann in doc.get("annotations", []):
            ann.pop("cityscapes_instance_id", None)
        json.dump(doc, open(path, "w"))
    for f, g in zip(cio.open(synth), cio.open(foreign, format=FMT)):
        assert np.array_equal(g.instance_ids(), renumbered(f)), f.id


def things_only(frame) -> np.ndarray:
    ids = frame.instance_ids()
    keep = np.isin(np.where(ids >= 1000, ids // 1000, ids), [cid for cid, _ in THINGS])
    return np.where(keep, ids, 0)


def renumbered(frame) -> np.ndarray:
    """The frame's instanceIds with the thing classes only (other pixels background) and each
    class's instances numbered 0, 1, ... in value order: COCO has no instance numbers, so the
    reader numbers the annotations of a category in file order, which closes the gaps that
    objects hidden behind others leave in Cityscapes' numbering."""
    ids = things_only(frame)
    lut = np.arange(65536, dtype=np.uint16)
    count = {}
    for v in np.unique(ids).tolist():
        if v >= 1000:
            n = count.get(v // 1000, 0)
            count[v // 1000] = n + 1
            lut[v] = (v // 1000) * 1000 + n
    return lut[ids]


def test_coco_to_voc_and_camvid(coco, tmp_path):
    ds = cio.open(coco, format=FMT)
    expected = {(f.split, f.id): np.vectorize(lambda i: ds.labels[int(i)].name)(f.label_ids()) for f in ds}
    for fmt, opts in (("voc", {}), ("camvid", {})):
        out = str(tmp_path / fmt)
        report = cio.convert(coco, out, src_format=FMT, format=fmt, save_media=True, **opts)
        assert report.ok and report.written == 6, fmt
        got = cio.open(out, format=fmt)
        for f in got:
            names = np.vectorize(lambda i: got.labels[int(i)].name)(f.label_ids())
            assert np.array_equal(names, expected[(f.split, f.id)]), (fmt, f.id)
            assert f.has_image


# -- the pipeline: same bytes however it runs ---------------------------------------------------
def test_workers_shards_resume_and_zip_give_the_bytes_of_one_run(synth, coco, tmp_path):
    ref = json_bytes(coco)
    out = str(tmp_path / "w2")
    assert cio.convert(synth, out, format=FMT, save_media=True, workers=2).ok
    assert json_bytes(out) == ref
    out = str(tmp_path / "shards")
    for i in range(2):
        cio.convert(synth, out, format=FMT, save_media=True, shard=(i, 2))
    assert not os.path.exists(os.path.join(out, "annotations"))
    report = cio.convert(synth, out, format=FMT, save_media=True, finalize=True)
    assert report.indexed == 6 and json_bytes(out) == ref
    # Resume after losing the JSON and some photos: those frames are written again, the others
    # indexed from their pixels; every frame once, in input order.
    os.remove(jpath(out, "train"))
    for rel in ("train/aachen/aachen_000000_000019_leftImg8bit.png", "val/bad-honnef/"):
        target = os.path.join(out, "leftImg8bit", rel)
        if os.path.isdir(target):
            for name in os.listdir(target):
                os.remove(os.path.join(target, name))
        else:
            os.remove(target)
    report = cio.convert(synth, out, format=FMT, save_media=True, resume=True)
    assert (report.written, report.resumed) == (6, 4) and json_bytes(out) == ref
    # Without photos COCO has no per-frame files: resume makes every frame's records again.
    plain = str(tmp_path / "plain")
    cio.convert(synth, plain, format=FMT)
    first = json_bytes(plain)
    assert first == ref  # photos or not, the same JSON
    os.remove(jpath(plain, "val"))
    report = cio.convert(synth, plain, format=FMT, resume=True)
    assert report.resumed == 6 and json_bytes(plain) == first
    archive = str(tmp_path / "out.zip")
    assert cio.convert(synth, archive, format=FMT, save_media=True).ok
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        for split in SPLITS:
            assert zf.read(f"annotations/instancesonly_filtered_gtFine_{split}.json") == ref[split]
    assert sum(n.startswith("leftImg8bit/") for n in names) == 6
    from_zip = cio.open(archive, format=FMT)
    assert [f.id for f in from_zip] == [f.id for f in cio.open(coco, format=FMT)]


# -- generic COCO files -----------------------------------------------------------------------------
def _generic(root: str, doc: dict, split: str = "val", name: str = "instances_{split}.json") -> str:
    write_file(root, f"annotations/{name.format(split=split)}", json.dumps(doc).encode())
    return root


def _box(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.r_[0, change, flat.size]
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def test_generic_coco_rle_polygons_overlaps_crowds_and_photos(tmp_path):
    h, w = 20, 30
    car_a, car_b, crowd = _box(h, w, 2, 2, 12, 10), _box(h, w, 8, 6, 20, 14), _box(h, w, 22, 0, 30, 5)
    rider = _box(h, w, 0, 15, 6, 20)
    doc = {  # COCO's own order: categories last; ids not Cityscapes'
        "images": [{"id": 7, "file_name": "b.jpg", "height": h, "width": w},
                   {"id": 3, "file_name": "a.jpg", "height": h, "width": w}],
        "annotations": [
            {"id": 10, "image_id": 7, "category_id": 3, "iscrowd": 0,
             "segmentation": {"size": [h, w], "counts": mask_utils.encode(fortran(car_a))["counts"].decode()}},
            {"id": 11, "image_id": 7, "category_id": 3, "iscrowd": 0, "segmentation": [[8, 6, 20, 6, 20, 14, 8, 14]]},
            {"id": 12, "image_id": 7, "category_id": 3, "iscrowd": 1, "segmentation": _uncompressed(crowd)},
            {"id": 13, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": _uncompressed(rider)},
            {"id": 14, "image_id": 7, "category_id": 90, "iscrowd": 0, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
        ],
        "categories": [{"id": 1, "name": "rider"}, {"id": 3, "name": "automobile"}, {"id": 90, "name": "toothbrush"}],
    }
    root = _generic(str(tmp_path / "g"), doc)
    write_file(root, "images/val/b.jpg", b"not decoded here")
    with pytest.warns(UserWarning, match=r"toothbrush \(90\)"):
        ds = cio.open(root, format=FMT)
    assert [(l.id, l.name) for l in ds.labels] == [(0, "background"), (1, "rider"), (3, "automobile"),
                                                    (90, "toothbrush")]
    assert len({l.color for l in ds.labels}) == 4 and ds.labels["rider"].color == (255, 0, 0)
    a, b = list(ds)
    assert (a.id, b.id, a.has_image, b.has_image) == ("a", "b", False, True)
    assert a.instance_ids().tolist() == np.zeros((h, w)).tolist()
    want = np.zeros((h, w), np.uint16)
    want[car_a] = 3000
    want[car_b] = 3001  # painted over the first car where they overlap
    want[crowd] = 3
    want[rider] = 1000
    want[0:2, 0:2] = 90  # category 90 cannot number instances in 16 bits: a region
    assert np.array_equal(b.instance_ids(), want)
    crowds = {i.value for i in b.instances() if i.is_crowd}
    assert crowds == {0, 3, 90}


def test_generic_names_ids_and_category_zero(tmp_path):
    h, w = 4, 6
    doc = {"categories": [{"id": 0, "name": "thing0"}, {"id": 1, "name": "dog"}],
           "images": [{"id": 1, "file_name": "x/frame_leftImg8bit.png", "height": h, "width": w}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "segmentation": [[0, 0, 3, 0, 3, 2, 0, 2]]}]}
    root = _generic(str(tmp_path / "z"), doc, split="train2017")
    os.makedirs(os.path.join(root, "train2017", "x"))
    write_file(root, "train2017/x/frame_leftImg8bit.png", encode_png(np.zeros((h, w, 3), np.uint8)))
    with pytest.warns(UserWarning, match=r"whole-class regions .*: thing0 \(0\)"):
        ds = cio.open(root, format=FMT)
    assert ds.splits() == ["train2017"] and ds.labels[2].name == "background"
    [frame] = ds
    assert frame.id == "x/frame" and frame.city == "x" and frame.has_image
    arr = frame.instance_ids()
    assert arr[0, 0] == 0 and arr[3, 5] == 2  # category 0 a region; the background is label 2


# -- bad input ------------------------------------------------------------------------------------------
GOOD = {"categories": [{"id": 26, "name": "car"}], "images": [{"id": 0, "file_name": "f.png", "height": 4, "width": 5}]}


def _ann(**kw):
    counts = mask_utils.encode(fortran(_box(4, 5, 1, 1, 3, 3)))["counts"].decode()
    ann = {"id": 5, "image_id": 0, "category_id": 26, "iscrowd": 0, "segmentation": {"size": [4, 5], "counts": counts}}
    ann.update(kw)
    return ann


def test_not_coco(tmp_path):
    root = _generic(str(tmp_path / "a"), {"info": {}, "licenses": []})
    with pytest.raises(InvalidFileError, match=r"instances_val\.json: not a COCO file: no \"categories\""):
        cio.open(root, format=FMT)
    root = _generic(str(tmp_path / "b"), {"categories": [], "annotations": []})
    ds = cio.open(root, format=FMT)
    with pytest.raises(InvalidFileError, match=r"instances_val\.json: not a COCO file: no 'images'"):
        list(ds)
    root = _generic(str(tmp_path / "c"), {"categories": [{"id": "x"}], "images": []})
    with pytest.raises(InvalidFileError, match=r"categories\[0\]"):
        cio.open(root, format=FMT)
    with pytest.raises(CityscapesIOError, match="not a COCO instances dataset"):
        cio.open(str(tmp_path / "c" / "annotations"), format=FMT)


def test_annotation_of_a_missing_image(tmp_path):
    root = _generic(str(tmp_path / "a"), dict(GOOD, annotations=[_ann(image_id=99)]))
    with pytest.raises(InvalidFileError, match=r"instances_val\.json \(annotation id 5\): .*image_id 99"):
        list(cio.open(root, format=FMT))
    with pytest.warns(UserWarning, match="annotation id 5"):
        frames = list(cio.open(root, format=FMT, on_error="skip"))
    assert len(frames) == 1 and not frames[0].instance_ids().any()


@pytest.mark.parametrize("ann, message", [
    (_ann(category_id=27), r"category_id 27 is not among the file's categories"),
    (_ann(segmentation={"size": [5, 5], "counts": [25]}), r"RLE size is 5x5 .* but the image is 4x5"),
    (_ann(segmentation={"size": [4, 5], "counts": "!!"}), r"character '!'"),
    (_ann(segmentation=[[1, 2, 3]]), r"polygon 0 has an odd number"),
    (_ann(segmentation=7), r"segmentation is a int"),
    (_ann(segmentation=None), r"no segmentation"),
])
def test_bad_annotations_name_the_file_and_the_annotation(tmp_path, ann, message):
    root = _generic(str(tmp_path / "a"), dict(GOOD, annotations=[_ann(id=4), ann]))
    [frame] = cio.open(root, format=FMT)
    with pytest.raises(InvalidFileError, match=r"instances_val\.json \(annotation id 5\): .*" + message):
        frame.instance_ids()
    report = cio.convert(root, str(tmp_path / "out"), src_format=FMT, format=FMT, on_error="skip")
    assert report.written == 0 and len(report.skipped) == 1 and "annotation id 5" in report.skipped[0][2]


def test_two_files_for_one_split_and_unsafe_names(tmp_path):
    root = _generic(str(tmp_path / "a"), GOOD)
    _generic(root, GOOD, name="instancesonly_filtered_gtFine_{split}.json")
    with pytest.raises(CityscapesIOError, match="split 'val' has two files"):
        cio.open(root, format=FMT)
    bad = dict(GOOD, images=[{"id": 0, "file_name": "../up.png", "height": 4, "width": 5}])
    root = _generic(str(tmp_path / "b"), bad)
    with pytest.raises(UnsafePathError, match=r"instances_val\.json: image 0 'file_name': path '../up.png' leads "
                                              r"outside its root \(refused\)"):
        list(cio.open(root, format=FMT))


def test_without_kept_instance_ids_the_keys_are_mmdetections(synth, tmp_path):
    out = str(tmp_path / "plain")
    cio.convert(synth, out, format=FMT, keep_instance_ids=False)
    for name in os.listdir(os.path.join(out, "annotations")):
        doc = json.load(open(os.path.join(out, "annotations", name)))
        for ann in doc.get("annotations", []):
            assert set(ann) == {"id", "image_id", "category_id", "iscrowd", "segmentation", "area", "bbox"}
        for img in doc["images"]:
            assert set(img) == {"id", "file_name", "height", "width", "segm_file"}
