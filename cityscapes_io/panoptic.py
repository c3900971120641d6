"""COCO panoptic encoding of Cityscapes frames, by the rules of the official
``csCreatePanopticImgs`` (cityscapesScripts 2.3.0, ``preparation/createPanopticImgs.py``).

- Categories: the labels not ignored in evaluation, in table order,
  ``{id, name, color, supercategory, isthing}`` (``id`` the train id with ``train_ids``).
- One segment per distinct ``instanceIds`` value ``v`` (in increasing order): class ``v // 1000``
  (``v`` itself below 1000), left out when the class is ignored in evaluation; ``id`` is ``v``;
  ``iscrowd`` is 1 only for a value below 1000 of a class that has instances; ``area`` and
  ``bbox`` ``[x, y, w, h]`` of its pixels.
- The PNG is RGB ``[v % 256, v // 256, v // 65536]`` on the segments kept, 0 elsewhere.
- 0 is VOID in COCO panoptic: a value 0 of an evaluated official class (road, in a frame in
  train ids) is a segment like any other, its ``id`` the largest 16-bit value the frame does
  not use (65535 but for a frame that has it); a value 0 of a custom label stays ``id`` 0,
  which writers leave out (VOID, as Datumaro's ``background``).

Nothing here reads or writes files: :func:`cityscapes_io.prepare` (``kinds=("panoptic",)``)
writes the official layout with it.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from .frame import Frame
from .labels import Label, LabelMap, has_instances, official_label, train_id_of

__all__ = ["panoptic_categories", "panoptic_frame", "panoptic_names", "PANOPTIC_SUFFIX"]

#: What replaces ``_instanceIds.png`` in the name of a frame's panoptic PNG.
PANOPTIC_SUFFIX = "_panoptic.png"


def _reference(label: Label) -> Label:
    """The official label of a label's name (which says its id, train id, whether it has
    instances and is evaluated), or the label itself for a custom one."""
    ref = official_label(label.name)
    return ref if ref is not None else label


def panoptic_categories(labels: LabelMap, train_ids: bool = False) -> List[dict]:
    """The ``categories`` of the panoptic JSON: the labels evaluated, in table order."""
    out = []
    for lab in labels:
        ref = _reference(lab)
        if ref.ignore_in_eval or lab.id < 0:
            continue
        color = list(ref.color if ref.color is not None else (lab.color or (0, 0, 0)))
        out.append({"id": int(train_id_of(ref) if train_ids else ref.id), "name": ref.name, "color": color,
                    "supercategory": ref.category if ref.category is not None else "",
                    "isthing": 1 if has_instances(ref, False) else 0})
    return out


def panoptic_names(frame: Frame, tree: str = "gtFine") -> Tuple[str, str, str]:
    """``(image id, image file_name, panoptic file_name)`` of a frame, as the official script
    names them: the frame's base name, ``<base>_<tree>_leftImg8bit.png`` (sic: the official
    file names keep the tree) and ``<base>_<tree>_panoptic.png``."""
    base = frame.id.rsplit("/", 1)[-1]
    return base, f"{base}_{tree}_leftImg8bit.png", f"{base}_{tree}{PANOPTIC_SUFFIX}"


def panoptic_frame(frame: Frame, train_ids: bool = False,
                   tree: str = "gtFine") -> Optional[Tuple[np.ndarray, dict, dict]]:
    """``(PNG pixels H×W×3 uint8, image record, annotation record)`` of one frame, or None
    without ground truth. The records are the JSON's ``images`` and ``annotations`` entries."""
    ids = frame.instance_ids()
    if ids is None:
        return None
    h, w = ids.shape
    keep: np.ndarray = np.zeros(65536, dtype=bool)
    segments: List[dict] = []
    cache: Dict[int, Tuple[Label, bool]] = {}
    instances = frame.instances()  # sorted by value, areas and boxes from one pass
    zero_id = 0
    for inst in instances:
        assert inst.label is not None
        entry = cache.get(inst.label_id)
        if entry is None:
            ref = _reference(inst.label)
            entry = cache[inst.label_id] = (ref, bool(ref.ignore_in_eval) or inst.label.id < 0)
        ref, ignored = entry
        if ignored:
            continue
        keep[inst.value] = True
        segment_id = int(inst.value)
        if segment_id == 0 and ref is not inst.label:
            # Value 0 of an evaluated official class (road in train ids): 0 is VOID in COCO
            # panoptic, so its segment takes the largest 16-bit value the frame does not use.
            used = {int(i.value) for i in instances}
            zero_id = segment_id = next(v for v in range(65535, 0, -1) if v not in used)
        x, y, bw, bh = inst.bbox
        segments.append({"id": segment_id,
                         "category_id": int(train_id_of(ref) if train_ids else ref.id),
                         "area": int(inst.area),
                         "bbox": [int(x), int(y), int(bw), int(bh)],
                         "iscrowd": 1 if inst.is_crowd and has_instances(ref, False) else 0})
    # The colour [v % 256, v // 256, v // 65536] of a 16-bit value is its two bytes, low first,
    # and 0: the kept values through one lookup, then their bytes.
    lut = np.where(keep, np.arange(65536, dtype=np.uint32), 0).astype("<u2")
    lut[0] = zero_id
    values = lut[ids]
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[..., :2] = values.view(np.uint8).reshape(h, w, 2)
    image_id, image_file, panoptic_file = panoptic_names(frame, tree)
    image = {"id": image_id, "width": int(w), "height": int(h), "file_name": image_file}
    annotation = {"image_id": image_id, "file_name": panoptic_file, "segments_info": segments}
    return pixels, image, annotation
