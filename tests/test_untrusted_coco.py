"""COCO instances, COCO panoptic and RLE from files nobody checked (issue 17): RLE counts whose
sum wraps int64 (a SIGSEGV before), declared sizes refused before they are allocated, duplicate
image ids, paths from the JSON kept inside the dataset root (a canary beside the root is never
read), and wrong JSON types named by file instead of Python's own exceptions."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import traced_peak, write_file

import cityscapes_io as cio
from cityscapes_io import rle
from cityscapes_io.cli import main
from cityscapes_io.errors import CityscapesIOError, InvalidFileError, UnsafePathError
from cityscapes_io.png import MAX_PIXELS, encode_png

INST = "coco_instances"
PAN = "coco_panoptic"
#: Counts that sum to 2**64 + 12: int64 wraps the sum to 12, the pixels of a 3x4 mask.
WRAPPING = [2 ** 62, 2 ** 62, 2 ** 62, 2 ** 62 + 12]
#: Peak memory allowed while a crafted file is refused (its declared size is gigabytes).
SMALL = 8 << 20

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")
CANARY = b"CANARY: read from outside the dataset root"


def coco_doc(segmentation=None, **image):
    """A COCO instances file of one 3x4 image (``image`` overrides its record) with one car."""
    record = {"id": 1, "file_name": "city/city_000000_000001_leftImg8bit.png", "height": 3, "width": 4}
    record.update(image)
    doc = {"categories": [{"id": 26, "name": "car"}], "images": [record], "annotations": []}
    if segmentation is not None:
        doc["annotations"] = [{"id": 7, "image_id": 1, "category_id": 26, "iscrowd": 0,
                               "segmentation": segmentation}]
    return doc


def coco_root(root: str, doc, split: str = "val") -> str:
    """A COCO instances dataset of ``doc`` (a dict, or the JSON text itself)."""
    text = doc if isinstance(doc, str) else json.dumps(doc)
    write_file(root, f"annotations/instances_{split}.json", text.encode())
    return root


def read_everything(root: str, fmt: str = INST):
    """Open, iterate and decode every frame: what every command does with a dataset."""
    for frame in cio.open(root, format=fmt):
        frame.instance_ids()


def refused(fn, *args) -> CityscapesIOError:
    with pytest.raises(CityscapesIOError) as info:
        fn(*args)
    return info.value


# -- 1. RLE counts are checked exactly ------------------------------------------------------------------
def triangle_counts() -> np.ndarray:
    """Counts of a compressed RLE (each within 2**34 of the count two places before, so every
    difference takes 7 characters at most) that sum to 2**64 + 12."""
    unit = 1 << 33
    chain = np.r_[np.arange(1, 1 << 15), np.arange(1 << 15, 0, -1)] * unit  # sums to 2**30 units
    counts = np.empty(1 + 2 * chain.size, dtype=np.int64)
    counts[0] = 12
    counts[1::2] = chain
    counts[2::2] = chain
    assert sum(int(c) for c in counts) == 2 ** 64 + 12 and int(counts.sum()) == 12  # int64 wraps
    return counts


def test_wrapping_counts_crashed_convert_and_now_name_the_annotation(tmp_path):
    root = coco_root(str(tmp_path / "coco"), coco_doc({"size": [3, 4], "counts": WRAPPING}))
    # In a process of its own: the bug this guards against was a SIGSEGV (exit status 139).
    run = subprocess.run([sys.executable, "-c", "import sys; from cityscapes_io.cli import main; "
                                                "sys.exit(main(sys.argv[1:]))",
                          "convert", root, str(tmp_path / "out"), "-f", "cityscapes"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "instances_val.json (annotation id 7): RLE count 0 is 4611686018427387904, more than the 12 pixels " \
           "of its size" in run.stdout + run.stderr


@pytest.mark.parametrize("counts, reason", [
    (WRAPPING, "RLE count 0 is 4611686018427387904, more than the 12 pixels of its size"),
    ([2 ** 64 + 1, 3], "RLE count 0 is 18446744073709551617, more than the 12 pixels"),
    ([2 ** 63 + 5, 7], "RLE count 0 is 9223372036854775813, more than the 12 pixels"),  # numpy: float64
    (np.array([2 ** 63 + 5, 7], dtype=np.uint64), "RLE count 0 is 9223372036854775813"),
    ([5, -1, 8], "RLE count 1 is negative (-1)"),
    ([12, 0, 1], "RLE counts sum to 13 pixels, but its size 3x4 has 12"),
    ([[1, 2], [3]], "counts list must hold integers only"),
    ([1.0, 11], "counts list must hold integers only"),
    ([True, 11], "counts list must hold integers only"),
    ([1, None], "counts list must hold integers only"),
    ({"a": 1}, "RLE counts is dict"),
])
def test_uncompressed_counts_are_checked_exactly(counts, reason):
    doc = {"size": [3, 4], "counts": counts}
    for fn in (rle.area, rle.decode, rle.bbox):
        err = refused(lambda d: fn(d, path="x.json (annotation id 7)"), doc)
        assert isinstance(err, InvalidFileError) and err.path == "x.json (annotation id 7)"
        assert reason in err.reason


def test_compressed_counts_whose_sum_wraps_are_refused():
    text = rle._compress(triangle_counts())[0]
    doc = {"size": [3, 4], "counts": text}
    for fn in (rle.area, rle.decode, rle.bbox):
        err = refused(lambda d: fn(d, path="x.json"), doc)
        assert err.reason == "RLE count 1 is 8589934592, more than the 12 pixels of its size"
    # A count past the size as the first difference that leaves 0..h*w: named exactly.
    late = np.array([0, 6, 3, 3, 2 ** 33 + 3], dtype=np.int64)
    err = refused(rle.area, {"size": [3, 4], "counts": rle._compress(late)[0]})
    assert err.reason == "RLE count 4 is 8589934595, more than the 12 pixels of its size"


def test_valid_rles_still_match_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(3)
    for _ in range(20):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        mask = rng.random((h, w)) < rng.random()
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        ours = {"size": [h, w], "counts": ref["counts"].decode()}
        assert np.array_equal(rle.decode(ours), mask_utils.decode(ref).astype(bool))
        assert rle.area(ours) == int(mask_utils.area(ref))
        assert rle.bbox(ours) == mask_utils.toBbox(ref).tolist()


# -- 2. declared sizes, before allocation ------------------------------------------------------------
@pytest.mark.parametrize("height, width, reason", [
    (60000, 60000, f"image id 1: height x width is 60000x60000, more than the limit of {MAX_PIXELS} pixels"),
    (0, 4, "image id 1: height and width must be positive integers, got 0 x 4"),
    (-3, 4, "image id 1: height and width must be positive integers, got -3 x 4"),
    (3.0, 4, "got 3.0 x 4"),
    ("3", 4, "got '3' x 4"),
    (True, 4, "got True x 4"),
])
def test_coco_image_sizes_are_checked_before_allocation(tmp_path, height, width, reason):
    root = coco_root(str(tmp_path / "coco"), coco_doc([[0, 0, 2, 0, 2, 2]], height=height, width=width))

    def attempt():
        err = refused(read_everything, root)
        assert isinstance(err, InvalidFileError) and "instances_val.json" in str(err) and reason in err.reason

    assert traced_peak(attempt) < SMALL


@pytest.mark.parametrize("segmentation, reason", [
    ({"size": [60000, 60000], "counts": [3600000000]},
     f"RLE size is 60000x60000 (height x width), more than the limit of {MAX_PIXELS} pixels"),
    ({"size": [20000, 6000], "counts": [120000000]}, "RLE size is 20000x6000 (height x width), but the image is 3x4"),
    ([[0, 0, 4e8, 0, 0, 4e8]], "polygon 0 has the point (4e+08, 0), more than 104 pixels outside the 4x3 image"),
    ([[0, 0, 2, 0, 2, 2], [-105, 0, 2, 0, 2, 2]], "polygon 1 has the point (-105, 0)"),
])
def test_rle_sizes_and_polygon_points_are_checked_before_allocation(tmp_path, segmentation, reason):
    root = coco_root(str(tmp_path / "coco"), coco_doc(segmentation))

    def attempt():
        err = refused(read_everything, root)
        assert "instances_val.json (annotation id 7): " in str(err) and reason in err.reason

    assert traced_peak(attempt) < SMALL


def test_polygon_points_near_the_image_are_drawn(tmp_path):
    root = coco_root(str(tmp_path / "coco"), coco_doc([[-104, -50, 108, -50, 108, 2, -104, 2]]))
    [frame] = cio.open(root, format=INST)
    assert frame.instance_ids().tolist() == [[26000] * 4, [26000] * 4, [0] * 4]


def test_non_finite_bbox_is_not_valid_json(tmp_path):
    doc = coco_doc([[0, 0, 2, 0, 2, 2]])
    doc["annotations"][0]["bbox"] = "@"
    text = json.dumps(doc).replace('"@"', "[0, 0, Infinity, 1e400]")
    root = coco_root(str(tmp_path / "coco"), text)
    err = refused(read_everything, root)
    assert isinstance(err, InvalidFileError) and "instances_val.json: not valid JSON" in str(err)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR (valid checksum) declaring ``width x height``, then nothing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(
        ">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)


def pan_doc(**image):
    record = {"id": 1, "file_name": "city/city_000000_000001_leftImg8bit.png", "height": 4, "width": 6}
    record.update(image)
    return {"images": [record], "categories": [{"id": 1, "name": "road"}, {"id": 2, "name": "car", "isthing": 1}],
            "annotations": [{"image_id": 1, "file_name": "city/a.png",
                             "segments_info": [{"id": 5, "category_id": 1}]}]}


def pan_root(root: str, doc, png: bytes = b"") -> str:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    write_file(root, "annotations/panoptic_train.json", text.encode())
    write_file(root, "annotations/panoptic_train/city/a.png",
               png or encode_png(np.dstack([np.full((4, 6), 5, np.uint8), np.zeros((4, 6, 2), np.uint8)])))
    return root


def test_panoptic_valid_dataset_reads(tmp_path):
    [frame] = cio.open(pan_root(str(tmp_path / "p"), pan_doc()), format=PAN)
    assert (frame.instance_ids() == 1).all()


@pytest.mark.parametrize("height, width, reason", [
    (60000, 60000, f"images[0]: height x width is 60000x60000, more than the limit of {MAX_PIXELS} pixels"),
    (0, 6, "images[0]: height and width must be positive integers, got 0 x 6"),
    ("4", 6, "got '4' x 6"),
    (4, None, "got 4 x None"),
])
def test_panoptic_image_sizes_are_checked(tmp_path, height, width, reason):
    root = pan_root(str(tmp_path / "p"), pan_doc(height=height, width=width))
    err = refused(read_everything, root, PAN)
    assert "panoptic_train.json" in str(err) and reason in err.reason


def test_panoptic_png_larger_than_its_record_is_refused_before_decoding(tmp_path):
    root = pan_root(str(tmp_path / "p"), pan_doc(), png=header_only_png(16384, 8192))

    def attempt():
        err = refused(read_everything, root, PAN)
        assert "panoptic_train/city/a.png: PNG is 16384x8192 but its image record in" in str(err)
        assert err.reason.endswith("says 6x4")

    assert traced_peak(attempt) < SMALL


# -- 3. duplicate ids --------------------------------------------------------------------------------
def test_duplicate_coco_image_ids_are_errors(tmp_path):
    doc = coco_doc([[0, 0, 2, 0, 2, 2]])
    doc["images"] += [dict(doc["images"][0], file_name="other.png"),
                      {"id": 2, "file_name": "fine.png", "height": 3, "width": 4}]
    root = coco_root(str(tmp_path / "coco"), doc)
    err = refused(read_everything, root)
    assert "instances_val.json: image id 1 is given to 2 images" in str(err)
    errors = []
    frames = [f.id for f in cio.open(root, format=INST, on_error=errors.append)]
    assert frames == ["fine"] and len(errors) == 2  # each image of the id reported
    with pytest.raises(InvalidFileError, match="image id 1 is given to 2 images"):
        cio.convert(root, str(tmp_path / "out"), src_format=INST, format=INST)


def test_coco_annotation_of_no_image_is_reported(tmp_path):
    doc = coco_doc([[0, 0, 2, 0, 2, 2]])
    doc["annotations"][0]["image_id"] = 99
    root = coco_root(str(tmp_path / "coco"), doc)
    err = refused(read_everything, root)
    assert "instances_val.json (annotation id 7): the annotation refers to image_id 99" in str(err)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["images"].append(dict(d["images"][0], file_name="x.png")),
     "panoptic_train.json: images[0]: image id 1 is given to 2 images"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0], file_name="city/b.png")),
     "panoptic_train.json: two annotations for image id 1"),
    (lambda d: d["annotations"][0].update(image_id=9),
     "panoptic_train.json: annotations[0] (city/a.png) refers to image id 9, which no image has"),
])
def test_panoptic_duplicate_and_unknown_image_ids_are_errors(tmp_path, change, message):
    doc = pan_doc()
    change(doc)
    root = pan_root(str(tmp_path / "p"), doc)
    err = refused(read_everything, root, PAN)
    assert message in str(err)


# -- 4. paths from the JSON stay inside the root -----------------------------------------------------
@pytest.fixture
def beside(tmp_path):
    """A dataset root and a canary file beside it (outside the root)."""
    canary = tmp_path / "canary.png"
    canary.write_bytes(CANARY)
    return str(tmp_path / "root"), str(canary)


def no_canary_in(folder: str) -> bool:
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                if CANARY in fh.read():
                    return False
    return True


@pytest.mark.parametrize("name, why", [
    ("../../../canary.png", "leads outside its root"),  # from leftImg8bit/val/
    ("ABSOLUTE", "is absolute"),
    ("a\0.png", "contains a NUL byte"),
    ("link.png", "leads through a symbolic link"),
])
def test_coco_file_names_stay_inside_the_root(beside, tmp_path, name, why):
    root, canary = beside
    name = canary if name == "ABSOLUTE" else name
    coco_root(root, coco_doc(file_name=name))
    os.makedirs(os.path.join(root, "leftImg8bit", "val"))
    os.symlink(canary, os.path.join(root, "leftImg8bit", "val", "link.png"))
    with pytest.raises(UnsafePathError) as info:
        list(cio.open(root, format=INST))
    assert f"instances_val.json: image 1 'file_name': path {name!r} {why}" in str(info.value)
    out = str(tmp_path / "out")
    assert main(["convert", root, out, "-f", "cityscapes", "--save-media", "-q"]) == 1
    assert no_canary_in(out)


@pytest.mark.parametrize("where", ["annotation", "image"])
@pytest.mark.parametrize("name, why", [
    ("../../../canary.png", "leads outside its root"),
    ("ABSOLUTE", "is absolute"),
    ("link.png", "leads through a symbolic link"),
])
def test_panoptic_file_names_stay_inside_the_root(beside, tmp_path, where, name, why):
    root, canary = beside
    name = canary if name == "ABSOLUTE" else name
    doc = pan_doc()
    if where == "annotation":
        doc["annotations"][0]["file_name"] = name
        entry = "annotation of image 1 'file_name'"
    else:
        doc["images"][0]["file_name"] = name
        entry = "image 1 'file_name'"
    pan_root(root, doc)
    for folder in ("annotations/panoptic_train", "images/train"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        os.symlink(canary, os.path.join(root, folder, "link.png"))
    if where == "image" and name != "link.png":  # refused as a frame id before it is resolved
        why, entry = "refused file_name", "images[0]"
    with pytest.raises(InvalidFileError) as info:
        list(cio.open(root, format=PAN))
    assert f"panoptic_train.json: {entry}" in str(info.value) and why in str(info.value)
    out = str(tmp_path / "out")
    assert main(["convert", root, out, "-f", "cityscapes", "--save-media", "-q"]) == 1
    assert no_canary_in(out)


# -- 5. wrong types are errors naming the file ---------------------------------------------------------
COCO_BAD = [
    ('{"categories": [], "images": [], "annotations": {}}', "'annotations' is not a list"),
    ('{"categories": {}, "images": []}', "no \"categories\" list"),
    ('{"images": [], "categories": [{"id": 1, "name": "a"}], "categories": 5}', "'categories' is not a list"),
    ('{"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "images": []}', "category id 1 is given twice"),
    ('{"categories": [{"id": NaN, "name": "a"}], "images": []}', "not valid JSON"),
    ('{"categories": ' + "[" * 100000 + "]" * 100000 + ', "images": []}', "not valid JSON"),
    ('{"categories": [], "images": [{"file_name": "a.png", "height": 3, "width": 4}]}', "images[0] has no id"),
    ('{"categories": [], "images": [{"id": [1], "file_name": "a.png", "height": 3, "width": 4}]}',
     "images[0] has no id"),
    ('{"categories": [], "images": [{"id": 1, "file_name": 5, "height": 3, "width": 4}]}', "has no file_name"),
    ('{"categories": [], "images": [7]}', "images[0] is not an object"),
    ('{"categories": [], "images": [], "annotations": [[1]]}', "the annotation is not an object"),
    ('{"categories": [{"id": 26, "name": "car"}], "images": [{"id": 1, "file_name": "a.png", "height": 3, '
     '"width": 4}], "annotations": [{"id": 7, "image_id": {"x": 1}}]}', "refers to image_id {'x': 1}"),
    (json.dumps(coco_doc("0 0 2 0 2 2")), "segmentation is a str"),
    (json.dumps(coco_doc({"size": [3, 4], "counts": {"a": 12}})), "RLE counts is dict"),
    (json.dumps(coco_doc({"size": [3, 4]})), "RLE counts is NoneType"),
    (json.dumps(coco_doc({"counts": [12]})), "RLE size is None"),
    (json.dumps(coco_doc({"size": "3x4", "counts": [12]})), "RLE size is '3x4'"),
    (json.dumps(coco_doc([{"x": 1}])), "polygon 0 is not a flat list"),
    (json.dumps(coco_doc([[0, 0, 2, 0, [2], 2]])), "polygon 0 is not a flat list"),
    (json.dumps(coco_doc({"size": [3, 4], "counts": "\u00e9"})), "not ASCII"),
]


@pytest.mark.parametrize("text, reason", COCO_BAD)
def test_coco_wrong_types_are_errors_naming_the_file(tmp_path, text, reason):
    root = coco_root(str(tmp_path / "coco"), text)
    err = refused(read_everything, root)
    assert isinstance(err, InvalidFileError) and "instances_val.json" in str(err) and reason in str(err)


PAN_BAD = [
    (lambda d: d.update(categories={}), "no 'categories' list"),
    (lambda d: d["categories"].append({"id": [1], "name": "x"}), "categories[2]: 'id' is [1], expected int"),
    (lambda d: d["categories"].append({"id": 1, "name": "again"}), "categories[2]: category id 1 is given twice"),
    (lambda d: d["categories"].append("road"), "categories[2] has no 'id'"),
    (lambda d: d["images"][0].update(id=None), "images[0]: 'id' is None"),
    (lambda d: d["images"][0].pop("file_name"), "images[0] has no 'file_name'"),
    (lambda d: d["annotations"][0].update(segments_info={}), "'segments_info' is {}"),
    (lambda d: d["annotations"][0]["segments_info"].append(3), "segments_info[1] has no 'id'"),
    (lambda d: d["annotations"][0]["segments_info"][0].update(id=1.5), "'id' is 1.5, expected int"),
    (lambda d: d["annotations"][0].update(file_name=["a.png"]), "'file_name' is ['a.png'], expected str"),
    (lambda d: d.update(images=[[]]), "images[0] has no 'id'"),
]


@pytest.mark.parametrize("change, reason", PAN_BAD)
def test_panoptic_wrong_types_are_errors_naming_the_file(tmp_path, change, reason):
    doc = pan_doc()
    change(doc)
    root = pan_root(str(tmp_path / "p"), doc)
    err = refused(read_everything, root, PAN)
    assert isinstance(err, InvalidFileError) and "panoptic_train.json" in str(err) and reason in str(err)


def test_panoptic_non_finite_and_deep_json(tmp_path):
    for text in ('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a", "isthing": NaN}]}',
                 '{"images": ' + "[" * 100000 + "]" * 100000 + "}"):
        root = pan_root(str(tmp_path / "p"), text)
        err = refused(read_everything, root, PAN)
        assert "panoptic_train.json: not valid JSON" in str(err)
