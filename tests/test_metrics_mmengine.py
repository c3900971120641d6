"""cityscapes_io.metrics.mmengine: the BaseMetric subclasses fed the data samples mmsegmentation
and mmdetection give (real mmengine data elements: PixelData, InstanceData) through mmengine's
own Evaluator, in batches, give the numbers of evaluate() on the same predictions written as
files; the classes from dataset_meta, mask_scores, ignore_index; a sampler's repeated frames
dropped by mmengine's cut to size; the registry; and a real two-process gloo run (mmengine's
DefaultSampler, five frames so one rank gets a repeated one) with both of mmengine's ways of
collecting the results: all_gather_object (no files) and its shared folder."""
from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="mmengine needs PyTorch (extra torch)")
pytest.importorskip("mmengine", reason="the mmengine adapter needs the extra mmengine: "
                                       "pip install 'cityscapes_io[mmengine]' (mmengine-lite, without OpenCV)")

from mmengine.evaluator import Evaluator  # noqa: E402
from mmengine.registry import METRICS, Registry  # noqa: E402
from mmengine.structures import BaseDataElement, InstanceData, PixelData  # noqa: E402

import cityscapes_io as cio  # noqa: E402
from cityscapes_io.evaluation.instance import INSTANCE_LABELS  # noqa: E402
from cityscapes_io.metrics.mmengine import (PANOPTIC_CLASSES, CityscapesInstanceMetric,  # noqa: E402
                                            CityscapesPanopticMetric, CityscapesSemanticMetric)
from test_metrics import build, same  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_NAME = {lab.id: lab.name for lab in cio.LabelMap.cityscapes() if lab.id >= 0}


# -- data samples as mmsegmentation / mmdetection make them ------------------------------------------------
def _instances(pred, classes, mask_scores):
    """mmdetection's pred_instances: masks N×H×W bool, labels indices into ``classes``, scores;
    predictions of classes an instance model does not give (caravan, road) left out."""
    keep = [k for k, label in enumerate(pred["labels"]) if _NAME[int(label)] in INSTANCE_LABELS]
    labels = [classes.index(_NAME[int(pred["labels"][k])]) for k in keep]
    scores = torch.from_numpy(pred["scores"][keep]).float()
    fields = {"masks": torch.from_numpy(pred["masks"][keep]), "labels": torch.tensor(labels, dtype=torch.long),
              "bboxes": torch.zeros((len(keep), 4))}
    if mask_scores:  # detectors with their own mask scores: those count, as in mmdet's CityScapesMetric
        fields.update(scores=torch.rand(len(keep)), mask_scores=scores)
    else:
        fields.update(scores=scores)
    return InstanceData(**fields)


def _panoptic(pan, classes, ignore_index):
    """mmdetection's pred_panoptic_seg: label + instance * 1000 per pixel (stuff: instance 0 for
    its first segment), VOID as len(classes) or as ``ignore_index``."""
    n = len(classes)
    out = np.full(pan["ids"].shape, n if ignore_index is None else ignore_index, np.int64)
    instance, stuff_seen = 0, set()
    for seg in pan["segments"]:
        name = _NAME[seg["category_id"]]
        label = classes.index(name)
        if name in INSTANCE_LABELS or label in stuff_seen:
            instance += 1
            value = label + instance * 1000
        else:
            value = label
            stuff_seen.add(label)
        out[pan["ids"] == seg["id"]] = value
    meta = {} if ignore_index is None else {"ignore_index": ignore_index}
    return PixelData(metainfo=meta, sem_seg=torch.from_numpy(out).int()[None])


def samples(data, fids, *, classes=PANOPTIC_CLASSES, mask_scores=False, ignore_index=None):
    """One data sample per frame (an mmengine data element, as a model's test_step returns):
    mmseg's pred_sem_seg (train ids) and paths, mmdet's pred_instances and pred_panoptic_seg."""
    out = []
    for fid in fids:
        city, name = fid.split("/")
        meta = {"img_path": f"data/cityscapes/leftImg8bit/val/{city}/{name}_leftImg8bit.png",
                "seg_map_path": f"data/cityscapes/gtFine/val/{city}/{name}_gtFine_labelTrainIds.png",
                "ori_shape": data.train[fid].shape}
        out.append(BaseDataElement(
            metainfo=meta, pred_sem_seg=PixelData(data=torch.from_numpy(data.train[fid])[None]),
            pred_instances=_instances(data.instance[fid], list(classes), mask_scores),
            pred_panoptic_seg=_panoptic(data.panoptic[fid], list(classes), ignore_index)))
    return out


def metrics(dataset, **kwargs):
    return [CityscapesSemanticMetric(dataset, **kwargs), CityscapesInstanceMetric(dataset, **kwargs),
            CityscapesPanopticMetric(dataset, **kwargs)]


def expected_numbers(expected):
    sem, inst, pan = expected["train"], expected["instance"], expected["panoptic"]
    out = {"cityscapes/mIoU": 100 * sem.average_classes, "cityscapes/iIoU": 100 * sem.average_inst_classes,
           "cityscapes/mIoU_categories": 100 * sem.average_categories,
           "cityscapes/iIoU_categories": 100 * sem.average_inst_categories,
           "cityscapes/mAP": inst.ap, "cityscapes/AP@50": inst.ap50}
    for suffix, scores in (("", pan.all), ("_th", pan.things), ("_st", pan.stuff)):
        out.update({f"cityscapes/{k.upper()}{suffix}": 100 * scores[k] for k in ("pq", "sq", "rq")})
    return out


def _json(numbers):
    return json.dumps({k: float(v) for k, v in numbers.items()}, sort_keys=True)


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build(str(tmp_path_factory.mktemp("mmengine")), frames=5, seed=11)


@pytest.fixture(scope="module")
def expected(data):
    out = {task: data.evaluate(task) for task in ("train", "instance", "panoptic")}
    # The data scores something, not all or nothing.
    assert 0.2 < out["train"].average_classes < 0.95 and 0.05 < out["instance"].ap < 0.95
    assert 0.1 < out["panoptic"].pq < 0.9
    return out


# -- one process ----------------------------------------------------------------------------------------
def test_evaluator_in_batches_equals_evaluate(data, expected):
    sem, inst, pan = metrics(cio.open(data.root, split="val"))
    evaluator = Evaluator([sem, inst, pan])
    order = list(data.ids)
    random.Random(4).shuffle(order)
    for k in range(0, len(order), 2):
        evaluator.process(samples(data, order[k:k + 2]), data_batch={"inputs": None})
    assert len(sem.results) == len(order) and all(isinstance(r, bytes) for r in sem.results)
    assert max(len(r) for r in sem.results) < 4000  # a frame's statistics, not its pixels
    got = evaluator.evaluate(len(order))
    assert _json(got) == _json(expected_numbers(expected))
    assert 20 < got["cityscapes/mIoU"] < 95 and 0.05 < got["cityscapes/mAP"] < 0.95
    same(sem.result, expected["train"])
    same(inst.result, expected["instance"])
    same(pan.result, expected["panoptic"])
    assert sem.results == [] and sem.collect_device == "gpu"  # mmengine clears the results after evaluate


def test_classes_from_dataset_meta_mask_scores_and_ignore_index(data, expected):
    classes = list(PANOPTIC_CLASSES)
    random.Random(7).shuffle(classes)
    evaluator = Evaluator(metrics(cio.open(data.root, split="val"), prefix="cs"))
    evaluator.dataset_meta = {"classes": tuple(classes)}  # what the runner does with the dataset's metainfo
    evaluator.process(samples(data, data.ids[:2], classes=classes, mask_scores=True))
    evaluator.process(samples(data, data.ids[2:], classes=classes, mask_scores=True, ignore_index=255))
    got = evaluator.evaluate(len(data.ids))
    want = {k.replace("cityscapes/", "cs/"): v for k, v in expected_numbers(expected).items()}
    assert _json(got) == _json(want)


def test_classes_given_and_data_samples_as_dicts(data, expected):
    classes = list(reversed(INSTANCE_LABELS)) + list(PANOPTIC_CLASSES[len(INSTANCE_LABELS):])
    metric = CityscapesInstanceMetric(cio.open(data.root, split="val"), classes=classes)
    metric.dataset_meta = {"classes": ("road",)}  # the argument wins
    metric.process(None, [s.to_dict() for s in samples(data, data.ids, classes=classes)])
    got = metric.evaluate(len(data.ids))
    assert got == {"cityscapes/mAP": expected["instance"].ap, "cityscapes/AP@50": expected["instance"].ap50}


def test_a_repeated_frame_is_cut_by_size_as_mmengine_cuts_padding(data, expected):
    metric = CityscapesSemanticMetric(cio.open(data.root, split="val"))
    evaluator = Evaluator(metric)
    # A sampler evening out the ranks' shares repeats the first frames after the last ones.
    evaluator.process(samples(data, data.ids + data.ids[:1]))
    got = evaluator.evaluate(len(data.ids))  # the results cut to the dataset's size
    assert got["cityscapes/mIoU"] == 100 * expected["train"].average_classes
    evaluator.process(samples(data, data.ids + data.ids[:1]))
    with pytest.raises(ValueError, match="counted twice"):
        evaluator.evaluate(len(data.ids) + 1)  # not cut: the frame is counted twice


def test_registered_and_built_from_a_config(data, expected):
    assert METRICS.get("CityscapesPanopticMetric") is CityscapesPanopticMetric
    child = Registry("metric", parent=METRICS, scope="child_scope")  # as mmseg's and mmdet's registries are
    metric = child.build({"type": "CityscapesSemanticMetric", "dataset": data.root, "split": "val"})
    assert type(metric) is CityscapesSemanticMetric
    evaluator = Evaluator([{"type": "CityscapesSemanticMetric", "dataset": data.root, "ids": "train",
                            "collect_dir": "unused"}])
    assert evaluator.metrics[0].collect_device == "cpu"  # collect_dir: mmengine's folder collection
    evaluator.process(samples(data, data.ids))
    assert evaluator.evaluate(len(data.ids))["cityscapes/iIoU"] == 100 * expected["train"].average_inst_classes


def test_refusals(data):
    ds = cio.open(data.root, split="val")
    one = samples(data, data.ids[:1])
    with pytest.raises(TypeError, match="Dataset"):
        CityscapesSemanticMetric(42)
    with pytest.raises(TypeError, match="split"):
        CityscapesSemanticMetric(ds, split="val")
    with pytest.raises(ValueError, match="does not know"):
        CityscapesInstanceMetric(ds, classes=["person", "bike"])
    nameless = one[0].to_dict()
    nameless["img_path"] = nameless["seg_map_path"] = "data/berlin_000000_000019_leftImg8bit.png"
    with pytest.raises(ValueError, match="no frame of the dataset"):
        CityscapesSemanticMetric(ds).process(None, [nameless])
    inst = CityscapesInstanceMetric(ds, classes=["person"])
    with pytest.raises(ValueError, match="outside 0..0"):
        inst.process(None, one)  # labels index 8 classes
    pan = CityscapesPanopticMetric(ds, classes=INSTANCE_LABELS)
    with pytest.raises(ValueError, match="outside 0..8"):
        pan.process(None, one)  # stuff labels 8..18 with 8 classes
    sem = CityscapesSemanticMetric(ds)
    bad = one[0].to_dict()
    bad["pred_sem_seg"] = {"data": torch.zeros((1, 3, 3), dtype=torch.long)}
    with pytest.raises(cio.CityscapesIOError):
        sem.process(None, [bad])  # not the frame's size: refused as evaluate() refuses it
    assert sem.results == []


# -- two processes --------------------------------------------------------------------------------------
_WORKER = r"""
import json, os, pickle, sys
sys.path.insert(0, sys.argv[6])
import torch.distributed as dist
rank, world, init, data_path, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
import cityscapes_io as cio
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import Evaluator
from test_metrics_mmengine import metrics, samples

with open(data_path, "rb") as f:
    data = pickle.load(f)
ds = cio.open(data.root, split="val")
mine = [data.ids[i] for i in DefaultSampler(list(range(len(data.ids))), shuffle=False)]
out = {"mine": mine}
for device in ("gpu", "cpu"):  # all_gather_object first, then mmengine's shared folder
    evaluator = Evaluator(metrics(ds, collect_device=device))
    for k in range(0, len(mine), 2):
        evaluator.process(samples(data, mine[k:k + 2]))
    out[device] = {k: float(v) for k, v in evaluator.evaluate(len(data.ids)).items()}
    dist.barrier()
    out[device + ":folder"] = os.path.isdir(".dist_test")
dist.destroy_process_group()
with open(out_path, "w") as f:
    json.dump(out, f)
"""


@pytest.fixture(scope="module")
def ranks(data, tmp_path_factory):
    """What each of two gloo ranks got from evaluate()."""
    base = tmp_path_factory.mktemp("mmengine_dist")
    data_path = str(base / "data.pkl")
    with open(data_path, "wb") as f:
        pickle.dump(data, f)
    script = base / "worker.py"
    script.write_text(_WORKER)
    work = base / "work"
    work.mkdir()
    init = f"file://{base / 'rendezvous'}"
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), "2", init, data_path,
                               str(base / f"out{rank}.json"), HERE], cwd=str(work),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in range(2)]
    outputs = []
    for rank, proc in enumerate(procs):
        try:
            _, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, f"rank {rank}:\n{err.decode()[-3000:]}"
        with open(base / f"out{rank}.json") as f:
            outputs.append(json.load(f))
    return outputs


def test_two_gloo_ranks_give_evaluate_numbers_on_both(data, expected, ranks):
    want = _json(expected_numbers(expected))
    ids = data.ids
    assert [out["mine"] for out in ranks] == [ids[0::2], ids[1::2] + ids[:1]]  # rank 1 repeats the first frame
    for out in ranks:
        assert _json(out["gpu"]) == want and _json(out["cpu"]) == want


def test_collection_by_objects_writes_no_folder_and_by_cpu_does(ranks):
    assert [out["gpu:folder"] for out in ranks] == [False, False]  # all_gather_object over gloo: no files
    assert [out["cpu:folder"] for out in ranks] == [True, True]  # mmengine's ./.dist_test, left behind
