"""Cityscapes 3D (cityscapes_io.boxes3d): gtBbox3d files built here, parsed and checked, boxes
projected and compared with hand-computed cases and with annotations of the real release.

Opt-in oracle: with ``CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON`` naming a python with
cityscapesscripts 2.3.0, the same files are read by its ``Annotation`` and projected by its
``Box3dImageTransform``, and both must agree with ours to 1e-6 pixel."""
import copy
import dataclasses
import json
import math
import subprocess

import numpy as np
import pytest
from conftest import CITYSCAPESSCRIPTS

from cityscapes_io import boxes3d as b3
from cityscapes_io.errors import InvalidFileError

FX, FY, U0, V0, BASELINE = 2262.52, 2265.3017905988554, 1096.98, 513.137, 0.209313
#: sensor_T_ISO_8855 of a real frame (the camera 1.65 m ahead of the rear axle, 1.28 m up,
#: yawed and pitched by about 1 and 2 degrees).
REAL_T = [[0.9990881051503779, -0.01948468779721943, -0.03799085532693703, -1.6501524664770573],
          [0.019498764210995674, 0.9998098810245096, 0.0, -0.1331288872611436],
          [0.03798363254444427, -0.0007407747301939942, 0.9992780868764849, -1.2836173638418473]]
#: A camera 1.7 m ahead of the rear axle and 1.2 m up, looking straight ahead.
STRAIGHT_T = [[1.0, 0.0, 0.0, -1.7], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.2]]

#: Three cars of a real gtBbox3d file (the amodal boxes are the annotators' projections).
REAL_OBJECTS = [
    {"2d": {"modal": [375, 424, 207, 136], "amodal": [357, 418, 232, 145]},
     "3d": {"center": [28.15, 6.74, 0.54], "dimensions": [4.0, 1.65, 1.45],
            "rotation": [0.009871597131612439, 0.00524838342290069, -0.024995833604157247, -0.9996250368733021],
            "type": "Small Size Car", "format": "CRS_ISO8855"},
     "occlusion": 0.0, "truncation": 0.0, "instanceId": 26013, "label": "car", "score": 1.0},
    {"2d": {"modal": [1211, 411, 279, 182], "amodal": [1199, 407, 303, 198]},
     "3d": {"center": [21.14, -2.33, 0.61], "dimensions": [4.3, 1.62, 1.45],
            "rotation": [0.9986757749665924, 0.025329813716009796, 0.00048667855132178417, 0.04477566499758438],
            "type": "Mid Size Car", "format": "CRS_ISO8855"},
     "occlusion": 0.1, "truncation": 0.0, "instanceId": 26011, "label": "car", "score": 1.0},
    {"2d": {"modal": [895, 434, 41, 39], "amodal": [892, 433, 51, 41]},
     "3d": {"center": [86.41, 5.16, 0.23], "dimensions": [4.0, 1.65, 1.49],
            "rotation": [0.9981880899399002, -0.00019997332327345048, 0.004996478948121497, 0.05996275769946551],
            "type": "Small Size Car", "format": "CRS_ISO8855"},
     "occlusion": 0.1, "truncation": 0.0, "instanceId": 26002, "label": "car", "score": 1.0},
]
REAL_IGNORE = [{"2d": [848, 405, 36, 30], "label": "car", "instanceId": 26000},
               {"2d": [1025, 421, 95, 90], "label": "car", "instanceId": 26},
               {"2d": [670, 439, 77, 94], "label": "car", "instanceId": 26}]


def sensor_doc(t=REAL_T):
    return {"sensor_T_ISO_8855": t, "fx": FX, "fy": FY, "u0": U0, "v0": V0, "baseline": BASELINE}


def file_doc(objects=REAL_OBJECTS, ignore=REAL_IGNORE, t=REAL_T):
    return {"imgWidth": 2048, "imgHeight": 1024, "sensor": sensor_doc(t), "objects": copy.deepcopy(objects),
            "ignore": copy.deepcopy(ignore)}


def obj_doc(center, dims, rotation=(1.0, 0.0, 0.0, 0.0), instance_id=26001, label="car"):
    return {"2d": {"modal": [0, 0, 10, 10], "amodal": [0, 0, 10, 10]},
            "3d": {"center": list(center), "dimensions": list(dims), "rotation": list(rotation),
                   "type": "Mid Size Car", "format": "CRS_ISO8855"},
            "occlusion": 0.0, "truncation": 0.0, "instanceId": instance_id, "label": label, "score": 1.0}


def write(tmp_path, doc, name="frankfurt_000000_000294_gtBbox3d.json"):
    path = tmp_path / name
    path.write_bytes(json.dumps(doc).encode() if not isinstance(doc, bytes) else doc)
    return path


def parse_file(path):
    return b3.parse_boxes3d(path.read_bytes(), str(path))


def yaw_quaternion(angle):
    return (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))


def make_box(center, dims, rotation=(1.0, 0.0, 0.0, 0.0)):
    return b3.Box3d("car", 0, (0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0), tuple(center), tuple(dims),
                    tuple(rotation))


def make_sensor(t=STRAIGHT_T):
    return b3.Sensor(FX, FY, U0, V0, BASELINE, tuple(tuple(row) for row in t))


# -- parsing ---------------------------------------------------------------------------------------------------

def test_a_file_is_parsed_with_every_value(tmp_path):
    boxes = parse_file(write(tmp_path, file_doc()))
    assert (boxes.width, boxes.height) == (2048, 1024)
    s = boxes.sensor
    assert (s.fx, s.fy, s.u0, s.v0, s.baseline) == (FX, FY, U0, V0, BASELINE)
    assert s.sensor_T_ISO_8855 == tuple(tuple(row) for row in REAL_T)
    np.testing.assert_array_equal(s.intrinsics(), [[FX, 0, U0], [0, FY, V0], [0, 0, 1]])
    np.testing.assert_array_equal(s.extrinsics(), REAL_T)
    assert len(boxes.objects) == 3
    first = boxes.objects[0]
    assert first == b3.Box3d(label="car", instance_id=26013, modal=(375.0, 424.0, 207.0, 136.0),
                             amodal=(357.0, 418.0, 232.0, 145.0), center=(28.15, 6.74, 0.54),
                             dimensions=(4.0, 1.65, 1.45), rotation=tuple(REAL_OBJECTS[0]["3d"]["rotation"]),
                             occlusion=0.0, truncation=0.0, score=1.0, vehicle_type="Small Size Car")
    assert [o.instance_id for o in boxes.objects] == [26013, 26011, 26002]
    assert [o.occlusion for o in boxes.objects] == [0.0, 0.1, 0.1]
    assert all(isinstance(v, float) for v in first.modal + first.center + first.dimensions + first.rotation)
    assert boxes.ignore == (b3.IgnoreRegion("car", 26000, (848.0, 405.0, 36.0, 30.0)),
                            b3.IgnoreRegion("car", 26, (1025.0, 421.0, 95.0, 90.0)),
                            b3.IgnoreRegion("car", 26, (670.0, 439.0, 77.0, 94.0)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.label = "truck"  # type: ignore[misc]
    # The first car faces the camera (yaw near 180 degrees), the others drive ahead of it.
    assert abs(abs(first.yaw) - math.pi) < 0.06
    assert boxes.objects[2].yaw == pytest.approx(0.12, abs=1e-6)


def test_optional_keys_take_their_defaults(tmp_path):
    obj = {"2d": {"amodal": [10, 20, 30, 40]}, "3d": {"center": [10, 0, 1], "dimensions": [4, 2, 1.5],
                                                      "rotation": [1, 0, 0, 0]}, "label": "truck"}
    doc = {"sensor": sensor_doc(), "objects": [obj, dict(obj, occlusion=None)]}
    boxes = parse_file(write(tmp_path, doc))
    assert boxes.ignore == () and boxes.width is None and boxes.height is None
    box = boxes.objects[0]
    assert box.modal == box.amodal == (10.0, 20.0, 30.0, 40.0)
    assert box.instance_id == 0  # no id: two objects without one are not duplicates
    assert (box.occlusion, box.truncation, box.score, box.vehicle_type) == (None, None, None, None)
    assert boxes.objects[1] == box
    assert parse_file(write(tmp_path, {"sensor": sensor_doc(), "objects": []})).objects == ()


def _set(doc, keys, value):
    """``doc`` with the value at ``keys`` replaced (or deleted for ``...``)."""
    doc = copy.deepcopy(doc)
    node = doc
    for key in keys[:-1]:
        node = node[key]
    if value is ...:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


BAD = [
    (("sensor",), ..., "no 'sensor' object"),
    (("sensor", "fx"), ..., "sensor.fx must be a finite number, got None"),
    (("sensor", "fy"), "2265", "sensor.fy must be a finite number"),
    (("sensor", "u0"), True, "sensor.u0 must be a finite number"),
    (("sensor", "fx"), 0, "sensor.fx must be positive"),
    (("sensor", "baseline"), -0.2, "sensor.baseline must be positive"),
    (("sensor", "sensor_T_ISO_8855"), REAL_T[:2], "sensor.sensor_T_ISO_8855 must be 3 rows of 4 numbers"),
    (("sensor", "sensor_T_ISO_8855", 1), [0, 1, 0], "sensor.sensor_T_ISO_8855 row 1 must be 4 numbers"),
    (("sensor", "sensor_T_ISO_8855", 2, 3), None, "sensor.sensor_T_ISO_8855 row 2 must be 4 numbers"),
    (("sensor", "sensor_T_ISO_8855"), [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], "left 3x3 part is not a rotation"),
    (("sensor", "sensor_T_ISO_8855"), [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0]], "not a rotation"),  # a mirror
    (("objects",), ..., "no list of 'objects'"),
    (("objects",), {"a": 1}, "no list of 'objects'"),
    (("objects", 1), [], "object 1: not a JSON object"),
    (("objects", 2, "label"), ..., "object 2: label must be a non-empty string, got None"),
    (("objects", 0, "label"), "", "object 0: label must be a non-empty string"),
    (("objects", 1, "instanceId"), -1, "object 1: instanceId must be a non-negative integer, got -1"),
    (("objects", 1, "instanceId"), 26011.0, "object 1: instanceId must be a non-negative integer"),
    (("objects", 1, "instanceId"), 26013, "object 1: instanceId 26013 is given to an earlier object too"),
    (("objects", 0, "2d"), ..., "object 0: no '2d' object"),
    (("objects", 0, "2d", "amodal"), ..., r"object 0: 2d.amodal must be \[x, y, w, h\] of finite numbers, got None"),
    (("objects", 0, "2d", "amodal"), [1, 2, 3], r"object 0: 2d.amodal must be \[x, y, w, h\]"),
    (("objects", 0, "2d", "amodal"), [1, 2, -3, 4], "object 0: 2d.amodal has a negative size"),
    (("objects", 2, "2d", "modal"), [1, 2, 3, -4], "object 2: 2d.modal has a negative size"),
    (("objects", 2, "2d", "modal"), [1, 2, 3, "4"], r"object 2: 2d.modal must be \[x, y, w, h\]"),
    (("objects", 0, "3d"), ..., "object 0: no '3d' object"),
    (("objects", 0, "3d", "center"), [1, 2], r"object 0: 3d.center must be \[x, y, z\] of finite numbers"),
    (("objects", 0, "3d", "center"), ..., r"object 0: 3d.center must be \[x, y, z\]"),
    (("objects", 1, "3d", "dimensions"), [4, 2, 1, 1], r"object 1: 3d.dimensions must be \[length, width, height\]"),
    (("objects", 1, "3d", "dimensions"), [4, -2, 1], "object 1: 3d.dimensions has a negative size"),
    (("objects", 1, "3d", "rotation"), [0, 0, 0, 0], "object 1: 3d.rotation is a zero quaternion"),
    (("objects", 1, "3d", "rotation"), [1, 0, 0], r"object 1: 3d.rotation must be a quaternion \[w, x, y, z\]"),
    (("objects", 1, "3d", "rotation"), ..., "object 1: 3d.rotation must be a quaternion"),
    (("objects", 1, "3d", "format"), "CRS_S", "object 1: 3d.format is 'CRS_S': only boxes in the vehicle frame"),
    (("objects", 1, "3d", "type"), 5, "object 1: 3d.type must be a string"),
    (("objects", 0, "occlusion"), 1.5, r"object 0: occlusion must be a number in \[0, 1\], got 1.5"),
    (("objects", 0, "truncation"), -0.1, r"object 0: truncation must be a number in \[0, 1\]"),
    (("objects", 0, "score"), "high", "object 0: score must be a finite number, got high"),
    (("ignore",), {}, "'ignore' is not a list"),
    (("ignore", 1), "x", "ignore region 1: not a JSON object"),
    (("ignore", 1, "2d"), ..., r"ignore region 1: 2d must be \[x, y, w, h\]"),
    (("ignore", 2, "2d"), [1, 2, -1, 1], "ignore region 2: 2d has a negative size"),
    (("ignore", 0, "label"), 26, "ignore region 0: label must be a non-empty string"),
    (("imgWidth",), 0, "imgWidth must be a positive integer, got 0"),
    (("imgHeight",), 1024.5, "imgHeight must be a positive integer"),
    (("imgHeight",), ..., "imgHeight must be a positive integer, got None"),
]


@pytest.mark.parametrize("keys, value, reason", BAD, ids=[f"{'.'.join(map(str, k))}={v!r}"[:60] for k, v, _ in BAD])
def test_bad_values_are_refused_naming_the_file_and_the_key(tmp_path, keys, value, reason):
    path = write(tmp_path, _set(file_doc(), keys, value))
    with pytest.raises(InvalidFileError, match=reason) as info:
        parse_file(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: gtBbox3d JSON: ")


@pytest.mark.parametrize("data, reason", [
    (b'{"sensor": ', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON: not UTF-8"),
    (b'{"sensor": {"fx": NaN}}', "not valid JSON: NaN is not a JSON number"),
    (b'{"sensor": {"fx": 1e400}}', "not valid JSON: number 1e400 is out of range"),
    (b"[" * 100000, "not valid JSON"),
    (b"[1, 2]", "gtBbox3d JSON: the top level is not a JSON object"),
    (b'{"sensor": {"fx": 1' + b"0" * 400 + b"}}", "gtBbox3d JSON: sensor.fx must be a finite number, got 1000"),
])
def test_what_is_not_a_gtbbox3d_file_is_refused(tmp_path, data, reason):
    path = write(tmp_path, data)
    with pytest.raises(InvalidFileError, match=reason) as info:
        parse_file(path)
    assert info.value.path == str(path)


def _paths(node, prefix=()):
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, prefix + (key,))


def test_any_value_replaced_by_anything_parses_or_is_refused_as_invalid(tmp_path):
    doc = file_doc()
    replacements = [..., None, "x", "", [], {}, [1.0], -1, 0, 0.5, 1e300, -1e300, True, 10 ** 400, [[1, 2]]]
    refused = 0
    for keys in list(_paths(doc))[1:]:
        for value in replacements:
            data = json.dumps(_set(doc, keys, value)).encode()
            try:
                boxes = b3.parse_boxes3d(data, "f.json")
            except InvalidFileError as exc:
                assert exc.path == "f.json" and exc.reason
                refused += 1
                continue
            for box in boxes.objects:  # what is accepted can be projected
                assert b3.project_box(box, boxes.sensor).shape == (8, 2)
    assert refused > 500


# -- geometry --------------------------------------------------------------------------------------------------

def test_corner_order_and_edges():
    assert b3.CORNER_NAMES == ("BLB", "BRB", "FRB", "FLB", "BLT", "BRT", "FRT", "FLT")
    assert len(set(map(frozenset, b3.BOX_EDGES))) == 12
    assert sorted(np.bincount(np.ravel(b3.BOX_EDGES)).tolist()) == [3] * 8
    for i, j in b3.BOX_EDGES:  # an edge joins corners that differ in one of back/front, left/right, bottom/top
        assert sum(a != c for a, c in zip(b3.CORNER_NAMES[i], b3.CORNER_NAMES[j])) == 1
    corners = b3.box_corners(make_box((10, 2, 1), (4, 2, 1.5)))
    assert corners.shape == (8, 3) and corners.dtype == np.float64
    expected = {"B": 8.0, "F": 12.0, "L": 3.0, "R": 1.0}
    for name, (x, y, z) in zip(b3.CORNER_NAMES, corners):
        assert (x, y, z) == (expected[name[0]], expected[name[1]], 0.25 if name[2] == "B" else 1.75)


def test_a_box_straight_ahead_projects_symmetrically():
    sensor = make_sensor()
    # 20 m ahead of the camera (which is 1.7 m ahead of the rear axle), at the camera's height.
    box = make_box((21.7, 0.0, 1.2), (4.0, 2.0, 1.5))
    uv = b3.project_box(box, sensor)
    assert uv.shape == (8, 2) and uv.dtype == np.float64
    np.testing.assert_allclose(b3.project_points(np.array([[21.7, 0.0, 1.2]]), sensor), [[U0, V0]])
    back, front = uv[[0, 1, 4, 5]], uv[[2, 3, 6, 7]]  # faces 18 m and 22 m away
    for face, z in ((back, 18.0), (front, 22.0)):
        np.testing.assert_allclose(face[:, 0].max() - face[:, 0].min(), FX * 2.0 / z)
        np.testing.assert_allclose(face[:, 1].max() - face[:, 1].min(), FY * 1.5 / z)
        np.testing.assert_allclose(face.mean(axis=0), [U0, V0])
    # Left (+y in ISO 8855) is left in the image; bottom is down.
    assert uv[0, 0] < U0 < uv[1, 0] and uv[0, 1] > V0 > uv[4, 1]
    np.testing.assert_allclose(uv[0], [U0 - FX * 1.0 / 18, V0 + FY * 0.75 / 18])
    np.testing.assert_allclose(uv[6], [U0 + FX * 1.0 / 22, V0 - FY * 0.75 / 22])
    np.testing.assert_allclose(b3.to_camera(b3.box_corners(box), sensor)[:, 2], [18, 18, 22, 22] * 2)


def test_a_box_to_the_left_and_below_projects_there():
    uv = b3.project_points(np.array([[11.7, 3.0, 0.2]]), make_sensor())  # 10 m ahead, 3 m left, 1 m down
    np.testing.assert_allclose(uv, [[U0 - FX * 3 / 10, V0 + FY * 1 / 10]])


def test_yaw_rotations():
    dims, center = (4.0, 2.0, 1.5), (20.0, 0.0, 1.0)
    plain = b3.box_corners(make_box(center, dims))
    # A quarter turn to the left: the front now points to +y, the left side to -x.
    quarter = make_box(center, dims, yaw_quaternion(math.pi / 2))
    assert quarter.yaw == pytest.approx(math.pi / 2)
    corners = b3.box_corners(quarter)
    np.testing.assert_allclose(corners[b3.CORNER_NAMES.index("FLB")], [19.0, 2.0, 0.25], atol=1e-12)
    np.testing.assert_allclose(corners[b3.CORNER_NAMES.index("BRT")], [21.0, -2.0, 1.75], atol=1e-12)
    # A half turn: each corner lands where the opposite one (front/back and left/right swapped) was.
    half = b3.box_corners(make_box(center, dims, yaw_quaternion(math.pi)))
    np.testing.assert_allclose(half, plain[[2, 3, 0, 1, 6, 7, 4, 5]], atol=1e-12)
    # A quaternion of any non-zero length is the same rotation.
    scaled = tuple(2.5 * v for v in yaw_quaternion(0.3))
    np.testing.assert_allclose(b3.box_corners(make_box(center, dims, scaled)),
                               b3.box_corners(make_box(center, dims, yaw_quaternion(0.3))), atol=1e-12)
    assert make_box(center, dims, (-1.0, 0.0, 0.0, 0.0)).yaw == 0.0  # -q is q
    with pytest.raises(ValueError, match="zero"):
        make_box(center, dims, (0.0, 0.0, 0.0, 0.0)).rotation_matrix()


def test_pitch_stands_a_box_on_its_back():
    # +90 degrees about y (pitch) turns the box's front (+x) down (-z).
    box = make_box((20.0, 0.0, 2.0), (4.0, 2.0, 1.5), (math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0))
    corners = b3.box_corners(box)
    np.testing.assert_allclose(corners[b3.CORNER_NAMES.index("FLB")], [20 - 0.75, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(corners[b3.CORNER_NAMES.index("BRT")], [20 + 0.75, -1.0, 4.0], atol=1e-12)


def test_projection_with_a_real_calibration_against_the_definition():
    sensor = make_sensor(REAL_T)
    box = make_box((15.0, -3.0, 0.7), (4.3, 1.8, 1.5), (0.93, 0.01, -0.02, 0.36))
    uv = b3.project_box(box, sensor)
    for corner, got in zip(b3.box_corners(box), uv):
        x, y, z = (sum(REAL_T[r][k] * corner[k] for k in range(3)) + REAL_T[r][3] for r in range(3))
        # Camera frame with ISO axes: x forward (depth), y left, z up.
        assert got[0] == pytest.approx(U0 - FX * y / x, abs=1e-9)
        assert got[1] == pytest.approx(V0 - FY * z / x, abs=1e-9)


def test_real_annotations_project_onto_their_amodal_boxes(tmp_path):
    boxes = parse_file(write(tmp_path, file_doc()))
    for box in boxes.objects:
        uv = b3.project_box(box, boxes.sensor)
        x0, y0 = uv.min(axis=0)
        x1, y1 = uv.max(axis=0)
        np.testing.assert_allclose([x0, y0, x1 - x0, y1 - y0], box.amodal, atol=1.0)


def test_corners_behind_the_camera_are_nan_and_edges_are_cut():
    sensor = make_sensor()
    # The camera is at x = 1.7: the back face (x = 0.7) is 1 m behind it, the front (x = 4.7) 3 m ahead.
    box = make_box((2.7, 3.0, 1.2), (4.0, 2.0, 1.0))
    uv = b3.project_box(box, sensor)
    assert np.isnan(uv[[0, 1, 4, 5]]).all() and np.isfinite(uv[[2, 3, 6, 7]]).all()
    edges = b3.project_edges(box, sensor)
    assert edges.shape == (12, 2, 2)
    for k, (i, j) in enumerate(b3.BOX_EDGES):
        if np.isfinite(uv[i]).all() and np.isfinite(uv[j]).all():
            np.testing.assert_allclose(edges[k], uv[[i, j]])
        elif np.isnan(uv[i]).any() and np.isnan(uv[j]).any():
            assert np.isnan(edges[k]).all()
    # Edge (3, 0), FLB to BLB, runs along the box's left side (4 m left of the camera, 0.5 m below
    # it) and is cut at the plane NEAR in front of the camera.
    k = b3.BOX_EDGES.index((3, 0))
    np.testing.assert_allclose(edges[k, 0], uv[3])
    np.testing.assert_allclose(edges[k, 1], [U0 - FX * 4.0 / b3.NEAR, V0 + FY * 0.5 / b3.NEAR])
    # A box wholly behind the camera has no edge to draw.
    assert np.isnan(b3.project_edges(make_box((-5.0, 0.0, 1.0), (4.0, 2.0, 1.5)), sensor)).all()


def test_edges_of_a_box_in_front_are_its_projected_corners():
    sensor = make_sensor(REAL_T)
    box = make_box((12.0, 2.0, 0.6), (4.0, 1.7, 1.4), yaw_quaternion(0.7))
    np.testing.assert_allclose(b3.project_edges(box, sensor), b3.project_box(box, sensor)[np.array(b3.BOX_EDGES)])


# -- oracle: cityscapesscripts' Annotation and Box3dImageTransform ---------------------------------------------

#: Reads each gtBbox3d file with the official Annotation, projects every box with
#: Box3dImageTransform, and prints what it found as JSON.
OFFICIAL_PROJECT = r"""
import json, sys
from pyquaternion import Quaternion
from cityscapesscripts.helpers.annotation import Annotation, CsBbox3d, CsIgnore2d, CsObjectType
from cityscapesscripts.helpers.box3dImageTransform import Box3dImageTransform, CRS_V, CRS_S

out = []
for path in sys.argv[1:]:
    annotation = Annotation(objType=CsObjectType.BBOX3D)
    annotation.fromJsonFile(path)
    cam = annotation.camera
    found = {"size": [annotation.imgWidth, annotation.imgHeight],
             "camera": [cam.fx, cam.fy, cam.u0, cam.v0, cam.sensor_T_ISO_8855], "objects": [], "ignore": []}
    for obj in annotation.objects:
        if isinstance(obj, CsIgnore2d):
            found["ignore"].append([obj.label, obj.instanceId, list(obj.bbox_xywh)])
            continue
        transform = Box3dImageTransform(cam)
        transform.initialize_box_from_annotation(obj, coordinate_system=CRS_V)
        found["objects"].append({
            "label": obj.label, "instanceId": obj.instanceId, "score": obj.score,
            "modal": list(obj.bbox_2d.bbox_modal_xywh), "amodal": list(obj.bbox_2d.bbox_amodal_xywh),
            "center": list(obj.center), "dims": list(obj.dims), "rotation": list(obj.rotation),
            "yaw": Quaternion(obj.rotation).yaw_pitch_roll[0],
            "names": list(transform.get_vertices_2d()),
            "uv": [list(map(float, p)) for p in transform.get_vertices_2d().values()],
            "vehicle": [list(map(float, p)) for p in transform.get_vertices(CRS_V).values()],
            "camera": [list(map(float, p)) for p in transform.get_vertices(CRS_S).values()],
            "amodal_from_3d": [float(v) for v in transform.get_amodal_box_2d()]})
    out.append(found)
print(json.dumps(out))
"""

needs_oracle = pytest.mark.skipif(
    not CITYSCAPESSCRIPTS,
    reason="set CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON to a python with cityscapesscripts 2.3.0 to compare with "
           "its Box3dImageTransform")


def random_objects(seed, n):
    rng = np.random.default_rng(seed)
    objects = []
    for k in range(n):
        if k % 3:  # mostly upright, turned about z, a little pitch and roll
            yaw = rng.uniform(-math.pi, math.pi)
            q = np.array([math.cos(yaw / 2), *rng.normal(scale=0.03, size=2), math.sin(yaw / 2)])
        else:  # every third one turned every way
            q = rng.normal(size=4)
        q *= rng.choice([1.0, 0.3, 2.5])  # quaternions not of unit length are normalised by both
        center = [rng.uniform(3, 80), rng.uniform(-15, 15), rng.uniform(-0.5, 2)]
        dims = [rng.uniform(1.5, 12), rng.uniform(0.5, 3), rng.uniform(1, 4)]
        objects.append(obj_doc(center, dims, q.tolist(), instance_id=26000 + k))
    # Boxes reaching behind the camera (1.65 m ahead of the rear axle), beside and around it,
    # and one wholly behind it.
    objects.append(obj_doc([1.0, 3.5, 0.8], [5.0, 1.9, 1.6], yaw_quaternion(0.2), instance_id=27000))
    objects.append(obj_doc([2.0, -0.2, 1.0], [4.5, 1.8, 1.5], yaw_quaternion(-2.9), instance_id=27001))
    objects.append(obj_doc([-8.0, -3.0, 0.7], [4.0, 1.7, 1.4], yaw_quaternion(1.0), instance_id=27002))
    return objects


@needs_oracle
def test_projection_agrees_with_cityscapesscripts(tmp_path):
    paths = [write(tmp_path, file_doc(), "a_000000_000001_gtBbox3d.json"),
             write(tmp_path, file_doc(random_objects(7, 60)), "a_000000_000002_gtBbox3d.json"),
             write(tmp_path, file_doc(random_objects(8, 30), t=STRAIGHT_T), "a_000000_000003_gtBbox3d.json")]
    run = subprocess.run([CITYSCAPESSCRIPTS, "-c", OFFICIAL_PROJECT, *map(str, paths)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, f"cityscapesscripts failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    official = json.loads(run.stdout)
    compared = cut = 0
    for path, theirs in zip(paths, official):
        ours = parse_file(path)
        s = ours.sensor
        assert [ours.width, ours.height] == theirs["size"]
        assert [s.fx, s.fy, s.u0, s.v0, [list(r) for r in s.sensor_T_ISO_8855]] == theirs["camera"]
        assert [[r.label, r.instance_id, list(r.box)] for r in ours.ignore] == theirs["ignore"]
        assert len(ours.objects) == len(theirs["objects"])
        for box, their in zip(ours.objects, theirs["objects"]):
            assert (box.label, box.instance_id, box.score) == (their["label"], their["instanceId"], their["score"])
            assert [list(box.modal), list(box.amodal)] == [their["modal"], their["amodal"]]
            assert [list(box.center), list(box.dimensions), list(box.rotation)] == [
                their["center"], their["dims"], their["rotation"]]
            assert tuple(their["names"]) == b3.CORNER_NAMES
            np.testing.assert_allclose(b3.box_corners(box), their["vehicle"], rtol=0, atol=1e-9)
            # Our yaw is the heading of the box's front, seen from above; the evaluation's
            # (pyquaternion's yaw_pitch_roll) agrees with it up to the pitch-roll coupling.
            corners = np.array(their["vehicle"])
            ahead = corners[[2, 3]].mean(axis=0) - corners[[0, 1]].mean(axis=0)
            assert box.yaw == pytest.approx(math.atan2(ahead[1], ahead[0]), abs=1e-9)
            if path == paths[0]:  # real boxes, hardly pitched or rolled
                assert abs(math.remainder(box.yaw - their["yaw"], math.tau)) < 1e-3
            cam = b3.to_camera(b3.box_corners(box), s)
            np.testing.assert_allclose(cam, their["camera"], rtol=0, atol=1e-9)
            uv = b3.project_box(box, s)
            front = cam[:, 2] >= b3.NEAR
            assert np.isnan(uv[~front]).all()
            np.testing.assert_allclose(uv[front], np.array(their["uv"])[front], rtol=0, atol=1e-6)
            compared += int(front.sum())
            # Their amodal box from the faces cut at the near plane, kept inside the image, is the
            # extent of our cut edges kept inside the image.
            ends = b3.project_edges(box, s).reshape(-1, 2)
            ends = ends[np.isfinite(ends).all(axis=1)]
            if len(ends) == 0:
                assert their["amodal_from_3d"] == [0.0, 0.0, 0.0, 0.0]
                continue
            cut += int(not front.all())
            lo = np.clip(ends.min(axis=0), 0, [2047, 1023])
            hi = np.clip(ends.max(axis=0), 0, [2047, 1023])
            np.testing.assert_allclose([*lo, *hi], their["amodal_from_3d"], rtol=0, atol=1e-6)
    assert compared > 700 and cut >= 4
