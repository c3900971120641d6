"""``-f yolo``: Ultralytics' layout written from a generated tree (boxes and polygons checked
against the frames' instances), read back, with a photo key, from a zip and from S3, and, opt-in,
read by Datumaro 1.13's YOLO-Ultralytics importer."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest
from conftest import upload_dir, zip_dir
from PIL import Image, ImageDraw

import cityscapes_io as cio
from cityscapes_io import formats
from cityscapes_io.cli import main
from cityscapes_io.formats.yolo import bridge_fragments, data_yaml, parse_data_yaml
from cityscapes_io.instances import Instance
from cityscapes_io.labels import LabelMap
from cityscapes_io.rle import mask_to_polygons, polygons_to_mask
from cityscapes_io.testing import generate

THINGS = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
FOGGY = "leftImg8bit_foggy@beta_0.02"
DATUMARO_PYTHON = os.environ.get("CITYSCAPES_IO_DATUMARO_PYTHON")


@pytest.fixture(scope="module", autouse=True)
def registered():
    """``yolo`` registered for these tests when the registry does not have it yet."""
    added = "yolo" not in formats.FORMATS
    if added:
        formats.register("yolo", "cityscapes_io.formats.yolo", "YoloReader", "YoloWriter", rank=25)
    yield
    if added:
        formats.unregister("yolo")


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gen") / "cs")
    generate(root, splits={"train": 2, "val": 2}, size=(128, 64), parts=["leftImg8bit_foggy"])
    return root


def lines_of(path):
    with open(path) as f:
        return [line.split() for line in f.read().splitlines()]


def expected_objects(frame, classes=THINGS, crowd=False):
    """``(class index, bbox)`` of the frame's instances that the writer writes, in value order."""
    out = []
    for inst in frame.instances():
        name = frame.labels[inst.label_id].name
        if name in classes and (crowd or not inst.is_crowd):
            out.append((classes.index(name), inst.bbox))
    return out


def box_of(fields, w, h):
    """The pixel box ``(x, y, w, h)`` of a box line, rounded."""
    cx, cy, bw, bh = (float(f) for f in fields[1:])
    return (round((cx - bw / 2) * w), round((cy - bh / 2) * h), round(bw * w), round(bh * h))


def test_boxes_data_yaml_and_photos_by_key(gen, tmp_path):
    out = str(tmp_path / "y")
    report = cio.convert(gen, out, format="yolo", image=FOGGY)
    assert report.written == 4 and not report.skipped
    src = cio.open(gen, image=FOGGY)
    seen = 0
    for frame in src:
        name = frame.id.split("/")[-1]
        photo = os.path.join(out, "images", frame.split, name + ".png")
        with open(photo, "rb") as f:
            assert f.read() == frame.image_bytes()  # the Foggy photo, copied as it is
        assert "leftImg8bit_foggy" in frame.shown("image")
        lines = lines_of(os.path.join(out, "labels", frame.split, name + ".txt"))
        want = expected_objects(frame)
        assert len(lines) == len(want) > 0
        for fields, (index, bbox) in zip(lines, want):
            assert len(fields) == 5 and int(fields[0]) == index
            assert all(len(f.split(".")[1]) == 6 and 0 <= float(f) <= 1 for f in fields[1:])
            assert box_of(fields, 128, 64) == bbox
            seen += 1
    assert seen >= 10
    with open(os.path.join(out, "data.yaml")) as f:
        text = f.read()
    doc = parse_data_yaml(text, "data.yaml")
    assert doc["path"] == os.path.abspath(out)
    assert doc["train"] == "images/train" and doc["val"] == "images/val"
    assert doc["names"] == dict(enumerate(THINGS)) and int(doc["nc"]) == 8
    # The same with the fallback reader (no PyYAML), and the text itself.
    assert 'names:\n  0: "person"\n  1: "rider"\n' in text and "\ntrain: images/train\n" in text
    # Read back: the boxes are the instances' boxes, the labels the names.
    back = cio.open(out, format="yolo")
    assert [lab.name for lab in back.labels if lab.name in THINGS] == THINGS
    originals = {(f.split, f.id): f for f in cio.open(gen, image=FOGGY)}
    for frame in back:
        original = originals[(frame.split, frame.id)]
        got = [(THINGS.index(frame.labels[i.label_id].name), i.bbox) for i in frame.original_instances()]
        assert got == expected_objects(original)
        assert frame.image_bytes() == original.image_bytes()


def test_the_yaml_reader_without_pyyaml(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    text = data_yaml("/data/cs", ["train", "val", "yes"], ["person", 'a "quoted" name', "no"])
    with_yaml = parse_data_yaml(text, "data.yaml")
    monkeypatch.setattr(builtins, "__import__", no_yaml)
    without = parse_data_yaml(text, "data.yaml")
    assert without == {"path": "/data/cs", "train": "images/train", "val": "images/val", "yes": "images/yes",
                       "nc": "3", "names": {0: "person", 1: 'a "quoted" name', 2: "no"}}
    assert with_yaml["names"] == without["names"] and with_yaml["yes"] == "images/yes"
    assert parse_data_yaml("names:\n  - car\n  - bus\n", "x")["names"] == ["car", "bus"]
    assert parse_data_yaml("names: [car, bus]\n", "x")["names"] == ["car", "bus"]


def _hand_frame():
    """A 40x24 frame: a car box at known pixels, and a person in two fragments, one with a hole."""
    h, w = 24, 40
    car = np.zeros((h, w), bool)
    car[2:8, 3:13] = True  # x 3..12, y 2..7
    person = np.zeros((h, w), bool)
    person[10:20, 20:28] = True
    person[13:16, 22:25] = False  # the hole
    person[4:8, 33:37] = True  # the second fragment
    labels = LabelMap.cityscapes()
    return cio.Frame.from_arrays(id="aachen/aachen_000123_000019", split="train",
                                 image=np.full((h, w, 3), 90, np.uint8),
                                 instances=[Instance.from_mask(car, label_id=labels["car"].id),
                                            Instance.from_mask(person, label_id=labels["person"].id)]), car, person


def test_a_hand_built_frame_boxes_and_polygons(tmp_path):
    frame, car, person = _hand_frame()
    out = str(tmp_path / "boxes")
    with cio.writer(out, "yolo", labels=LabelMap.cityscapes()) as wr:
        wr.write(frame)
    lines = lines_of(os.path.join(out, "labels/train/aachen_000123_000019.txt"))
    # person (24000) before car (26000); class indices in label-map order: person 0, car 2
    # person: x 20..36 (the second fragment ends at 36), y 4..19; car: x 3..12, y 2..7
    assert lines == [["0", "0.712500", "0.500000", "0.425000", "0.666667"],
                     ["2", "0.200000", "0.208333", "0.250000", "0.250000"]]
    out = str(tmp_path / "polys")
    with cio.writer(out, "yolo", labels=LabelMap.cityscapes(), segmentation="polygon") as wr:
        wr.write(frame)
    lines = lines_of(os.path.join(out, "labels/train/aachen_000123_000019.txt"))
    assert [f[0] for f in lines] == ["0", "2"]
    for fields, mask in zip(lines, (person, car)):
        xy = np.array([float(v) for v in fields[1:]]).reshape(-1, 2) * (40, 24)
        # Stated tolerance: centre-inside, even-odd (our reader, pycocotools): exact.
        drawn = polygons_to_mask([xy.ravel().tolist()], 24, 40)
        assert (drawn == mask).all()
        # Outline-filling rasterisers (Pillow; OpenCV's fillPoly, as Ultralytics draws): a superset,
        # the mask plus its right/lower edge pixels and the bridges.
        img = Image.new("L", (40, 24), 0)
        ImageDraw.Draw(img).polygon(xy.ravel().tolist(), fill=1)
        pil = np.asarray(img).astype(bool)
        assert (pil | mask == pil).all()
    [got] = list(cio.open(out, format="yolo"))
    assert got.id == "aachen/aachen_000123_000019"
    masks = [i.mask for i in got.original_instances()]
    assert (masks[0] == person).all() and (masks[1] == car).all()
    assert got.size() == (24, 40)


def test_bridge_fragments_two_fragments_and_a_hole():
    mask = np.zeros((30, 30), bool)
    mask[2:12, 2:12] = True
    mask[5:8, 5:8] = False  # hole
    mask[20:27, 15:29] = True
    mask[1:4, 25:28] = True  # a third fragment
    rings = [np.array(p).reshape(-1, 2) for p in mask_to_polygons(mask)]
    assert len(rings) == 3
    joined = bridge_fragments(rings)
    assert (polygons_to_mask([joined.ravel().tolist()], 30, 30) == mask).all()
    # the bridges are walked there and back: every bridge edge appears in both directions
    edges = list(zip(map(tuple, joined), map(tuple, np.roll(joined, -1, axis=0))))
    ring_edges = {e for r in rings for e in zip(map(tuple, r), map(tuple, np.roll(r, -1, axis=0)))}
    bridges = [e for e in edges if e not in ring_edges and e[0] != e[1]]
    assert len(bridges) == 4 and all((b, a) in bridges for a, b in bridges)


def test_generated_polygons_rasterise_back_to_the_masks(gen, tmp_path):
    out = str(tmp_path / "p")
    cio.convert(gen, out, format="yolo", segmentation="polygon")
    src = {(f.split, f.id): f for f in cio.open(gen)}
    n = 0
    for frame in cio.open(out, format="yolo"):
        want = [i for i in src[(frame.split, frame.id)].instances()
                if not i.is_crowd and frame.labels[i.label_id].name in THINGS]
        got = frame.original_instances()
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.label_id == b.label_id and a.bbox == b.bbox and (a.mask == b.mask).all()
            n += 1
    assert n >= 10


def test_classes_crowd_and_command_line(gen, tmp_path):
    out = str(tmp_path / "c")
    assert main(["convert", gen, out, "-f", "yolo", "--classes", "car,person", "--include-crowd", "-q"]) == 0
    doc = parse_data_yaml(open(os.path.join(out, "data.yaml")).read(), "d")
    assert doc["names"] == {0: "person", 1: "car"}  # label-map order
    for frame in cio.open(gen):
        lines = lines_of(os.path.join(out, "labels", frame.split, frame.id.split("/")[-1] + ".txt"))
        want = expected_objects(frame, ["person", "car"], crowd=True)
        assert [(int(f[0]), box_of(f, 128, 64)) for f in lines] == want
    crowds = sum(i.is_crowd and frame.labels[i.label_id].name in THINGS
                 for frame in cio.open(gen) for i in frame.instances())
    assert crowds > 0  # the default (test above) leaves these out
    assert cio.open(out, format="yolo").splits() == ["train", "val"]
    assert formats.detect(out)[0] == "yolo"


def test_from_a_zip_and_from_s3(gen, tmp_path, s3):
    archive = zip_dir(gen, str(tmp_path / "cs.zip"))
    out = str(tmp_path / "fromzip")
    cio.convert(archive, out, format="yolo", image=FOGGY)
    ref = str(tmp_path / "ref")
    cio.convert(gen, ref, format="yolo", image=FOGGY)
    for sub in ("labels/train/aachen_000000_000019.txt", "images/val/bad-honnef_000001_000019.png"):
        assert open(os.path.join(out, sub), "rb").read() == open(os.path.join(ref, sub), "rb").read()
    fs, opts, bucket = s3
    upload_dir(fs, gen, f"{bucket}/cs")
    dest = f"s3://{bucket}/yolo"
    cio.convert(f"s3://{bucket}/cs", dest, format="yolo", image=FOGGY, storage_options=opts,
                dst_storage_options=opts)
    fs.invalidate_cache()
    assert fs.cat_file(f"{bucket}/yolo/labels/train/aachen_000000_000019.txt") == \
        open(os.path.join(ref, "labels/train/aachen_000000_000019.txt"), "rb").read()
    text = fs.cat_file(f"{bucket}/yolo/data.yaml").decode()
    assert "\npath: .\n" in text
    back = cio.open(dest, format="yolo", storage_options=opts)
    local = cio.open(ref, format="yolo")
    for a, b in zip(back, local):
        assert a.id == b.id and [i.bbox for i in a.original_instances()] == [i.bbox for i in b.original_instances()]
    # A zip destination, read back as a zip.
    zipped = str(tmp_path / "y.zip")
    cio.convert(gen, zipped, format="yolo")
    assert sum(len(f.original_instances()) for f in cio.open(zipped, format="yolo")) == \
        sum(len(f.original_instances()) for f in local)


DATUMARO_READ = textwrap.dedent("""
    import json, sys
    from datumaro.components.dataset import Dataset
    ds = Dataset.import_from(sys.argv[1], "yolo")
    names = [c.name for c in ds.categories()[1].items] if ds.categories() else []
    items = {}
    for item in ds:
        items[item.subset + "/" + item.id] = [[a.label, a.x, a.y, a.w, a.h] for a in item.annotations]
    print(json.dumps({"names": names, "items": items}))
""")


@pytest.mark.skipif(not DATUMARO_PYTHON, reason="opt-in: set CITYSCAPES_IO_DATUMARO_PYTHON (README, Development)")
def test_datumaro_reads_our_boxes(gen, tmp_path):
    out = str(tmp_path / "y")
    cio.convert(gen, out, format="yolo", image=FOGGY)
    run = subprocess.run([DATUMARO_PYTHON, "-c", DATUMARO_READ, out], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["names"] == THINGS
    frames = list(cio.open(gen))
    assert sorted(got["items"]) == sorted(f"{f.split}/{f.id.split('/')[-1]}" for f in frames)
    for frame in frames:
        boxes = got["items"][f"{frame.split}/{frame.id.split('/')[-1]}"]
        want = expected_objects(frame)
        assert len(boxes) == len(want) > 0
        for (label, x, y, w, h), (index, bbox) in zip(boxes, want):
            assert label == index
            assert np.allclose([x, y, w, h], bbox, atol=1e-3)
