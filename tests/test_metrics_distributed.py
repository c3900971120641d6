"""cityscapes_io.metrics across processes: a real two-process ``torch.distributed`` run (gloo,
rendezvous through a file) where each rank counts half the frames, then ``sync()`` and
``compute()`` give evaluate()'s numbers on both ranks; the torchmetrics adapter synced by
torchmetrics itself (a rank with no frame included); the detectron2-style evaluator; a frame
counted on both ranks refused on both."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="torch.distributed needs PyTorch (extra torch)")
pytest.importorskip("torchmetrics", reason="the torchmetrics adapter needs the extra torchmetrics")

from test_metrics import build  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

_WORKER = r"""
import json, os, pickle, sys
sys.path.insert(0, sys.argv[6])
import torch
import torch.distributed as dist
rank, world, init, data_path, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
import cityscapes_io as cio
from cityscapes_io.metrics import InstanceMetric, PanopticMetric, SemanticMetric
from cityscapes_io.metrics.detectron2 import CityscapesSemSegEvaluator
from cityscapes_io.metrics.torchmetrics import CityscapesInstance, CityscapesSemantic

with open(data_path, "rb") as f:
    data = pickle.load(f)
ds = cio.open(data.root, split="val")
mine = data.ids[rank::world]
out = {}
for task, cls in (("semantic", SemanticMetric), ("instance", InstanceMetric), ("panoptic", PanopticMetric)):
    metric = cls()
    for fid in mine:
        metric.update(data.prediction(task, fid), ds[fid])  # the ground truth read from the root
    out[task + ":local"] = len(metric)
    metric.sync()
    out[task] = [json.dumps(metric.compute().to_dict()), str(metric.compute()), len(metric)]
    metric.sync()  # again: it replaces what the first one brought
    out[task + ":again"] = json.dumps(metric.compute().to_dict())

# torchmetrics, synced by torchmetrics at compute(): batches of two frames, targets as (id, array)
tm = CityscapesSemantic()
for k in range(0, len(mine), 2):
    batch = mine[k:k + 2]
    tm.update(torch.stack([torch.from_numpy(data.semantic[f]) for f in batch]), [(f, data.gt[f]) for f in batch])
out["tm:semantic"] = json.dumps(tm.compute().to_dict())
# every frame on rank 0, none on rank 1 (torchmetrics sends an empty float tensor for that rank)
tmi = CityscapesInstance()
if rank == 0:
    for fid in data.ids:
        tmi.update([data.instance[fid]], [(fid, data.gt[fid])])
out["tm:instance"] = json.dumps(tmi.compute().to_dict())

# the detectron2-style evaluator: one-hot scores of train ids, inputs named by file
ev = CityscapesSemSegEvaluator(ds)
ev.reset()
for fid in mine:
    scores = torch.nn.functional.one_hot(torch.from_numpy(data.train[fid]), 19).permute(2, 0, 1).float()
    name = f"/data/leftImg8bit/val/{fid}_leftImg8bit.png"
    ev.process([{"file_name": name, "image_id": os.path.basename(fid)}], [{"sem_seg": scores}])
out["d2"] = ev.evaluate()
out["d2:result"] = json.dumps(ev.result.to_dict())

# a frame counted on both ranks: refused on both
dup = SemanticMetric()
dup.update(data.semantic[data.ids[0]], data.gt[data.ids[0]], id=data.ids[0])
try:
    dup.sync()
    out["dup"] = None
except ValueError as exc:
    out["dup"] = str(exc)
dist.barrier()
dist.destroy_process_group()
with open(out_path, "w") as f:
    json.dump(out, f)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The data, evaluate()'s results and what each of the two ranks computed."""
    base = tmp_path_factory.mktemp("distributed")
    data = build(str(base), frames=6, seed=3)
    expected = {task: data.evaluate(task) for task in ("semantic", "instance", "panoptic")}
    expected["train"] = data.evaluate("train")
    data_path = str(base / "data.pkl")
    with open(data_path, "wb") as f:
        pickle.dump(data, f)
    script = base / "worker.py"
    script.write_text(_WORKER)
    init = f"file://{base / 'rendezvous'}"
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), "2", init, data_path,
                               str(base / f"out{rank}.json"), HERE], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for rank in range(2)]
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
    return data, expected, outputs


@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_sync_gives_every_rank_the_numbers_of_evaluate(run, task):
    data, expected, outputs = run
    want = json.dumps(expected[task].to_dict())
    assert [out[task + ":local"] for out in outputs] == [3, 3]  # each rank counted half
    for out in outputs:
        got, table, frames = out[task]
        assert got == want and table == str(expected[task]) and frames == len(data.ids)
        assert out[task + ":again"] == want


def test_torchmetrics_syncs_itself(run):
    _, expected, outputs = run
    for out in outputs:
        assert out["tm:semantic"] == json.dumps(expected["semantic"].to_dict())
        assert out["tm:instance"] == json.dumps(expected["instance"].to_dict())  # rank 1 had no frame


def test_detectron2_style_evaluator_across_ranks(run):
    _, expected, outputs = run
    want = expected["train"]
    for out in outputs:
        assert out["d2:result"] == json.dumps(want.to_dict())
        assert out["d2"] == {"sem_seg": {"IoU": 100 * want.average_classes, "iIoU": 100 * want.average_inst_classes,
                                         "IoU_sup": 100 * want.average_categories,
                                         "iIoU_sup": 100 * want.average_inst_categories}}


def test_a_frame_on_two_ranks_is_refused_on_both(run):
    data, _, outputs = run
    for out in outputs:
        assert out["dup"] is not None and "counted twice" in out["dup"] and os.path.basename(data.ids[0]) in out["dup"]
