"""Datasets as other tools write them, hand-made from numpy arrays (real PNG files and zips):
Datumaro's RGB VOC masks, CamVid trees without ``label_colors.txt`` and with image-only lines,
Datumaro's first Cityscapes layout (``imgsFine/leftImg8bit``), ``dataset_meta.json`` with id
gaps, and the reader policies for VOC ids without files and unknown cities.

Each test here failed before the fix it guards."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from conftest import TREE_ORDER, write_file, zip_dir

import cityscapes_io as cio
from cityscapes_io.png import encode_png

# -- Pascal VOC ---------------------------------------------------------------------------------
VOC_LABELS = [("background", (0, 0, 0)), ("road", (128, 64, 128)), ("car", (0, 0, 142)), ("person", (220, 20, 60))]
VOID_COLOR = (224, 224, 192)

# Class and object masks of one frame as Datumaro exports them: road (one segment, a class
# without instances), two cars and a person.
CLS = np.zeros((6, 8), np.uint8)
OBJ = np.zeros((6, 8), np.uint8)
CLS[0:2, :], OBJ[0:2, :] = 1, 1
CLS[3:5, 0:3], OBJ[3:5, 0:3] = 2, 2
CLS[3:5, 4:6], OBJ[3:5, 4:6] = 2, 3
CLS[5, 6:8], OBJ[5, 6:8] = 3, 4
EXPECTED_VOC = np.zeros((6, 8), np.uint16)
EXPECTED_VOC[0:2, :] = 1
EXPECTED_VOC[3:5, 0:3] = 2002
EXPECTED_VOC[3:5, 4:6] = 2003
EXPECTED_VOC[5, 6:8] = 3004


def voc_colormap(n=256):
    """VOC's colour map, written out here independently of the library."""
    out = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(7, -1, -1):
            r, g, b = r | ((c & 1) << j), g | (((c >> 1) & 1) << j), b | (((c >> 2) & 1) << j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def class_palette():
    pal = np.zeros((256, 3), np.uint8)
    for i, (_, color) in enumerate(VOC_LABELS):
        pal[i] = color
    pal[255] = VOID_COLOR
    return pal


def write_voc(root, *, rgb: bool, cls=CLS, obj=OBJ, ids=("a",)):
    """A VOC tree as Datumaro's ``voc_segmentation`` export writes it: RGB masks (classes by
    the labelmap.txt colours, objects by VOC's colour map), or gray / paletted index masks."""
    lines = ["# label:color_rgb:parts:actions"] + [f"{n}:{r},{g},{b}::" for n, (r, g, b) in VOC_LABELS]
    write_file(root, "labelmap.txt", ("\n".join(lines) + "\n").encode())
    write_file(root, "ImageSets/Segmentation/train.txt", "".join(i + "\n" for i in ids).encode())
    for i in ids:
        if rgb:
            write_file(root, f"SegmentationClass/{i}.png", encode_png(class_palette()[cls]))
            write_file(root, f"SegmentationObject/{i}.png", encode_png(voc_colormap()[obj]))
        else:
            write_file(root, f"SegmentationClass/{i}.png", encode_png(cls, palette=class_palette()))
            write_file(root, f"SegmentationObject/{i}.png", encode_png(obj))
        write_file(root, f"JPEGImages/{i}.png", encode_png(np.zeros(cls.shape + (3,), np.uint8)))
    return root


@pytest.mark.parametrize("void", [False, True], ids=["datumaro", "with-void"])
def test_voc_rgb_masks_read_by_colour(tmp_path, void):
    cls, obj = CLS.copy(), OBJ.copy()
    if void:  # VOC's void (255, coloured (224, 224, 192)) in both masks reads as background
        cls[5, 0] = obj[5, 0] = 255
    root = write_voc(str(tmp_path / "voc"), rgb=True, cls=cls, obj=obj)
    (frame,) = cio.open(root, format="voc")
    assert np.array_equal(frame.instance_ids(), EXPECTED_VOC)
    assert [(i.label.name, i.id) for i in frame.instances()] == [
        ("background", None), ("road", None), ("car", 2), ("car", 3), ("person", 4)]


@pytest.mark.parametrize("mask, what", [("SegmentationClass", "label map"), ("SegmentationObject", "VOC colour map")])
def test_voc_unknown_colour_names_file_pixel_and_colour(tmp_path, mask, what):
    root = write_voc(str(tmp_path / "voc"), rgb=True)
    source = class_palette()[CLS] if mask == "SegmentationClass" else voc_colormap()[OBJ]
    source[2, 5] = (1, 2, 3)
    write_file(root, f"{mask}/a.png", encode_png(source))
    (frame,) = cio.open(root, format="voc")
    with pytest.raises(cio.InvalidFileError) as err:
        frame.instance_ids()
    message = str(err.value)
    assert f"{mask}/a.png" in message and "(x=5, y=2)" in message and "(1, 2, 3)" in message and what in message


def test_voc_id_without_files_follows_the_policy(tmp_path):
    root = write_voc(str(tmp_path / "voc"), rgb=False, ids=("a",))
    write_file(root, "ImageSets/Segmentation/train.txt", b"a\nghost\n")
    with pytest.raises(cio.DatasetNotFoundError, match="ghost"):
        list(cio.open(root, format="voc"))
    with pytest.warns(UserWarning, match="ghost"):
        assert [f.id for f in cio.open(root, format="voc", on_error="skip")] == ["a"]
    seen = []
    assert [f.id for f in cio.open(root, format="voc", on_error=seen.append)] == ["a"]
    assert len(seen) == 1 and isinstance(seen[0], cio.DatasetNotFoundError) and "ghost" in str(seen[0])


# -- CamVid -------------------------------------------------------------------------------------
# Datumaro's default CamVid map (32 classes), as its CamVid plugin defines it.
CAMVID_NAMES = ("Void Animal Archway Bicyclist Bridge Building Car CartLuggagePram Child Column_Pole Fence "
                "LaneMkgsDriv LaneMkgsNonDriv Misc_Text MotorcycycleScooter OtherMoving ParkingBlock Pedestrian Road "
                "RoadShoulder Sidewalk SignSymbol Sky SUVPickupTruck TrafficCone TrafficLight Train Tree Truck_Bus "
                "Tunnel VegetationMisc Wall").split()


def test_camvid_without_label_colors_uses_the_default_map(tmp_path):
    root = str(tmp_path / "camvid")
    cls = np.zeros((4, 6), np.uint8)
    cls[0, :] = 22  # Sky
    cls[2:, :3] = 18  # Road
    cls[2:, 4:] = 6  # Car
    colors = {0: (0, 0, 0), 22: (128, 128, 128), 18: (128, 64, 128), 6: (64, 0, 128)}
    rgb = np.zeros((4, 6, 3), np.uint8)
    for k, c in colors.items():
        rgb[cls == k] = c
    write_file(root, "trainannot/0001TP_006690.png", encode_png(rgb))
    write_file(root, "train/0001TP_006690.png", encode_png(np.zeros((4, 6, 3), np.uint8)))
    write_file(root, "train.txt", b"/train/0001TP_006690.png /trainannot/0001TP_006690.png\n")
    ds = cio.open(root, format="camvid")
    assert ds.labels.names == CAMVID_NAMES
    assert ds.labels["Road"].id == 18 and ds.labels["Road"].color == (128, 64, 128)
    assert ds.labels["Wall"].color == (64, 192, 0) and ds.labels["Void"].color == (0, 0, 0)
    (frame,) = ds
    assert np.array_equal(frame.label_ids(), cls)


def test_camvid_unknown_colour_names_file_pixel_and_colour(tmp_path):
    root = str(tmp_path / "camvid")
    write_file(root, "label_colors.txt", b"0 0 0 background\n10 20 30 thing\n")
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[1, 1] = (10, 20, 30)
    rgb[2, 3] = (7, 8, 9)
    write_file(root, "trainannot/a.png", encode_png(rgb))
    write_file(root, "train.txt", b"/train/a.png /trainannot/a.png\n")
    (frame,) = cio.open(root, format="camvid")
    with pytest.raises(cio.InvalidFileError) as err:
        frame.instance_ids()
    message = str(err.value)
    assert "trainannot/a.png" in message and "(x=3, y=2)" in message and "(7, 8, 9)" in message


def test_camvid_lines_as_datumaro_writes_them(tmp_path):
    """Mask paths without the leading '/', quoted paths with spaces, one-column lines."""
    root = str(tmp_path / "camvid")
    write_file(root, "label_colors.txt", b"0 0 0 background\n10 20 30 thing\n")
    mask = np.zeros((3, 4, 3), np.uint8)
    mask[0, 0] = (10, 20, 30)
    for stem in ("a", "c d"):
        write_file(root, f"trainannot/{stem}.png", encode_png(mask))
    for stem in ("a", "b", "c d"):
        write_file(root, f"train/{stem}.jpg", encode_png(np.zeros((3, 4, 3), np.uint8)))
    write_file(root, "train.txt",
               b'/train/a.jpg trainannot/a.png\n/train/b.jpg \n"/train/c d.jpg" "trainannot/c d.png"\n')
    frames = {f.id: f for f in cio.open(root, format="camvid")}
    assert sorted(frames) == ["a", "b", "c d"]
    assert frames["a"].has_annotations and frames["c d"].has_annotations and not frames["b"].has_annotations
    assert all(f.has_image for f in frames.values())
    assert frames["c d"].label_ids()[0, 0] == 1


def test_camvid_writer_lists_image_only_frames_without_a_mask(tree, tmp_path):
    out = str(tmp_path / "camvid")
    cio.convert(tree, out, format="camvid", save_media=True)
    with open(os.path.join(out, "val.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    photo_only = "stuttgart_00/stuttgart_00_000000_000001"
    assert f"/val/{photo_only}.png" in lines  # one column: no mask
    assert "/val/muhlheim-ruhr/muhlheim-ruhr_000000_000005.png /valannot/muhlheim-ruhr/muhlheim-ruhr_000000_000005.png" \
        in lines
    assert not os.path.exists(os.path.join(out, "valannot", photo_only + ".png"))
    back = {f.id: f for f in cio.open(out, format="camvid")}
    assert sorted(back) == sorted(i for _, i in TREE_ORDER)
    assert not back[photo_only].has_annotations and back[photo_only].has_image
    assert back[photo_only].instances() == []
    report = cio.convert(out, str(tmp_path / "again"), src_format="camvid", format="cityscapes")
    assert report.written == len(TREE_ORDER)


# -- Cityscapes: Datumaro's first layout ---------------------------------------------------------
def _old_layout(tree: str) -> str:
    """Move the tree's photos to imgsFine/leftImg8bit/, where early Datumaro put them."""
    os.makedirs(os.path.join(tree, "imgsFine"))
    shutil.move(os.path.join(tree, "leftImg8bit"), os.path.join(tree, "imgsFine", "leftImg8bit"))
    return tree


def _check_old_layout(ds):
    frames = list(ds)
    assert [(f.split, f.id) for f in frames] == TREE_ORDER
    with_photo = [f.id for f in frames if f.has_image]
    assert with_photo == [i for _, i in TREE_ORDER if i != "aachen/aachen_000002_000007"]
    photo = next(f for f in frames if f.id == "bad-honnef/bad-honnef_000001_000042").image()
    assert photo.shape == (24, 32, 3) and photo[0, 7, 0] == 7


def test_imgsfine_layout_in_a_folder(tree, tmp_path):
    root = _old_layout(tree)
    _check_old_layout(cio.open(root))
    report = cio.convert(root, str(tmp_path / "out"), format="cityscapes", save_media=True)
    notes = [reason for _, _, reason in report.warnings]
    assert notes.count("no photo: written without one") == 1  # the frame that has none
    assert os.path.isfile(os.path.join(tmp_path, "out", "leftImg8bit", "train", "aachen",
                                        "aachen_000002_000100_leftImg8bit.png"))


@pytest.mark.parametrize("prefix", ["", "Cityscapes"])
def test_imgsfine_layout_in_a_zip(tree, tmp_path, prefix):
    root = _old_layout(tree)
    archive = zip_dir(root, str(tmp_path / "old.zip"), prefix=prefix)
    _check_old_layout(cio.open(archive))


# -- dataset_meta.json with id gaps -------------------------------------------------------------
def datumaro_meta_rule(meta):
    """Datumaro's reading of dataset_meta.json: names in label_map order, colour of key k at
    segmentation_colors[int(k)] (an index error there is Datumaro's failure)."""
    colors = meta.get("segmentation_colors", [])
    return [(name, tuple(colors[int(k)]) if any(colors) and colors[int(k)] is not None else None)
            for k, name in meta["label_map"].items()]


def test_dataset_meta_with_gaps_indexes_colours_by_id(tmp_path):
    train = cio.LabelMap.cityscapes_train()
    meta = json.loads(train.to_dataset_meta())
    assert datumaro_meta_rule(meta) == [(l.name, l.color) for l in train]
    assert meta["background_label"] == "255"
    back = cio.LabelMap.parse_dataset_meta(json.dumps(meta))
    assert [(l.id, l.name, l.color) for l in back] == [(l.id, l.name, l.color) for l in train]
    # Written by the Cityscapes writer (train ids have a gap: dataset_meta.json, not label_colors.txt).
    out = str(tmp_path / "out")
    cio.open(cio.sample_path()).to_train_ids().export(out, format="cityscapes", save_dataset_meta=True)
    with open(os.path.join(out, "dataset_meta.json"), encoding="utf-8") as f:
        assert datumaro_meta_rule(json.load(f)) == [(l.name, l.color) for l in train]
    assert [(l.id, l.name, l.color) for l in cio.open(out).labels] == [(l.id, l.name, l.color) for l in train]


def test_dataset_meta_colours_in_label_order_still_read():
    """The files this library wrote before: one colour per label, in label order."""
    text = json.dumps({"label_map": {"0": "road", "1": "car", "255": "ignore"},
                       "segmentation_colors": [[128, 64, 128], [0, 0, 142], [0, 0, 0]]})
    back = cio.LabelMap.parse_dataset_meta(text)
    assert [(l.id, l.name, l.color) for l in back] == [(0, "road", (128, 64, 128)), (1, "car", (0, 0, 142)),
                                                       (255, "ignore", (0, 0, 0))]
    padded = json.dumps({"label_map": {"0": "road", "2": "car"}, "segmentation_colors": [[1, 1, 1], None, [2, 2, 2]]})
    assert [(l.id, l.color) for l in cio.LabelMap.parse_dataset_meta(padded)] == [(0, (1, 1, 1)), (2, (2, 2, 2))]
    with pytest.raises(cio.LabelMapError, match="too few"):
        cio.LabelMap.parse_dataset_meta(json.dumps({"label_map": {"0": "a", "5": "b"}, "segmentation_colors": [[1, 1, 1]]}))


# -- Cityscapes: unknown cities -----------------------------------------------------------------
def test_unknown_city_is_an_error_like_an_unknown_split(tree):
    with pytest.raises(cio.DatasetNotFoundError) as err:
        cio.open(tree, cities=["nowhere"])
    assert "nowhere" in str(err.value) and "aachen" in str(err.value) and "stuttgart_00" in str(err.value)
    with pytest.raises(cio.DatasetNotFoundError, match="'nowhere'"):
        cio.open(tree, cities=["aachen", "nowhere"])
    with pytest.raises(cio.DatasetNotFoundError, match="'aachen'"):
        cio.open(tree, split="val", cities=["aachen"])  # aachen is in train only
    # A city present in one of the splits read is no error: the other splits have no frames of it.
    assert [f.id for f in cio.open(tree, cities="aachen")] == [i for _, i in TREE_ORDER if i.startswith("aachen/")]
