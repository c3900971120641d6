"""The release's other parts, file by file (issue 21, first part: the parsers of cityscapes_io.parts).
Files are built here: a disparity PNG with known pixel values, camera, vehicle, timestamp and
CityPersons files as the official packages lay them out."""
import json
import math

import numpy as np
import pytest

from cityscapes_io import parts, png
from cityscapes_io.errors import InvalidFileError

CAMERA = {"extrinsic": {"baseline": 0.209313, "pitch": 0.038, "roll": 0.0, "x": 1.7, "y": 0.026, "yaw": -0.0195,
                        "z": 1.212},
          "intrinsic": {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137}}


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize("key, folder, variant, suffix", [
    ("leftImg8bit", "leftImg8bit", "", "_leftImg8bit"),
    ("rightImg16bit", "rightImg16bit", "", "_rightImg16bit"),
    ("leftImg8bit_foggy@beta_0.02", "leftImg8bit_foggy", "beta_0.02", "_leftImg8bit_foggy_beta_0.02"),
    ("leftImg8bit_transmittance@beta_0.005", "leftImg8bit_transmittance", "beta_0.005",
     "_leftImg8bit_transmittance_beta_0.005"),
    ("leftImg8bit_rain@alpha_0.01_beta_0.005_dropsize_0.01_pattern_1", "leftImg8bit_rain",
     "alpha_0.01_beta_0.005_dropsize_0.01_pattern_1", "_leftImg8bit_rain_alpha_0.01_beta_0.005_dropsize_0.01_pattern_1"),
])
def test_photo_keys(key, folder, variant, suffix):
    assert parts.parse_image_key(key) == (folder, variant)
    assert parts.image_file_suffix(key) == suffix


@pytest.mark.parametrize("bad", ["", "@beta", "left/Img8bit", "../x", "leftImg8bit@", "leftImg8bit@a/b", "1abc"])
def test_bad_photo_keys_are_refused(bad):
    with pytest.raises(ValueError, match="not a photo key"):
        parts.parse_image_key(bad)


def test_disparity_is_p_minus_one_over_256_and_zero_is_invalid():
    raw = np.array([[0, 1, 2, 257], [513, 65535, 0, 30000]], np.uint16)
    disp = parts.decode_disparity(png.encode_label_png(raw), "d.png")
    assert disp.dtype == np.float32
    assert np.isnan(disp[0, 0]) and np.isnan(disp[1, 2])
    assert disp[0, 1] == 0.0 and disp[0, 2] == 1 / 256 and disp[0, 3] == 1.0 and disp[1, 0] == 2.0
    assert disp[1, 1] == np.float32(65534 / 256) and disp[1, 3] == np.float32(29999 / 256)
    with pytest.raises(InvalidFileError, match="d8.png: a disparity PNG is 16-bit gray"):
        parts.decode_disparity(png.encode_label_png(raw.astype(np.uint8)), "d8.png")


def test_camera_and_depth_from_the_frames_own_calibration():
    cam = parts.parse_camera(_json(CAMERA), "c.json")
    assert (cam.fx, cam.fy, cam.u0, cam.v0, cam.baseline) == (2262.52, 2265.3017905988554, 1096.98, 513.137, 0.209313)
    assert (cam.x, cam.y, cam.z, cam.yaw, cam.pitch, cam.roll) == (1.7, 0.026, 1.212, -0.0195, 0.038, 0.0)
    assert cam.intrinsics().tolist() == [[2262.52, 0.0, 1096.98], [0.0, 2265.3017905988554, 513.137], [0, 0, 1]]
    disp = np.array([[np.nan, 0.0, 1.0], [10.0, 100.0, -1.0]], np.float32)
    d = parts.depth(disp, cam)
    assert d.dtype == np.float32 and np.isnan(d[0, 0]) and np.isnan(d[0, 1]) and np.isnan(d[1, 2])
    assert math.isclose(d[0, 2], 0.209313 * 2262.52, rel_tol=1e-6)  # fx, not fy
    assert math.isclose(d[1, 1], 0.209313 * 2262.52 / 100, rel_tol=1e-6)


@pytest.mark.parametrize("change, words", [
    (("intrinsic", "fx", None), "intrinsic.fx must be a finite number, got None"),
    (("intrinsic", "fx", 0), "intrinsic.fx must be positive"),
    (("extrinsic", "baseline", -0.2), "extrinsic.baseline must be positive"),
    (("extrinsic", "yaw", "0.1"), "extrinsic.yaw must be a finite number"),
    (("extrinsic", "z", True), "extrinsic.z must be a finite number"),
])
def test_bad_camera_files_are_named(change, words):
    doc = json.loads(json.dumps(CAMERA))
    group, key, value = change
    if value is None:
        del doc[group][key]
    else:
        doc[group][key] = value
    with pytest.raises(InvalidFileError) as err:
        parts.parse_camera(_json(doc), "camera/val/a/a_000000_000019_camera.json")
    assert err.value.path == "camera/val/a/a_000000_000019_camera.json" and words in str(err.value)
    with pytest.raises(InvalidFileError, match="not valid JSON"):
        parts.parse_camera(b'{"intrinsic": {"fx": NaN}}', "c.json")


def test_vehicle_and_timestamp():
    doc = {"gpsHeading": 0.0, "gpsLatitude": 50.78, "gpsLongitude": 6.08, "gpsAltitude": 224.4, "speed": 7.3,
           "outsideTemperature": 11.5, "yawRate": -0.0061}
    assert parts.parse_vehicle(_json(doc), "v.json") == doc
    with pytest.raises(InvalidFileError, match="v.json: vehicle JSON: speed must be a number"):
        parts.parse_vehicle(_json({"speed": "fast"}), "v.json")
    with pytest.raises(InvalidFileError, match="expected an object"):
        parts.parse_vehicle(b"[1, 2]", "v.json")
    assert parts.parse_timestamp(b"152938472391812000\n", "t.txt") == 152938472391812000
    for bad in (b"", b"12 13", b"-5", b"1.5", b"x" * 100):
        with pytest.raises(InvalidFileError, match="t.txt: a timestamp file holds one non-negative integer"):
            parts.parse_timestamp(bad, "t.txt")


def test_citypersons_objects():
    doc = {"imgHeight": 1024, "imgWidth": 2048, "objects": [
        {"instanceId": 24000, "label": "pedestrian", "bbox": [947, 406, 17, 40], "bboxVis": [950, 407, 14, 38]},
        {"instanceId": 0, "label": "ignore", "bbox": [10, 20, 30, 40], "bboxVis": [10, 20, 30, 40]},
        {"instanceId": 25001, "label": "rider", "bbox": [100, 200, 20, 50], "bboxVis": [100, 200, 10, 25]},
        {"label": "person group", "bbox": [0, 0, 0, 0], "bboxVis": [0, 0, 0, 0]},
    ]}
    persons = parts.parse_persons(_json(doc), "p.json")
    assert [p.label for p in persons] == ["pedestrian", "ignore", "rider", "person group"]
    assert [p.label_id for p in persons] == [1, 0, 2, 5]
    assert persons[0].bbox == (947, 406, 17, 40) and persons[0].bbox_vis == (950, 407, 14, 38)
    assert persons[0].instance_id == 24000 and persons[3].instance_id == 0
    assert math.isclose(persons[0].visibility, 14 * 38 / (17 * 40)) and persons[2].visibility == 0.25
    assert persons[3].visibility == 0.0


@pytest.mark.parametrize("obj, words", [
    ({"label": "cyclist", "bbox": [0, 0, 1, 1], "bboxVis": [0, 0, 1, 1]}, "label 'cyclist' is not one of"),
    ({"label": "rider", "bbox": [0, 0, 1], "bboxVis": [0, 0, 1, 1]}, "bbox must be [x, y, w, h]"),
    ({"label": "rider", "bbox": [0, 0, 1, 1], "bboxVis": [0, 0, -1, 1]}, "bboxVis has a negative size"),
    ({"label": "rider", "bbox": [0, 0, 1e400, 1], "bboxVis": [0, 0, 1, 1]}, "not valid JSON"),
    ({"label": "rider", "bbox": [0, 0, 1, 1], "bboxVis": [0, 0, 1, 1], "instanceId": True}, "instanceId must be"),
    ("a string", "object 0 is not an object"),
])
def test_bad_citypersons_files_are_named(obj, words):
    data = _json({"objects": [obj]}) if "1e400" not in str(obj) else (
        b'{"objects": [{"label": "rider", "bbox": [0, 0, 1e400, 1], "bboxVis": [0, 0, 1, 1]}]}')
    with pytest.raises(InvalidFileError) as err:
        parts.parse_persons(data, "gtBboxCityPersons/val/a/a_000000_000019_gtBboxCityPersons.json")
    assert err.value.path.endswith("_gtBboxCityPersons.json") and words in str(err.value)
    with pytest.raises(InvalidFileError, match="no list of 'objects'"):
        parts.parse_persons(b"{}", "p.json")
