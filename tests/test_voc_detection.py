"""Pascal VOC detection (``-f voc_detection``, issue 23): the XML values against the frames'
instances (and hand-checked 1-based coordinates), the ImageSets lists, JPEG by default and PNG
with ``image_ext``, the Foggy photo by key, zips and the S3 server, a reproduction of
detectron2's ``load_voc_instances``, and (opt-in) Datumaro 1.13's ``voc_detection`` importer."""
from __future__ import annotations

import io
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import upload_dir, zip_dir
from PIL import Image

import cityscapes_io as cio
from cityscapes_io import formats
from cityscapes_io.cli import main
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.formats.voc_detection import frame_id_of, parse_annotation, voc_id
from cityscapes_io.testing import generate

THINGS = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
FOG = "leftImg8bit_foggy@beta_0.02"


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The format, registered for these tests when the registry does not list it yet."""
    added = "voc_detection" not in formats.FORMATS
    if added:
        formats.register("voc_detection", "cityscapes_io.formats.voc_detection", "VocDetectionReader",
                         "VocDetectionWriter", rank=55)
    yield
    if added:
        formats.unregister("voc_detection")


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("vocdet") / "cs")
    generate(root, splits={"train": 2, "val": 2}, size=(128, 64), parts=["leftImg8bit_foggy"])
    return root


def xml_objects(path):
    """``[(name, truncated, difficult, pose, (xmin, ymin, xmax, ymax))]`` and the size of an XML."""
    root = ET.parse(path).getroot()
    size = tuple(int(root.find(f"size/{t}").text) for t in ("width", "height", "depth"))
    objs = [(o.find("name").text, int(o.find("truncated").text), int(o.find("difficult").text),
             o.find("pose").text, tuple(int(o.find(f"bndbox/{t}").text) for t in ("xmin", "ymin", "xmax", "ymax")))
            for o in root.iterfind("object")]
    return root, size, objs


def expected_objects(frame):
    """What the XML must hold for a frame: the boxes of its thing segments, 1-based."""
    h, w = frame.instance_ids().shape
    out = []
    for inst in frame.instances():
        if inst.label.name not in THINGS:
            continue
        x, y, bw, bh = inst.bbox
        truncated = int(x == 0 or y == 0 or x + bw == w or y + bh == h)
        out.append((inst.label.name, truncated, int(inst.is_crowd), "Unspecified", (x + 1, y + 1, x + bw, y + bh)))
    return out


def read(path):
    with open(path) as f:
        return f.read()


def test_the_tree_written_as_voc_detection(cs, tmp_path):
    out = str(tmp_path / "voc")
    report = cio.convert(cs, out, format="voc_detection")
    assert report.written == 4
    src = cio.open(cs)
    n_crowd = n_boxes = 0
    for frame in src:
        vid = voc_id(frame.id)
        assert vid == frame.id.split("/")[1] and frame_id_of(vid) == frame.id  # flattened, and back
        root, size, objs = xml_objects(os.path.join(out, "Annotations", vid + ".xml"))
        assert size == (128, 64, 3)
        assert root.find("filename").text == vid + ".jpg" and root.find("folder").text == frame.city
        assert objs == expected_objects(frame) and objs
        n_boxes += len(objs)
        n_crowd += sum(o[2] for o in objs)
        photo = os.path.join(out, "JPEGImages", vid + ".jpg")
        with Image.open(photo) as im:  # JPEG by default: re-encoded, close to the PNG photo
            assert im.format == "JPEG" and im.size == (128, 64)
            assert np.abs(np.asarray(im).astype(int) - frame.image().astype(int)).mean() < 4
    assert n_crowd > 0 and n_boxes > n_crowd  # the generated frames have group regions and instances
    # The lists: every frame of the split, per class "<id> % d" (1, 0 difficult only, -1).
    for split in ("train", "val"):
        frames = [f for f in src if f.split == split]
        assert read(f"{out}/ImageSets/Main/{split}.txt") == "".join(voc_id(f.id) + "\n" for f in frames)
        for name in THINGS:
            lines = read(f"{out}/ImageSets/Main/{name}_{split}.txt").splitlines()
            want = []
            for f in frames:
                mine = [o for o in expected_objects(f) if o[0] == name]
                flag = 1 if any(not o[2] for o in mine) else (0 if mine else -1)
                want.append(f"{voc_id(f.id)} {flag:2d}")
            assert lines == want
    assert "aachen_000000_000019  1" in read(f"{out}/ImageSets/Main/person_train.txt").splitlines()
    assert read(f"{out}/labelmap.txt").splitlines()[1:] == (
        ["background:0,0,0::"] + [f"{n}:{','.join(map(str, cio.LabelMap.cityscapes()[n].color))}::" for n in THINGS])
    # Detected, and read back: the boxes are the written ones, crowd regions as difficult.
    assert formats.detect(out)[0] == "voc_detection"
    back = cio.open(out, format="voc_detection")
    assert back.labels.names == cio.LabelMap.cityscapes().names
    assert sorted((f.split, f.id) for f in back) == sorted((f.split, f.id) for f in src)
    for frame in back:
        boxes = [(i.label.name, int(i.is_crowd), i.bbox) for i in frame.original_instances()]
        want = [(i.label.name, int(i.is_crowd), i.bbox) for i in src.frame(frame.id).instances()
                if i.label.name in THINGS]
        assert boxes == want
        assert frame.image_ext == ".jpg" and frame.size() == (64, 128)


def test_hand_checked_coordinates(tmp_path):
    """Boxes at known places: 0-based (x, y, w, h) -> 1-based inclusive corners."""
    labels = cio.LabelMap.cityscapes()
    h, w = 20, 30
    car = np.zeros((h, w), bool)
    car[5:9, 2:7] = True  # x 2..6, y 5..8: (3, 6, 7, 9)
    person = np.zeros((h, w), bool)
    person[12:20, 25:30] = True  # touches the right and bottom border: truncated
    crowd = np.zeros((h, w), bool)
    crowd[0:3, 10:14] = True  # a group of riders at the top: difficult, truncated
    road = np.zeros((h, w), bool)
    road[15:17, 0:10] = True
    frame = cio.Frame.from_arrays(id="a/b_000001_000002", split="train", image=np.full((h, w, 3), 90, np.uint8),
                                  instances=[cio.Instance.from_mask(road, label_id=labels["road"].id),
                                             cio.Instance.from_mask(car, label_id=labels["car"].id, id=3),
                                             cio.Instance.from_mask(person, label_id=labels["person"].id, id=0),
                                             cio.Instance.from_mask(crowd, label_id=labels["rider"].id,
                                                                    is_crowd=True)],
                                  labels=labels)
    out = str(tmp_path / "voc")
    with cio.writer(out, "voc_detection", labels=labels) as wr:
        wr.write(frame)
    # "a/b_000001_000002" is not <city>/<city>_..: it keeps its folder.
    root, size, objs = xml_objects(os.path.join(out, "Annotations", "a", "b_000001_000002.xml"))
    assert size == (30, 20, 3) and root.find("filename").text == "b_000001_000002.jpg"
    # In instanceIds value order: rider region 25, person 24000, car 26003 (road: not a thing).
    assert objs == [("rider", 1, 1, "Unspecified", (11, 1, 14, 3)),
                    ("person", 1, 0, "Unspecified", (26, 13, 30, 20)),
                    ("car", 0, 0, "Unspecified", (3, 6, 7, 9))]
    assert read(f"{out}/ImageSets/Main/train.txt") == "a/b_000001_000002\n"
    assert read(f"{out}/ImageSets/Main/rider_train.txt") == "a/b_000001_000002  0\n"  # difficult only
    assert read(f"{out}/ImageSets/Main/bus_train.txt") == "a/b_000001_000002 -1\n"
    back = cio.open(out, format="voc_detection").frame("a/b_000001_000002")
    assert [(i.label.name, i.bbox, i.is_crowd) for i in back.original_instances()] == [
        ("rider", (10, 0, 4, 3), True), ("person", (25, 12, 5, 8), False), ("car", (2, 5, 5, 4), False)]
    # classes="all": road too, an ordinary box (road has no instances).
    out_all = str(tmp_path / "all")
    with cio.writer(out_all, "voc_detection", labels=labels, classes="all") as wr:
        wr.write(frame)
    objs = xml_objects(os.path.join(out_all, "Annotations", "a", "b_000001_000002.xml"))[2]
    assert ("road", 1, 0, "Unspecified", (1, 16, 10, 17)) in objs  # at the left border: truncated


def test_png_with_image_ext_and_classes_on_the_command_line(cs, tmp_path):
    out = str(tmp_path / "png")
    assert main(["convert", cs, out, "-f", "voc_detection", "--image-ext", "png", "--classes", "car,person",
                 "-q"]) == 0
    src = cio.open(cs)
    for frame in src:
        vid = voc_id(frame.id)
        with open(os.path.join(out, "JPEGImages", vid + ".png"), "rb") as f:
            assert f.read() == frame.image_bytes()  # the PNG kept byte for byte
        root, _, objs = xml_objects(os.path.join(out, "Annotations", vid + ".xml"))
        assert root.find("filename").text == vid + ".png"
        assert objs == [o for o in expected_objects(frame) if o[0] in ("car", "person")]
    assert sorted(n for n in os.listdir(f"{out}/ImageSets/Main")) == sorted(
        [f"{c}_{s}.txt" for c in ("car", "person") for s in ("train", "val")] + ["train.txt", "val.txt"])
    assert not os.path.exists(os.path.join(out, "JPEGImages", voc_id(next(iter(src)).id) + ".jpg"))
    with pytest.raises(ValueError, match="no label 'nothing'"):
        cio.convert(cs, str(tmp_path / "bad"), format="voc_detection", classes=["nothing"])


def test_the_foggy_photo_by_key(cs, tmp_path):
    """--image leftImg8bit_foggy@beta_0.02: the Foggy photos, the clear frames' boxes."""
    out = str(tmp_path / "foggy")
    assert main(["convert", cs, out, "-f", "voc_detection", "--image", FOG, "-q"]) == 0
    clear = cio.open(cs)
    for frame in clear:
        vid = voc_id(frame.id)
        with Image.open(os.path.join(out, "JPEGImages", vid + ".jpg")) as im:
            got = np.asarray(im).astype(int)
        fog = frame.image(FOG).astype(int)
        assert np.abs(got - fog).mean() < 4  # the foggy photo (JPEG)
        assert np.abs(got - frame.image().astype(int)).mean() > 2 * np.abs(got - fog).mean()  # not the clear one
        assert xml_objects(os.path.join(out, "Annotations", vid + ".xml"))[2] == expected_objects(frame)
    # The same through the API.
    api = str(tmp_path / "api")
    cio.open(cs, image=FOG).export(api, format="voc_detection")
    for name in os.listdir(f"{out}/Annotations"):
        assert read(f"{out}/Annotations/{name}") == read(f"{api}/Annotations/{name}")


def test_from_a_zip_and_read_back_from_a_zip(cs, tmp_path):
    archive = zip_dir(cs, str(tmp_path / "cs.zip"))
    out = str(tmp_path / "voc.zip")
    assert cio.convert(archive, out, format="voc_detection").written == 4
    local = str(tmp_path / "local")
    cio.convert(cs, local, format="voc_detection")
    back = cio.open(out, format="voc_detection")
    mine = cio.open(local, format="voc_detection")
    assert [f.id for f in back] == [f.id for f in mine]
    for frame in back:
        other = mine.frame(frame.id)
        assert [i.bbox for i in frame.original_instances()] == [i.bbox for i in other.original_instances()]
        assert frame.image_bytes() == other.image_bytes()


def test_on_the_s3_server(cs, s3):
    fs, options, bucket = s3
    upload_dir(fs, cs, f"{bucket}/cs")
    src = f"s3://{bucket}/cs"
    dst = f"s3://{bucket}/voc"
    report = cio.convert(src, dst, format="voc_detection", storage_options=options, dst_storage_options=options,
                         image=FOG)
    assert report.written == 4
    assert fs.cat_file(f"{bucket}/voc/ImageSets/Main/val.txt").decode().splitlines() == [
        voc_id(f.id) for f in cio.open(cs, split="val")]
    back = cio.open(dst, format="voc_detection", storage_options=options)
    clear = cio.open(cs)
    for frame in back:
        src_frame = clear.frame(frame.id)
        assert [i.bbox for i in frame.original_instances()] == [
            i.bbox for i in src_frame.instances() if i.label.name in THINGS]
        assert np.abs(frame.image().astype(int) - src_frame.image(FOG).astype(int)).mean() < 4


# -- detectron2's reader, reproduced from the facts of detectron2/data/datasets/pascal_voc.py -------
def load_voc_instances(dirname, split, class_names):
    """As detectron2 reads a VOC folder: the ids of ImageSets/Main/<split>.txt (np.loadtxt),
    Annotations/<id>.xml with xml.etree, JPEGImages/<id>.jpg, every object (difficult ones too),
    xmin and ymin minus 1, boxes XYXY in absolute pixels, category = index in class_names."""
    with open(os.path.join(dirname, "ImageSets", "Main", split + ".txt")) as f:
        fileids = np.loadtxt(f, dtype=str)
    dicts = []
    for fileid in fileids:
        tree = ET.parse(os.path.join(dirname, "Annotations", fileid + ".xml"))
        record = {"file_name": os.path.join(dirname, "JPEGImages", fileid + ".jpg"), "image_id": fileid,
                  "height": int(tree.findall("./size/height")[0].text),
                  "width": int(tree.findall("./size/width")[0].text), "annotations": []}
        for obj in tree.findall("object"):
            box = [float(obj.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            box[0] -= 1.0
            box[1] -= 1.0
            record["annotations"].append({"category_id": class_names.index(obj.find("name").text), "bbox": box})
        dicts.append(record)
    return dicts


def test_detectron2_reads_the_folder(cs, tmp_path):
    out = str(tmp_path / "voc")
    cio.convert(cs, out, format="voc_detection")
    src = cio.open(cs)
    for split in ("train", "val"):
        dicts = load_voc_instances(out, split, THINGS)
        assert len(dicts) == 2
        for record in dicts:
            frame = src.frame(frame_id_of(str(record["image_id"])))
            assert os.path.isfile(record["file_name"])
            with Image.open(record["file_name"]) as im:
                assert im.size == (record["width"], record["height"]) == (128, 64)
            want = [(THINGS.index(i.label.name), [float(i.bbox[0]), float(i.bbox[1]),
                                                  float(i.bbox[0] + i.bbox[2]), float(i.bbox[1] + i.bbox[3])])
                    for i in frame.instances() if i.label.name in THINGS]
            assert [(a["category_id"], a["bbox"]) for a in record["annotations"]] == want and want


def test_bad_annotation_files_are_refused_naming_the_object():
    good = (b"<annotation><size><width>10</width><height>8</height></size><object><name>car</name>"
            b"<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>8</ymax></bndbox></object></annotation>")
    shape, boxes = parse_annotation(good, "a.xml")
    assert shape == (8, 10) and (boxes[0].x, boxes[0].y, boxes[0].w, boxes[0].h) == (0, 1, 10, 7)
    with pytest.raises(InvalidFileError, match=r"a.xml \(object 0\).*leaves the 10x8 image"):
        parse_annotation(good.replace(b"<xmax>10<", b"<xmax>11<"), "a.xml")
    with pytest.raises(InvalidFileError, match="starts before pixel 1"):
        parse_annotation(good.replace(b"<xmin>1<", b"<xmin>0<"), "a.xml")
    with pytest.raises(InvalidFileError, match="not XML"):
        parse_annotation(b"<annotation>", "a.xml")
    with pytest.raises(InvalidFileError, match="document type"):
        parse_annotation(b'<!DOCTYPE a [<!ENTITY x "y">]><annotation/>', "a.xml")


# -- Datumaro 1.13 (opt-in) ---------------------------------------------------------------------------
DATUMARO_PYTHON = os.environ.get("CITYSCAPES_IO_DATUMARO_PYTHON")

#: Imports a folder with Datumaro's voc_detection importer (its default coordinate mode and
#: voc-one-based); prints ``{mode: {"labels": [...], "items": {id: [subset, [[name, x, y, w, h,
#: difficult, truncated], ...], has_image]}}}``.
DATUMARO_READ = r"""
import json, sys, datumaro as dm
out = {}
for mode in ("dm-zero-based", "voc-one-based"):
    ds = dm.Dataset.import_from(sys.argv[1], "voc_detection", coordinate_mode=mode)
    names = [l.name for l in ds.categories()[dm.AnnotationType.label]]
    items = {}
    for item in ds:
        boxes = [[names[a.label], a.x, a.y, a.w, a.h, int(a.attributes.get("difficult", 0)),
                  int(a.attributes.get("truncated", 0))] for a in item.annotations if a.type == dm.AnnotationType.bbox]
        items[item.id] = [item.subset, boxes, item.media is not None and item.media.has_data]
    out[mode] = {"labels": names, "items": items}
print(json.dumps(out))
"""


@pytest.mark.skipif(not DATUMARO_PYTHON, reason="opt-in: set CITYSCAPES_IO_DATUMARO_PYTHON to the python of an "
                                                "environment with Datumaro 1.13 (README, Development)")
def test_datumaro_reads_every_box(cs, tmp_path):
    out = str(tmp_path / "voc")
    cio.convert(cs, out, format="voc_detection", image=FOG)
    run = subprocess.run([DATUMARO_PYTHON, "-c", DATUMARO_READ, out], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    src = cio.open(cs)
    for mode, shift in (("voc-one-based", 0), ("dm-zero-based", 1)):
        got = result[mode]
        assert got["labels"] == ["background"] + THINGS
        assert sorted(got["items"]) == sorted(voc_id(f.id) for f in src)
        for frame in src:
            subset, boxes, has_image = got["items"][voc_id(frame.id)]
            assert subset == frame.split and has_image
            # voc-one-based: exactly our boxes; Datumaro's default reads xmin as 0-based, so
            # every box comes one pixel right and down, one pixel narrower and lower.
            want = []
            for name, truncated, difficult, _, (xmin, ymin, xmax, ymax) in expected_objects(frame):
                x, y = xmin - 1 + shift, ymin - 1 + shift
                want.append([name, float(x), float(y), float(xmax - x), float(ymax - y), difficult, truncated])
            assert boxes == want
