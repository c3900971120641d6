"""Polygons files from elsewhere (issue 17): vertices beyond a bounded margin of the image (where
Pillow would lose the object) and an ``imgWidth``/``imgHeight`` that disagree with the frame's PNGs
are errors naming the file; nothing is drawn at a size the frame's other files do not have."""
import glob
import json
import os
import shutil

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import InvalidFileError, parse_polygons, rasterize
from cityscapes_io.polygons import MARGIN
from cityscapes_io.cli import main

PATH = "gtFine/train/x/x_000000_000000_gtFine_polygons.json"


def _doc(*polygons, w=64, h=32):
    return json.dumps({"imgWidth": w, "imgHeight": h,
                       "objects": [{"label": "car", "polygon": p} for p in polygons]}).encode()


@pytest.mark.parametrize("polygon", [
    [[0, 0], [3e9, 0], [0, 3e9]],  # past Pillow's 32-bit coordinates: drawn as a stray pixel
    [[0, 0], [10, 0], [0, -10 ** 15]],
    [[0, 0], [64 + MARGIN + 1, 0], [0, 10]],
])
def test_polygons_far_outside_the_image_are_refused(polygon):
    polys = parse_polygons(_doc([[1, 1], [5, 1], [5, 5]], polygon), PATH)
    assert polys.problems() and polys.problems()[0][0] == 1
    with pytest.raises(InvalidFileError, match=f"more than {MARGIN} pixels beyond the 64x32 image") as info:
        rasterize(polys, "ids")
    assert info.value.path == PATH and "object 1" in str(info.value)


def test_why_the_margin_pillow_loses_polygons_past_32_bits():
    # What the bound protects against: Pillow draws such a polygon as (almost) nothing.
    from PIL import Image, ImageDraw

    im = Image.new("L", (64, 32), 0)
    ImageDraw.Draw(im).polygon([0, 0, 3e9, 0, 0, 3e9], fill=26)
    assert (np.asarray(im) == 26).sum() <= 1


def test_vertices_outside_the_image_are_drawn_as_the_official_scripts_do():
    # The release's polygons reach a pixel or so beyond the frame: they are drawn, clipped; far
    # (within MARGIN) and wholly outside objects too, as the official scripts draw them.
    polys = parse_polygons(_doc([[-1, -1], [64, -1], [64, 32], [-1, 32]]), PATH)
    assert polys.problems() == []
    assert (rasterize(polys, "ids") == 26).all()
    polys = parse_polygons(_doc([[-1e4, -1e4], [1e4, -1e4], [1e4, 1e4]], [[100, 40], [120, 40], [120, 60]]), PATH)
    assert polys.problems() == []
    inst = rasterize(polys, "instanceIds")
    assert set(np.unique(inst)) <= {0, 26000}  # the second car takes number 1, and is not in the image
    # A deleted object is never drawn: where it lies does not matter.
    doc = json.loads(_doc([[1, 1], [5, 1], [5, 5]]))
    doc["objects"].append({"label": "car", "polygon": [[0, 0], [10 ** 12, 0], [0, 10 ** 12]], "deleted": 1})
    assert parse_polygons(json.dumps(doc), PATH).problems() == []


@pytest.fixture
def synth(tmp_path):
    from cityscapes_io.testing import generate

    root = str(tmp_path / "cs")
    generate(root, splits={"train": 2, "val": 1}, size=(96, 48), seed=3)
    return root


def _polygons_files(root):
    return sorted(glob.glob(os.path.join(root, "gtFine", "*", "*", "*_gtFine_polygons.json")))


def test_prepare_refuses_polygons_whose_size_disagrees_with_the_pngs(synth, tmp_path, capsys):
    files = _polygons_files(synth)
    assert len(files) == 3
    bad = files[0]
    doc = json.loads(open(bad, "rb").read())
    assert (doc["imgWidth"], doc["imgHeight"]) == (96, 48)
    doc["imgWidth"] = 300
    with open(bad, "w") as f:
        json.dump(doc, f)
    dst = str(tmp_path / "out")
    with pytest.raises(InvalidFileError, match=r"imgWidth x imgHeight is 300x48 but the frame's PNGs are 96x48") as info:
        cio.prepare(synth, kinds=("labelTrainIds",), source="polygons", dst=dst)
    assert info.value.path.endswith(os.path.basename(bad))
    # Skipping: the frame is reported, the others written at the PNGs' size, no 300-wide file anywhere.
    report = cio.prepare(synth, kinds=("labelTrainIds",), source="polygons", dst=str(tmp_path / "out2"),
                         on_error="skip")
    assert report.written == 2 and len(report.skipped) == 1
    assert "300x48" in report.skipped[0][2]
    for path in glob.glob(str(tmp_path / "out2" / "**" / "*_labelTrainIds.png"), recursive=True):
        assert cio.png.image_size(open(path, "rb").read(), path) == (96, 48)
    # The command line: one line naming the file, a non-zero status.
    assert main(["prepare", synth, "--from", "polygons", "--kinds", "labelTrainIds", "-o", str(tmp_path / "out3")]) != 0
    err = capsys.readouterr().err
    assert os.path.basename(bad) in err and "300x48" in err and "Traceback" not in err


def test_prepare_refuses_objects_that_would_be_lost(synth, tmp_path):
    bad = _polygons_files(synth)[1]
    doc = json.loads(open(bad, "rb").read())
    doc["objects"].append({"label": "person", "polygon": [[10, 10], [3e9, 10], [10, 3e9]]})
    with open(bad, "w") as f:
        json.dump(doc, f)
    with pytest.raises(InvalidFileError, match="pixels beyond the 96x48 image") as info:
        cio.prepare(synth, kinds=("labelTrainIds",), source="polygons", dst=str(tmp_path / "out"))
    assert info.value.path.endswith(os.path.basename(bad))
