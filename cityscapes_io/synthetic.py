"""A deterministic generator of synthetic Cityscapes datasets, for tests and benchmarks.

Every frame is a street scene drawn with numpy: stuff regions (sky, buildings, vegetation,
road, sidewalks, poles and signs, void borders and the ego vehicle's hood), then 5 to 30
instances of the classes with instances, nearest last, with the instance numbering of the real
data (numbers start at 0 for some classes, ``26000`` is a first car, and numbers have gaps), and
1 to 3 crowd regions (pixel value = the plain class id). It writes the four files of a frame:

- ``*_gtFine_instanceIds.png``: 16-bit gray, ``class * 1000 + n`` for instances, the class id
  for stuff and crowds;
- ``*_gtFine_labelIds.png``: 8-bit gray, ``where(v >= 1000, v // 1000, v)`` of the above;
- ``*_gtFine_color.png``: RGBA, the official label colours, alpha 255;
- ``*_leftImg8bit.png`` (``photos=True``): an RGB photo-like picture of the scene, shaded and
  textured so that a 2048x1024 frame is about 2 MB, like a real one.

The same arguments always give byte-identical files (with the same numpy, Pillow and zlib).
At 2048x1024 a frame takes about 0.15 s without its photo and 1.2 s with it, most of which is
Pillow encoding the 2 MB photo, so ``distinct=K`` generates only K frame contents per split and
writes their encoded bytes again under the names of further frames.

The sample dataset shipped in ``cityscapes_io/data/sample/`` was made with::

    from cityscapes_io.synthetic import generate
    generate("cityscapes_io/data/sample", splits={"train": 4, "val": 2},
             cities=("aachen", "bad-honnef"), size=(256, 128), seed=0, photos=True)

(``cityscapes-io synthetic cityscapes_io/data/sample --splits train=4,val=2 --size 256x128
--seed 0`` does the same.)
"""
from __future__ import annotations

import posixpath
import zlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import fsspec
import numpy as np
from PIL import Image, ImageDraw

from . import names, png
from .labels import LabelMap

__all__ = ["generate", "make_frame"]

_LABELS = LabelMap.cityscapes()
_ID = {lab.name: lab.id for lab in _LABELS}
_COLORS = _LABELS.color_table(256)

# Classes drawn as instances, with their relative frequency.
_THING_WEIGHTS = {
    "car": 0.42, "person": 0.26, "bicycle": 0.08, "rider": 0.05,
    "truck": 0.05, "bus": 0.04, "motorcycle": 0.06, "train": 0.04,
}
_THINGS = np.array([_ID[n] for n in _THING_WEIGHTS])
_THING_P = np.array(list(_THING_WEIGHTS.values())) / sum(_THING_WEIGHTS.values())
# Classes of crowd regions ("a group of cars", "a group of people").
_CROWDS = np.array([_ID["person"], _ID["car"], _ID["bicycle"], _ID["rider"]])
_CROWD_P = np.array([0.45, 0.35, 0.12, 0.08])
assert all(_LABELS[int(i)].has_instances for i in (*_THINGS, *_CROWDS))

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

# Photo: per-pixel noise (in 8-bit units) scaled per class; tuned so that a 2048x1024 photo
# written with Pillow's default compression is about 2 MB.
_NOISE = 0.6
_NOISE_SCALE = {
    "sky": 0.35, "road": 0.9, "sidewalk": 0.9, "building": 1.0, "vegetation": 1.9,
    "terrain": 1.4, "wall": 0.9, "fence": 1.0, "pole": 0.6,
}
# Medium-scale texture amplitude per class.
_TEXTURE = {
    "sky": 1.5, "road": 7.0, "sidewalk": 6.0, "building": 8.0, "vegetation": 28.0,
    "terrain": 16.0, "wall": 7.0, "fence": 8.0, "parking": 6.0,
}
_PNG_LEVEL = 6


# --------------------------------------------------------------------------------------------
# Drawing primitives: each draws one value into a uint16 canvas, clipped to the image, and
# returns the bounding box it touched (x0, y0, x1, y1) or None.
# --------------------------------------------------------------------------------------------
def _box(canvas, cx0, cy0, cx1, cy1):
    h, w = canvas.shape
    x0, y0 = max(int(np.floor(cx0)), 0), max(int(np.floor(cy0)), 0)
    x1, y1 = min(int(np.ceil(cx1)), w), min(int(np.ceil(cy1)), h)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def _rect(canvas, value, cx, cy, rw, rh):
    """A rectangle centred on (cx, cy), at least one pixel."""
    rw, rh = max(rw, 1.0), max(rh, 1.0)
    b = _box(canvas, cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2)
    if b is not None:
        canvas[b[1]:b[3], b[0]:b[2]] = value
    return b


def _ellipse(canvas, value, cx, cy, rx, ry):
    """A filled ellipse; radii of at least one pixel so that it is never empty."""
    rx, ry = max(rx, 1.0), max(ry, 1.0)
    b = _box(canvas, cx - rx, cy - ry, cx + rx + 1, cy + ry + 1)
    if b is None:
        return None
    x0, y0, x1, y1 = b
    ys = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - cy)) / np.float32(ry)
    xs = (np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - cx)) / np.float32(rx)
    mask = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1
    canvas[y0:y1, x0:x1][mask] = value
    return b


def _polygon(canvas, value, points):
    """A filled polygon given as an (n, 2) array of (x, y) pixel coordinates."""
    b = _box(canvas, points[:, 0].min(), points[:, 1].min(),
             points[:, 0].max() + 1, points[:, 1].max() + 1)
    if b is None:
        return None
    x0, y0, x1, y1 = b
    img = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(img).polygon([(float(x - x0), float(y - y0)) for x, y in points], fill=1)
    mask = np.asarray(img, dtype=bool)
    canvas[y0:y1, x0:x1][mask] = value
    return b


def _union(*given):
    boxes = [b for b in given if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


# A car seen from behind or from the side, in a unit box (x right, y down).
_CAR = np.array([(0, 1), (0, .55), (.1, .42), (.22, .04), (.78, .04), (.9, .42), (1, .55), (1, 1)],
                dtype=np.float64)


def _draw_object(canvas, rng, value, kind, x, yb, h):
    """Draw an object of class ``kind`` standing at (x, yb) with height ``h``; return its box."""
    lo, hi = _SHAPE[kind][1]
    w = max(h * rng.uniform(lo, hi), 2.0)
    h = max(h, 2.0)
    cy = yb - h / 2
    if kind == "car":
        if rng.random() < 0.75:
            pts = _CAR + rng.uniform(-0.04, 0.04, _CAR.shape)
            return _polygon(canvas, value, np.column_stack([x - w / 2 + pts[:, 0] * w, yb - h + pts[:, 1] * h]))
        return _union(_rect(canvas, value, x, yb - h * 0.3, w, h * 0.6),
                      _ellipse(canvas, value, x, yb - h * 0.6, w * 0.35, h * 0.4))
    if kind in ("truck", "bus", "train"):
        if rng.random() < 0.5:
            return _rect(canvas, value, x, cy, w, h)
        s = rng.uniform(0.05, 0.2) * w  # a slanted front
        pts = np.array([(x - w / 2, yb), (x - w / 2, yb - h * 0.8), (x - w / 2 + s, yb - h),
                        (x + w / 2, yb - h), (x + w / 2, yb)])
        return _polygon(canvas, value, pts)
    if kind in ("person", "rider"):
        head = h * 0.13
        return _union(_ellipse(canvas, value, x, cy + head / 2, w / 2, (h - head) / 2),
                      _ellipse(canvas, value, x + rng.uniform(-0.1, 0.1) * w, yb - h + head, head * 0.8, head))
    # bicycle, motorcycle: two wheels and a frame
    r = min(h * 0.4, w * 0.3)
    return _union(_ellipse(canvas, value, x - w / 2 + r, yb - r, r, r),
                  _ellipse(canvas, value, x + w / 2 - r, yb - r, r, r),
                  _rect(canvas, value, x, yb - h * 0.55, w * 0.6, h * 0.5))


# --------------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------------
class _Scene:
    """Geometry of one frame: the instanceIds canvas and what the photo renderer needs."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.rng, self.w, self.h = rng, width, height
        self.canvas = np.full((height, width), _ID["sky"], dtype=np.uint16)
        self.boxes: Dict[int, Tuple[int, int, int, int]] = {}
        self.yh = height * rng.uniform(0.40, 0.50)  # horizon
        self.vx = width * rng.uniform(0.38, 0.62)  # vanishing point
        self.lb = width * rng.uniform(-0.35, 0.15)  # road edges at the bottom
        self.rb = width * rng.uniform(0.85, 1.35)
        self.sw = width * rng.uniform(0.10, 0.30)  # sidewalk width at the bottom
        self.hood_c = rng.uniform(0.80, 0.87)  # ego vehicle hood: top at the centre
        self.hood_k = rng.uniform(0.04, 0.10)
        self.counters: Dict[int, int] = {}

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
        rng, c, w, h = self.rng, self.canvas, self.w, self.h
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        # Skyline: buildings of random widths, taller towards the sides of the image.
        tops = np.empty(w, dtype=np.float32)
        x = 0
        while x < w:
            bw = max(int(w * rng.uniform(0.04, 0.16)), 1)
            off_centre = abs(x + bw / 2 - self.vx) / w
            top = self.yh - h * (0.05 + off_centre * rng.uniform(0.5, 1.3) + rng.uniform(0, 0.12))
            if rng.random() < 0.12:
                top = self.yh + 1  # a gap: sky down to the horizon
            tops[x:x + bw] = top
            x += bw
        c[yy >= tops[None, :]] = _ID["building"]
        # Ground: road between two lines meeting at the vanishing point, sidewalks outside it,
        # then a band of terrain, vegetation, wall or fence, then buildings.
        t = np.clip((yy - np.float32(self.yh)) / np.float32(h - self.yh), 0, 1)
        below = yy > self.yh
        lx = np.float32(self.vx) + np.float32(self.lb - self.vx) * t
        rx = np.float32(self.vx) + np.float32(self.rb - self.vx) * t
        sw = np.float32(self.sw) * t
        for side, edge, sign in (("left", lx, -1), ("right", rx, 1)):
            band = rng.choice([_ID["terrain"], _ID["vegetation"], _ID["wall"], _ID["fence"], _ID["building"]])
            bw = np.float32(w * rng.uniform(0.05, 0.3)) * t
            d = (xx - edge) * sign  # distance outside the road edge
            c[below & (d >= 0) & (d < sw + bw)] = band
            c[below & (d >= 0) & (d < sw)] = _ID["sidewalk"]
            if rng.random() < 0.3:  # a parking strip between road and sidewalk
                c[below & (d >= 0) & (d < sw * 0.3)] = _ID["parking"]
        c[below & (xx >= lx) & (xx <= rx)] = _ID["road"]
        # Trees in front of the buildings.
        for _ in range(rng.integers(1, 5)):
            tx = w * rng.choice([rng.uniform(0, 0.3), rng.uniform(0.7, 1.0)])
            ty = self.yh - h * rng.uniform(0.02, 0.25)
            _rect(c, _ID["vegetation"], tx, (ty + self.yh) / 2 + h * 0.03, w * 0.008 + 1, self.yh - ty + h * 0.06)
            _ellipse(c, _ID["vegetation"], tx, ty, w * rng.uniform(0.03, 0.10), h * rng.uniform(0.05, 0.16))
        # Poles on the sidewalks, some carrying a traffic sign or a traffic light.
        for _ in range(rng.integers(1, 5)):
            yb = self.yh + (h - self.yh) * rng.uniform(0.1, 0.6)
            tb = float(self.depth(yb))
            l, r = self.road_edges(yb)
            px = (l - self.sw * tb * 0.5) if rng.random() < 0.5 else (r + self.sw * tb * 0.5)
            ph = h * (0.15 + 0.9 * tb)
            _rect(c, _ID["pole"], px, yb - ph / 2, w * 0.006 * tb + 1, ph)
            what = rng.random()
            if what < 0.4:
                _rect(c, _ID["traffic sign"], px, yb - ph, h * 0.06 * tb + 1, h * 0.06 * tb + 1)
            elif what < 0.7:
                _rect(c, _ID["traffic light"], px, yb - ph, h * 0.03 * tb + 1, h * 0.08 * tb + 1)
        # Void: static things on the ground, small unlabeled patches, sometimes a dynamic object.
        for _ in range(rng.integers(1, 4)):
            yb = self.yh + (h - self.yh) * rng.uniform(0.1, 0.7)
            tb = float(self.depth(yb))
            l, r = self.road_edges(yb)
            sx = (l - self.sw * tb * rng.uniform(0.2, 0.9)) if rng.random() < 0.5 else (r + self.sw * tb * rng.uniform(0.2, 0.9))
            value = _ID["static"] if rng.random() < 0.8 else _ID["dynamic"]
            _rect(c, value, sx, yb - h * 0.05 * tb, h * rng.uniform(0.03, 0.12) * tb + 1, h * 0.1 * tb + 1)
        for _ in range(rng.integers(1, 4)):
            _ellipse(c, _ID["unlabeled"], w * rng.uniform(0, 1), h * rng.uniform(0.3, 0.9),
                     w * rng.uniform(0.002, 0.02), h * rng.uniform(0.002, 0.02))

    def draw_void_border(self):
        """Ego vehicle hood, rectification border and out-of-roi rows, on top of everything."""
        rng, c, w, h = self.rng, self.canvas, self.w, self.h
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        c[yy >= self.hood_top(np.arange(w)).astype(np.float32)[None, :]] = _ID["ego vehicle"]
        bl = np.float32(w * rng.uniform(0.002, 0.01)) * (1 + yy / np.float32(h))
        br = np.float32(w * rng.uniform(0.002, 0.01)) * (1 + yy / np.float32(h))
        c[(xx < bl) | (xx >= np.float32(w) - br)] = _ID["rectification border"]
        c[h - max(1, int(round(h * rng.uniform(0.004, 0.015)))):, :] = _ID["out of roi"]

    # things
    def number(self, cls: int) -> int:
        """Next instance number of a class: starts at 0 (often) or a small number, with gaps."""
        rng = self.rng
        if cls not in self.counters:
            self.counters[cls] = 0 if rng.random() < (0.8 if cls == _ID["car"] else 0.5) else int(rng.integers(1, 6))
        n = self.counters[cls]
        self.counters[cls] = n + 1 + (int(rng.integers(1, 4)) if rng.random() < 0.35 else 0)
        return min(n, 999)

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
        objects: List[Tuple[float, Optional[str], int]] = []  # (depth, kind or None for a crowd, class id)
        for _ in range(rng.integers(5, 31)):
            cls = int(rng.choice(_THINGS, p=_THING_P))
            objects.append((rng.uniform(0.03, 1.0) ** 1.6, _LABELS[cls].name, cls))
        for _ in range(rng.integers(1, 4)):
            objects.append((rng.uniform(0.05, 0.45), None, int(rng.choice(_CROWDS, p=_CROWD_P))))
        objects.sort(key=lambda o: o[0])  # far first: nearer objects occlude them
        for t, kind, cls in objects:
            if kind is None:
                self.draw_crowd(cls, t)
            else:
                self.draw_instance(kind, cls, t)

    def draw_instance(self, kind: str, cls: int, t: float):
        value = cls * 1000 + self.number(cls)
        x, yb, height = self.place(kind, t)
        box = _draw_object(self.canvas, self.rng, value, kind, x, yb, height)
        if box is not None:
            self.boxes[value] = _union(box, self.boxes.get(value))

    def draw_crowd(self, cls: int, t: float):
        """A group of overlapping objects that the annotators could not tell apart."""
        rng = self.rng
        kind = _LABELS[cls].name
        x, yb, height = self.place(kind, t)
        boxes = []
        for _ in range(rng.integers(3, 9)):
            boxes.append(_draw_object(self.canvas, rng, cls, kind, x + rng.uniform(-1.5, 1.5) * height,
                                      yb + rng.uniform(-0.1, 0.1) * height, height * rng.uniform(0.8, 1.1)))
        box = _union(*boxes)
        if box is not None:
            self.boxes[cls] = _union(box, self.boxes.get(cls))

    def fix(self):
        """Ensure at least 5 visible instances and one visible crowd, drawing more on top."""
        rng = self.rng
        for _ in range(200):
            counts = np.bincount(self.canvas.ravel(), minlength=_NVALUES)
            n_instances = int(np.count_nonzero(counts[1000:]))
            if n_instances < 5:
                kind = "car" if rng.random() < 0.6 else "person"
                self.draw_instance(kind, _ID[kind], rng.uniform(0.2, 0.9))
            elif not counts[_CROWDS].any():
                self.draw_crowd(int(rng.choice(_CROWDS, p=_CROWD_P)), rng.uniform(0.2, 0.6))
            else:
                return
        raise RuntimeError("synthetic frame: could not place enough visible instances")  # pragma: no cover

    # the photo
    def photo(self, rng: np.random.Generator) -> np.ndarray:
        """An RGB uint8 picture of the scene: shaded regions with texture and noise."""
        v = self.canvas
        w, h = self.w, self.h
        # Per-value tables: base colour, shading a + b * t (t = relative height in the box),
        # noise and texture amplitude.
        base = np.zeros((_NVALUES, 3), dtype=np.float32)
        col = _COLORS.astype(np.float32)
        gray = col.mean(axis=1, keepdims=True)
        base[:256] = gray + 0.45 * (col - gray) + 20  # desaturated label colours
        base[_ID["sky"]] = (175, 200, 225)
        base[_ID["ego vehicle"]] = (40, 40, 45)
        shade_a = np.full(_NVALUES, 1.0, dtype=np.float32)
        shade_b = np.zeros(_NVALUES, dtype=np.float32)
        top = np.zeros(_NVALUES, dtype=np.float32)
        inv_h = np.full(_NVALUES, 1.0 / h, dtype=np.float32)
        noise = np.ones(_NVALUES, dtype=np.float32)
        texture = np.full(_NVALUES, 4.0, dtype=np.float32)
        for name, s in _NOISE_SCALE.items():
            noise[_ID[name]] = s
        for name, a in _TEXTURE.items():
            texture[_ID[name]] = a
        shade_a[_ID["sky"]], shade_b[_ID["sky"]] = 0.85, 0.5  # lighter towards the horizon
        shade_a[_ID["road"]], shade_b[_ID["road"]] = 1.15, -0.35
        shade_a[_ID["building"]], shade_b[_ID["building"]] = 1.1, -0.4
        for value, (x0, y0, x1, y1) in self.boxes.items():
            top[value], inv_h[value] = y0, 1.0 / max(y1 - y0, 1)
            shade_a[value], shade_b[value] = 1.15, -0.45  # lit from above, shadow below
            if value >= 1000:  # each instance its own tint
                base[value] = np.clip(base[value // 1000] + rng.uniform(-45, 45, 3) + rng.uniform(-50, 70), 10, 245)
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        t = np.clip((yy - top[v]) * inv_h[v], 0, 1)
        shade = shade_a[v] + shade_b[v] * t
        # Windows on the buildings.
        pw, ph = max(w / 64.0, 3.0), max(h / 24.0, 3.0)
        windows = ((xx % np.float32(pw)) < pw * 0.5) & ((yy % np.float32(ph)) < ph * 0.45) & (v == _ID["building"])
        shade[windows] *= 0.72
        # Soft light: a coarse random field, smoothly interpolated.
        shade *= 1 + 0.08 * _smooth_noise(rng, w, h, 48)
        shade *= np.float32(rng.uniform(0.85, 1.1))
        # Texture at a few pixels' scale, then per-pixel sensor noise.
        tex = _smooth_noise(rng, w, h, 3) * texture[v]
        out = base[v] * shade[..., None]
        out += tex[..., None]
        sigma = np.float32(_NOISE) * noise[v]
        out += rng.standard_normal((h, w, 3), dtype=np.float32) * sigma[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)


def _smooth_noise(rng, w, h, cell):
    """A random field in about [-1, 1] varying over ``cell`` pixels (bilinear upsampling)."""
    gw, gh = max(int(w // cell) + 2, 2), max(int(h // cell) + 2, 2)
    coarse = rng.standard_normal((gh, gw), dtype=np.float32) * np.float32(0.5)
    img = Image.frombytes("F", (gw, gh), coarse.tobytes())
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Frames and files
# --------------------------------------------------------------------------------------------
def _rngs(seed: int, split: str, index: int):
    """Independent generators for the ground truth and the photo of one frame content."""
    ss = np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])
    gt, photo = ss.spawn(2)
    return np.random.default_rng(gt), np.random.default_rng(photo)


def _check_size(size) -> Tuple[int, int]:
    width, height = (int(s) for s in size)
    if width < 32 or height < 16:
        raise ValueError(f"size {size!r}: width and height must be at least 32 and 16")
    return width, height


def make_frame(size: Sequence[int] = (2048, 1024), seed: int = 0, *, split: str = "train",
               index: int = 0, photos: bool = True) -> Dict[str, np.ndarray]:
    """Generate the arrays of one synthetic frame, without writing anything.

    Parameters
    ----------
    size : (int, int)
        Width and height in pixels.
    seed, split, index : int, str, int
        Which content: :func:`generate` uses ``index`` = the content's position in its split.
    photos : bool
        Also render the photo.

    Returns
    -------
    dict
        ``instanceIds`` (uint16), ``labelIds`` (uint8), ``color`` (uint8, H x W x 4) and, when
        ``photos``, ``image`` (uint8, H x W x 3).
    """
    width, height = _check_size(size)
    gt_rng, photo_rng = _rngs(seed, split, index)
    scene = _Scene(gt_rng, width, height)
    scene.draw_stuff()
    scene.draw_things()
    scene.draw_void_border()
    scene.fix()
    inst = scene.canvas
    label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    color = np.empty((height, width, 4), dtype=np.uint8)
    color[..., :3] = _COLORS[label]
    color[..., 3] = 255
    out = {"instanceIds": inst, "labelIds": label, "color": color}
    if photos:
        out["image"] = scene.photo(photo_rng)
    return out


def _png(array: np.ndarray) -> bytes:
    return png.encode_png(array, compress_level=_PNG_LEVEL)


def _encode(arrays: Mapping[str, np.ndarray]) -> Dict[str, bytes]:
    return {kind: _png(a) for kind, a in arrays.items()}


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


def generate(url: str, *, splits: Optional[Mapping[str, int]] = None, frames: int = 3,
             cities: Sequence[str] = ("aachen", "bad-honnef"), size: Sequence[int] = (2048, 1024),
             seed: int = 0, photos: bool = True, distinct: Optional[int] = None,
             storage_options: Optional[dict] = None) -> List[str]:
    """Write a synthetic Cityscapes dataset under ``url``.

    Parameters
    ----------
    url : str
        Dataset root: a local path or any fsspec URL (``s3://bucket/prefix``, ``memory://x``).
    splits : dict of str to int, optional
        Number of frames per split, e.g. ``{"train": 4, "val": 2}``; default ``{"train": frames}``.
    frames : int
        Number of train frames when ``splits`` is not given.
    cities : sequence of str
        Cities the frames of each split are spread over, round-robin.
    size : (int, int)
        Width and height (the real data is 2048 x 1024).
    seed : int
        Non-negative; the same arguments always write byte-identical files.
    photos : bool
        Also write ``leftImg8bit`` photos (about 2 MB each at 2048 x 1024, slow to encode).
    distinct : int, optional
        Generate only this many frame contents per split and write their bytes again, in turn,
        for further frames (under their own names). ``None``: every frame is distinct.
    storage_options : dict, optional
        Passed to ``fsspec.core.url_to_fs``.

    Returns
    -------
    list of str
        The frame ids written, split by split (``aachen/aachen_000000_000019``, ...). Ids are
        unique over the whole dataset: sequence numbers go on growing from one split to the next.
    """
    if splits is None:
        splits = {"train": frames}
    if not cities:
        raise ValueError("cities: at least one city is needed")
    for city in cities:
        if "/" in names.safe_relpath(city):
            raise ValueError(f"city {city!r}: must be a single folder name")
    if distinct is not None and int(distinct) < 1:
        raise ValueError(f"distinct={distinct!r}: must be a positive number or None")
    size = _check_size(size)
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    made = set()

    def write(rel: str, data: bytes):
        path = f"{root}/{rel}" if root else rel
        folder = posixpath.dirname(path)
        if folder not in made:
            fs.makedirs(folder, exist_ok=True)
            made.add(folder)
        fs.pipe_file(path, data)

    written: List[str] = []
    for split, ids in _frame_ids(splits, list(cities)).items():
        cache: Dict[int, Dict[str, bytes]] = {}
        for j, frame_id in enumerate(ids):
            k = j if distinct is None else j % int(distinct)
            files = cache.get(k)
            if files is None:
                files = _encode(make_frame(size, seed, split=split, index=k, photos=photos))
                if distinct is not None:
                    cache[k] = files
            for kind in ("instanceIds", "labelIds", "color"):
                write(names.gt_path(split, frame_id, kind), files[kind])
            if photos:
                write(names.image_path(split, frame_id, ".png"), files["image"])
            written.append(frame_id)
    return written
