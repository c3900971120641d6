"""The release's other parts, file by file: what each file holds, parsed and checked (issue 21).

Every part is keyed by the frame's ``<city>_<seq>_<frame>`` id in a folder of its own beside
``leftImg8bit/`` and ``gtFine/`` (one official zip package each). This module reads one file of
a part from its bytes; finding the file of a frame is the readers' business.

- **Photos by key** (:func:`parse_image_key`, :func:`image_file_suffix`): a photo key is the top
  folder's name, plus ``@`` and the file's variant text where a folder holds several files per
  frame: ``leftImg8bit``, ``rightImg8bit``, ``leftImg16bit``, ``leftImg8bit_foggy@beta_0.02``
  (file ``<id>_leftImg8bit_foggy_beta_0.02.png``), ``leftImg8bit_rain@alpha_0.01_beta_0.005_dropsize_0.01_pattern_1``.
- **Disparity** (:func:`decode_disparity`): ``disparity/<split>/<city>/<id>_disparity.png``,
  16-bit gray; a pixel ``p > 0`` is the disparity ``(p - 1) / 256`` pixels, ``p == 0`` is invalid
  (NaN here, never 0: the peers' most frequent mistakes are forgetting the ``- 1`` and taking 0
  as a value).
- **Camera** (:func:`parse_camera`): ``camera/.../<id>_camera.json``, ``{"extrinsic": {baseline,
  x, y, z, yaw, pitch, roll}, "intrinsic": {fx, fy, u0, v0}}`` in metres and radians. Depth in
  metres is ``baseline * fx / disparity`` (:func:`depth`; ``fx``, not ``fy``, and the frame's own
  calibration, not a constant).
- **Vehicle and time** (:func:`parse_vehicle`, :func:`parse_timestamp`): the vehicle JSON as a
  dict of numbers; the timestamp text file's one integer.
- **CityPersons** (:func:`parse_persons`): ``gtBboxCityPersons/.../<id>_gtBboxCityPersons.json``,
  objects with ``label``, ``instanceId``, ``bbox`` (the full body, amodal) and ``bboxVis`` (the
  visible part), both ``[x, y, w, h]``; labels as ``helpers/labels_cityPersons.py`` numbers them.

Bad input is an :class:`~cityscapes_io.errors.InvalidFileError` naming the file and the reason
(a missing key, a value that is not a finite number, a box of negative size).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import jsonfile, png
from .errors import InvalidFileError
from .names import photo_file_word

__all__ = ["Camera", "Person", "PERSON_LABELS", "parse_image_key", "image_file_suffix", "decode_disparity",
           "decode_disparity_raw", "disparity_header",
           "parse_camera", "depth", "parse_vehicle", "parse_timestamp", "parse_persons"]

# -- photos by key ------------------------------------------------------------------------------------------

_KEY = re.compile(r"^(?P<folder>[A-Za-z][A-Za-z0-9_]*)(?:@(?P<variant>[A-Za-z0-9_.]+))?$")


def parse_image_key(key: str) -> Tuple[str, str]:
    """``(folder, variant)`` of a photo key (``variant`` "" for a folder of one file a frame).

    Raises
    ------
    ValueError
        Not a key: a folder name (letters, digits, ``_``) and an optional ``@`` variant
        (letters, digits, ``_``, ``.``).
    """
    m = _KEY.match(key or "")
    if m is None:
        raise ValueError(f"not a photo key: {key!r} (a folder name such as leftImg8bit, then optionally "
                         f"@ and the file's variant, as in leftImg8bit_foggy@beta_0.02)")
    return m.group("folder"), m.group("variant") or ""


def image_file_suffix(key: str) -> str:
    """What follows the frame id in the file name of the photo ``key``, extension excluded:
    ``leftImg8bit_foggy@beta_0.02`` → ``_leftImg8bit_foggy_beta_0.02``; the refined Foggy sets'
    files keep the plain set's name: ``leftImg8bit_foggyDBF@beta_0.01`` →
    ``_leftImg8bit_foggy_beta_0.01`` (see :func:`cityscapes_io.names.photo_file_word`)."""
    folder, variant = parse_image_key(key)
    word = photo_file_word(folder)
    return f"_{word}_{variant}" if variant else f"_{word}"


# -- disparity, camera, depth ---------------------------------------------------------------------------------

def disparity_header(data: bytes, path: str) -> png.PngHeader:
    """The header of a disparity PNG, checked: 16-bit gray.

    Raises
    ------
    InvalidFileError
        Not a PNG, or not 16-bit gray.
    """
    header = png.read_header(data, path)
    if header.color_type != 0 or header.bit_depth != 16:
        raise InvalidFileError(path, f"a disparity PNG is 16-bit gray; this one is {header.bit_depth}-bit, "
                                     f"colour type {header.color_type}")
    return header


def decode_disparity_raw(data: bytes, path: str) -> np.ndarray:
    """A disparity PNG's stored values ``p`` (``H×W`` uint16), checked as :func:`disparity_header`."""
    disparity_header(data, path)
    return png.decode_gray(data, path)


def decode_disparity(data: bytes, path: str) -> np.ndarray:
    """A disparity PNG as float32 pixels: ``(p - 1) / 256`` where ``p > 0``, NaN where ``p == 0``.

    Raises
    ------
    InvalidFileError
        Not a 16-bit gray PNG, or corrupt (as :func:`cityscapes_io.png.decode_gray`).
    """
    raw = decode_disparity_raw(data, path)
    out = (raw.astype(np.float32) - np.float32(1)) / np.float32(256)
    out[raw == 0] = np.nan
    return out


@dataclass(frozen=True)
class Camera:
    """A frame's calibration (``camera/.../<id>_camera.json``): intrinsics in pixels, the stereo
    baseline and the extrinsic position in metres and angles in radians."""

    fx: float
    fy: float
    u0: float
    v0: float
    baseline: float
    x: float
    y: float
    z: float
    yaw: float
    pitch: float
    roll: float

    def intrinsics(self) -> np.ndarray:
        """The 3×3 camera matrix ``[[fx, 0, u0], [0, fy, v0], [0, 0, 1]]`` (float64)."""
        return np.array([[self.fx, 0.0, self.u0], [0.0, self.fy, self.v0], [0.0, 0.0, 1.0]])


def _number(doc: Any, group: str, key: str, path: str, positive: bool = False) -> float:
    part = doc.get(group) if isinstance(doc, dict) else None
    value = part.get(key) if isinstance(part, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidFileError(path, f"camera JSON: {group}.{key} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise InvalidFileError(path, f"camera JSON: {group}.{key} must be positive, got {value!r}")
    return float(value)


def parse_camera(data: bytes, path: str) -> Camera:
    """A camera JSON. ``fx``, ``fy`` and ``baseline`` must be positive, every value finite.

    Raises
    ------
    InvalidFileError
        Not JSON, a key missing, or a value out of range (naming the key).
    """
    doc = jsonfile.loads(data, path)
    return Camera(fx=_number(doc, "intrinsic", "fx", path, True), fy=_number(doc, "intrinsic", "fy", path, True),
                  u0=_number(doc, "intrinsic", "u0", path), v0=_number(doc, "intrinsic", "v0", path),
                  baseline=_number(doc, "extrinsic", "baseline", path, True),
                  x=_number(doc, "extrinsic", "x", path), y=_number(doc, "extrinsic", "y", path),
                  z=_number(doc, "extrinsic", "z", path), yaw=_number(doc, "extrinsic", "yaw", path),
                  pitch=_number(doc, "extrinsic", "pitch", path), roll=_number(doc, "extrinsic", "roll", path))


def depth(disparity: np.ndarray, camera: Camera) -> np.ndarray:
    """Depth in metres (float32): ``baseline * fx / disparity``; NaN where the disparity is
    invalid (NaN) or not positive (a disparity of 0 is at infinity: no depth measured)."""
    disp = np.asarray(disparity, dtype=np.float32)
    out = np.full(disp.shape, np.nan, dtype=np.float32)
    ok = disp > 0  # (False for NaN)
    out[ok] = np.float32(camera.baseline * camera.fx) / disp[ok]
    return out


# -- vehicle and time -----------------------------------------------------------------------------------------

def parse_vehicle(data: bytes, path: str) -> Dict[str, float]:
    """A vehicle JSON (``speed``, ``yawRate``, ``gpsLatitude``, ``gpsLongitude``, ``gpsHeading``,
    ``gpsAltitude``, ``outsideTemperature``, ...) as a dict of its numeric values.

    Raises
    ------
    InvalidFileError
        Not a JSON object, or a value that is not a finite number.
    """
    doc = jsonfile.loads(data, path)
    if not isinstance(doc, dict):
        raise InvalidFileError(path, "vehicle JSON: expected an object of numbers")
    out: Dict[str, float] = {}
    for key, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidFileError(path, f"vehicle JSON: {key} must be a number, got {str(value)[:40]!r}")
        out[str(key)] = value
    return out


def parse_timestamp(data: bytes, path: str) -> int:
    """A timestamp file's one integer (surrounding white space allowed).

    Raises
    ------
    InvalidFileError
        Anything else in the file.
    """
    text = bytes(data[:64]).decode("ascii", "replace").strip() if len(data) <= 64 else None
    if text is None or not re.fullmatch(r"[0-9]{1,20}", text):
        raise InvalidFileError(path, "a timestamp file holds one non-negative integer"
                                     + ("" if text is None else f", got {text[:30]!r}"))
    return int(text)


# -- CityPersons ----------------------------------------------------------------------------------------------

#: CityPersons' labels by name, numbered as ``helpers/labels_cityPersons.py`` numbers them.
PERSON_LABELS: Dict[str, int] = {"ignore": 0, "pedestrian": 1, "rider": 2, "sitting person": 3,
                                 "person (other)": 4, "person group": 5}


@dataclass(frozen=True)
class Person:
    """One CityPersons object: its label (a key of :data:`PERSON_LABELS`), the full body's box
    ``bbox`` and the visible part's ``bbox_vis``, both ``(x, y, w, h)`` in pixels, and the
    instance id it has in the frame's gtFine instanceIds (0 for none)."""

    label: str
    bbox: Tuple[float, float, float, float]
    bbox_vis: Tuple[float, float, float, float]
    instance_id: int

    @property
    def label_id(self) -> int:
        return PERSON_LABELS[self.label]

    @property
    def visibility(self) -> float:
        """Visible area over full area (the evaluation setups' criterion), 0 for an empty box."""
        full = self.bbox[2] * self.bbox[3]
        return self.bbox_vis[2] * self.bbox_vis[3] / full if full > 0 else 0.0


def _box(obj: Dict[str, Any], key: str, path: str, k: int) -> Tuple[float, float, float, float]:
    box = obj.get(key)
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
        raise InvalidFileError(path, f"CityPersons JSON: object {k}: {key} must be [x, y, w, h] of finite numbers, "
                                     f"got {str(box)[:60]}")
    if box[2] < 0 or box[3] < 0:
        raise InvalidFileError(path, f"CityPersons JSON: object {k}: {key} has a negative size: {box}")
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def parse_persons(data: bytes, path: str, labels: Optional[Dict[str, int]] = None) -> List[Person]:
    """The objects of a CityPersons JSON, in the file's order.

    Raises
    ------
    InvalidFileError
        Not JSON, no ``objects`` list, an object without a known ``label``, a box that is not
        four finite numbers or has a negative size, an ``instanceId`` that is not an integer.
    """
    known = PERSON_LABELS if labels is None else labels
    doc = jsonfile.loads(data, path)
    objects = doc.get("objects") if isinstance(doc, dict) else None
    if not isinstance(objects, list):
        raise InvalidFileError(path, "CityPersons JSON: no list of 'objects'")
    out: List[Person] = []
    for k, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise InvalidFileError(path, f"CityPersons JSON: object {k} is not an object")
        label = obj.get("label")
        if not isinstance(label, str) or label not in known:
            raise InvalidFileError(path, f"CityPersons JSON: object {k}: label {label!r} is not one of "
                                         f"{', '.join(known)}")
        inst = obj.get("instanceId", 0)
        if isinstance(inst, bool) or not isinstance(inst, int) or inst < 0:
            raise InvalidFileError(path, f"CityPersons JSON: object {k}: instanceId must be a non-negative "
                                         f"integer, got {inst!r}")
        out.append(Person(label, _box(obj, "bbox", path, k), _box(obj, "bboxVis", path, k), inst))
    return out
