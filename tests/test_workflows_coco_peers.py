"""Issue 18, the COCO formats and their peers: Datumaro's COCO-instances layout
(``layout="datumaro"``) that Datumaro 1.13 imports and our reader reads back; prediction scores
through COCO instances (``"score"``), read back exactly, used by pycocotools' ``COCOeval`` and by
``export_predictions``; and COCO panoptic files whose VOID pixels are a category named
``unlabeled`` (what Datumaro's export of a Cityscapes tree writes).

The tests marked ``datumaro`` run Datumaro itself, in its own environment (opt-in, like
tests/test_datumaro_interop.py)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import warnings

import numpy as np
import pytest
from conftest import SEMANTIC, write_file, write_frame

import cityscapes_io as cio
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.png import encode_png

DATUMARO_PYTHON = os.environ.get("CITYSCAPES_IO_DATUMARO_PYTHON")
datumaro = pytest.mark.skipif(not DATUMARO_PYTHON, reason="opt-in: set CITYSCAPES_IO_DATUMARO_PYTHON")

FRAMES = [("train", "bad-honnef/bad-honnef_000001_000042"), ("train", "aachen/aachen_000010_000019"),
          ("val", "muhlheim-ruhr/muhlheim-ruhr_000000_000005")]


@pytest.fixture
def cs(tmp_path):
    """A Cityscapes tree of three frames (cars, a crowd of cars, a person, road) with photos."""
    root = str(tmp_path / "cs")
    for split, frame_id in FRAMES:
        write_frame(root, split, frame_id)
    return root


def files_under(root: str) -> list:
    return sorted(os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
                  for d, _, names in os.walk(root) for n in names if not n.startswith("."))


# -- 1. Datumaro's layout ---------------------------------------------------------------------------
def test_datumaro_layout_paths_records_and_read_back(cs, tmp_path):
    out = str(tmp_path / "dm")
    assert cio.convert(cs, out, format="coco_instances", layout="datumaro", save_media=True).written == 3
    assert files_under(out) == ["annotations/instances_train.json", "annotations/instances_val.json",
                                "images/train/aachen/aachen_000010_000019.png",
                                "images/train/bad-honnef/bad-honnef_000001_000042.png",
                                "images/val/muhlheim-ruhr/muhlheim-ruhr_000000_000005.png"]
    with open(os.path.join(out, "annotations", "instances_train.json")) as f:
        doc = json.load(f)
    # file_name is the frame id (Datumaro's item id, as for the Cityscapes tree); no segm_file
    assert doc["images"] == [{"id": 0, "file_name": "aachen/aachen_000010_000019.png", "height": 24, "width": 32},
                             {"id": 1, "file_name": "bad-honnef/bad-honnef_000001_000042.png", "height": 24,
                              "width": 32}]
    src = {f.id: f for f in cio.open(cs)}
    back = list(cio.open(out, format="coco_instances"))
    assert sorted((f.split, f.id) for f in back) == sorted(FRAMES)
    for frame in back:
        assert frame.has_image and np.array_equal(frame.image(), src[frame.id].image())
        things = np.isin(SEMANTIC // 1000, [24, 26])  # the classes with instances that COCO keeps
        assert np.array_equal(frame.instance_ids()[things], SEMANTIC[things])
        assert np.array_equal(frame.instance_ids()[SEMANTIC == 26], SEMANTIC[SEMANTIC == 26])  # the crowd


def test_mmdetection_layout_stays_the_default(cs, tmp_path):
    out = str(tmp_path / "mm")
    cio.convert(cs, out, format="coco_instances", save_media=True)
    assert "annotations/instancesonly_filtered_gtFine_val.json" in files_under(out)
    assert "leftImg8bit/val/muhlheim-ruhr/muhlheim-ruhr_000000_000005_leftImg8bit.png" in files_under(out)
    with open(os.path.join(out, "annotations", "instancesonly_filtered_gtFine_val.json")) as f:
        [image] = json.load(f)["images"]
    assert image["file_name"] == "muhlheim-ruhr/muhlheim-ruhr_000000_000005_leftImg8bit.png"
    assert image["segm_file"] == "muhlheim-ruhr/muhlheim-ruhr_000000_000005_gtFine_labelIds.png"


def test_layout_value_is_checked(tmp_path):
    with pytest.raises(ValueError, match="layout must be one of mmdetection, datumaro, got 'detectron2'"):
        cio.writer(str(tmp_path / "x"), "coco_instances", layout="detectron2")


def test_datumaro_layout_without_photos_makes_the_images_folders(cs, tmp_path, s3):
    """Datumaro's importer refuses a dataset without ``images/``: it is made, empty, where the
    destination has folders (a folder, a zip's directory entries); an object store has none,
    and a warning says so."""
    import zipfile

    out = str(tmp_path / "dm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cio.convert(cs, out, format="coco_instances", layout="datumaro")
    assert files_under(out) == ["annotations/instances_train.json", "annotations/instances_val.json"]
    assert sorted(os.listdir(os.path.join(out, "images"))) == ["train", "val"]
    assert [f.has_image for f in cio.open(out, format="coco_instances")] == [False] * 3
    archive = str(tmp_path / "dm.zip")
    cio.convert(cs, archive, format="coco_instances", layout="datumaro")
    with zipfile.ZipFile(archive) as z:
        assert {"images/train/", "images/val/"} <= set(z.namelist())
        assert all(i.is_dir() for i in z.infolist() if i.filename.startswith("images/"))
    assert len(cio.open(archive, format="coco_instances")) == 3
    _, options, bucket = s3
    url = f"s3://{bucket}/coco-dm"
    with pytest.warns(UserWarning, match=r"no photos written \(save_media\), and an object store has no empty "
                                         r"folder: Datumaro's COCO importer refuses a dataset without the folder "
                                         r"images/"):
        cio.convert(cs, url, format="coco_instances", layout="datumaro", dst_storage_options=options)


def test_datumaro_layout_resumes_complete(cs, tmp_path):
    out = str(tmp_path / "dm")
    cio.convert(cs, out, format="coco_instances", layout="datumaro", save_media=True)
    before = {p: open(os.path.join(out, p), "rb").read() for p in files_under(out)}
    report = cio.convert(cs, out, format="coco_instances", layout="datumaro", save_media=True, resume=True)
    assert report.resumed == 3  # every photo is where the layout puts it: nothing written again
    assert {p: open(os.path.join(out, p), "rb").read() for p in files_under(out)} == before


# -- 2. scores --------------------------------------------------------------------------------------
H, W = 32, 48
#: Scores no decimal rounding keeps: they must come back as the same floats.
SCORES = [0.1 + 0.2, 1 / 3, 0.9876543210123457, 2.5e-7]
#: The annotations' scores of a frame of :func:`predictions`, in the file's (value) order: the
#: crowd (26, none), the person (24002), the cars (26000, 26001, 26003).
IN_FILE_ORDER = [None, SCORES[2], SCORES[0], SCORES[1], SCORES[3]]


def box(y, x, h=8, w=10) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


def predictions(scores=SCORES):
    """Two frames of predicted cars and a person with scores, and a crowd region without one."""
    frames = []
    for n in range(2):
        insts = [cio.Instance.from_mask(box(2, 2 + 12 * k), label_id=26 if k != 2 else 24, id=k, score=s)
                 for k, s in enumerate(scores)]
        insts.append(cio.Instance.from_mask(box(20, 2, 6, 40), label_id=26, is_crowd=True))
        frames.append(cio.Frame.from_arrays(id=f"aachen/aachen_00000{n}_000019", split="val", instances=insts,
                                            image=np.zeros((H, W, 3), np.uint8)))
    return frames


@pytest.mark.parametrize("layout", ["mmdetection", "datumaro"])
def test_scores_written_and_read_back_exactly(tmp_path, layout):
    out = str(tmp_path / "pred")
    cio.Dataset.from_iterable(predictions()).export(out, "coco_instances", layout=layout, save_media=True)
    [name] = os.listdir(os.path.join(out, "annotations"))
    with open(os.path.join(out, "annotations", name)) as f:
        anns = json.load(f)["annotations"]
    # in value order (the crowd 26 has no score, then person 24002, cars 26000, 26001, 26003)
    assert [a.get("score") for a in anns] == IN_FILE_ORDER * 2
    frames = list(cio.open(out, format="coco_instances"))
    for frame in frames:
        want = list(zip([26, 24002, 26000, 26001, 26003], IN_FILE_ORDER))
        # the segments (sorted by value), and the detections as made, in file order
        assert [(i.value, i.score) for i in frame.instances() if i.label.name != "unlabeled"] == want
        given = frame.original_instances()
        assert [(i.value, i.score) for i in given] == want
        assert all(isinstance(i.score, float) for i in given if i.score is not None)
    # Written again from what was read: the same JSON
    again = str(tmp_path / "again")
    cio.convert(out, again, src_format="coco_instances", format="coco_instances", layout=layout, save_media=True)
    with open(os.path.join(again, "annotations", name)) as f:
        assert [a.get("score") for a in json.load(f)["annotations"]] == [a.get("score") for a in anns]


def test_export_predictions_from_coco_keeps_the_scores(tmp_path):
    out = str(tmp_path / "pred")
    cio.Dataset.from_iterable(predictions()).export(out, "coco_instances")
    sub = str(tmp_path / "sub")
    cio.export_predictions(cio.open(out, format="coco_instances"), sub, task="instance")
    with open(os.path.join(sub, "aachen", "aachen_000000_000019_pred.txt")) as f:
        lines = [line.split() for line in f]
    assert [(int(label), float(score)) for _, label, score in lines] == [
        (24, SCORES[2]), (26, SCORES[0]), (26, SCORES[1]), (26, SCORES[3])]


def test_overlapping_detections_keep_their_own_masks(tmp_path):
    """A detector's masks overlap: read back, each detection has its whole mask and score."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    a, b = box(4, 4, 10, 20), box(8, 10, 10, 20)
    frame = cio.Frame.from_arrays(id="aachen/aachen_000000_000019", instances=[
        cio.Instance.from_mask(a, label_id=26, id=0, score=0.75),
        cio.Instance.from_mask(b, label_id=26, id=1, score=0.5)])
    out = str(tmp_path / "pred")
    cio.Dataset.from_iterable([frame]).export(out, "coco_instances")
    [back] = cio.open(out, format="coco_instances")
    # COCO instances are written from the painted segments: the first car loses its covered part
    first, second = back.original_instances()
    assert (first.score, second.score) == (0.75, 0.5)
    assert np.array_equal(first.mask, a & ~b) and np.array_equal(second.mask, b)
    # a file with overlapping detections (another tool's) keeps them whole
    path = os.path.join(out, "annotations", "instancesonly_filtered_gtFine_default.json")
    with open(path) as f:
        doc = json.load(f)
    rle = mask_utils.encode(np.asfortranarray(a.astype(np.uint8)))
    doc["annotations"][0]["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    with open(path, "w") as f:
        json.dump(doc, f)
    [back] = cio.open(out, format="coco_instances")
    assert np.array_equal(back.original_instances()[0].mask, a)


def test_non_finite_score_is_refused_naming_the_frame(tmp_path):
    frame = cio.Frame.from_arrays(id="aachen/aachen_000000_000019", split="val",
                                  instances=[cio.Instance.from_mask(box(2, 2), label_id=26, id=0, score=float("nan"))])
    with pytest.raises(InvalidFileError, match=r"val/aachen/aachen_000000_000019: instance 26000: score nan is not "
                                               r"a finite number"):
        cio.Dataset.from_iterable([frame]).export(str(tmp_path / "o"), "coco_instances")


def test_a_score_that_is_not_a_number_is_refused_naming_the_annotation(tmp_path):
    root = str(tmp_path / "coco")
    doc = {"categories": [{"id": 26, "name": "car"}],
           "images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 6}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 26, "iscrowd": 0, "segmentation": [[0, 0, 3, 0, 3, 2, 0, 2]],
                            "score": "high"}]}
    write_file(root, "annotations/instances_val.json", json.dumps(doc).encode())
    [frame] = cio.open(root, format="coco_instances")
    with pytest.raises(InvalidFileError, match=r"instances_val.json \(annotation id 7\): score is \"high\", not a "
                                               r"number"):
        frame.original_instances()


def test_cocoeval_ranks_detections_by_our_scores(tmp_path):
    """Ground truth and detections both written as COCO instances: pycocotools reads the
    detections' scores, and AP depends on them (a false positive ranked first halves it)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = box(2, 2, 10, 12)
    gt = cio.Frame.from_arrays(id="aachen/aachen_000000_000019", split="val",
                               instances=[cio.Instance.from_mask(truth, label_id=26, id=0)])
    cio.Dataset.from_iterable([gt]).export(str(tmp_path / "gt"), "coco_instances")

    def ap(hit: float, miss: float) -> tuple:
        pred = cio.Frame.from_arrays(id=gt.id, split="val", instances=[
            cio.Instance.from_mask(truth, label_id=26, id=0, score=hit),
            cio.Instance.from_mask(box(18, 30, 10, 12), label_id=26, id=1, score=miss)])
        out = str(tmp_path / f"pred-{hit}")
        cio.Dataset.from_iterable([pred]).export(out, "coco_instances")
        with open(os.path.join(out, "annotations", "instancesonly_filtered_gtFine_val.json")) as f:
            dets = json.load(f)["annotations"]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(os.path.join(tmp_path, "gt", "annotations", "instancesonly_filtered_gtFine_val.json"))
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval(coco_gt, coco_dt, "segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return sorted(a["score"] for a in coco_dt.loadAnns(coco_dt.getAnnIds())), float(ev.stats[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ranked, best = ap(0.9, 0.1)
        scores, halved = ap(0.1, 0.9)
    assert ranked == scores == [0.1, 0.9]
    assert best == pytest.approx(1.0, abs=1e-12) and halved == pytest.approx(0.5, abs=1e-12)


# -- 3. COCO panoptic: VOID in a category named "unlabeled" ----------------------------------------
#: Datumaro's export of a Cityscapes tree: every label a category (id = its index + 1, names
#: without spaces, isthing 0), ``unlabeled`` among them, its pixels VOID (segment id 0).
DATUMARO_NAMES = ["unlabeled", "egovehicle", "road", "car"]


@pytest.mark.parametrize("first_id", [1, 0], ids=["datumaro-ids-from-1", "unlabeled-is-category-0"])
def test_panoptic_void_is_the_unlabeled_category(tmp_path, first_id):
    root = str(tmp_path / "pan")
    cats = [{"id": first_id + k, "name": n, "supercategory": "", "isthing": 0} for k, n in enumerate(DATUMARO_NAMES)]
    ids = np.zeros((4, 6), np.int64)  # VOID
    ids[3, :] = 1  # egovehicle
    ids[2, :] = 2  # road
    ids[0, 4:] = 3  # a car
    segments = [{"id": 1, "category_id": first_id + 1, "iscrowd": 0, "area": 6, "bbox": [0, 3, 6, 1]},
                {"id": 2, "category_id": first_id + 2, "iscrowd": 0, "area": 6, "bbox": [0, 2, 6, 1]},
                {"id": 3, "category_id": first_id + 3, "iscrowd": 0, "area": 2, "bbox": [4, 0, 2, 1]}]
    doc = {"licenses": [], "info": {}, "categories": cats,
           "images": [{"id": 5, "width": 6, "height": 4, "file_name": "aachen/aachen_000000_000019.png"}],
           "annotations": [{"image_id": 5, "file_name": "aachen/aachen_000000_000019.png",
                            "segments_info": segments}]}
    write_file(root, "annotations/panoptic_val.json", json.dumps(doc).encode())
    rgb = np.dstack([ids % 256, ids // 256, ids // 65536]).astype(np.uint8)
    write_file(root, "annotations/panoptic_val/aachen/aachen_000000_000019.png", encode_png(rgb))
    write_file(root, "images/val/aachen/aachen_000000_000019.png", encode_png(np.zeros((4, 6, 3), np.uint8)))
    ds = cio.open(root, format="coco_panoptic")
    assert [(lab.id, lab.name) for lab in ds.labels] == [(first_id + k, n) for k, n in enumerate(DATUMARO_NAMES)]
    [frame] = list(ds)
    assert sorted((i.label.name, i.area) for i in frame.instances()) == [  # (UnknownLabelError on VOID before)
        ("car", 2), ("egovehicle", 6), ("road", 6), ("unlabeled", 10)]
    names = np.array([[ds.labels[int(v)].name for v in row] for row in frame.label_ids()])
    assert names.tolist() == [["unlabeled"] * 4 + ["car"] * 2, ["unlabeled"] * 6, ["road"] * 6, ["egovehicle"] * 6]
    out = str(tmp_path / "cs")
    assert cio.convert(root, out, src_format="coco_panoptic", format="cityscapes", label_map="cityscapes").ok
    [back] = cio.open(out)
    assert back.label_ids().tolist() == [[0] * 4 + [26] * 2, [0] * 6, [7] * 6, [1] * 6]


# -- Datumaro itself (opt-in) -----------------------------------------------------------------------
#: Imports ``argv[1]`` as ``argv[2]`` and prints its labels and, per item, its subset, photo and
#: annotations ``[type, label name, is_crowd, score, area]`` (masks as pixel counts).
IMPORT = r"""
import json, sys, numpy as np, datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], sys.argv[2])
names = [l.name for l in ds.categories()[dm.AnnotationType.label]]
items = {}
for item in ds:
    anns = []
    for a in sorted(item.annotations, key=lambda a: (a.id, a.type.name)):
        area = int(a.image.astype(bool).sum()) if a.type == dm.AnnotationType.mask else [float(v) for v in a.get_bbox()]
        anns.append([a.type.name, names[a.label] if a.label is not None else None, a.attributes.get("is_crowd"),
                     a.attributes.get("score"), area])
    items[item.id] = {"subset": item.subset, "photo": item.media.has_data, "size": list(item.media.size),
                      "annotations": anns}
print(json.dumps({"labels": names, "items": items}))
"""

#: Imports the Cityscapes tree ``argv[1]``, saves each item's label index per pixel (-1: no mask)
#: as ``argv[2]/<id with / as __>.npy``, exports it as coco_panoptic with photos to ``argv[3]``
#: and prints its labels.
PANOPTIC = r"""
import json, os, sys, numpy as np, datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], "cityscapes")
for item in ds:
    masks = [a for a in item.annotations if a.type == dm.AnnotationType.mask]
    h, w = masks[0].image.shape
    cls = np.full((h, w), -1, np.int32)
    for m in masks:
        cls[m.image.astype(bool)] = m.label
    np.save(os.path.join(sys.argv[2], item.id.replace("/", "__") + ".npy"), cls)
ds.export(sys.argv[3], "coco_panoptic", save_media=True)
print(json.dumps({"labels": [l.name for l in ds.categories()[dm.AnnotationType.label]]}))
"""


def run_datumaro(script, *args):
    run = subprocess.run([DATUMARO_PYTHON, "-c", script, *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@datumaro
def test_datumaro_imports_our_datumaro_layout(cs, tmp_path):
    out = str(tmp_path / "dm")
    cio.convert(cs, out, format="coco_instances", layout="datumaro", save_media=True)
    result = run_datumaro(IMPORT, out, "coco_instances")
    with open(os.path.join(out, "annotations", "instances_train.json")) as f:
        categories = {c["id"]: c["name"] for c in json.load(f)["categories"]}
    assert result["labels"] == [categories[k] for k in sorted(categories)]  # the 8 classes with instances
    frames = {f.id: f for f in cio.open(out, format="coco_instances")}
    assert sorted(result["items"]) == sorted(frames)
    for item_id, item in result["items"].items():
        frame = frames[item_id]
        assert item["subset"] == frame.split and item["photo"] and item["size"] == list(frame.size())
        segments = [i for i in frame.instances() if i.label_id in categories]  # in annotation order
        masks = [a for a in item["annotations"] if a[0] == "mask"]
        boxes = [a for a in item["annotations"] if a[0] == "bbox"]
        assert [(m[1], m[2], m[4]) for m in masks] == [(i.label.name, i.is_crowd, i.area) for i in segments]
        assert [b[4] for b in boxes] == [[float(v) for v in i.bbox] for i in segments]


@datumaro
def test_datumaro_imports_our_datumaro_layout_without_photos(cs, tmp_path):
    out = str(tmp_path / "dm")
    cio.convert(cs, out, format="coco_instances", layout="datumaro")
    result = run_datumaro(IMPORT, out, "coco_instances")
    frames = {f.id: f for f in cio.open(out, format="coco_instances")}
    assert sorted(result["items"]) == sorted(frames)
    assert not any(item["photo"] for item in result["items"].values())
    assert sum(len(item["annotations"]) for item in result["items"].values()) > 0


@datumaro
def test_datumaro_reads_our_scores(tmp_path):
    out = str(tmp_path / "dm")
    cio.Dataset.from_iterable(predictions()).export(out, "coco_instances", layout="datumaro", save_media=True)
    result = run_datumaro(IMPORT, out, "coco_instances")
    for item_id, item in result["items"].items():
        assert item["subset"] == "val" and item["photo"]
        assert [m[3] for m in item["annotations"] if m[0] == "mask"] == IN_FILE_ORDER


@datumaro
def test_we_read_datumaros_coco_panoptic_of_a_cityscapes_tree(tmp_path):
    arrays, out = tmp_path / "arrays", str(tmp_path / "pan")
    arrays.mkdir()
    result = run_datumaro(PANOPTIC, cio.sample_path(), arrays, out)
    assert result["labels"][0] == "unlabeled"
    ds = cio.open(out, format="coco_panoptic")
    assert ds.labels.names == result["labels"]  # no label added: VOID is Datumaro's "unlabeled"
    sample = {(f.split, f.id) for f in cio.open(cio.sample_path())}
    frames = list(ds)
    assert {(f.split, f.id) for f in frames} == sample
    for frame in frames:
        assert sum(i.area for i in frame.instances()) == frame.instance_ids().size  # VOID is a segment too
        theirs = np.load(arrays / (frame.id.replace("/", "__") + ".npy"))
        want = np.where(theirs >= 0, np.array(result["labels"], dtype=object)[theirs], "unlabeled")
        table = {lab.id: lab.name for lab in ds.labels}
        got = np.vectorize(table.__getitem__, otypes=[object])(frame.label_ids())
        assert (got == want).all(), frame.id
        assert frame.has_image and frame.image().shape[:2] == theirs.shape
