"""A picture of a frame's annotations, for a person to look at.

:func:`render` blends every segment's label colour over the photo, gives each instance of a class
its own lightness and a bright outline (so that touching cars stay apart), hatches crowd regions
and draws their outline dashed, and appends a legend panel (label colour, name, counts) under a
title line with the frame's split and id. :func:`save` writes that picture to a PNG file.

Masks are handled within each segment's bounding box (``Instance.mask_crop``); no full-frame mask
is built per segment, and the photo is blended once.

>>> import cityscapes_io
>>> from cityscapes_io import show
>>> frame = next(iter(cityscapes_io.open(cityscapes_io.sample_path())))
>>> show.render(frame).shape  # doctest: +SKIP
(339, 504, 3)
>>> show.save(frame, "frame.png", max_width=1600)  # doctest: +SKIP
"""
from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import png

__all__ = ["render", "save"]

Color = Tuple[int, int, int]

#: Canvas colour when the frame has no photo.
NO_PHOTO_GRAY: Color = (48, 48, 48)
_PANEL_BG: Color = (28, 28, 30)
_TITLE_BG: Color = (12, 12, 14)
_TEXT: Color = (235, 235, 235)
_TEXT_DIM: Color = (150, 150, 155)
_SWATCH_BORDER: Color = (200, 200, 200)

_GOLDEN = 0.6180339887498949


# -- colours -------------------------------------------------------------------------------------
def _is_void(color: Optional[Sequence[int]]) -> bool:
    return color is None or tuple(color) == (0, 0, 0)


def _hls_rgb(h: float, l: float, s: float) -> Color:
    r, g, b = colorsys.hls_to_rgb(h, min(max(l, 0.0), 1.0), s)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def instance_colors(color: Sequence[int], number: Optional[int]) -> Tuple[Color, Color]:
    """``(fill, outline)`` of one segment of a label coloured ``color``.

    Instance ``number`` shifts the lightness of the label colour (by at most ±0.18, instance 0
    keeps the label colour; consecutive numbers differ by a golden-ratio step, so neighbours
    rarely look alike); ``None`` (stuff, crowds) keeps it. The outline is a contrasting shade: much
    lighter for dark colours, darker for light ones.
    """
    h, l, s = colorsys.rgb_to_hls(*(c / 255.0 for c in color))
    if number is not None:
        l = min(max(l + (((number * _GOLDEN) + 0.5) % 1.0 - 0.5) * 0.36, 0.12), 0.82)
    fill = _hls_rgb(h, l, s) if number is not None else tuple(int(c) for c in color)
    outline = _hls_rgb(h, l + 0.34 if l < 0.5 else l - 0.4, s)
    if outline == fill:  # pragma: no cover - cannot happen with the shifts above
        outline = (255, 255, 255)
    return fill, outline  # type: ignore[return-value]


# -- per-label statistics --------------------------------------------------------------------------
@dataclass
class _Row:
    label_id: int
    name: str
    color: Optional[Color]
    instances: int = 0
    crowds: int = 0
    area: int = 0
    thing: bool = False

    @property
    def void(self) -> bool:
        return _is_void(self.color)

    def counts(self) -> str:
        """``x7 + 1 crowd``, ``x3``, ``1 crowd``; ``not drawn`` for void labels; empty for stuff."""
        if self.void:
            return "not drawn"
        if not self.thing:
            return ""
        if self.instances and self.crowds:
            return f"x{self.instances} + {self.crowds} crowd"
        if self.instances:
            return f"x{self.instances}"
        return f"{self.crowds} crowd"

    def share(self, total: int) -> str:
        pct = 100.0 * self.area / total if total else 0.0
        return f"{pct:.1f}%" if pct >= 0.1 else "<0.1%"


def _rows(instances) -> Tuple[List[_Row], Dict[int, bool]]:
    """One legend row per label present, and for each label whether it is a class with
    instances (its whole-class regions are then crowds, drawn hatched)."""
    rows: Dict[int, _Row] = {}
    for inst in instances:
        row = rows.get(inst.label_id)
        if row is None:
            lab = inst.label
            color = tuple(int(c) for c in lab.color) if lab is not None and lab.color is not None else None
            name = lab.name if lab is not None else f"label {inst.label_id}"
            row = rows[inst.label_id] = _Row(inst.label_id, name, color,  # type: ignore[arg-type]
                                             thing=bool(lab is not None and lab.has_instances))
        row.area += int(inst.area)
        if inst.is_crowd or inst.id is None:
            row.crowds += 1
        else:
            row.instances += 1
            row.thing = True
    for row in rows.values():
        if not row.thing:
            row.crowds = 0
    ordered = sorted(rows.values(), key=lambda r: (r.void, not r.thing, r.label_id))
    return ordered, {r.label_id: r.thing for r in ordered}


# -- the annotated photo ---------------------------------------------------------------------------
def _edges(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels of ``mask`` within ``thickness`` pixels (4-neighbourhood) of its outside; the
    outside of the crop counts as outside (the crop is the segment's tight box)."""
    inner = mask
    for _ in range(thickness):
        if not inner.any():
            break
        e = inner.copy()
        e[1:, :] &= inner[:-1, :]
        e[:-1, :] &= inner[1:, :]
        e[:, 1:] &= inner[:, :-1]
        e[:, :-1] &= inner[:, 1:]
        e[0, :] = False
        e[-1, :] = False
        e[:, 0] = False
        e[:, -1] = False
        inner = e
    return mask & ~inner


def _annotate(image: np.ndarray, instances, things: Dict[int, bool], *, alpha: float, outline: bool,
              thickness: int, period: int) -> np.ndarray:
    """Blend the segments over ``image`` (H×W×3 uint8) and draw the outlines."""
    H, W = image.shape[:2]
    overlay = np.zeros((H, W, 3), dtype=np.uint8)
    weight = np.zeros((H, W), dtype=np.float32)
    strokes = []  # (y, x, h, w, edge mask of the box, colour), drawn after blending
    a_on, a_off = min(1.0, alpha + 0.35), alpha * 0.25
    half = max(1, period // 2)
    for inst in instances:
        lab = inst.label
        color = lab.color if lab is not None else None
        x, y, w, h = (int(v) for v in inst.bbox)
        if _is_void(color) or w <= 0 or h <= 0 or inst.area == 0:
            continue
        # Frames built in memory check their sizes; this guards against a hand-made Instance.
        if x < 0 or y < 0 or x + w > W or y + h > H:
            raise ValueError(f"instance {inst.value} box {inst.bbox} lies outside the {W}x{H} frame")
        thing = things.get(inst.label_id, False)
        crowd = thing and (inst.is_crowd or inst.id is None)
        number = None if crowd or not thing else inst.id
        fill, edge_color = instance_colors(color if color is not None else (0, 0, 0), number)
        m = inst.mask_crop
        ov = overlay[y:y + h, x:x + w]
        wt = weight[y:y + h, x:x + w]
        ov[m] = fill
        if crowd:  # diagonal hatching, in frame coordinates so that stripes line up
            diag = (np.arange(y, y + h, dtype=np.int32)[:, None] + np.arange(x, x + w, dtype=np.int32)[None, :])
            stripes = (diag % period) < half
            wt[m] = np.where(stripes[m], np.float32(a_on), np.float32(a_off))
        else:
            wt[m] = alpha
        if outline and thing:
            edge = _edges(m, thickness)
            if crowd:  # dashed
                anti = (np.arange(y, y + h, dtype=np.int32)[:, None] - np.arange(x, x + w, dtype=np.int32)[None, :])
                edge &= (anti // half) % 2 == 0
            strokes.append((y, x, h, w, edge, edge_color))
    out = image.astype(np.float32)
    out += (overlay.astype(np.float32) - out) * weight[:, :, None]
    np.rint(out, out=out)
    result = out.astype(np.uint8)
    for y, x, h, w, edge, color in strokes:
        result[y:y + h, x:x + w][edge] = color
    return result


# -- text ------------------------------------------------------------------------------------------
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError, AttributeError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _bbox(font, text: str) -> Tuple[float, float, float, float]:
    try:
        return font.getbbox(text)
    except AttributeError:  # pragma: no cover - bitmap fonts of Pillow < 9.2
        w, h = font.getsize(text)
        return 0, 0, w, h


def _text_width(font, text: str) -> int:
    left, _, right, _ = _bbox(font, text)
    return int(math.ceil(right - min(left, 0)))


def _fit(font, text: str, width: int) -> str:
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text + "...") > width:
        text = text[:-1]
    return text + "..."


@dataclass
class _Layout:
    size: int
    font: Any = field(repr=False)  # a Pillow font (FreeType or the bitmap default)
    row_h: int
    pad: int
    swatch: int
    name_w: int
    counts_w: int
    share_w: int
    col_w: int
    title_h: int

    @classmethod
    def make(cls, rows: List[_Row], total: int, size: int) -> "_Layout":
        font = _font(size)
        _, top, _, bottom = _bbox(font, "Agx")
        line = max(int(bottom - min(top, 0)), size)
        pad = max(4, size // 2)
        swatch = line
        name_w = max([_text_width(font, r.name) for r in rows] or [0])
        counts_w = max([_text_width(font, r.counts()) for r in rows] or [0])
        share_w = max([_text_width(font, r.share(total)) for r in rows] or [_text_width(font, "no annotations")])
        col_w = swatch + pad + name_w + 2 * pad + (counts_w + 2 * pad if counts_w else 0) + share_w + 2 * pad
        return cls(size, font, line + pad, pad, swatch, name_w, counts_w, share_w, col_w, line + 2 * pad)

    def columns(self, n_rows: int, height: int, width: int) -> Tuple[int, int]:
        """``(columns, rows per column)`` of a legend beside a photo ``width × height``: as
        many columns as needed to fit the height, but at most 3 and no wider than the photo
        (the picture grows taller beyond that)."""
        fit = max(1, (height - 2 * self.pad) // self.row_h)
        cols = min(3, max(1, width // self.col_w), max(1, math.ceil(n_rows / fit)))
        return cols, max(1, math.ceil(n_rows / cols))

    def panel_width(self, n_rows: int, height: int, width: int) -> int:
        cols, _ = self.columns(n_rows, height, width)
        return cols * self.col_w + self.pad


def _font_size(height: int) -> int:
    return int(min(22, max(11, round(height / 56))))


def _draw_swatch(draw: ImageDraw.ImageDraw, x: int, y: int, s: int, color: Optional[Color]) -> None:
    draw.rectangle([x, y, x + s - 1, y + s - 1], fill=color if color is not None else _PANEL_BG,
                   outline=_SWATCH_BORDER)
    if color is None:  # no colour: a crossed box
        draw.line([x, y + s - 1, x + s - 1, y], fill=_SWATCH_BORDER)


def _legend(rows: List[_Row], total: int, layout: _Layout, cols_rows: Tuple[int, int], height: int,
            width: int) -> Image.Image:
    panel = Image.new("RGB", (width, height), _PANEL_BG)
    draw = ImageDraw.Draw(panel)
    font, pad, s = layout.font, layout.pad, layout.swatch
    if not rows:
        draw.text((pad, pad), "no annotations", font=font, fill=_TEXT_DIM)
        return panel
    _, per_col = cols_rows
    for i, row in enumerate(rows):
        c, r = divmod(i, per_col)
        x0 = pad + c * layout.col_w
        y0 = pad + r * layout.row_h
        _draw_swatch(draw, x0, y0, s, row.color)
        tx = x0 + s + pad
        draw.text((tx, y0), row.name, font=font, fill=_TEXT_DIM if row.void else _TEXT)
        tx += layout.name_w + 2 * pad
        if layout.counts_w:
            draw.text((tx, y0), row.counts(), font=font, fill=_TEXT_DIM if row.void else _TEXT)
            tx += layout.counts_w + 2 * pad
        share = row.share(total)
        draw.text((tx + layout.share_w - _text_width(font, share), y0), share, font=font, fill=_TEXT_DIM)
    return panel


# -- public API ------------------------------------------------------------------------------------
def _ground_truth_shape(frame, instances) -> Optional[Tuple[int, int]]:
    for inst in instances:
        shape = tuple(int(v) for v in inst.shape)
        if shape != (0, 0):
            return shape[0], shape[1]
    size = frame.size()
    return (size[0], size[1]) if size is not None else None


def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if (arr.shape[1], arr.shape[0]) == (width, height):
        return arr
    img = Image.fromarray(arr).resize((max(1, width), max(1, height)), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img)


def render(frame, *, alpha: float = 0.45, outline: bool = True, legend: bool = True,
           max_width: Optional[int] = None) -> np.ndarray:
    """A picture of a frame's annotations over its photo.

    Parameters
    ----------
    frame : Frame
        Its photo (or, without one, a dark gray canvas of the ground truth's size) is the
        background.
    alpha : float
        Opacity of the label colours over the photo (0..1). Crowd regions are hatched: stripes
        at ``alpha + 0.35``, gaps at ``alpha / 4``.
    outline : bool
        Outline the segments of classes with instances (solid for instances, dashed for crowds),
        1-2 pixels wide in the output.
    legend : bool
        Add a title line (split, id, size, counts) above and a legend panel on the right: one row
        per label present, with its colour, name, counts (``car x7 + 1 crowd``) and share of the
        frame. Without it the result has the size of the photo.
    max_width : int, optional
        Largest width of the result; the photo is scaled down (and the text sized) to fit.

    Returns
    -------
    ndarray
        ``H'×W'×3`` uint8 RGB.

    Labels coloured black or without colour (void, unlabeled) are not filled; they are listed in
    the legend as "not drawn".
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be within 0..1, got {alpha!r}")
    if max_width is not None and int(max_width) < 1:
        raise ValueError(f"max_width must be a positive number of pixels, got {max_width!r}")
    alpha = float(alpha)
    instances = list(frame.instances())
    image = frame.image()
    has_photo = image is not None
    gt_shape = _ground_truth_shape(frame, instances) if instances else None
    if image is None:
        if gt_shape is None:
            gt_shape = frame.size()
        if gt_shape is None:
            raise ValueError(f"frame {frame.split}/{frame.id} has neither a photo nor ground truth to show")
        image = np.empty((*gt_shape, 3), dtype=np.uint8)
        image[...] = NO_PHOTO_GRAY
    elif gt_shape is not None and tuple(image.shape[:2]) != tuple(gt_shape):
        raise ValueError(f"frame {frame.split}/{frame.id}: photo is {image.shape[1]}x{image.shape[0]} but the "
                         f"ground truth is {gt_shape[1]}x{gt_shape[0]}")
    H, W = image.shape[:2]
    total = H * W
    rows, things = _rows(instances)

    # Scale of the photo in the result, and the legend's layout at that scale.
    scale = 1.0
    layout = None
    if legend:
        layout = _Layout.make(rows, total, _font_size(H))
        if max_width is not None:
            for _ in range(3):  # the font follows the scale, the scale the legend's width
                avail = int(max_width) - layout.panel_width(len(rows), max(1, int(H * scale)), int(W * scale))
                new = min(1.0, max(avail, 1) / W)
                if abs(new - scale) < 1e-3:
                    break
                scale = new
                layout = _Layout.make(rows, total, _font_size(int(H * scale)))
    elif max_width is not None:
        scale = min(1.0, int(max_width) / W)
    out_w, out_h = max(1, int(round(W * scale))), max(1, int(round(H * scale)))

    # Outlines 1-2 px wide in the result: wider in the frame when it is scaled down.
    if scale < 1.0:
        thickness = int(min(8, max(1, round(1.5 / scale))))
    else:
        thickness = 1 if max(H, W) < 768 else 2
    # Hatching of crowds: about 8 px from stripe to stripe in the result.
    period = max(6, int(round(8 / scale))) if scale < 1.0 else max(6, int(round(max(H, W) / 256)))
    pic = _annotate(image, instances, things, alpha=alpha, outline=outline, thickness=thickness, period=period)
    pic = _resize(pic, out_w, out_h)
    if not legend:
        return pic

    assert layout is not None
    title_h = layout.title_h
    cols, per_col = layout.columns(len(rows), out_h, out_w)
    panel_w = layout.panel_width(len(rows), out_h, out_w)
    body_h = max(out_h, 2 * layout.pad + per_col * layout.row_h)
    canvas = Image.new("RGB", (out_w + panel_w, title_h + body_h), _PANEL_BG)
    canvas.paste(Image.fromarray(pic), (0, title_h))
    canvas.paste(_legend(rows, total, layout, (cols, per_col), body_h, panel_w), (out_w, title_h))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, out_w + panel_w - 1, title_h - 1], fill=_TITLE_BG)
    n_inst = sum(r.instances for r in rows)
    n_crowd = sum(r.crowds for r in rows)
    parts = [f"{frame.split} / {frame.id}", f"{W}x{H}",
             f"{n_inst} instances" + (f", {n_crowd} crowd" if n_crowd else ""),
             f"{len(rows)} labels" if rows else "no annotations"]
    if not has_photo:
        parts.append("no photo")
    title = _fit(layout.font, "   \u00b7   ".join(parts), out_w + panel_w - 2 * layout.pad)
    draw.text((layout.pad, layout.pad), title, font=layout.font, fill=_TEXT)
    result = np.asarray(canvas)
    if max_width is not None and result.shape[1] > int(max_width):  # legend alone wider than asked
        w = int(max_width)
        result = _resize(result, w, max(1, int(round(result.shape[0] * w / result.shape[1]))))
    return result


def save(frame, path: Union[str, "os.PathLike[str]"], **kwargs) -> None:
    """Render ``frame`` (see :func:`render` for the keyword arguments) and write it as a PNG
    file at the local ``path``."""
    data = png.encode_png(render(frame, **kwargs))
    with open(os.fspath(path), "wb") as f:
        f.write(data)
