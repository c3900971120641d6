"""The adapters of cityscapes_io.metrics: the torchmetrics metrics inside a loop over a
DataLoader of cityscapes_io.torch (update, forward, reset, batches of every form), and the
detectron2-style evaluators fed detectron2-shaped dicts (no detectron2 here); all give
evaluate()'s numbers on the same predictions written as files."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the adapters need PyTorch (extra torch)")
pytest.importorskip("torchmetrics", reason="the torchmetrics adapter needs the extra torchmetrics")

import cityscapes_io as cio  # noqa: E402
from cityscapes_io.evaluation.instance import INSTANCE_LABELS  # noqa: E402
from cityscapes_io.labels import LabelMap  # noqa: E402
from cityscapes_io.metrics.detectron2 import (CityscapesInstanceEvaluator, CityscapesPanopticEvaluator,  # noqa: E402
                                              CityscapesSemSegEvaluator)
from cityscapes_io.metrics.torchmetrics import CityscapesInstance, CityscapesPanoptic, CityscapesSemantic  # noqa: E402
from cityscapes_io.torch import CityscapesDataset, collate  # noqa: E402
from test_metrics import build, same  # noqa: E402

_TRAIN_ID = {lab.id: lab.train_id for lab in LabelMap.cityscapes() if lab.id >= 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build(str(tmp_path_factory.mktemp("adapters")), frames=6, seed=5)


@pytest.fixture(scope="module")
def expected(data):
    return {task: data.evaluate(task) for task in ("semantic", "train", "instance", "panoptic")}


def _loader(data, batch_size=4):
    ds = CityscapesDataset(data.root, split="val", targets=("instance_ids",))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                       generator=torch.Generator().manual_seed(0))


# -- torchmetrics ---------------------------------------------------------------------------------------
def test_torchmetrics_semantic_in_a_loop(data, expected):
    metric = CityscapesSemantic(ids="train")
    for batch in _loader(data):  # batch: {"id": [...], "split": [...], "instance_ids": B×H×W uint16}
        logits = torch.stack([torch.nn.functional.one_hot(torch.from_numpy(data.train[f]), 19).permute(2, 0, 1)
                              for f in batch["id"]]).float()  # what a model gives: B×19×H×W
        metric.update(logits.argmax(dim=1), batch)
    same(metric.compute(), expected["train"])
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):  # torchmetrics' own warning
        assert metric.compute().frames == 0


def test_torchmetrics_forward_gives_the_batch_and_keeps_the_total(data, expected):
    metric = CityscapesSemantic()
    seen = 0
    for batch in _loader(data, batch_size=4):
        preds = torch.stack([torch.from_numpy(data.semantic[f]) for f in batch["id"]])
        batch_result = metric(preds, batch)
        seen += len(batch["id"])
        assert batch_result.frames == len(batch["id"])
    assert seen == len(data.ids)
    same(metric.compute(), expected["semantic"])


def test_torchmetrics_instance_and_panoptic_with_frames_and_tensors(data, expected):
    inst, pan = CityscapesInstance(), CityscapesPanoptic()
    gt = cio.open(data.root, split="val")
    ids = list(reversed(data.ids))
    for k in range(0, len(ids), 2):
        batch = ids[k:k + 2]
        preds = [{"masks": torch.from_numpy(data.instance[f]["masks"])[:, None].float(),
                  "labels": torch.from_numpy(data.instance[f]["labels"]),
                  "scores": torch.from_numpy(data.instance[f]["scores"])} for f in batch]
        inst.update(preds, [gt[f] for f in batch])  # torchvision's output, Frames as targets
        targets = torch.stack([torch.from_numpy(data.gt[f].astype(np.int32)) for f in batch])
        pan.update([data.panoptic[f] for f in batch], targets, ids=batch)  # B×H×W instanceIds with ids=
    same(inst.compute(), expected["instance"])
    same(pan.compute(), expected["panoptic"])


def test_torchmetrics_refuses_unclear_batches(data):
    metric = CityscapesSemantic()
    fid = data.ids[0]
    preds = torch.from_numpy(data.semantic[fid])[None]
    with pytest.raises(TypeError, match="ids"):
        metric.update(preds, torch.from_numpy(data.gt[fid].astype(np.int32))[None])
    with pytest.raises(ValueError, match="1 predictions and 2 targets"):
        metric.update(preds, [(fid, data.gt[fid]), (data.ids[1], data.gt[data.ids[1]])])
    metric.update(preds, [(fid, data.gt[fid])])
    metric.update(preds, [(fid, data.gt[fid])])  # counted twice: found when the batches are merged
    with pytest.raises(ValueError, match="counted twice"):
        metric.compute()


# -- detectron2-style -----------------------------------------------------------------------------------
def _inputs(fid):
    return {"file_name": f"/datasets/cityscapes/leftImg8bit/val/{fid}_leftImg8bit.png", "image_id": 7,
            "height": 64, "width": 128}


class _Instances:
    """What a detectron2 ``Instances`` offers the evaluator: fields as attributes."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_detectron2_semantic_evaluator(data, expected):
    evaluator = CityscapesSemSegEvaluator(cio.open(data.root, split="val"))
    evaluator.reset()
    for k in range(0, len(data.ids), 3):
        batch = data.ids[k:k + 3]
        outputs = [{"sem_seg": torch.nn.functional.one_hot(torch.from_numpy(data.train[f]), 19).permute(2, 0, 1)
                    .float() * 3.0} for f in batch]
        evaluator.process([_inputs(f) for f in batch], outputs)
    got = evaluator.evaluate()
    want = expected["train"]
    assert got == {"sem_seg": {"IoU": 100 * want.average_classes, "iIoU": 100 * want.average_inst_classes,
                               "IoU_sup": 100 * want.average_categories,
                               "iIoU_sup": 100 * want.average_inst_categories}}
    same(evaluator.result, want)
    evaluator.reset()  # detectron2 resets before each inference: nothing is left
    assert evaluator.result is None and len(evaluator.metric) == 0


def test_detectron2_instance_evaluator(data, expected):
    evaluator = CityscapesInstanceEvaluator(cio.open(data.root, split="val"))
    evaluator.reset()
    for fid in data.ids:
        p = data.instance[fid]
        # detectron2's thing classes only: predictions of other labels are skipped by the official too.
        keep = np.isin(p["labels"], [cio.LabelMap.cityscapes()[n].id for n in INSTANCE_LABELS])
        classes = [INSTANCE_LABELS.index(cio.LabelMap.cityscapes()[int(label)].name) for label in p["labels"][keep]]
        instances = _Instances(pred_masks=torch.from_numpy(p["masks"][keep]), pred_classes=torch.tensor(classes),
                               scores=torch.from_numpy(p["scores"][keep]).float(), pred_boxes=None)
        evaluator.process([_inputs(fid)], [{"instances": instances}])
    got = evaluator.evaluate()
    want = expected["instance"]
    assert got == {"segm": {"AP": 100 * want.ap, "AP50": 100 * want.ap50}}
    same(evaluator.result, want)


@pytest.mark.parametrize("form", ["segments_info", "label_divisor"])
def test_detectron2_panoptic_evaluator(data, expected, form):
    evaluator = CityscapesPanopticEvaluator(cio.open(data.root, split="val"))
    evaluator.reset()
    for fid in data.ids:
        q = data.panoptic[fid]
        if form == "segments_info":  # category ids: train ids, as detectron2's Cityscapes metadata has them
            info = [{"id": s["id"], "category_id": _TRAIN_ID[s["category_id"]], "isthing": True}
                    for s in q["segments"]]
            output = (torch.from_numpy(q["ids"]).int(), info)
        else:  # Panoptic-DeepLab: category * label_divisor + instance per pixel, -1 VOID
            pixels = np.full(q["ids"].shape, -1, np.int64)
            for n, s in enumerate(q["segments"]):
                pixels[q["ids"] == s["id"]] = _TRAIN_ID[s["category_id"]] * 1000 + n
            output = (torch.from_numpy(pixels).int(), None)
        evaluator.process([{"file_name": f"{os.path.basename(fid)}_leftImg8bit.png"}], [{"panoptic_seg": output}])
    got = evaluator.evaluate()["panoptic_seg"]
    want = expected["panoptic"]
    assert got["PQ"] == 100 * want.pq and got["SQ_th"] == 100 * want.things["sq"]
    assert got["RQ_st"] == 100 * want.stuff["rq"] and len(got) == 9
    same(evaluator.result, want)


def test_detectron2_evaluator_finds_frames_by_name_only(data):
    evaluator = CityscapesSemSegEvaluator(cio.open(data.root, split="val"))
    fid = data.ids[0]
    scores = torch.zeros((19,) + data.gt[fid].shape)
    evaluator.process([{"image_id": os.path.basename(fid)}], [{"sem_seg": scores}])  # image_id alone
    with pytest.raises(ValueError, match="no frame of the dataset"):
        evaluator.process([{"file_name": "berlin_000000_000019_leftImg8bit.png"}], [{"sem_seg": scores}])
    with pytest.raises(TypeError, match="Dataset"):
        CityscapesSemSegEvaluator(data.root)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not know"):
        CityscapesInstanceEvaluator(cio.open(data.root, split="val"), classes=["person", "bike"])
