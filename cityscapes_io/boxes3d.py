"""Cityscapes 3D (``gtBbox3d/<split>/<city>/<id>_gtBbox3d.json``): 3D boxes of vehicles, read,
checked, and projected into the image.

A file is ``{"imgWidth", "imgHeight", "sensor", "objects", "ignore"}``:

- ``sensor``: ``fx``, ``fy``, ``u0``, ``v0`` (pixels), ``baseline`` (metres) and
  ``sensor_T_ISO_8855``, the 3×4 rigid transform ``[R | t]`` taking a point of the vehicle frame
  to the camera frame;
- ``objects``: ``label`` (``car``, ``truck``, ...), ``instanceId`` (the object's value in the
  frame's gtFine instanceIds), ``2d.modal`` (visible part) and ``2d.amodal`` (full extent)
  ``[x, y, w, h]`` in pixels, ``3d.center`` ``[x, y, z]`` and ``3d.dimensions``
  ``[length, width, height]`` in metres, ``3d.rotation`` a quaternion ``[w, x, y, z]`` (the
  order pyquaternion takes, as cityscapesScripts reads it), ``3d.type`` (``"Mid Size Car"``),
  ``3d.format`` (``"CRS_ISO8855"``), ``occlusion`` and ``truncation`` in [0, 1], ``score``;
- ``ignore``: regions ``{"2d": [x, y, w, h], "label", "instanceId"}`` that the evaluation neither
  counts nor penalises.

Coordinate frames (cityscapesScripts ``helpers/box3dImageTransform.py``, csCalibration.pdf):

- **vehicle** (ISO 8855): origin on the ground below the rear axle's centre, ``x`` forward,
  ``y`` left, ``z`` up; every box is given in it;
- **camera**: ``sensor_T_ISO_8855 @ [x, y, z, 1]`` has the same axes with the origin in the
  optical centre; :func:`to_camera` returns it with the image's axes instead, ``x`` right,
  ``y`` down, ``z`` forward (the depth), so that ``u = fx * x / z + u0`` and
  ``v = fy * y / z + v0``.

A box's corners (:func:`box_corners`) are in cityscapesScripts' order, :data:`CORNER_NAMES`
``BLB, BRB, FRB, FLB, BLT, BRT, FRT, FLT`` (back/front, left/right, bottom/top as seen from the
object itself: front is its ``+x``, left its ``+y``): the bottom face first, then the top face
in the same order. :data:`BOX_EDGES` lists the 12 edges as pairs of corner indices.

Points less than :data:`NEAR` (1 cm, the plane at which cityscapesScripts crops a box's faces)
in front of the camera have no image position: :func:`project_points` and :func:`project_box`
give NaN for them, and :func:`project_edges` cuts each edge at that plane, so that boxes reaching
behind the camera can still be drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np

from . import jsonfile
from .errors import InvalidFileError

__all__ = ["Sensor", "Box3d", "IgnoreRegion", "Boxes3d", "parse_boxes3d", "box_corners", "to_camera",
           "project_points", "project_box", "project_edges", "CORNER_NAMES", "BOX_EDGES", "NEAR"]

Box2d = Tuple[float, float, float, float]
Vector3 = Tuple[float, float, float]

#: The corners of :func:`box_corners`, in order: Back/Front, Left/Right, Bottom/Top in the
#: object's own frame (cityscapesScripts' ``Box3dImageTransform.loc``).
CORNER_NAMES: Tuple[str, ...] = ("BLB", "BRB", "FRB", "FLB", "BLT", "BRT", "FRT", "FLT")
#: The 12 edges of a box as pairs of corner indices: bottom face, top face, then the 4 verticals.
BOX_EDGES: Tuple[Tuple[int, int], ...] = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
                                          (0, 4), (1, 5), (2, 6), (3, 7))
#: Smallest depth (metres in front of the camera) a point must have to be projected.
NEAR = 0.01
# Corner signs along (length, width, height), in the order of CORNER_NAMES.
_SIGNS = np.array([[-1, 1, -1], [-1, -1, -1], [1, -1, -1], [1, 1, -1],
                   [-1, 1, 1], [-1, -1, 1], [1, -1, 1], [1, 1, 1]], dtype=np.float64)
# Tolerance on sensor_T_ISO_8855's left 3×3 being a rotation (R Rᵀ = I, det R = 1).
_ROTATION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Sensor:
    """A frame's calibration as ``gtBbox3d`` gives it: intrinsics in pixels, the stereo baseline in
    metres, and ``sensor_T_ISO_8855``, the 3×4 transform from the vehicle frame to the camera."""

    fx: float
    fy: float
    u0: float
    v0: float
    baseline: float
    sensor_T_ISO_8855: Tuple[Tuple[float, float, float, float], ...]

    def intrinsics(self) -> np.ndarray:
        """The 3×3 camera matrix ``[[fx, 0, u0], [0, fy, v0], [0, 0, 1]]`` (float64)."""
        return np.array([[self.fx, 0.0, self.u0], [0.0, self.fy, self.v0], [0.0, 0.0, 1.0]])

    def extrinsics(self) -> np.ndarray:
        """``sensor_T_ISO_8855`` as a 3×4 float64 array ``[R | t]``."""
        return np.array(self.sensor_T_ISO_8855, dtype=np.float64)


@dataclass(frozen=True)
class Box3d:
    """One annotated object: its 2D boxes ``modal`` (the visible part) and ``amodal`` (the full
    extent), ``(x, y, w, h)`` in pixels, and its 3D box in the vehicle frame: ``center``
    ``(x, y, z)`` and ``dimensions`` ``(length, width, height)`` in metres, ``rotation`` the
    quaternion ``(w, x, y, z)`` as the file has it (not necessarily of unit length; it is
    normalised where used). ``occlusion``, ``truncation`` (in [0, 1]), ``score`` and
    ``vehicle_type`` (the file's ``3d.type``) are None where the file does not give them."""

    label: str
    instance_id: int
    modal: Box2d
    amodal: Box2d
    center: Vector3
    dimensions: Vector3
    rotation: Tuple[float, float, float, float]
    occlusion: Optional[float] = None
    truncation: Optional[float] = None
    score: Optional[float] = None
    vehicle_type: Optional[str] = None

    def rotation_matrix(self) -> np.ndarray:
        """The 3×3 rotation of the (normalised) quaternion: object frame to vehicle frame.

        Raises
        ------
        ValueError
            The quaternion is zero (no rotation).
        """
        norm = math.hypot(*self.rotation)
        if not norm > 0:
            raise ValueError(f"the quaternion {self.rotation} is zero: it is no rotation")
        w, x, y, z = (v / norm for v in self.rotation)
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])

    @property
    def yaw(self) -> float:
        """The heading in radians, in [-π, π]: the angle from the vehicle's ``x`` (forward) to the
        direction the object's front points to, seen from above, counter-clockwise (the yaw of
        ``R = R_z(yaw) R_y(pitch) R_x(roll)``). The official evaluation takes its yaw from
        pyquaternion's ``yaw_pitch_roll`` (``R = R_x R_y R_z``), which differs from this one
        when a box is pitched and rolled at once (by about 5e-4 radians on real boxes)."""
        r = self.rotation_matrix()
        return math.atan2(r[1, 0], r[0, 0])


@dataclass(frozen=True)
class IgnoreRegion:
    """A region the evaluation ignores: ``box`` ``(x, y, w, h)`` in pixels, the ``label`` of what
    is there and its ``instance_id`` (a class id such as 26 for a crowd, 0 where not given)."""

    label: str
    instance_id: int
    box: Box2d


@dataclass(frozen=True)
class Boxes3d:
    """A parsed ``gtBbox3d`` file: the ``sensor``, the ``objects`` and ``ignore`` regions in file
    order, and the image size (``width``, ``height``; None where the file does not give it)."""

    sensor: Sensor
    objects: Tuple[Box3d, ...]
    ignore: Tuple[IgnoreRegion, ...]
    width: Optional[int] = None
    height: Optional[int] = None


# -- parsing ----------------------------------------------------------------------------------------------------

class _Bad(Exception):
    """A reason, raised inside the parser and turned into an InvalidFileError naming the file."""


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    # An integer too large for a float (JSON allows 400 digits) is not a usable number either
    # (comparing it with a float is exact and cannot overflow).
    return isinstance(value, int) and not isinstance(value, bool) and -1e300 < value < 1e300


def _number(value: Any, what: str) -> float:
    if not _finite(value):
        raise _Bad(f"{what} must be a finite number, got {str(value)[:40]}")
    return float(value)


def _numbers(value: Any, n: int, what: str, shape: str) -> Tuple[float, ...]:
    if not isinstance(value, list) or len(value) != n or not all(_finite(v) for v in value):
        raise _Bad(f"{what} must be {shape} of finite numbers, got {str(value)[:60]}")
    return tuple(float(v) for v in value)


def _quad(v: Tuple[float, ...]) -> Tuple[float, float, float, float]:
    return (v[0], v[1], v[2], v[3])


def _triple(v: Tuple[float, ...]) -> Vector3:
    return (v[0], v[1], v[2])


def _box2d(value: Any, what: str) -> Box2d:
    box = _quad(_numbers(value, 4, what, "[x, y, w, h]"))
    if box[2] < 0 or box[3] < 0:
        raise _Bad(f"{what} has a negative size: {value}")
    return box


def _fraction(obj: Dict[str, Any], key: str) -> Optional[float]:
    value = obj.get(key)
    if value is None:
        return None
    if not _finite(value) or not 0 <= value <= 1:
        raise _Bad(f"{key} must be a number in [0, 1], got {str(value)[:40]}")
    return float(value)


def _label_and_id(obj: Dict[str, Any]) -> Tuple[str, int]:
    label = obj.get("label")
    if not isinstance(label, str) or not label:
        raise _Bad(f"label must be a non-empty string, got {str(label)[:40]}")
    inst = obj.get("instanceId", 0)
    if isinstance(inst, bool) or not isinstance(inst, int) or inst < 0:
        raise _Bad(f"instanceId must be a non-negative integer, got {str(inst)[:40]}")
    return label, inst


def _sensor(doc: Dict[str, Any]) -> Sensor:
    sensor = doc.get("sensor")
    if not isinstance(sensor, dict):
        raise _Bad("no 'sensor' object")
    values = {key: _number(sensor.get(key), f"sensor.{key}") for key in ("fx", "fy", "u0", "v0", "baseline")}
    for key in ("fx", "fy", "baseline"):
        if not values[key] > 0:
            raise _Bad(f"sensor.{key} must be positive, got {values[key]}")
    rows = sensor.get("sensor_T_ISO_8855")
    if not isinstance(rows, list) or len(rows) != 3:
        raise _Bad(f"sensor.sensor_T_ISO_8855 must be 3 rows of 4 numbers, got {str(rows)[:80]}")
    matrix = tuple(_quad(_numbers(row, 4, f"sensor.sensor_T_ISO_8855 row {i}", "4 numbers"))
                   for i, row in enumerate(rows))
    r = np.array(matrix)[:, :3]
    if (not np.abs(r).max() <= 1 + _ROTATION_TOLERANCE  # (a rotation's entries are at most 1)
            or not np.allclose(r @ r.T, np.eye(3), atol=_ROTATION_TOLERANCE)
            or not abs(np.linalg.det(r) - 1) <= _ROTATION_TOLERANCE):
        raise _Bad("sensor.sensor_T_ISO_8855: its left 3x3 part is not a rotation")
    return Sensor(values["fx"], values["fy"], values["u0"], values["v0"], values["baseline"], matrix)


def _object(obj: Any) -> Box3d:
    if not isinstance(obj, dict):
        raise _Bad("not a JSON object")
    label, inst = _label_and_id(obj)
    two, three = obj.get("2d"), obj.get("3d")
    if not isinstance(two, dict):
        raise _Bad("no '2d' object")
    if not isinstance(three, dict):
        raise _Bad("no '3d' object")
    amodal = _box2d(two.get("amodal"), "2d.amodal")
    # Without a modal box, the amodal one stands for both (as cityscapesScripts reads it).
    modal = _box2d(two["modal"], "2d.modal") if "modal" in two else amodal
    fmt = three.get("format", "CRS_ISO8855")
    if fmt != "CRS_ISO8855":
        raise _Bad(f"3d.format is {str(fmt)[:40]!r}: only boxes in the vehicle frame (CRS_ISO8855) are read")
    center = _triple(_numbers(three.get("center"), 3, "3d.center", "[x, y, z]"))
    dims = _triple(_numbers(three.get("dimensions"), 3, "3d.dimensions", "[length, width, height]"))
    if min(dims) < 0:
        raise _Bad(f"3d.dimensions has a negative size: {three['dimensions']}")
    rotation = _quad(_numbers(three.get("rotation"), 4, "3d.rotation", "a quaternion [w, x, y, z]"))
    if not math.hypot(*rotation) > 1e-6:
        raise _Bad(f"3d.rotation is a zero quaternion: {three['rotation']}")
    kind = three.get("type")
    if kind is not None and not isinstance(kind, str):
        raise _Bad(f"3d.type must be a string, got {str(kind)[:40]}")
    score = obj.get("score")
    return Box3d(label, inst, modal, amodal, center, dims, rotation,
                 occlusion=_fraction(obj, "occlusion"), truncation=_fraction(obj, "truncation"),
                 score=None if score is None else _number(score, "score"), vehicle_type=kind)


def _ignore(obj: Any) -> IgnoreRegion:
    if not isinstance(obj, dict):
        raise _Bad("not a JSON object")
    label, inst = _label_and_id(obj)
    return IgnoreRegion(label, inst, _box2d(obj.get("2d"), "2d"))


def _size(doc: Dict[str, Any]) -> Tuple[Optional[int], Optional[int]]:
    if "imgWidth" not in doc and "imgHeight" not in doc:
        return None, None
    size: List[int] = []
    for key in ("imgWidth", "imgHeight"):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _Bad(f"{key} must be a positive integer, got {str(value)[:40]}")
        size.append(value)
    return size[0], size[1]


def parse_boxes3d(data: bytes, path: str) -> Boxes3d:
    """Parse a ``gtBbox3d`` file (see the module's description).

    ``sensor`` (with ``sensor_T_ISO_8855``, ``fx``, ``fy``, ``u0``, ``v0``, ``baseline``) and
    ``objects`` are required; ``ignore`` may be missing (no regions), ``imgWidth`` and
    ``imgHeight`` may both be missing. Of an object, ``label``, ``2d.amodal``, ``3d.center``,
    ``3d.dimensions`` and ``3d.rotation`` are required; ``2d.modal`` defaults to the amodal box,
    ``instanceId`` to 0, the rest to None.

    Parameters
    ----------
    data : bytes
        The file's content.
    path : str
        Its path, for the messages.

    Returns
    -------
    Boxes3d

    Raises
    ------
    InvalidFileError
        ``"<path>: not valid JSON: <reason>"`` (:func:`cityscapes_io.jsonfile.loads`), or
        ``"<path>: gtBbox3d JSON: <reason>"``, the reason naming the key and the object or
        ignore region (by index): a missing key, a value that is not a finite number,
        a list of the wrong length, a negative size, a zero quaternion, fx, fy or baseline not
        positive, a ``sensor_T_ISO_8855`` whose rotation part is not a rotation, occlusion or
        truncation outside [0, 1], a ``3d.format`` other than ``CRS_ISO8855``, two objects
        with the same non-zero ``instanceId``.
    """
    doc = jsonfile.loads(data, path)
    where = ""
    try:
        if not isinstance(doc, dict):
            raise _Bad("the top level is not a JSON object")
        width, height = _size(doc)
        sensor = _sensor(doc)
        objects_in, ignore_in = doc.get("objects"), doc.get("ignore", [])
        if not isinstance(objects_in, list):
            raise _Bad("no list of 'objects'")
        if not isinstance(ignore_in, list):
            raise _Bad("'ignore' is not a list")
        objects: List[Box3d] = []
        seen: Set[int] = set()
        for k, obj in enumerate(objects_in):
            where = f"object {k}: "
            box = _object(obj)
            if box.instance_id and box.instance_id in seen:
                raise _Bad(f"instanceId {box.instance_id} is given to an earlier object too")
            seen.add(box.instance_id)
            objects.append(box)
        ignore: List[IgnoreRegion] = []
        for k, obj in enumerate(ignore_in):
            where = f"ignore region {k}: "
            ignore.append(_ignore(obj))
    except _Bad as exc:
        raise InvalidFileError(path, f"gtBbox3d JSON: {where}{exc}") from None
    return Boxes3d(sensor, tuple(objects), tuple(ignore), width, height)


# -- geometry ---------------------------------------------------------------------------------------------------

def box_corners(box: Box3d) -> np.ndarray:
    """The 8 corners of ``box`` in the vehicle frame (ISO 8855), in the order of
    :data:`CORNER_NAMES` (cityscapesScripts' order).

    Returns
    -------
    numpy.ndarray
        ``(8, 3)`` float64, metres.
    """
    half = np.asarray(box.dimensions, dtype=np.float64) / 2
    return (_SIGNS * half) @ box.rotation_matrix().T + np.asarray(box.center, dtype=np.float64)


def to_camera(points: np.ndarray, sensor: Sensor) -> np.ndarray:
    """Points of the vehicle frame in the camera frame with the image's axes: ``x`` right,
    ``y`` down, ``z`` forward (the depth).

    Parameters
    ----------
    points : array_like
        ``(N, 3)`` points in the vehicle frame, metres.
    sensor : Sensor

    Returns
    -------
    numpy.ndarray
        ``(N, 3)`` float64, metres.
    """
    t = sensor.extrinsics()
    iso = np.asarray(points, dtype=np.float64).reshape(-1, 3) @ t[:, :3].T + t[:, 3]
    # ISO axes at the camera (forward, left, up) to the image's (right, down, forward).
    return np.stack([-iso[:, 1], -iso[:, 2], iso[:, 0]], axis=1)


def _pixels(cam: np.ndarray, sensor: Sensor) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.stack([sensor.fx * cam[..., 0] / cam[..., 2] + sensor.u0,
                        sensor.fy * cam[..., 1] / cam[..., 2] + sensor.v0], axis=-1)
    out[cam[..., 2] < NEAR] = np.nan
    return out


def project_points(points: np.ndarray, sensor: Sensor) -> np.ndarray:
    """Image positions ``(u, v)`` of points of the vehicle frame, in pixels, ``u`` right and ``v``
    down (``u = fx * x / z + u0`` and ``v = fy * y / z + v0`` in :func:`to_camera`'s frame, as
    cityscapesScripts projects them).

    Parameters
    ----------
    points : array_like
        ``(N, 3)`` points in the vehicle frame, metres.
    sensor : Sensor

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` float64; NaN for a point less than :data:`NEAR` in front of the camera (use
        ``to_camera(points, sensor)[:, 2]`` for the depths).
    """
    return _pixels(to_camera(points, sensor), sensor)


def project_box(box: Box3d, sensor: Sensor) -> np.ndarray:
    """The image positions of ``box``'s corners, in the order of :data:`CORNER_NAMES`: ``(8, 2)``
    float64, NaN for a corner less than :data:`NEAR` in front of the camera. Where every corner
    is in front, these are cityscapesScripts' ``Box3dImageTransform.get_vertices_2d()``."""
    return project_points(box_corners(box), sensor)


def project_edges(box: Box3d, sensor: Sensor) -> np.ndarray:
    """The 12 edges of ``box`` (:data:`BOX_EDGES`) as image segments, ready to draw.

    An edge reaching behind the camera is cut where it crosses the plane :data:`NEAR` in front of
    it; an edge wholly behind that plane is NaN.

    Returns
    -------
    numpy.ndarray
        ``(12, 2, 2)`` float64: edge, end (the first and second corner of the pair), ``(u, v)``.
    """
    cam = to_camera(box_corners(box), sensor)
    ends = cam[np.array(BOX_EDGES)]  # (12, 2, 3)
    a, b = ends[:, 0], ends[:, 1]
    za, zb = a[:, 2:3], b[:, 2:3]
    cut_a = (za < NEAR) & (zb >= NEAR)
    cut_b = (zb < NEAR) & (za >= NEAR)
    # Where a cut edge crosses the plane, as a fraction of the way from a to b (za != zb there).
    t = np.divide(NEAR - za, zb - za, out=np.zeros_like(za), where=cut_a | cut_b)
    crossing = a + t * (b - a)
    crossing[:, 2] = NEAR  # on the plane exactly: rounding must not put it behind
    return _pixels(np.stack([np.where(cut_a, crossing, a), np.where(cut_b, crossing, b)], axis=1), sensor)
