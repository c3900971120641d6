"""Issue 18, "Wrong results, silently", as users run the COCO workflows: train ids through the
COCO panoptic writer keep road (train id 0), and COCO instances score AP 1.0 in pycocotools'
COCOeval when the ground truth is its own detections (annotation ids from 1)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.png import decode_rgb
from cityscapes_io.testing import generate


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("wf") / "cs")
    generate(root, splits={"val": 2}, size=(128, 64), seed=1)
    return root


def _segments(png_path: str) -> np.ndarray:
    with open(png_path, "rb") as f:
        rgb = decode_rgb(f.read(), png_path)
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


@pytest.mark.parametrize("how", ["cli", "api"])
def test_coco_panoptic_with_train_ids_keeps_road(tree, tmp_path, how):
    out = str(tmp_path / "pan")
    if how == "cli":  # --train-ids: the frames in train ids (road is 0), then the writer
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["convert", tree, out, "-f", "coco_panoptic", "--train-ids"]) == 0
    else:  # the writer's option: label-id frames, train ids as category ids
        cio.convert(tree, out, format="coco_panoptic", train_ids=True)
    path = os.path.join(out, "annotations", "panoptic_val.json")
    with open(path) as f:
        doc = json.load(f)
    road = next(c["id"] for c in doc["categories"] if c["name"] == "road")
    assert road == (0 if how == "api" else 7)
    gt = {f.id.rsplit("/", 1)[-1]: f for f in cio.open(tree)}
    for ann in doc["annotations"]:
        segs = _segments(os.path.join(out, "annotations", "panoptic_val", ann["file_name"]))
        base = posixpath.basename(ann["file_name"])[:-4]
        road_px = gt[base].label_ids() == 7
        [seg] = [s for s in ann["segments_info"] if s["category_id"] == road]
        assert seg["id"] != 0 and seg["area"] == int(road_px.sum()) > 0
        assert np.array_equal(segs == seg["id"], road_px)  # road's pixels carry its segment id
        assert set(np.unique(segs)) - {0} == {s["id"] for s in ann["segments_info"]}
        # VOID stays VOID: the pixels of the classes ignored in evaluation (unlabeled, ego vehicle ...)
        ignored = np.isin(gt[base].label_ids(), [lab.id for lab in gt[base].labels if lab.ignore_in_eval])
        assert ignored.any() and np.array_equal(segs == 0, ignored)
    if how == "api":
        return
    # Our evaluator on the prediction that is the ground truth itself (image ids as frame base names).
    for ann in doc["annotations"]:
        ann["image_id"] = posixpath.basename(ann["file_name"])[:-4]
    with open(path, "w") as f:
        json.dump(doc, f)
    result = cio.evaluate(tree, path, task="panoptic")
    assert result.per_class[7]["pq"] == 1.0
    assert result.pq == 1.0


def _cocoeval_ap(path: str) -> float:
    """AP (segm) of the ground truth at ``path`` used as its own detections, score 1.0 each."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(path)
        anns = gt.loadAnns(gt.getAnnIds())
        assert anns and 0 not in {a["id"] for a in anns}
        assert sorted(a["id"] for a in anns) == list(range(1, len(anns) + 1))
        dets = gt.loadRes([{"image_id": a["image_id"], "category_id": a["category_id"],
                            "segmentation": a["segmentation"], "score": 1.0} for a in anns if not a["iscrowd"]])
        ev = COCOeval(gt, dets, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_coco_instances_score_ap_1_in_cocoeval(tree, tmp_path):
    pytest.importorskip("pycocotools")
    # Objects only (no crowd region, whose value would come first): the first annotation is a
    # car, which COCOeval left unmatched with id 0 (AP 0.72 here instead of 1.0).
    h, w = 32, 64
    masks = []
    for k, (y, x) in enumerate([(2, 2), (2, 30), (18, 10), (18, 40)]):
        m = np.zeros((h, w), bool)
        m[y:y + 10, x:x + 12 + k] = True
        masks.append(m)
    frames = [cio.Frame.from_arrays(id=f"aachen/aachen_00000{n}_000019", image=np.zeros((h, w, 3), np.uint8),
                                    instances=[cio.Instance.from_mask(m, label_id=26 if k % 2 == 0 else 24, id=k + 1)
                                               for k, m in enumerate(masks[n:])])
              for n in range(2)]
    out = str(tmp_path / "objects")
    cio.Dataset.from_iterable(frames).export(out, "coco_instances")
    [name] = os.listdir(os.path.join(out, "annotations"))
    assert _cocoeval_ap(os.path.join(out, "annotations", name)) == 1.0
    # And a synthetic tree, crowds and all.
    out = str(tmp_path / "coco")
    cio.convert(tree, out, format="coco_instances")
    [name] = os.listdir(os.path.join(out, "annotations"))
    assert _cocoeval_ap(os.path.join(out, "annotations", name)) == 1.0
