"""A deterministic generator of synthetic Cityscapes datasets, for tests and benchmarks.

Every frame is a street scene described, like the real annotations, as a list of polygon
objects in painter's order (later objects drawn over earlier ones), with integer vertices:

1. stuff: the sky, one polygon per building of the skyline (a thin unlabeled gap is sometimes
   left between two buildings, as between real annotators' polygons), the ground as triangles
   meeting at the vanishing point (a band of terrain, vegetation, wall, fence or building,
   sidewalk, sometimes parking, road), trees, poles with traffic signs or lights, static and
   dynamic clutter;
2. 5 to 30 objects of the classes with instances (cars, people, riders, bicycles, ...), far
   ones first, each one polygon (a car's or a pedestrian's outline; ellipses and wheels are
   polygons with enough vertices), and 1 to 3 crowds of several overlapping objects, each
   outlined as a whole (one polygon per separate stretch) and labelled as a group
   (``cargroup``, ``persongroup``);
3. the void border on top: the ego vehicle's hood, the rectification border and the out of
   roi rows.

Some frames also hold what the release holds and the official scripts skip when drawing: a
``deleted: 1`` object, and ``license plate`` objects on cars (a negative id: the car under its
plate stays car).

The PNGs are drawn FROM the polygons, with :func:`cityscapes_io.polygons.rasterize` (the rules
of cityscapesScripts ``createLabelImage`` / ``createInstanceImage``), so they are exactly what the
official scripts draw from the ``_polygons.json``: in particular the instance numbers are the
official ones, counted per class in file order from 0 (``26000`` is the first car); an object
later painted over entirely still takes its number, so gaps appear (26003 and 26005 without
26004). Groups and stuff get the plain class id. The files of a frame:

- ``*_gtFine_polygons.json``: ``{"imgHeight", "imgWidth", "objects": [{"label", "polygon",
  "deleted"}, ...]}``, indented like the release;
- ``*_gtFine_instanceIds.png``: 16-bit gray (``rasterize(..., "instanceIds")``);
- ``*_gtFine_labelIds.png``: 8-bit gray (``"ids"``), ``where(v >= 1000, v // 1000, v)`` of the
  above;
- ``*_gtFine_color.png``: RGBA (``"color"``), the official label colours, alpha 255;
- ``*_leftImg8bit.png`` (``photos=True``): an RGB photo-like picture of the rasterised scene,
  shaded and textured so that a 2048x1024 frame is about 2 MB, like a real one; its rows come in
  pairs (equal but where a region boundary passes between the two), which halves the cost of
  encoding it.

``generate(..., coarse={"train": 3, "train_extra": 5})`` also writes coarse annotations,
``gtCoarse/<split>/<city>/<id>_gtCoarse_polygons.json`` and ``..._gtCoarse_{instanceIds,
labelIds,color}.png`` (drawn from it the same way): a
rough version of the same scene (fewer polygons with few vertices, inset from the region
boundaries, small objects left out), so that much of the frame is ``unlabeled`` (0), as in the
real coarse annotations. For a split gtFine has too (train, val) the coarse frames are the first
gtFine frames, same ids and same scenes; for the others (train_extra) the photos are written
under ``leftImg8bit/<split>/`` too.

``generate(..., parts=[...] or "all")`` also writes the release's other parts (issue 21,
:data:`PART_FOLDERS`), each under ``<folder>/<split>/<city>/`` and named after the frame
``<city>_<seq>_<frame>`` (``<id>`` below). They are made from the frame's scene, its photo and a
camera of its own, from a fourth generator of the frame's seed sequence (so the other files stay
byte for byte what they are without parts), one generator per part:

- ``rightImg8bit``: ``<id>_rightImg8bit.png``, the left photo with every pixel moved left by its
  disparity (the left photo's pixel ``d`` columns to the right);
- ``leftImg16bit``, ``rightImg16bit``: ``<id>_leftImg16bit.png``, ``<id>_rightImg16bit.png``,
  16-bit RGB, ``p * 256`` plus ``p`` with noise of +-3 (the high byte is the 8-bit photo);
- ``leftImg8bit_blurred``: ``<id>_leftImg8bit_blurred.png``, the photo with the people's heads
  and the licence plates blurred;
- ``camera``: ``<id>_camera.json``, ``{"extrinsic": {baseline, pitch, roll, x, y, yaw, z},
  "intrinsic": {fx, fy, u0, v0}}``: a release camera (``fx`` 2262.52 at 2048 wide, scaled with
  the width; ``fy``, ``v0`` with the height), ``baseline`` about 0.209 m, the camera about 1.22 m
  high, each value varied a little per frame; ``roll`` 0 and ``pitch`` such that the camera sees
  the scene's horizon where it is drawn;
- ``disparity``: ``<id>_disparity.png``, 16-bit gray, ``round(d * 256) + 1``, 0 where invalid
  (the sky, the void border, the unlabeled gaps, a band at the left edge, farther than 300 m),
  ``d = baseline * fx / depth``. The depth is that of a flat-ground world: the ground at row
  ``v`` is ``z * fy / (cos(pitch) * (v - horizon))`` away (growing towards the horizon), a
  standing object (car, person, pole, tree, ...) is upright at the depth of its foot, a building
  at the depth where the ground in front of it begins in its column;
- ``vehicle``: ``<id>_vehicle.json``, ``gpsHeading`` (degrees), ``gpsLatitude``,
  ``gpsLongitude``, ``gpsAltitude`` (m), ``speed`` (m/s), ``outsideTemperature`` (degrees C),
  ``yawRate`` (rad/s); ``timestamp``: ``<id>_timestamp.txt``, one integer, nanoseconds;
- ``leftImg8bit_sequence``, ``rightImg8bit_sequence``, ``disparity_sequence``,
  ``vehicle_sequence``, ``timestamp_sequence``: the 30-frame snippet around the frame,
  ``<city>_<seq>_<n>_leftImg8bit.png`` (``_rightImg8bit.png``, ``_disparity.png``,
  ``_vehicle.json``, ``_timestamp.txt``) for ``n`` from ``frame - 19`` to ``frame + 10``, numbers
  below 0 left out (frame 7 has a snippet of 18). The annotated frame's files are the very bytes
  of its ``leftImg8bit``, ``rightImg8bit``, ``disparity``, ``vehicle`` and ``timestamp`` files;
  the others are cheap: the photos and the disparity moved sideways a few columns a step
  (``width // 512``, at least 1), the vehicle driving on, timestamps about 1/17 s apart;
- ``leftImg8bit_foggy``, ``leftImg8bit_foggyDBF``: ``<id>_leftImg8bit_foggy_beta_<b>.png`` for
  ``b`` in :data:`FOG_BETAS`, ``photo * t + A * (1 - t)`` with ``t = exp(-b * depth)`` and ``A``
  0.8 gray (the sky: ``t`` 0); ``leftImg8bit_transmittance`` and
  ``leftImg8bit_transmittanceDBF``: ``<id>_leftImg8bit_transmittance_beta_<b>.png``, 8-bit gray
  ``t * 255``. The DBF ("refined") set's transmittance is the plain one box-blurred;
- ``leftImg8bit_rain``: ``<id>_leftImg8bit_rain_alpha_<a>_beta_<b>_dropsize_<d>_pattern_<p>.png``
  for ``(a, b, d)`` in :data:`RAIN_SETTINGS` and ``p`` in :data:`RAIN_PATTERNS` only (the
  release has patterns 1 to 12), for every other train frame only (the release covers a
  subset): a veil as fog of coefficient ``b`` and slanted streaks, more with ``a``, longer with
  ``d``;
- ``gtBboxCityPersons``: ``<id>_gtBboxCityPersons.json``, ``{"imgHeight", "imgWidth",
  "objects": [{"instanceId", "label", "bbox", "bboxVis"}]}``: per person / rider instance a
  ``pedestrian`` / ``rider`` (``instanceId`` its gtFine instanceIds value, ``bboxVis`` its
  visible pixels' box, ``bbox`` its whole outline's, widened to CityPersons' aspect ratio 0.41),
  then per crowd a ``person group`` (people) or ``ignore`` (riders) of instance id 0;
- ``gtBbox3d``: ``<id>_gtBbox3d.json``, as cityscapesScripts' ``Annotation(CsObjectType.BBOX3D)``
  and ``evalObjectDetection3d`` read it: ``imgWidth``, ``imgHeight``, ``sensor`` (the camera's
  ``fx``, ``fy``, ``u0``, ``v0``, ``baseline`` and the 3x4 ``sensor_T_ISO_8855``, which takes a
  point of the vehicle's ISO 8855 axes, x forward, y left, z up, origin on the ground, to the
  camera's, same axes, origin at the ``x``, ``y``, ``z`` of the camera JSON), ``objects``
  per car, truck, bus, train, motorcycle and bicycle instance (``2d.modal`` its visible pixels'
  box, ``2d.amodal`` the 3D box projected and clipped to the image, ``3d.center``,
  ``3d.dimensions`` (length, width, height: the width and height those of the drawn outline
  at its depth, so the synthetic cars are about 0.9 m high; the length its class's), a unit
  ``3d.rotation`` quaternion (w, x, y, z), ``label``, ``instanceId``, ``score`` 1.0,
  ``occlusion``, ``truncation``), and ``ignore`` regions (``2d``, ``label``, ``instanceId``) for
  the vehicle crowds (instance id the class id) and instances farther than 120 m or very small;
- ``leftImg8bit_demoVideo``: the photo-only split ``demoVideo``,
  ``leftImg8bit/demoVideo/<city>/<city>_000000_<n>_leftImg8bit.png`` for the cities
  :data:`DEMO_CITIES` and ``n`` = 1 .. ``demo_frames``: a scene per city, its photo moved a few
  columns a frame.

``gtBboxCityPersons`` and ``gtBbox3d`` are written for the splits with gtFine only. At 256x128
all the parts cost about 0.15 s of CPU a frame, most of it encoding the 90 PNGs of the snippets
(at 2048x1024, about 9 s and 140 MB of files a frame, two thirds of it encoding).

The same arguments always give byte-identical files (with the same numpy, Pillow and zlib).
At 2048x1024 a frame with its photo costs about 0.15 s of CPU: 0.03 s to draw the scene and its
label images, 0.03 s to render the photo, 0.09 s to encode the PNGs (0.055 s of which the 2 MB
photo: zlib at level 1, its time about proportional to the bytes it writes), and the writes. A
thread of its own encodes and writes a frame while the next one is drawn, so with two cores a
frame takes about 0.11 s. ``distinct=K`` generates only K frame contents per split and writes their
encoded bytes again under the names of further frames.

The sample dataset shipped in ``cityscapes_io/data/sample/`` was made with::

    from cityscapes_io.testing import generate
    generate("cityscapes_io/data/sample", splits={"train": 4, "val": 2},
             cities=("aachen", "bad-honnef"), size=(256, 128), seed=0, photos=True)

and its parts of the release (copied in from a run with the same arguments and
``parts=["rightImg8bit", "disparity", "camera", "vehicle", "timestamp", "gtBboxCityPersons",
"gtBbox3d", "leftImg8bit_foggy"], demo_frames=0``, the Foggy photos of β = 0.02 only: their scenes
are the sample's; the sample's own PNGs were encoded by an earlier version, with the same pixels).

(the command line ``cityscapes-io synthetic`` gives every split the same number of frames, so it
cannot make this one.)
"""
from __future__ import annotations

import json
import math
import posixpath
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import (Any, Callable, Deque, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import fsspec
from fsspec.implementations.local import LocalFileSystem
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .. import names, png
from ..errors import RefusedError
from ..labels import LabelMap
from ..polygons import parse_polygons, rasterize, resolve_polygon_label
from ..storage import storage_errors
from ..storage.sinks import LocalSink, ObjectStoreSink, Sink

__all__ = ["generate", "make_frame", "PART_FOLDERS", "FOG_BETAS", "RAIN_SETTINGS", "RAIN_PATTERNS",
           "SEQUENCE_OFFSETS", "DEMO_CITIES"]

_LABELS = LabelMap.cityscapes()
_ID = {lab.name: lab.id for lab in _LABELS}
_COLORS = _LABELS.color_table(256)

# Classes drawn as instances, with their relative frequency.
_THING_WEIGHTS = {
    "car": 0.42, "person": 0.26, "bicycle": 0.08, "rider": 0.05,
    "truck": 0.05, "bus": 0.04, "motorcycle": 0.06, "train": 0.04,
}
_THINGS = list(_THING_WEIGHTS)
_THING_P = np.array(list(_THING_WEIGHTS.values())) / sum(_THING_WEIGHTS.values())
# Classes of crowd regions ("a group of cars", "a group of people").
_CROWDS = ["person", "car", "bicycle", "rider"]
_CROWD_P = np.array([0.45, 0.35, 0.12, 0.08])
_CROWD_IDS = np.array([_ID[n] for n in _CROWDS])
assert all(_LABELS[n].has_instances for n in (*_THINGS, *_CROWDS))
assert _LABELS["license plate"].id < 0

# Object height (as a fraction of the image height, at the bottom of the image) and width / height.
_SHAPE = {
    "car": (0.40, (1.5, 2.4)), "truck": (0.55, (1.2, 2.2)), "bus": (0.60, (1.4, 2.6)),
    "train": (0.60, (2.0, 3.0)), "person": (0.62, (0.30, 0.42)), "rider": (0.68, (0.40, 0.55)),
    "bicycle": (0.36, (0.9, 1.3)), "motorcycle": (0.40, (0.9, 1.3)),
}
_VEHICLES = {"car", "truck", "bus", "train"}

# Frame numbers of the generated names (most real gtFine frames are number 19).
_FRAME_NUMBERS = (19, 19, 42, 19, 76, 19, 123, 19, 7)

# Largest instanceIds value + 1 (class 33, instance 999).
_NVALUES = 34000

# Photo. Texture amplitude per class (8-bit units; classes not named: _TEXTURE_DEFAULT): a
# pattern over a few pixels and a soft light over ~48 (_LIGHT times as strong), the same on the
# three channels; then a grain, of every pixel and channel, uniform in 0.._GRAIN. Tuned so that
# a 2048x1024 photo is about 2 MB as written.
_TEXTURE = {
    "sky": 3.0, "road": 7.0, "sidewalk": 6.0, "building": 8.0, "vegetation": 24.0,
    "terrain": 16.0, "wall": 7.0, "fence": 8.0, "parking": 6.0, "ego vehicle": 3.0,
}
_TEXTURE_DEFAULT = 5.0
_LIGHT = 1.0
_TEXTURE_RANGE = 1.5 * (1 + _LIGHT)  # the texture field lies within +-this (see _texture)
_GRAIN = 7  # 2 ** k - 1: a mask
_WINDOW = 0.72  # brightness of the windows of the buildings
# A pixel is summed as one uint32 holding its R, G, B bytes (and a pad byte, the layout of
# Pillow's "RGBX"): these words hold 1, and the grain mask, in each of the three.
_RGB_ONES = np.array([1, 1, 1, 0], dtype=np.uint8).view(np.uint32)[0]
_RGB_GRAIN = np.array([_GRAIN, _GRAIN, _GRAIN, 0], dtype=np.uint8).view(np.uint32)[0]
assert max(*_TEXTURE.values(), _TEXTURE_DEFAULT) * 2 * _TEXTURE_RANGE + 1 + _GRAIN < 255  # room in a byte


# --------------------------------------------------------------------------------------------
# Polygons: shapes are built as float (n, 2) arrays of (x, y) and stored, like the release, as
# integer vertices inside the image.
# --------------------------------------------------------------------------------------------
def _clip(points, x0: float, y0: float, x1: float, y1: float) -> List[Tuple[float, float]]:
    """The polygon clipped to the box ``[x0, x1] x [y0, y1]`` (Sutherland-Hodgman)."""
    pts = [(float(x), float(y)) for x, y in points]
    for axis, bound, upper in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        if not pts:
            break
        out = []
        prev = pts[-1]
        prev_in = prev[axis] <= bound if upper else prev[axis] >= bound
        for cur in pts:
            cur_in = cur[axis] <= bound if upper else cur[axis] >= bound
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cut = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                cut[axis] = bound
                out.append((cut[0], cut[1]))
            if cur_in:
                out.append(cur)
            prev, prev_in = cur, cur_in
        pts = out
    return pts


def _int_polygon(points, box) -> Optional[List[List[int]]]:
    """Integer vertices of ``points`` clipped to ``box``: repeated and collinear vertices
    removed; None when nothing with an area is left."""
    pts = [(int(round(x)), int(round(y))) for x, y in _clip(points, *box)]
    before = -1
    while len(pts) != before:  # until a pass removes nothing (removals change the neighbours)
        before, i = len(pts), 0
        while len(pts) >= 3 and i < len(pts):
            (ax, ay), (bx, by), (cx, cy) = pts[i - 1], pts[i], pts[(i + 1) % len(pts)]
            if (bx - ax) * (cy - ay) == (by - ay) * (cx - ax):  # repeated, or on its neighbours' line
                del pts[i]
                i = max(i - 1, 0)
            else:
                i += 1
    if len(pts) < 3:
        return None
    area2 = sum(pts[i - 1][0] * pts[i][1] - pts[i][0] * pts[i - 1][1] for i in range(len(pts)))
    if area2 == 0:
        return None
    return [[x, y] for x, y in pts]


def _rect(x0, y0, x1, y1) -> np.ndarray:
    """The pixels ``[x0, x1) x [y0, y1)``, at least two pixels each way, as a 4-vertex polygon
    (the rasteriser fills the boundary, so the vertices are the outer pixels)."""
    ix0, iy0 = int(round(x0)), int(round(y0))
    ix1, iy1 = max(int(round(x1)), ix0 + 2), max(int(round(y1)), iy0 + 2)
    return np.array([(ix0, iy0), (ix1 - 1, iy0), (ix1 - 1, iy1 - 1), (ix0, iy1 - 1)], dtype=np.float64)


def _crect(cx, cy, rw, rh) -> np.ndarray:
    """A rectangle centred on (cx, cy)."""
    return _rect(cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2)


def _arc(cx, cy, rx, ry, a0, a1, n=None) -> np.ndarray:
    """Points of an elliptic arc from angle ``a0`` to ``a1`` (degrees, y down: 90 is the bottom),
    about one vertex per 4 pixels of its length, at least 4."""
    rx, ry = max(rx, 1.0), max(ry, 1.0)
    if n is None:
        n = int(np.clip(math.radians(abs(a1 - a0)) * math.sqrt((rx * rx + ry * ry) / 2) / 4, 4, 64))
    a = np.radians(np.linspace(a0, a1, n + 1))
    return np.column_stack([cx + rx * np.cos(a), cy + ry * np.sin(a)])


def _ellipse(cx, cy, rx, ry) -> np.ndarray:
    """A closed ellipse, at least 8 vertices."""
    rx, ry = max(rx, 1.0), max(ry, 1.0)
    n = int(np.clip(2 * math.pi * math.sqrt((rx * rx + ry * ry) / 2) / 4, 8, 64))
    return _arc(cx, cy, rx, ry, 0, 360, n)[:-1]


def _bbox(points) -> Tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of integer vertices, x1 and y1 exclusive."""
    a = np.asarray(points)
    return int(a[:, 0].min()), int(a[:, 1].min()), int(a[:, 0].max()) + 1, int(a[:, 1].max()) + 1


def _union(*given):
    boxes = [b for b in given if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


# A car seen from behind, and one seen from the side, in a unit box (x right, y down).
_CAR_BACK = np.array([(0, 1), (0, .55), (.1, .42), (.22, .04), (.78, .04), (.9, .42), (1, .55), (1, 1)],
                     dtype=np.float64)
_CAR_SIDE = np.array([(0, .95), (0, .58), (.04, .5), (.24, .44), (.36, .1), (.42, .06), (.7, .06), (.8, .4),
                      (.95, .47), (1, .6), (1, .95), (.88, 1), (.74, 1), (.3, 1), (.14, 1)], dtype=np.float64)


def _outline(rng, kind: str, x: float, yb: float, h: float) -> np.ndarray:
    """The outline of an object of class ``kind`` standing at (x, yb), ``h`` high."""
    lo, hi = _SHAPE[kind][1]
    w = max(h * rng.uniform(lo, hi), 2.0)
    h = max(h, 2.0)
    if kind == "car":
        unit = _CAR_BACK if rng.random() < 0.75 else _CAR_SIDE
        pts = unit + rng.uniform(-0.04, 0.04, unit.shape)
        return np.column_stack([x - w / 2 + pts[:, 0] * w, yb - h + pts[:, 1] * h])
    if kind in ("truck", "bus", "train"):
        if rng.random() < 0.5:
            return _rect(x - w / 2, yb - h, x + w / 2, yb)
        s = rng.uniform(0.05, 0.2) * w  # a slanted front
        return np.array([(x - w / 2, yb), (x - w / 2, yb - h * 0.8), (x - w / 2 + s, yb - h),
                         (x + w / 2, yb - h), (x + w / 2, yb)])
    if kind in ("person", "rider"):
        hr = h * 0.065  # head
        hw = min(w * 0.32, hr * 1.1)
        hx, hy = x + rng.uniform(-0.1, 0.1) * w, yb - h + hr
        neck, shoulders, hips = hy + hr * 0.95, yb - h * rng.uniform(0.78, 0.84), yb - h * 0.48
        feet = w * rng.uniform(0.36, 0.46)
        legs = w * (rng.uniform(0.04, 0.12) if kind == "person" else 0.02)
        left = [(x - feet, yb), (x - w / 2, hips), (x - w / 2, shoulders), (x - w * 0.3, shoulders - h * 0.04),
                (hx - hw * 0.55, neck)]
        right = [(hx + hw * 0.55, neck), (x + w * 0.3, shoulders - h * 0.04), (x + w / 2, shoulders),
                 (x + w / 2, hips), (x + feet, yb), (x + legs, yb), (x, yb - h * 0.42), (x - legs, yb)]
        return np.vstack([left, _arc(hx, hy, hw, hr, 120, 420), right])
    # bicycle, motorcycle: two wheels and a frame
    r = min(h * 0.4, w * 0.3)
    cl, cr = x - w / 2 + r, x + w / 2 - r
    return np.vstack([_arc(cl, yb - r, r, r, 60, 300), [(x - w * 0.3, yb - h * 0.8), (x + w * 0.3, yb - h * 0.8)],
                      _arc(cr, yb - r, r, r, 240, 480), [(x, yb - h * 0.3)]])


def _envelope(shapes: Sequence[np.ndarray], step: float) -> List[np.ndarray]:
    """Outlines of the union of ``shapes`` standing on the ground: their upper envelope sampled
    every ``step`` pixels, closed by their lowest point; one outline per separate run."""
    allpts = np.concatenate(shapes)
    x0, x1 = float(allpts[:, 0].min()), float(allpts[:, 0].max())
    n = int(np.clip(math.ceil((x1 - x0) / step), 4, 200)) + 1
    xs = np.linspace(x0, x1, n)
    top = np.full(n, np.inf)
    for p in shapes:
        q = np.roll(p, -1, axis=0)
        ax, ay, bx, by = p[:, :1], p[:, 1:], q[:, :1], q[:, 1:]
        lo, hi = np.minimum(ax, bx), np.maximum(ax, bx)
        ok = (xs >= lo) & (xs <= hi) & (hi > lo)
        y = ay + (xs - ax) * (by - ay) / np.where(hi > lo, bx - ax, 1.0)
        top = np.minimum(top, np.where(ok, y, np.inf).min(axis=0))
    bottom = float(allpts[:, 1].max())
    out = []
    finite = np.isfinite(top)
    i = 0
    while i < n:
        if not finite[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and finite[j + 1]:
            j += 1
        if j > i:
            out.append(np.vstack([np.column_stack([xs[i:j + 1], top[i:j + 1]]), [(xs[j], bottom), (xs[i], bottom)]]))
        i = j + 1
    return out


def _shrink(points, factor: float, centre=None) -> np.ndarray:
    """The polygon scaled by ``factor`` about ``centre`` (default: the mean of its vertices)."""
    p = np.asarray(points, dtype=np.float64)
    c = p.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float64)
    return c + (p - c) * factor


def _hull(points) -> np.ndarray:
    """The convex hull of the vertices, counter-clockwise (Andrew's monotone chain)."""
    pts = sorted(set(map(tuple, np.asarray(points, dtype=np.float64).tolist())))
    if len(pts) < 3:
        return np.array(pts, dtype=np.float64).reshape(-1, 2)

    def half(seq):
        out: List[Tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]), dtype=np.float64)


def _few(points, n: int) -> np.ndarray:
    """The polygon with at most ``n`` vertices, a rough outline: the vertex spanning the least
    area with its neighbours removed in turn (Visvalingam; a convex polygon only shrinks)."""
    p = [tuple(v) for v in np.asarray(points, dtype=np.float64).tolist()]
    while len(p) > max(n, 3):
        k = len(p)
        areas = [abs((p[i][0] - p[i - 1][0]) * (p[(i + 1) % k][1] - p[i - 1][1])
                     - (p[i][1] - p[i - 1][1]) * (p[(i + 1) % k][0] - p[i - 1][0])) for i in range(k)]
        del p[int(np.argmin(areas))]
    return np.array(p, dtype=np.float64)


class _Object:
    """One polygon object: label, integer vertices, what it is (``role``), deleted or not, and the
    image row where it stands on the ground (``foot``: its lowest vertex unless given; the
    parts' depth, :meth:`_FrameParts.depth`)."""

    __slots__ = ("label", "points", "role", "deleted", "extra", "foot")

    def __init__(self, label: str, points: List[List[int]], role: str, deleted: bool = False, extra=None,
                 foot: Optional[float] = None):
        self.label, self.points, self.role, self.deleted, self.extra = label, points, role, deleted, extra
        self.foot = float(max(p[1] for p in points)) if foot is None else float(foot)

    def as_json(self) -> dict:
        return {"label": self.label, "polygon": self.points, "deleted": int(self.deleted)}


def _document(width: int, height: int, objects: Sequence[_Object]) -> dict:
    return {"imgHeight": height, "imgWidth": width, "objects": [o.as_json() for o in objects]}


def _values(objects: Sequence[_Object]) -> List[Optional[int]]:
    """The instanceIds value each object is drawn with (None when it is not drawn), by the
    official rule: a counter per class with instances, in file order, from 0."""
    counters: Dict[str, int] = {}
    out: List[Optional[int]] = []
    for o in objects:
        lab, group = resolve_polygon_label(o.label)
        if o.deleted or lab is None or lab.id < 0:
            out.append(None)
            continue
        if lab.has_instances and not group:
            n = counters.get(lab.name, 0)
            counters[lab.name] = n + 1
            out.append(lab.id * 1000 + n)
        else:
            out.append(lab.id)
    return out


# --------------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------------
class _Scene:
    """Geometry of one frame: its polygon objects, and what the photo renderer needs."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.rng, self.w, self.h = rng, width, height
        self.box = (0, 0, width - 1, height - 1)
        self.stuff: List[_Object] = []
        self.things: List[_Object] = []
        self.border: List[_Object] = []
        self.yh = height * rng.uniform(0.40, 0.50)  # horizon
        self.vx = width * rng.uniform(0.38, 0.62)  # vanishing point
        self.lb = width * rng.uniform(-0.35, 0.15)  # road edges at the bottom
        self.rb = width * rng.uniform(0.85, 1.35)
        self.sw = width * rng.uniform(0.10, 0.30)  # sidewalk width at the bottom
        self.hood_c = rng.uniform(0.80, 0.87)  # ego vehicle hood: top at the centre
        self.hood_k = rng.uniform(0.04, 0.10)
        self.tops = np.zeros(width)  # top of the skyline per column
        self.margins = (0.0, 0.0, 0.0)  # rectification border left, right; out of roi rows
        self.canvas: Optional[np.ndarray] = None  # the rasterised instanceIds
        self.values: np.ndarray = np.zeros(0, dtype=np.intp)  # the values it holds, ascending
        self.boxes: Dict[int, Tuple[int, int, int, int]] = {}

    def add(self, where: List[_Object], label: str, points, role: str, deleted: bool = False,
            extra=None, foot: Optional[float] = None) -> Optional[_Object]:
        pts = _int_polygon(points, self.box)
        if pts is None:
            return None
        obj = _Object(label, pts, role, deleted, extra, foot)
        where.append(obj)
        return obj

    @property
    def objects(self) -> List[_Object]:
        return self.stuff + self.things + self.border

    def document(self) -> dict:
        return _document(self.w, self.h, self.objects)

    # geometry helpers
    def depth(self, y):
        """0 at the horizon, 1 at the bottom of the image."""
        return np.clip((y - self.yh) / (self.h - self.yh), 0.0, 1.0)

    def road_edges(self, y):
        t = self.depth(y)
        return self.vx + (self.lb - self.vx) * t, self.vx + (self.rb - self.vx) * t

    def hood_top(self, x):
        u = (np.asarray(x, dtype=np.float64) - self.w / 2) / (self.w / 2)
        return self.h * (self.hood_c + self.hood_k * u * u)

    # stuff
    def draw_stuff(self):
        rng, w, h, yh, S = self.rng, self.w, self.h, self.yh, self.stuff
        self.add(S, "sky", _rect(0, 0, w, math.ceil(yh) + 3), "sky")
        # Skyline: buildings of random widths, taller towards the sides of the image, down to
        # the bottom (the ground is drawn over them); now and then a pixel gap between two.
        gap = max(1, w // 1000)
        x = 0
        while x < w:
            bw = max(int(w * rng.uniform(0.04, 0.16)), 1)
            off_centre = abs(x + bw / 2 - self.vx) / w
            top = yh - h * (0.05 + off_centre * rng.uniform(0.5, 1.3) + rng.uniform(0, 0.12))
            if rng.random() < 0.12:
                top = yh + 1  # a gap: sky down to the horizon
            self.tops[x:x + bw] = top
            x1 = x + bw - (gap if rng.random() < 0.3 and bw > gap + 2 else 0)
            self.add(S, "building", _rect(x, top, x1, h), "building", extra=(x, x1, top))
            x += bw
        # Ground: triangles from the vanishing point to the bottom row: on each side of the road
        # a band of terrain, vegetation, wall, fence or building, the sidewalk (sometimes a parking
        # strip along the road), then the road.
        tb = (h - 1 - yh) / (h - yh)
        apex = (self.vx, yh)
        left = self.vx + (self.lb - self.vx) * tb
        right = self.vx + (self.rb - self.vx) * tb
        sw = self.sw * tb

        def ground(label, xa, xb):
            self.add(S, label, [apex, (xb, h - 1), (xa, h - 1)], "ground")

        for edge, sign in ((left, -1), (right, 1)):
            band = ("terrain", "vegetation", "wall", "fence", "building")[int(rng.integers(5))]
            band_w = w * rng.uniform(0.05, 0.3) * tb
            parking = sw * 0.3 if rng.random() < 0.3 else 0.0
            ground(band, edge + sign * sw, edge + sign * (sw + band_w))
            ground("sidewalk", edge + sign * parking, edge + sign * sw)
            if parking:
                ground("parking", edge, edge + sign * parking)
        ground("road", left, right)
        # Trees in front of the buildings.
        for _ in range(rng.integers(1, 5)):
            tx = w * (rng.uniform(0, 0.3) if rng.random() < 0.5 else rng.uniform(0.7, 1.0))
            ty = yh - h * rng.uniform(0.02, 0.25)
            foot = yh + h * 0.06  # the trunk's bottom: the crown stands there too
            self.add(S, "vegetation", _crect(tx, (ty + yh) / 2 + h * 0.03, w * 0.008 + 1, yh - ty + h * 0.06), "trunk",
                     foot=foot)
            self.add(S, "vegetation", _ellipse(tx, ty, w * rng.uniform(0.03, 0.10), h * rng.uniform(0.05, 0.16)),
                     "crown", foot=foot)
        # Poles on the sidewalks, some carrying a traffic sign or a traffic light.
        for _ in range(rng.integers(1, 5)):
            yb = yh + (h - yh) * rng.uniform(0.1, 0.6)
            t = float(self.depth(yb))
            lx, rx = self.road_edges(yb)
            px = (lx - self.sw * t * 0.5) if rng.random() < 0.5 else (rx + self.sw * t * 0.5)
            ph = h * (0.15 + 0.9 * t)
            self.add(S, "pole", _crect(px, yb - ph / 2, w * 0.006 * t + 1, ph), "small", foot=yb)
            what = rng.random()
            if what < 0.4:
                self.add(S, "traffic sign", _crect(px, yb - ph, h * 0.06 * t + 1, h * 0.06 * t + 1), "small", foot=yb)
            elif what < 0.7:
                self.add(S, "traffic light", _crect(px, yb - ph, h * 0.03 * t + 1, h * 0.08 * t + 1), "small",
                         foot=yb)
        # Void: static things on the ground, sometimes a dynamic object.
        for _ in range(rng.integers(1, 4)):
            yb = yh + (h - yh) * rng.uniform(0.1, 0.7)
            t = float(self.depth(yb))
            lx, rx = self.road_edges(yb)
            off = self.sw * t * rng.uniform(0.2, 0.9)
            sx = lx - off if rng.random() < 0.5 else rx + off
            label = "static" if rng.random() < 0.8 else "dynamic"
            self.add(S, label, _crect(sx, yb - h * 0.05 * t, h * rng.uniform(0.03, 0.12) * t + 1, h * 0.1 * t + 1),
                     "small", foot=yb)

    def draw_void_border(self):
        """Ego vehicle hood, rectification border and out of roi rows, on top of everything."""
        rng, w, h, B = self.rng, self.w, self.h, self.border
        xs = np.linspace(0, w - 1, int(np.clip(w // 32, 8, 64)) + 1)
        self.add(B, "ego vehicle", np.vstack([np.column_stack([xs, self.hood_top(xs)]), [(w - 1, h - 1), (0, h - 1)]]),
                 "hood")
        bl, br = w * rng.uniform(0.002, 0.01), w * rng.uniform(0.002, 0.01)  # widening downwards
        self.add(B, "rectification border", [(0, 0), (bl, 0), (2 * bl, h - 1), (0, h - 1)], "border")
        self.add(B, "rectification border", [(w - 1 - br, 0), (w - 1, 0), (w - 1, h - 1), (w - 1 - 2 * br, h - 1)],
                 "border")
        rows = max(2, int(round(h * rng.uniform(0.004, 0.015))))
        self.add(B, "out of roi", _rect(0, h - rows, w, h), "border")
        self.margins = (2 * bl + 1, 2 * br + 1, float(rows))

    # things
    def place(self, kind: str, t: float):
        """A position (x, bottom y) and height for an object of ``kind`` at depth ``t``."""
        rng, w, h = self.rng, self.w, self.h
        ymax = float(self.hood_top(self.w / 2))
        yb = self.yh + (ymax - self.yh) * t
        l, r = self.road_edges(yb)
        tb = float(self.depth(yb))
        if kind in _VEHICLES or rng.random() < 0.25:
            x = rng.uniform(l, r)
        elif rng.random() < 0.5:
            x = l - self.sw * tb * rng.uniform(0.1, 0.9)
        else:
            x = r + self.sw * tb * rng.uniform(0.1, 0.9)
        x = float(np.clip(x, w * 0.02, w * 0.98))
        height = h * _SHAPE[kind][0] * tb * rng.uniform(0.85, 1.15)
        return x, yb, height

    def draw_things(self):
        rng = self.rng
        objects: List[Tuple[float, str, bool]] = []  # (depth, class, crowd)
        for _ in range(rng.integers(5, 31)):
            objects.append((rng.uniform(0.03, 1.0) ** 1.6, _THINGS[int(rng.choice(len(_THINGS), p=_THING_P))], False))
        for _ in range(rng.integers(1, 4)):
            objects.append((rng.uniform(0.05, 0.45), _CROWDS[int(rng.choice(len(_CROWDS), p=_CROWD_P))], True))
        objects.sort(key=lambda o: o[0])  # far first: nearer objects occlude them
        for t, kind, crowd in objects:
            if crowd:
                self.draw_crowd(kind, t)
            else:
                self.draw_instance(kind, t)
        # Now and then an object the annotators deleted (a second outline of an object, a little
        # off, put just before it so that a licence plate stays right after its car): it stays
        # in the file, and is not drawn.
        drawn = [k for k, o in enumerate(self.things) if o.role in ("thing", "group")]
        if rng.random() < 0.3 and drawn:
            k = drawn[int(rng.integers(len(drawn)))]
            orig = self.things[k]
            pts = np.asarray(orig.points, dtype=np.float64)
            pts += rng.uniform(-0.15, 0.15, 2) * (pts.max(axis=0) - pts.min(axis=0) + 1)
            obj = _int_polygon(pts, self.box)
            if obj is not None:
                self.things.insert(k, _Object(orig.label, obj, "deleted", True))

    def draw_instance(self, kind: str, t: float):
        x, yb, height = self.place(kind, t)
        outline = _outline(self.rng, kind, x, yb, height)
        car = self.add(self.things, kind, outline, "thing", extra=height, foot=yb)
        if kind == "car" and car is not None and height >= max(8.0, self.h * 0.05) and self.rng.random() < 0.4:
            # A licence plate low on the car, as the release has them: its id is negative, so
            # it is not drawn and the car stays car under it.
            cw = float(outline[:, 0].max() - outline[:, 0].min())
            px = float(outline[:, 0].mean()) + self.rng.uniform(-0.05, 0.05) * cw
            self.add(self.things, "license plate", _crect(px, yb - height * 0.22, cw * 0.2, height * 0.08), "plate")

    def draw_crowd(self, kind: str, t: float):
        """A group of overlapping objects that the annotators could not tell apart: one outline
        around them, labelled ``<class>group``."""
        rng = self.rng
        x, yb, height = self.place(kind, t)
        members = [_outline(rng, kind, x + rng.uniform(-1.5, 1.5) * height, yb + rng.uniform(-0.1, 0.1) * height,
                            height * rng.uniform(0.8, 1.1)) for _ in range(rng.integers(3, 9))]
        for outline in _envelope(members, max(2.0, self.w / 400)):
            self.add(self.things, kind + "group", outline, "group", extra=height)

    def rasterize(self, encoding: str) -> np.ndarray:
        return rasterize(parse_polygons(self.document()), encoding)

    def fix(self):
        """Ensure at least 5 visible instances and one visible crowd, adding objects (nearer
        than the others, under the void border) until there are; keep the instanceIds drawn."""
        rng = self.rng
        for _ in range(200):
            inst = self.rasterize("instanceIds")
            counts = np.bincount(inst.ravel(), minlength=_NVALUES)
            if int(np.count_nonzero(counts[1000:])) < 5:
                kind = "car" if rng.random() < 0.6 else "person"
                self.draw_instance(kind, rng.uniform(0.2, 0.9))
            elif not counts[_CROWD_IDS].any():
                self.draw_crowd(_CROWDS[int(rng.choice(len(_CROWDS), p=_CROWD_P))], rng.uniform(0.2, 0.6))
            else:
                self.canvas, self.values = inst, np.flatnonzero(counts)
                break
        else:  # pragma: no cover
            raise RuntimeError("synthetic frame: could not place enough visible instances")
        # Boxes of the instances and crowds, for the shading of the photo.
        objects = self.objects
        for obj, value in zip(objects, _values(objects)):
            if value is not None and obj.role in ("thing", "group"):
                self.boxes[value] = _union(_bbox(obj.points), self.boxes.get(value))

    # coarse annotations
    def coarse(self, rng: np.random.Generator) -> List[_Object]:
        """A coarse annotation of the scene: the large regions as rough polygons with few
        vertices, inset from their boundaries, the near objects roughly outlined, the rest left
        unlabeled."""
        w, h, yh = self.w, self.h, self.yh
        m = max(1.0, h * 0.012)  # how far from the boundaries the annotator stays
        bl, br, rows = self.margins
        box = (bl + m, m, w - 1 - br - m, h - 1 - rows - m)
        hood = float(self.hood_top(w / 2)) - m
        out: List[_Object] = []

        def add(label, points, role):
            pts = _int_polygon(points, box)
            if pts is not None:
                out.append(_Object(label, pts, role))

        for obj in self.objects:
            role, pts = obj.role, obj.points
            if obj.deleted:
                continue
            if role == "sky":
                for outline in self._coarse_sky(m):
                    add("sky", outline, role)
            elif role == "building":
                x0, x1, top = obj.extra
                if x1 - x0 > 4 * m and top < yh - 4 * m:
                    add("building", _rect(x0 + m * rng.uniform(1, 3), max(top, 0) + m * rng.uniform(1, 3),
                                          x1 - m * rng.uniform(1, 3), yh - m * rng.uniform(1, 3)), role)
            elif role == "ground":
                clipped = _clip(pts, 0, 0, w - 1, hood)
                if len(clipped) >= 3:
                    add(obj.label, _few(_shrink(clipped, rng.uniform(0.65, 0.85)), 6), role)
            elif role in ("crown", "hood"):
                add(obj.label, _few(_shrink(pts, rng.uniform(0.7, 0.85)), 8), role)
            elif role in ("thing", "group") and obj.extra >= h * 0.1:
                a = np.asarray(pts, dtype=np.float64)
                centre = (a.min(axis=0) + a.max(axis=0)) / 2
                add(obj.label, _few(_shrink(_hull(a), rng.uniform(0.75, 0.9), centre), 8), role)
        return out

    def _coarse_sky(self, m: float) -> List[np.ndarray]:
        """The sky above the skyline, ``m`` away from the top of the image and from the
        buildings: a staircase over the skyline's tops, one polygon per stretch of sky."""
        k = int(math.ceil(m))
        padded = np.pad(self.tops, k, mode="edge")
        low = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1).min(axis=1)
        low = np.minimum(low, self.yh) - m
        edges = np.flatnonzero(np.diff(low)) + 1
        starts, ends = np.concatenate([[0], edges]), np.concatenate([edges - 1, [self.w - 1]])
        out: List[np.ndarray] = []
        run: List[Tuple[float, float]] = []
        for x0, x1 in zip(starts.tolist() + [None], ends.tolist() + [None]):
            y = None if x0 is None else float(low[x0])
            if y is not None and y >= 3 * m:
                run += [(x0, y), (x1, y)]
                continue
            if run:
                out.append(np.array([(run[0][0], m), (run[-1][0], m)] + run[::-1]))
                run = []
        return out

    # the photo
    def photo(self, rng: np.random.Generator) -> np.ndarray:
        """An RGB uint8 picture of the scene: each region in its colour, shaded (lit from
        above), with texture, a soft light and grain.

        Rows are rendered in pairs: rows ``2r`` and ``2r + 1`` share their shading, texture
        and grain, and differ only where a region boundary passes between them. The PNG
        encoder codes a row equal to the one above almost for nothing, so the photo takes half
        as long to encode as one varying on every row, at a realistic size.

        A pixel is the sum of three words of packed R, G, B bytes: its region's colour on its
        row (from a table), its grain, and its texture times the region's amplitude (in the
        three bytes at once). The table's colours leave room for the other two, so that no byte
        overflows into the next."""
        v, w, h = self.canvas, self.w, self.h
        assert v is not None  # drawn by fix()
        pairs = (h + 1) // 2
        table, amplitude = self._photo_table(rng, pairs)
        # By value: its first entry in the table (values x pairs x 2), its texture amplitude.
        first: np.ndarray = np.zeros(_NVALUES, dtype=np.int32)
        first[self.values] = np.arange(0, len(table), 2 * pairs, dtype=np.int32)
        amp = np.zeros(_NVALUES, dtype=np.uint32)
        amp[self.values] = amplitude
        pw, ph = max(w / 64.0, 3.0), max(h / 24.0, 3.0)
        windows = ((np.arange(0, h, 2) % ph) < ph * 0.45)[:, None] & ((np.arange(w) % pw) < pw * 0.5)
        row = np.arange(0, 2 * pairs, 2, dtype=np.int32)[:, None] + windows  # pair r, window or not
        texture = _texture(rng, w, pairs)
        raw = np.asarray(rng.bit_generator.random_raw((pairs * w + 1) // 2), dtype=np.uint64)
        grain = raw.view(np.uint32)[:pairs * w].reshape(pairs, w) & _RGB_GRAIN

        def render(values: np.ndarray, where) -> np.ndarray:
            """The pixels (RGBX words) of ``values`` at ``where`` in the row pairs."""
            words: np.ndarray = np.take(table, first[values] + row[where])
            words += grain[where]
            words += ((amp[values] * texture[where]) >> 8) * _RGB_ONES
            return words

        even, odd = v[0::2], v[1::2]
        out = np.empty((h, w, 3), dtype=np.uint8)
        out[0::2] = np.asarray(Image.frombytes("RGB", (w, pairs), render(even, np.s_[:, :]), "raw", "RGBX"))
        out[1::2] = out[0:h - 1:2]
        r, x = np.nonzero(odd != even[:len(odd)])  # a region boundary between the two rows of a pair
        out[2 * r + 1, x] = render(odd[r, x], (r, x)).view(np.uint8).reshape(-1, 4)[:, :3]
        return out

    def _photo_table(self, rng: np.random.Generator, pairs: int) -> Tuple[np.ndarray, np.ndarray]:
        """The colour of each value drawn (``self.values``, in order) on each pair of rows,
        without and with a window, as RGBX words (``values x pairs x 2``) that leave room for
        the texture and the grain; and the texture amplitude of each value (the texture, 0 to
        255, times it, over 256, is what it adds). Instances and crowds are shaded over their
        own box, and each instance has its own tint."""
        values = self.values
        classes = np.where(values >= 1000, values // 1000, values)
        base, shade_a, shade_b = _PHOTO_BASE[classes], _SHADE_A[classes], _SHADE_B[classes]
        top = np.zeros(len(values), dtype=np.float32)
        height = np.full(len(values), self.h, dtype=np.float32)
        position = {int(value): i for i, value in enumerate(values.tolist())}
        for value, (_, y0, _, y1) in self.boxes.items():
            tint = rng.uniform(-45, 45, 3) + rng.uniform(-50, 70) if value >= 1000 else None
            i = position.get(value)
            if i is None:  # painted over entirely
                continue
            top[i], height[i] = y0, max(y1 - y0, 1)
            shade_a[i], shade_b[i] = 1.15, -0.45  # lit from above, shadow below
            if tint is not None:
                base[i] = np.clip(base[i] + tint, 10, 245)
        y = np.arange(0, self.h, 2, dtype=np.float32)
        shade = shade_a[:, None] + shade_b[:, None] * np.clip((y - top[:, None]) / height[:, None], 0, 1)
        shade *= np.float32(rng.uniform(0.85, 1.1))  # exposure
        windows = np.stack([np.ones(len(values)), np.where(classes == _ID["building"], _WINDOW, 1.0)], axis=1)
        rgb = base[:, None, None, :] * shade[:, :, None, None] * windows[:, None, :, None]
        # The texture adds 0..span (span / 2 on average), the grain 0.._GRAIN.
        amplitude = np.rint(_AMPLITUDE[classes] * (2 * _TEXTURE_RANGE * 256 / 255)).astype(np.uint32)
        span = (amplitude * 255 >> 8).astype(np.int64)[:, None, None, None]
        low = span // 2 + _GRAIN // 2
        table = np.zeros((len(values), pairs, 2, 4), dtype=np.uint8)
        table[..., :3] = np.clip(np.rint(rgb), low, 255 - (span - low) - _GRAIN) - low
        return table.view(np.uint32).reshape(-1), amplitude


def _photo_classes() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per label id: the photo's base colour (desaturated label colours), shading ``a + b * t``
    (``t`` the relative height in the region) and texture amplitude."""
    col = _COLORS.astype(np.float32)
    gray = col.mean(axis=1, keepdims=True)
    base = gray + 0.45 * (col - gray) + 20
    base[_ID["sky"]] = (175, 200, 225)
    base[_ID["ego vehicle"]] = (40, 40, 45)
    shade_a, shade_b = np.ones(len(col), dtype=np.float32), np.zeros(len(col), dtype=np.float32)
    for name, a, b in (("sky", 0.85, 0.5), ("road", 1.15, -0.35), ("building", 1.1, -0.4)):
        shade_a[_ID[name]], shade_b[_ID[name]] = a, b  # the sky lighter towards the horizon
    amplitude = np.full(len(col), _TEXTURE_DEFAULT, dtype=np.float32)
    for name, value in _TEXTURE.items():
        amplitude[_ID[name]] = value
    return base, shade_a, shade_b, amplitude


_PHOTO_BASE, _SHADE_A, _SHADE_B, _AMPLITUDE = _photo_classes()


def _texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A ``h x w`` uint8 random field, 0..255 for -_TEXTURE_RANGE..+_TEXTURE_RANGE: a pattern
    over a few pixels (3 across, 1.5 down) and a soft light over ~48 (24 down), bilinear
    upsamplings of normal noise."""
    gw, gh = max(int(w // 3) + 2, 2), max(int(h // 1.5) + 2, 2)
    fine = np.clip(rng.standard_normal((gh, gw), dtype=np.float32), -3, 3) * np.float32(0.5)
    lw, lh = max(int(w // 48) + 2, 2), max(int(h // 24) + 2, 2)
    light = np.clip(rng.standard_normal((lh, lw), dtype=np.float32), -3, 3) * np.float32(0.5 * _LIGHT)
    fine += _resize(light, gw, gh)
    grid = np.rint((fine / np.float32(_TEXTURE_RANGE) + 1) * np.float32(127.5)).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BILINEAR))


def _resize(field: np.ndarray, w: int, h: int) -> np.ndarray:
    """A float32 field bilinearly resized to ``h x w``."""
    img = Image.frombytes("F", (field.shape[1], field.shape[0]), np.ascontiguousarray(field, np.float32).tobytes())
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# The release's other parts (issue 21): made from the scene, its photo and its camera
# --------------------------------------------------------------------------------------------
#: The parts :func:`generate` writes when asked (``parts=[...]`` or ``"all"``), by the name of
#: their top folder; ``leftImg8bit_demoVideo`` (the name of its package) is the photo-only
#: ``demoVideo`` split, written under ``leftImg8bit/demoVideo/``.
PART_FOLDERS: Tuple[str, ...] = (
    "rightImg8bit", "leftImg16bit", "rightImg16bit", "leftImg8bit_blurred", "disparity", "camera", "vehicle",
    "timestamp", "leftImg8bit_sequence", "rightImg8bit_sequence", "disparity_sequence", "vehicle_sequence",
    "timestamp_sequence", "leftImg8bit_foggy", "leftImg8bit_foggyDBF", "leftImg8bit_transmittance",
    "leftImg8bit_transmittanceDBF", "leftImg8bit_rain", "gtBboxCityPersons", "gtBbox3d", "leftImg8bit_demoVideo",
)
#: Foggy Cityscapes' attenuation coefficients (``_leftImg8bit_foggy_beta_0.01.png``).
FOG_BETAS: Tuple[float, ...] = (0.005, 0.01, 0.02)
#: Rain Cityscapes' (alpha, beta, dropsize) settings, and the rain patterns written of the
#: release's 12 (``_leftImg8bit_rain_alpha_0.01_beta_0.005_dropsize_0.01_pattern_1.png``).
RAIN_SETTINGS: Tuple[Tuple[float, float, float], ...] = ((0.01, 0.005, 0.01), (0.02, 0.01, 0.005),
                                                         (0.03, 0.015, 0.002))
RAIN_PATTERNS: Tuple[int, ...] = (1, 2)
#: A sequence snippet's frames relative to the annotated one: 19 before it, 10 after (30 in all,
#: the annotated frame the 20th); frame numbers below 0 are left out.
SEQUENCE_OFFSETS = range(-19, 11)
#: The city folders of the ``demoVideo`` split.
DEMO_CITIES: Tuple[str, ...] = ("stuttgart_00", "stuttgart_01")

_DEMO = "leftImg8bit_demoVideo"
# Parts made from the photo (rendered for them even when the photos are not written).
_PHOTO_PARTS = frozenset(PART_FOLDERS) - {"disparity", "camera", "vehicle", "timestamp", "disparity_sequence",
                                          "vehicle_sequence", "timestamp_sequence", "leftImg8bit_transmittance",
                                          "leftImg8bit_transmittanceDBF", "gtBboxCityPersons", "gtBbox3d"}
_DEPTH_PARTS = frozenset({"rightImg8bit", "rightImg16bit", "rightImg8bit_sequence", "disparity",
                          "disparity_sequence", "leftImg8bit_foggy", "leftImg8bit_foggyDBF",
                          "leftImg8bit_transmittance", "leftImg8bit_transmittanceDBF", "leftImg8bit_rain"})
# Parts drawn from the fine annotation (not written for a split with coarse annotations only).
_FINE_PARTS = frozenset({"gtBboxCityPersons", "gtBbox3d"})

# A camera of the release at 2048x1024 (fx, fy, u0, v0 in pixels, the stereo baseline in metres).
_FX, _FY, _U0, _V0, _BASELINE = 2262.52, 2265.3017905988554, 1096.98, 513.137, 0.209313
_MAX_DEPTH = 300.0  # farther than this the disparity is invalid (p = 0)
_AIRLIGHT = 0.8 * 255  # the fog's and the rain veil's atmospheric light
_FPS = 17.0  # sequence frames per second
# How a pixel's depth is found (_FrameParts.depth), by the role of the object drawn there.
_SKY, _GROUND, _FACADE, _STANDING, _VOID, _GAP = range(6)
_DEPTH_ROLE = {"sky": _SKY, "ground": _GROUND, "building": _FACADE, "hood": _VOID, "border": _VOID}
# CityPersons' label of a person / rider instance and of a crowd of them.
_PERSON_LABEL = {_ID["person"]: ("pedestrian", "person group"), _ID["rider"]: ("rider", "ignore")}
# Cityscapes 3D: the classes with 3D boxes, their typical length in metres, and the "type" names
# written (the car types are the release's; the others are made up).
_BOX3D = {"car": (4.3, ("Small Size Car", "Mid Size Car", "Box Wagon")), "truck": (7.0, ("Mini Truck", "Truck")),
          "bus": (12.0, ("Bus",)), "train": (25.0, ("Tram",)), "motorcycle": (2.1, ("Motorcycle",)),
          "bicycle": (1.8, ("Bicycle",))}


def _parts_wanted(parts: Union[None, str, Sequence[str]]) -> FrozenSet[str]:
    """The part folders ``parts`` names: ``None`` (none), ``"all"``, or names (a list or a
    comma-separated string)."""
    if parts is None:
        return frozenset()
    items = ([p.strip() for p in parts.split(",") if p.strip()] if isinstance(parts, str) else list(parts))
    if items == ["all"]:
        return frozenset(PART_FOLDERS)
    unknown = [p for p in items if p not in PART_FOLDERS]
    if unknown:
        raise ValueError(f"parts: unknown part {', '.join(map(repr, unknown))}; the parts are "
                         f"{', '.join(PART_FOLDERS)} (or \"all\")")
    return frozenset(items)


def _part_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of a frame content's parts: the fourth child of the sequence :func:`_rngs`
    spawns the frame's other three generators from (so they stay as they were)."""
    return _seed_sequence(seed, split, index).spawn(4)[3]


def _child_rng(seeds: np.random.SeedSequence, key: str) -> np.random.Generator:
    """A generator of its own for ``key`` under ``seeds``: a part's bytes do not depend on which
    other parts are written."""
    child = np.random.SeedSequence(seeds.entropy, spawn_key=(*seeds.spawn_key, zlib.crc32(key.encode("utf-8"))))
    return np.random.default_rng(child)


class _Camera:
    """A frame's calibration, as the camera JSON holds it, and the flat ground it sees: the
    scene's horizon is where the pitched camera sees it (roll 0), so that the depth of the
    ground at image row ``v`` is ``z * fy / (cos(pitch) * (v - horizon))``."""

    def __init__(self, rng: np.random.Generator, scene: "_Scene"):
        sw, sh = scene.w / 2048, scene.h / 1024
        k = 1 + rng.uniform(-0.003, 0.003)
        self.fx, self.fy = round(_FX * sw * k, 4), round(_FY * sh * k, 4)
        self.u0 = round((_U0 + rng.uniform(-25, 25)) * sw, 4)
        self.v0 = round((_V0 + rng.uniform(-12, 12)) * sh, 4)
        self.baseline = round(_BASELINE + rng.uniform(-0.006, 0.006), 6)
        self.x, self.y = round(1.7 + rng.uniform(-0.05, 0.05), 4), round(0.1 + rng.uniform(-0.05, 0.05), 4)
        self.z = round(1.22 + rng.uniform(-0.04, 0.04), 4)
        self.yaw, self.roll = round(rng.uniform(-0.025, 0.025), 6), 0.0
        self.pitch = round(math.atan2(self.v0 - scene.yh, self.fy), 6)
        self.horizon = self.v0 - self.fy * math.tan(self.pitch)
        # Vehicle (ISO 8855: x forward, y left, z up) to sensor (the same axes at the camera):
        # p_sensor = R p_vehicle + t, R the transpose of the camera's orientation yaw, pitch, roll.
        cy, sy, cp, sp = math.cos(self.yaw), math.sin(self.yaw), math.cos(self.pitch), math.sin(self.pitch)
        orientation = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
            [[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        self.rotation = orientation.T
        self.translation = -self.rotation @ np.array([self.x, self.y, self.z])

    def as_json(self) -> Dict[str, Dict[str, float]]:
        return {"extrinsic": {"baseline": self.baseline, "pitch": self.pitch, "roll": self.roll, "x": self.x,
                              "y": self.y, "yaw": self.yaw, "z": self.z},
                "intrinsic": {"fx": self.fx, "fy": self.fy, "u0": self.u0, "v0": self.v0}}

    def sensor(self) -> Dict[str, Any]:
        """The ``sensor`` of a ``_gtBbox3d.json``."""
        matrix = np.hstack([self.rotation, self.translation[:, None]])
        return {"sensor_T_ISO_8855": matrix.tolist(), "fx": self.fx, "fy": self.fy, "u0": self.u0, "v0": self.v0,
                "baseline": self.baseline}

    def ground_depth(self, rows) -> np.ndarray:
        """Depth in metres of the ground seen at image rows ``rows`` (inf at and above the horizon)."""
        dv = np.asarray(rows, dtype=np.float64) - self.horizon
        with np.errstate(divide="ignore"):
            return np.where(dv > 0, self.z * self.fy / (math.cos(self.pitch) * np.maximum(dv, 1e-9)), np.inf)

    def to_vehicle(self, u: float, v: float, depth: float) -> np.ndarray:
        """The point of pixel (u, v) at ``depth``, in vehicle coordinates."""
        xs, ys = (u - self.u0) * depth / self.fx, (v - self.v0) * depth / self.fy  # right, down
        return self.rotation.T @ (np.array([depth, -xs, -ys]) - self.translation)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels (n x 2) of vehicle points (n x 3), and their depth (n): the official
        ``Box3dImageTransform``'s projection."""
        c = points @ self.rotation.T + self.translation  # forward, left, up
        z = c[:, 0]
        return np.column_stack([self.fx * -c[:, 1] / z + self.u0, self.fy * -c[:, 2] / z + self.v0, z])


def _quaternion(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The unit quaternion ``(w, x, y, z)`` of the rotation yaw (about z), then pitch (y), then roll (x)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    q = np.array([cy * cp * cr + sy * sp * sr, cy * cp * sr - sy * sp * cr,
                  cy * sp * cr + sy * cp * sr, sy * cp * cr - cy * sp * sr])
    return q / np.linalg.norm(q)


def _rotation_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _shifted(a: np.ndarray, dx: int, fill: Optional[int] = None) -> np.ndarray:
    """``a`` moved ``dx`` columns right (left when negative); the columns it uncovers repeat its
    edge, or hold ``fill``."""
    if dx == 0:
        return a
    out = np.empty_like(a)
    if dx > 0:
        out[:, dx:] = a[:, :-dx]
        out[:, :dx] = a[:, :1] if fill is None else fill
    else:
        out[:, :dx] = a[:, -dx:]
        out[:, dx:] = a[:, -1:] if fill is None else fill
    return out


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """A 2-D float array averaged over ``(2r + 1)^2`` windows (edges repeated)."""
    k = 2 * r + 1
    p = np.pad(a.astype(np.float64), r, mode="edge")
    c = np.cumsum(np.pad(p, ((1, 0), (0, 0))), axis=0)
    p = (c[k:] - c[:-k]) / k
    c = np.cumsum(np.pad(p, ((0, 0), (1, 0))), axis=1)
    return (c[:, k:] - c[:, :-k]) / k


def _png16_rgb(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (the encoders of :mod:`cityscapes_io.png` write 8-bit colour only):
    rows "Up"-filtered, zlib level 1."""
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    filtered = np.empty((h, w * 6 + 1), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = data[0]
    np.subtract(data[1:], data[:-1], out=filtered[1:, 1:])

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 1)) + chunk(b"IEND", b""))


def _json(doc: Any) -> bytes:
    return json.dumps(doc, indent=4).encode("utf-8")


# A part's file of a frame content: (top folder, sequence offset or None, what follows the
# frame id in its name, its bytes).
_PartFile = Tuple[str, Optional[int], str, bytes]


class _FrameParts:
    """The other parts of one frame content, made from its scene, photo and camera when
    :meth:`files` is iterated (in the writer thread: a sequence's photos are made and encoded
    one at a time)."""

    def __init__(self, scene: "_Scene", photo: Optional[np.ndarray], seeds: np.random.SeedSequence,
                 wanted: FrozenSet[str], rain: bool):
        self.scene, self.photo, self.seeds, self.wanted, self.rain = scene, photo, seeds, wanted, rain
        self.camera = _Camera(self.rng("camera"), scene)
        self._depth: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def rng(self, key: str) -> np.random.Generator:
        return _child_rng(self.seeds, key)

    # -- geometry ----------------------------------------------------------------------------
    def depth(self) -> Tuple[np.ndarray, np.ndarray]:
        """Depth in metres of every pixel (float64, inf for the sky) and where the disparity is
        valid. Each drawn object is a surface of the flat-ground world: the ground (and the ego
        vehicle, the void border) at its row's ground depth; a standing object (car, person,
        pole, tree, ...) upright at the depth of its foot; a building at the depth where the
        ground in front of it begins in its column. The disparity is invalid in the sky, the void
        border, the unlabeled gaps, farther than 300 m and in a band at the left edge (which the
        right camera does not see)."""
        if self._depth is not None:
            return self._depth
        scene, cam = self.scene, self.camera
        w, h = scene.w, scene.h
        drawn = [o for o, v in zip(scene.objects, _values(scene.objects)) if v is not None]
        image = Image.new("I", (w, h), 0)
        draw = ImageDraw.Draw(image)
        for k, obj in enumerate(drawn):  # the painter's order of rasterize(): the same pixels
            draw.polygon([float(c) for p in obj.points for c in p], fill=k + 1)
        index = np.asarray(image)
        roles = np.array([_GAP] + [_DEPTH_ROLE.get(o.role, _STANDING) for o in drawn], dtype=np.uint8)
        role = roles[index]
        feet = cam.ground_depth([0.0] + [o.foot for o in drawn])
        rows = cam.ground_depth(np.arange(h))
        ground = role == _GROUND
        first = np.where(ground.any(axis=0), ground.argmax(axis=0), scene.hood_top(np.arange(w)))
        columns = cam.ground_depth(first)
        depth = feet[index]
        depth = np.where((role == _GROUND) | (role == _VOID), rows[:, None], depth)
        depth = np.where((role == _FACADE) | (role == _GAP), columns[None, :], depth)
        depth[role == _SKY] = np.inf
        valid = np.isin(role, (_GROUND, _FACADE, _STANDING)) & (depth <= _MAX_DEPTH)
        valid[:, :max(1, int(round(w * 0.02)))] = False
        self._depth = depth, valid
        return self._depth

    def disparity(self) -> np.ndarray:
        """The disparity of every pixel in pixels, from the depth (0 where it is infinite)."""
        depth, _ = self.depth()
        with np.errstate(divide="ignore"):
            return self.camera.baseline * self.camera.fx / depth

    def disparity_png(self) -> np.ndarray:
        """The disparity as the release encodes it: ``round(d * 256) + 1``, 0 where invalid."""
        _, valid = self.depth()
        p = np.clip(np.rint(self.disparity() * 256) + 1, 1, 65535)
        return np.where(valid, p, 0).astype(np.uint16)

    # -- photos ------------------------------------------------------------------------------
    def right(self) -> np.ndarray:
        """The right camera's photo: each pixel the left photo's ``d`` pixels to its right."""
        assert self.photo is not None
        w, h = self.scene.w, self.scene.h
        src = np.arange(w)[None, :] + np.rint(self.disparity()).astype(np.int64)
        return self.photo[np.arange(h)[:, None], np.clip(src, 0, w - 1)]

    def deep(self, photo: np.ndarray, key: str) -> np.ndarray:
        """The 16-bit version of an 8-bit photo: ``p * 256`` plus ``p`` with a little noise (so
        that the high byte is the 8-bit photo and the low byte varies)."""
        noise = self.rng(key).integers(-3, 4, size=photo.shape, dtype=np.int16)
        low = np.clip(photo.astype(np.int16) + noise, 0, 255).astype(np.uint16)
        return (photo.astype(np.uint16) << 8) | low

    def blurred(self) -> np.ndarray:
        """The photo with the heads of the people and the licence plates blurred."""
        assert self.photo is not None
        scene = self.scene
        boxes = []
        for obj, value in zip(scene.objects, _values(scene.objects)):
            if obj.role == "plate":
                boxes.append(_bbox(obj.points))
            elif value is not None and value >= 1000 and value // 1000 in _PERSON_LABEL and obj.role == "thing":
                x0, y0, x1, y1 = _bbox(obj.points)
                boxes.append((x0, y0, x1, y0 + max(2, int(round((y1 - y0) * 0.2)))))
        out = self.photo.copy()
        image = Image.fromarray(self.photo)
        for x0, y0, x1, y1 in boxes:
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                radius = max(1.0, (y1 - y0) / 3)
                out[y0:y1, x0:x1] = np.asarray(image.crop((x0, y0, x1, y1)).filter(ImageFilter.GaussianBlur(radius)))
        return out

    def fog(self, transmittance: np.ndarray, photo: Optional[np.ndarray] = None) -> np.ndarray:
        """``photo * t + A * (1 - t)`` (Koschmieder's law, atmospheric light ``A``)."""
        base = self.photo if photo is None else photo
        assert base is not None
        t = transmittance.astype(np.float32)[..., None]
        return np.rint(base.astype(np.float32) * t + np.float32(_AIRLIGHT) * (1 - t)).astype(np.uint8)

    def streaks(self, alpha: float, dropsize: float, pattern: int) -> np.ndarray:
        """A rain layer (float, 0 to 1): slanted streaks, more with ``alpha``, longer with
        ``dropsize``, their slant and places set by ``pattern``."""
        w, h = self.scene.w, self.scene.h
        rng = self.rng(f"rain {alpha} {dropsize} {pattern}")
        n = max(4, int(w * h * alpha / 40))
        angle = math.radians((-1) ** pattern * (8 + 4 * pattern))
        length = max(2.0, dropsize * h * 4) * rng.uniform(0.6, 1.4, n)
        x0, y0 = rng.uniform(0, w, n), rng.uniform(-length.max(), h, n)
        shade = rng.integers(60, 200, n)
        layer = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(layer)
        for x, y, ln, s in zip(x0.tolist(), y0.tolist(), length.tolist(), shade.tolist()):
            draw.line([(x, y), (x + ln * math.sin(angle), y + ln * math.cos(angle))], fill=s)
        return np.asarray(layer, dtype=np.float32) / 255

    # -- annotations -------------------------------------------------------------------------
    def _visible(self, value: int, box: Tuple[int, int, int, int]) -> Optional[Tuple[List[int], int]]:
        """``([x, y, w, h], pixels)`` of the pixels of ``value`` in ``box`` (None: none)."""
        x0, y0, x1, y1 = box
        canvas = self.scene.canvas
        assert canvas is not None
        mask = canvas[y0:y1, x0:x1] == value
        n = int(np.count_nonzero(mask))
        if n == 0:
            return None
        ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return [x0 + int(xs[0]), y0 + int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)], n

    def persons(self) -> Dict[str, Any]:
        """The CityPersons JSON: a pedestrian or rider per person / rider instance (``bbox`` its
        whole outline, widened to CityPersons' aspect ratio 0.41 when narrower, ``bboxVis`` its
        visible pixels), then its crowds (``person group`` for people, ``ignore`` for riders,
        instance id 0)."""
        scene = self.scene
        objects: List[Dict[str, Any]] = []
        crowds: List[Dict[str, Any]] = []
        for obj, value in zip(scene.objects, _values(scene.objects)):
            cls = None if value is None else (value // 1000 if value >= 1000 else value)
            if cls not in _PERSON_LABEL or obj.role not in ("thing", "group"):
                continue
            assert value is not None
            box = _bbox(obj.points)
            seen = self._visible(value, box)
            if seen is None:
                continue
            vis = seen[0]
            if value < 1000:
                crowds.append({"instanceId": 0, "label": _PERSON_LABEL[cls][1], "bbox": vis, "bboxVis": list(vis)})
                continue
            x0, y0, x1, y1 = box
            half = max(0.41 * (y1 - y0), x1 - x0) / 2
            cx = (x0 + x1) / 2
            fx0, fx1 = max(0, int(math.floor(cx - half))), min(scene.w, int(math.ceil(cx + half)))
            fx0, fx1 = min(fx0, vis[0]), max(fx1, vis[0] + vis[2])
            objects.append({"instanceId": value, "label": _PERSON_LABEL[cls][0],
                            "bbox": [fx0, y0, fx1 - fx0, y1 - y0], "bboxVis": vis})
        return {"imgHeight": scene.h, "imgWidth": scene.w, "objects": objects + crowds}

    def boxes3d(self) -> Dict[str, Any]:
        """The Cityscapes 3D JSON: a 3D box per vehicle instance, standing on the ground at the
        depth of its outline's foot, as wide and high as its outline there, with its class's
        typical length, heading along the road (or against it); ``2d.modal`` its visible
        pixels, ``2d.amodal`` the projection of the 3D box clipped to the image (what the official
        evaluation computes for a prediction). Instances far away, small or mostly hidden, and
        the crowds, are ``ignore`` regions."""
        scene, cam = self.scene, self.camera
        w, h = scene.w, scene.h
        rng = self.rng("gtBbox3d")
        objects: List[Dict[str, Any]] = []
        ignore: List[Dict[str, Any]] = []
        for obj, value in zip(scene.objects, _values(scene.objects)):
            if value is None or obj.role not in ("thing", "group"):
                continue
            label = _LABELS[value // 1000 if value >= 1000 else value]
            if label.name not in _BOX3D:
                continue
            box = _bbox(obj.points)
            seen = self._visible(value, box)
            if seen is None:
                continue
            modal, pixels = seen
            length, types = _BOX3D[label.name]
            length *= float(rng.uniform(0.9, 1.1))
            kind = types[int(rng.integers(len(types)))]
            heading = (math.pi if rng.random() < 0.3 else 0.0) + float(rng.normal(0, 0.05))
            tilt = rng.normal(0, 0.01, 2)
            depth = float(cam.ground_depth([obj.foot])[0])
            if value < 1000 or depth > 120 or modal[3] < max(2, h * 0.015):
                ignore.append({"2d": modal, "label": label.name, "instanceId": value})
                continue
            x0, y0, x1, y1 = box
            foot = cam.to_vehicle((x0 + x1) / 2, obj.foot, depth)
            width = max((x1 - x0) * depth / cam.fx, 0.4)
            height = max((obj.foot - y0) * depth / cam.fy, 0.5)
            away = foot[:2] - np.array([cam.x, cam.y])
            away /= np.linalg.norm(away)
            center = [round(float(v), 2) for v in (*(foot[:2] + away * length / 2), height / 2)]
            dims = [round(length, 2), round(width, 2), round(height, 2)]
            q = _quaternion(heading, float(tilt[0]), float(tilt[1]))
            corners = np.array([(sx * dims[0] / 2, sy * dims[1] / 2, sz * dims[2] / 2)
                                for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
            uvz = cam.project(corners @ _rotation_matrix(q).T + np.array(center))
            if uvz[:, 2].min() <= 0.5:  # (too near: the official projection would crop it)
                ignore.append({"2d": modal, "label": label.name, "instanceId": value})
                continue
            ux0, uy0 = float(uvz[:, 0].min()), float(uvz[:, 1].min())
            ux1, uy1 = float(uvz[:, 0].max()), float(uvz[:, 1].max())
            cx0, cy0 = min(max(ux0, 0.0), w - 1.0), min(max(uy0, 0.0), h - 1.0)
            cx1, cy1 = min(max(ux1, 0.0), w - 1.0), min(max(uy1, 0.0), h - 1.0)
            area = max((ux1 - ux0) * (uy1 - uy0), 1e-9)
            amodal = [int(math.floor(cx0)), int(math.floor(cy0))]
            amodal += [int(math.ceil(cx1)) - amodal[0], int(math.ceil(cy1)) - amodal[1]]
            outline = np.asarray(obj.points, dtype=np.float64)
            shoelace = 0.5 * abs(float(np.dot(outline[:, 0], np.roll(outline[:, 1], -1))
                                       - np.dot(outline[:, 1], np.roll(outline[:, 0], -1))))
            objects.append({
                "2d": {"modal": modal, "amodal": amodal},
                "3d": {"center": center, "dimensions": dims, "rotation": [float(v) for v in q], "type": kind,
                       "format": "CRS_ISO8855"},
                "occlusion": round(min(max(1 - pixels / max(shoelace, 1.0), 0.0), 1.0), 1),
                "truncation": round(min(max(1 - (cx1 - cx0) * (cy1 - cy0) / area, 0.0), 1.0), 1),
                "instanceId": value, "label": label.name, "score": 1.0})
        return {"imgWidth": w, "imgHeight": h, "sensor": cam.sensor(), "objects": objects, "ignore": ignore}

    # -- the drive ---------------------------------------------------------------------------
    def drive(self) -> Tuple[Dict[int, Dict[str, float]], Dict[int, int]]:
        """The vehicle's readings and the timestamps (ns) of the snippet's frames by offset: a
        car driving on at a steady acceleration and turn rate, a frame about every 1/17 s."""
        rng = self.rng("drive")
        t0 = 1_427_000_000 * 10 ** 9 + int(rng.integers(0, 200 * 86400)) * 10 ** 9 + int(rng.integers(0, 10 ** 9))
        steps = np.rint(1e9 / _FPS * (1 + rng.uniform(-0.002, 0.002, len(SEQUENCE_OFFSETS) - 1))).astype(np.int64)
        start = SEQUENCE_OFFSETS.index(0)
        times = np.concatenate([[0], np.cumsum(steps)])
        times -= times[start]
        lat, lon = float(rng.uniform(48.5, 53.5)), float(rng.uniform(6.0, 13.5))
        heading, altitude = float(rng.uniform(0, 360)), float(rng.uniform(40, 500))
        speed = 0.0 if rng.random() < 0.1 else float(rng.uniform(1, 14))
        accel, turn = float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.1, 0.1))
        temperature = float(rng.uniform(2, 30))
        readings: Dict[int, Dict[str, float]] = {}
        stamps: Dict[int, int] = {}
        for o, dt_ns in zip(SEQUENCE_OFFSETS, times.tolist()):
            dt = dt_ns / 1e9
            if speed == 0.0:
                v, dist = 0.0, 0.0
            else:
                v = max(speed + accel * dt, 0.0)
                dist = (speed + v) / 2 * dt
            hd = heading + math.degrees(turn * dt)
            rad = math.radians(hd)
            east = dist * math.sin(rad) / (111320 * math.cos(math.radians(lat)))
            readings[o] = {"gpsHeading": round(hd % 360, 3),
                           "gpsLatitude": round(lat + dist * math.cos(rad) / 111320, 7),
                           "gpsLongitude": round(lon + east, 7),
                           "gpsAltitude": round(altitude + 0.01 * dist, 2), "speed": round(v, 3),
                           "outsideTemperature": round(temperature, 1), "yawRate": round(turn if v else 0.0, 4)}
            stamps[o] = t0 + int(dt_ns)
        return readings, stamps

    # -- the files ---------------------------------------------------------------------------
    def files(self, photo_png: Optional[bytes], offsets: Sequence[int]) -> Iterator[_PartFile]:
        """The parts' files, part by part in the order of :data:`PART_FOLDERS`; the sequences'
        for ``offsets`` (the annotated frame's, offset 0, the very bytes of its own part)."""
        want, cam = self.wanted, self.camera
        step = max(1, self.scene.w // 512)  # a sequence frame's photo: moved this many columns a step
        done: Dict[str, bytes] = {}

        def once(key: str, make: Callable[[], bytes]) -> bytes:
            if key not in done:
                done[key] = make()
            return done[key]

        photo = self.photo
        if photo_png is None and photo is not None:
            photo_png = _png(photo)
        right: Optional[np.ndarray] = self.right() if want & {"rightImg8bit", "rightImg16bit",
                                                              "rightImg8bit_sequence"} else None
        if "rightImg8bit" in want:
            assert right is not None
            yield "rightImg8bit", None, "_rightImg8bit.png", once("right", lambda: _png(right))
        if "leftImg16bit" in want:
            assert photo is not None
            yield "leftImg16bit", None, "_leftImg16bit.png", _png16_rgb(self.deep(photo, "leftImg16bit"))
        if "rightImg16bit" in want:
            assert right is not None
            yield "rightImg16bit", None, "_rightImg16bit.png", _png16_rgb(self.deep(right, "rightImg16bit"))
        if "leftImg8bit_blurred" in want:
            yield "leftImg8bit_blurred", None, "_leftImg8bit_blurred.png", _png(self.blurred())
        if "disparity" in want:
            yield "disparity", None, "_disparity.png", once("disparity", lambda: _png(self.disparity_png()))
        if "camera" in want:
            yield "camera", None, "_camera.json", _json(cam.as_json())
        readings, stamps = self.drive() if want & {"vehicle", "timestamp", "vehicle_sequence",
                                                   "timestamp_sequence"} else ({}, {})
        if "vehicle" in want:
            yield "vehicle", None, "_vehicle.json", _json(readings[0])
        if "timestamp" in want:
            yield "timestamp", None, "_timestamp.txt", f"{stamps[0]}\n".encode("ascii")
        if "leftImg8bit_sequence" in want:
            assert photo is not None and photo_png is not None
            for o in offsets:
                yield ("leftImg8bit_sequence", o, "_leftImg8bit.png",
                       photo_png if o == 0 else _png(_shifted(photo, o * step)))
        if "rightImg8bit_sequence" in want:
            assert right is not None
            for o in offsets:
                yield ("rightImg8bit_sequence", o, "_rightImg8bit.png",
                       once("right", lambda: _png(right)) if o == 0 else _png(_shifted(right, o * step)))
        if "disparity_sequence" in want:
            disparity = self.disparity_png()
            for o in offsets:
                yield ("disparity_sequence", o, "_disparity.png",
                       once("disparity", lambda: _png(disparity)) if o == 0
                       else _png(_shifted(disparity, o * step, fill=0)))
        if "vehicle_sequence" in want:
            for o in offsets:
                yield "vehicle_sequence", o, "_vehicle.json", _json(readings[o])
        if "timestamp_sequence" in want:
            for o in offsets:
                yield "timestamp_sequence", o, "_timestamp.txt", f"{stamps[o]}\n".encode("ascii")
        fogs = want & {"leftImg8bit_foggy", "leftImg8bit_foggyDBF", "leftImg8bit_transmittance",
                       "leftImg8bit_transmittanceDBF"}
        if fogs:
            depth, _ = self.depth()
            radius = max(1, self.scene.w // 256)
            for dbf in (False, True):
                for beta in FOG_BETAS:
                    t = np.exp(-beta * depth)
                    if dbf:  # the refined set: a smoother transmittance
                        t = np.clip(_box_blur(t, radius), 0.0, 1.0)
                    name = "DBF" if dbf else ""
                    if f"leftImg8bit_foggy{name}" in want:
                        yield (f"leftImg8bit_foggy{name}", None, f"_leftImg8bit_foggy_beta_{beta}.png",
                               _png(self.fog(t)))
                    if f"leftImg8bit_transmittance{name}" in want:
                        yield (f"leftImg8bit_transmittance{name}", None, f"_leftImg8bit_transmittance_beta_{beta}.png",
                               _png(np.rint(t * 255).astype(np.uint8)))
        if "leftImg8bit_rain" in want and self.rain:
            depth, _ = self.depth()
            for alpha, beta, dropsize in RAIN_SETTINGS:
                veil = self.fog(np.exp(-beta * depth)).astype(np.float32)
                for pattern in RAIN_PATTERNS:
                    s = self.streaks(alpha, dropsize, pattern)[..., None] * np.float32(0.8)
                    rainy = np.rint(veil * (1 - s) + np.float32(235) * s).astype(np.uint8)
                    yield ("leftImg8bit_rain", None,
                           f"_leftImg8bit_rain_alpha_{alpha}_beta_{beta}_dropsize_{dropsize}_pattern_{pattern}.png",
                           _png(rainy))
        if "gtBboxCityPersons" in want:
            yield "gtBboxCityPersons", None, "_gtBboxCityPersons.json", _json(self.persons())
        if "gtBbox3d" in want:
            yield "gtBbox3d", None, "_gtBbox3d.json", _json(self.boxes3d())


# --------------------------------------------------------------------------------------------
# Frames and files
# --------------------------------------------------------------------------------------------
def _seed_sequence(seed: int, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])


def _rngs(seed: int, split: str, index: int):
    """Independent generators for the ground truth, the photo and the coarse annotation of one
    frame content (the parts' seed, :func:`_part_seed`, is a fourth child of the same sequence)."""
    return tuple(np.random.default_rng(s) for s in _seed_sequence(seed, split, index).spawn(3))


def _check_size(size) -> Tuple[int, int]:
    width, height = (int(s) for s in size)
    if width < 32 or height < 16:
        raise ValueError(f"size {size!r}: width and height must be at least 32 and 16")
    return width, height


def _annotation(doc: dict, instance_ids: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """The arrays of an annotation drawn from its polygons document, by the official rules."""
    polygons = parse_polygons(doc)
    inst = rasterize(polygons, "instanceIds") if instance_ids is None else instance_ids
    return {"instanceIds": inst, "labelIds": rasterize(polygons, "ids"), "color": rasterize(polygons, "color"),
            "polygons": doc}


def _make(size, seed: int, split: str, index: int, photos: bool, fine: bool, coarse: bool,
          wanted: FrozenSet[str] = frozenset()) -> Dict[str, Any]:
    """``{"gtFine": annotation, "gtCoarse": annotation, "image": photo, "other": _FrameParts}``,
    those asked for (``wanted``: the release's other parts; those drawn from the fine annotation
    only when ``fine``; rain only for some train frames)."""
    width, height = _check_size(size)
    gt_rng, photo_rng, coarse_rng = _rngs(seed, split, index)
    scene = _Scene(gt_rng, width, height)
    scene.draw_stuff()
    scene.draw_things()
    scene.draw_void_border()
    scene.fix()
    out: Dict[str, Any] = {}
    if fine:
        out[names.GT_DIR] = _annotation(scene.document(), scene.canvas)
    if coarse:
        out[names.COARSE_DIR] = _annotation(_document(width, height, scene.coarse(coarse_rng)))
    wanted = wanted - {_DEMO} - (frozenset() if fine else _FINE_PARTS)
    photo = scene.photo(photo_rng) if photos or wanted & _PHOTO_PARTS else None
    if photos:
        out["image"] = photo
    if wanted:
        # Rain Cityscapes covers a subset: here every other train frame content.
        out["other"] = _FrameParts(scene, photo, _part_seed(seed, split, index), wanted,
                                   rain=split == "train" and index % 2 == 0)
    return out


def make_frame(size: Sequence[int] = (2048, 1024), seed: int = 0, *, split: str = "train",
               index: int = 0, photos: bool = True, coarse: bool = False) -> Dict[str, Any]:
    """Generate the arrays of one synthetic frame, without writing anything.

    Parameters
    ----------
    size : (int, int)
        Width and height in pixels.
    seed, split, index : int, str, int
        Which content: :func:`generate` uses ``index`` = the content's position in its split.
    photos : bool
        Also render the photo.
    coarse : bool
        Give the coarse annotation of the scene instead of the fine one (the scene and its
        photo are the same).

    Returns
    -------
    dict
        ``instanceIds`` (uint16), ``labelIds`` (uint8), ``color`` (uint8, H x W x 4), all drawn
        from ``polygons`` (the polygons document, a dict as in ``_polygons.json``) with
        :func:`cityscapes_io.polygons.rasterize`; and, when ``photos``, ``image`` (uint8, H x W x 3).
    """
    tree = names.COARSE_DIR if coarse else names.GT_DIR
    parts = _make(size, seed, split, index, photos, fine=not coarse, coarse=coarse)
    out = dict(parts[tree])
    if photos:
        out["image"] = parts["image"]
    return out


def _png(array: np.ndarray) -> bytes:
    """The PNG of a label image or a photo: every row "Up"-filtered, zlib level 1
    (:func:`cityscapes_io.png.encode_label_png`). Label images repeat from one row to the
    next, and so do half the rows of a photo (:meth:`_Scene.photo`): 5 to 20 times faster than
    Pillow's encoder at level 6, which tries every filter on every row."""
    return png.encode_label_png(array)


def _encode(annotation: Mapping[str, Any]) -> Dict[str, bytes]:
    """The files of an annotation: the polygons indented like the release's, the PNGs."""
    return {kind: (json.dumps(a, indent=4).encode("utf-8") if kind == "polygons" else _png(a))
            for kind, a in annotation.items()}


# The encoded files of a frame content: {"gtFine" / "gtCoarse": {kind: bytes}, "image": {"image": bytes}},
# and the other parts' files (an iterator, made as they are written, or a list to write again).
_Files = Dict[str, Any]


def _encode_frame(parts: Mapping[str, Any], again: bool = False) -> _Files:
    """The files of the parts made by :func:`_make`; the other parts' files all made when the
    content is written ``again`` (under further names: ``distinct``), else one by one as they
    are written, for the snippet offsets the frame has (``offsets`` later)."""
    files: _Files = {tree: _encode(a) for tree, a in parts.items() if tree not in ("image", "other")}
    if "image" in parts:
        files["image"] = {"image": _png(parts["image"])}
    if "other" in parts:
        photo_png = files["image"]["image"] if "image" in files else None
        other: _FrameParts = parts["other"]
        if again:
            listed = list(other.files(photo_png, SEQUENCE_OFFSETS))
            files["other"] = lambda offsets: iter(listed)
        else:
            files["other"] = lambda offsets: other.files(photo_png, offsets)
    return files


def _part_path(folder: str, split: str, frame_id: str, offset: Optional[int], suffix: str) -> Optional[str]:
    """Path of a part's file of a frame; a sequence frame's (``offset``) by its number, None for
    a frame number below 0."""
    if offset is None:
        return f"{folder}/{split}/{names.safe_relpath(frame_id)}{suffix}"
    name = names.parse_frame_id(frame_id)
    assert name.frame is not None  # generated ids follow the grammar
    number = name.frame + offset
    if number < 0:
        return None
    return f"{folder}/{split}/{names.safe_relpath(frame_id)[:-6]}{number:06d}{suffix}"


def _snippet(frame_id: str) -> List[int]:
    """The sequence offsets a frame has (no frame number below 0)."""
    number = names.parse_frame_id(frame_id).frame or 0
    return [o for o in SEQUENCE_OFFSETS if number + o >= 0]


def _batches(items: Iterable[Tuple[str, bytes]], n: int = 16) -> Iterator[List[Tuple[str, bytes]]]:
    batch: List[Tuple[str, bytes]] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _demo_files(size: Tuple[int, int], seed: int, frames: int) -> Iterator[Tuple[str, bytes]]:
    """The ``demoVideo`` split: per city of :data:`DEMO_CITIES` a scene, its photo moved a few
    columns a frame, frames numbered 1, 2, ... (no ground truth)."""
    for c, city in enumerate(DEMO_CITIES):
        made = _make(size, seed, "demoVideo", c, photos=True, fine=False, coarse=False)
        step, swing = max(1, size[0] // 512), max(1, size[0] // 4)
        for n in range(1, frames + 1):
            dx = (n - 1) * step % (2 * swing)  # back and forth, never more than a quarter of the width
            yield (names.image_path("demoVideo", f"{city}/{city}_000000_{n:06d}", ".png"),
                   _png(_shifted(made["image"], min(dx, 2 * swing - dx))))


def _frame_ids(splits: Mapping[str, int], cities: Sequence[str]) -> Dict[str, List[str]]:
    """Frame ids per split: round-robin over the cities, sequence numbers growing per city
    across splits (so that ids are unique in the whole dataset)."""
    seq = {city: 0 for city in cities}
    out: Dict[str, List[str]] = {}
    for split, n in splits.items():
        ids = []
        for j in range(int(n)):
            city = cities[j % len(cities)]
            s = seq[city]
            seq[city] += 1
            ids.append(f"{city}/{city}_{s:06d}_{_FRAME_NUMBERS[s % len(_FRAME_NUMBERS)]:06d}")
        out[split] = ids
    return out


_GT_KINDS = ("polygons", "instanceIds", "labelIds", "color")


def _empty_destination(url: str, fs: Any, root: str, overwrite: bool) -> Sink:
    """The sink the dataset is written through. A destination that holds anything is refused, as
    ``convert`` refuses it; with ``overwrite``, what it holds is removed (by the sinks' own
    clearing, which ``convert --overwrite`` uses)."""
    sink = LocalSink if isinstance(fs, LocalFileSystem) else ObjectStoreSink
    with storage_errors(url, "cannot open destination"):
        if not root or not fs.exists(root):
            return sink(url, fs, root, "keep")
        if not fs.isdir(root):
            raise RefusedError(url, "destination exists and is not a folder")
        entries = [posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False) if p.rstrip("/") != root]
    if entries and not overwrite:
        shown = ", ".join(sorted(entries)[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
        raise RefusedError(url, f"destination is not empty (holds {shown}): pass overwrite=True (--overwrite) "
                                     f"to replace it")
    return sink(url, fs, root, "replace" if entries else "keep")


def generate(url: str, *, splits: Optional[Mapping[str, int]] = None, frames: int = 3,
             cities: Sequence[str] = ("aachen", "bad-honnef"), size: Sequence[int] = (2048, 1024),
             seed: int = 0, photos: bool = True, distinct: Optional[int] = None,
             storage_options: Optional[dict] = None, coarse: Optional[Mapping[str, int]] = None,
             overwrite: bool = False, progress: Optional[Callable[[int], None]] = None,
             parts: Union[None, str, Sequence[str]] = None, demo_frames: int = 3) -> List[str]:
    """Write a synthetic Cityscapes dataset under ``url``.

    Parameters
    ----------
    url : str
        Dataset root: a local path or any fsspec URL (``s3://bucket/prefix``, ``memory://x``).
    splits : dict of str to int, optional
        Number of gtFine frames per split, e.g. ``{"train": 4, "val": 2}``; default
        ``{"train": frames}``.
    frames : int
        Number of train frames when ``splits`` is not given.
    cities : sequence of str
        Cities the frames of each split are spread over, round-robin.
    size : (int, int)
        Width and height (the real data is 2048 x 1024).
    seed : int
        Non-negative; the same arguments always write byte-identical files.
    photos : bool
        Also write ``leftImg8bit`` photos (about 2 MB each at 2048 x 1024; about half the time
        of a frame goes to them).
    distinct : int, optional
        Generate only this many frame contents per split and write their bytes again, in turn,
        for further frames (under their own names). ``None``: every frame is distinct.
    storage_options : dict, optional
        Passed to ``fsspec.core.url_to_fs``.
    coarse : dict of str to int, optional
        Number of gtCoarse frames per split, e.g. ``{"train": 3, "train_extra": 5}``. In a split
        of ``splits`` they are its first frames (same ids, same scenes; at most as many as it
        has); in another split (``train_extra``) they are frames of their own, with their photos.
    overwrite : bool
        A destination that holds anything is refused (as ``convert`` refuses one), unless this is
        true: then what it holds is removed first. A folder that does not exist or is empty is
        always fine.
    progress : callable, optional
        Called after each frame is written, with the number of frames written so far (1, 2,
        ..., up to the total of ``splits`` and of the splits only ``coarse`` has), e.g. to
        advance a progress bar. It is called in the calling thread; the next frame may be under
        way meanwhile (frames are encoded and written by a thread of their own). An exception
        it raises stops the generation and is raised.
    parts : list of str or "all", optional
        Also write these parts of the release (names of :data:`PART_FOLDERS`, or ``"all"``) for
        every frame: see the module's docstring for what each holds. The parts drawn from the
        fine annotation (``gtBboxCityPersons``, ``gtBbox3d``) are not written for a split with
        coarse annotations only (``train_extra``); rain only for every other train frame. The
        other files are the same bytes with or without parts. With ``distinct``, the parts'
        files of the frame contents are held in memory to be written again (at 2048 x 1024,
        some 140 MB a content with every part).
    demo_frames : int
        Frames per city of the ``demoVideo`` split, when ``parts`` has ``leftImg8bit_demoVideo``.

    Returns
    -------
    list of str
        The frame ids written, split by split (``aachen/aachen_000000_000019``, ...), the
        gtFine splits first, then the splits only gtCoarse has. Ids are unique over the whole
        dataset: sequence numbers go on growing from one split to the next. (The ``demoVideo``
        split's frames, photos only, are not among them and do not count for ``progress``.)

    Raises
    ------
    ValueError
        An argument out of range, or ``parts`` naming an unknown part (the message lists them).
    """
    wanted = _parts_wanted(parts)
    if int(demo_frames) < 0:
        raise ValueError(f"demo_frames={demo_frames!r}: must not be negative")
    if splits is None:
        splits = {"train": frames}
    coarse = dict(coarse or {})
    if not cities:
        raise ValueError("cities: at least one city is needed")
    for city in cities:
        if "/" in names.safe_relpath(city):
            raise ValueError(f"city {city!r}: must be a single folder name")
    if distinct is not None and int(distinct) < 1:
        raise ValueError(f"distinct={distinct!r}: must be a positive number or None")
    for split, n in coarse.items():
        names.safe_relpath(split)
        if int(n) < 0:
            raise ValueError(f"coarse[{split!r}] = {n!r}: must not be negative")
        if split in splits and int(n) > int(splits[split]):
            raise ValueError(f"coarse[{split!r}] = {n}: the {split} split has only {splits[split]} gtFine frames, "
                             f"and its coarse frames are those")
    size = _check_size(size)
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    sink = _empty_destination(str(url), fs, root, overwrite)

    def emit(split: str, frame_id: str, encoded: "Future[_Files]", with_coarse: bool) -> None:
        files = encoded.result()  # done: the writer runs its tasks in order, the encoding first
        out = []
        for tree in (names.GT_DIR, names.COARSE_DIR):
            if tree in files and (tree == names.GT_DIR or with_coarse):
                for kind in _GT_KINDS:
                    out.append((names.gt_path(split, frame_id, kind, annotations=tree), files[tree][kind]))
        if "image" in files:
            out.append((names.image_path(split, frame_id, ".png"), files["image"]["image"]))
        sink.put_frame(out)
        if "other" in files:
            paths = ((_part_path(folder, split, frame_id, offset, suffix), data)
                     for folder, offset, suffix, data in files["other"](_snippet(frame_id)))
            for batch in _batches((path, data) for path, data in paths if path is not None):
                sink.put_frame(batch)

    plan = {split: (int(n), True) for split, n in splits.items()}
    plan.update({split: (int(n), False) for split, n in coarse.items() if split not in splits})
    written: List[str] = []
    pending: Deque[Tuple[str, "Future[None]"]] = deque()

    def done() -> None:
        frame_id, emitted = pending.popleft()
        emitted.result()
        written.append(frame_id)
        if progress is not None:
            progress(len(written))

    # One thread encodes and writes frame j (zlib and the file system release the GIL) while
    # this one draws frame j + 1; at most these two frames are in memory.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthetic-writer")
    try:
        for split, ids in _frame_ids({s: n for s, (n, _) in plan.items()}, list(cities)).items():
            fine = plan[split][1]
            n_coarse = int(coarse.get(split, 0))
            cache: Dict[int, Future[_Files]] = {}
            for j, frame_id in enumerate(ids):
                k = j if distinct is None else j % int(distinct)
                encoded = cache.get(k)
                if encoded is None:
                    # Content k is first met at frame k: it needs a coarse annotation when that
                    # frame does (a later frame j with j % distinct == k has j >= k).
                    encoded = writer.submit(_encode_frame, _make(size, seed, split, k, photos, fine=fine,
                                                                 coarse=k < n_coarse, wanted=wanted),
                                            again=distinct is not None)
                    if distinct is not None:
                        cache[k] = encoded
                pending.append((frame_id, writer.submit(emit, split, frame_id, encoded, j < n_coarse)))
                while len(pending) > 1:
                    done()
        while pending:
            done()
        if _DEMO in wanted and demo_frames:
            for batch in _batches(_demo_files(size, seed, int(demo_frames))):
                sink.put_frame(batch)
    except BaseException:
        writer.shutdown(wait=True, cancel_futures=True)
        sink.abort()
        raise
    writer.shutdown(wait=True)
    sink.close()
    return written
