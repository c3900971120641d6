"""The evaluation task contract (cityscapes_io.evaluation.base): a task registered in TASKS runs
through evaluate and check_predictions; panoptic predictions given as a Dataset."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, List

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.errors import CityscapesIOError
from cityscapes_io.evaluation import TASKS, Matched, Task
from cityscapes_io.evaluation.common import match_dataset
from cityscapes_io.testing import generate


# -- a tiny task: the share of pixels whose predicted label id is the ground truth's ----------------
@dataclass
class AgreementStatistics:
    same: int = 0
    pixels: int = 0
    problems: List[str] = field(default_factory=list)


def agreement_problems(frame: Any, pred: Any) -> List[str]:
    gt, p = frame.label_ids(), pred.label_ids()
    if p is None or p.shape != gt.shape:
        return [f"{pred.id}: no label ids of the ground truth's size"]
    return []


def agreement_statistics(frame: Any, pred: Any) -> AgreementStatistics:
    problems = agreement_problems(frame, pred)
    if problems:
        return AgreementStatistics(problems=problems)
    gt, p = frame.label_ids(), pred.label_ids()
    return AgreementStatistics(int((gt == p).sum()), int(gt.size))


class AgreementResult:
    def __init__(self, same: int, pixels: int):
        self.agreement = same / pixels

    def to_dict(self):
        return {"agreement": self.agreement}

    def __str__(self):
        return f"agreement: {self.agreement:.3f}"


class AgreementTask(Task):
    frame_problems = staticmethod(agreement_problems)
    frame_statistics = staticmethod(agreement_statistics)

    def match(self, frames, predictions, *, pred_storage_options=None, **options):
        preds, problems = match_dataset(frames, predictions)  # a Dataset: frames of the same ids
        return Matched.one_each(frames, preds, problems=problems, where="the predictions")

    def start(self, matched):
        return np.zeros(2, np.int64)

    def add(self, total, stats):
        return total + [stats.same, stats.pixels]

    def result(self, total, matched, frames):
        return AgreementResult(int(total[0]), int(total[1]))


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tasks") / "gt")
    generate(root, splits={"val": 3}, size=(256, 128), photos=False, seed=1)
    return root


@pytest.fixture
def agreement(monkeypatch):
    monkeypatch.setitem(TASKS, "agreement", AgreementTask())


def test_a_registered_task_runs_through_evaluate(gt, agreement):
    done = []
    result = cio.evaluate(gt, cio.open(gt), task="agreement", progress=done.append)
    assert result.to_dict() == {"agreement": 1.0} and str(result) == "agreement: 1.000"
    assert done == [1, 2, 3]
    assert cio.check_predictions(gt, cio.open(gt), task="agreement") == []
    # Two processes: the frame functions pickle, the statistics add up to the same result.
    assert cio.evaluate(gt, cio.open(gt), task="agreement", workers=2).to_dict() == {"agreement": 1.0}


def test_a_registered_task_is_refused_with_every_problem(gt, agreement):
    frames = list(cio.open(gt))
    fewer = cio.Dataset.from_iterable(frames[1:], cio.open(gt).labels)
    problems = cio.check_predictions(gt, fewer, task="agreement")
    assert len(problems) == 1 and f"no prediction for frame {frames[0].id}" in problems[0]
    with pytest.raises(CityscapesIOError, match="1 problem"):
        cio.evaluate(gt, fewer, task="agreement")
    with pytest.raises(TypeError, match="unknown option"):
        cio.evaluate(gt, cio.open(gt), task="agreement", pred_train_ids=True)
    with pytest.raises(ValueError, match="export_predictions: task must be one of semantic, instance, panoptic"):
        cio.export_predictions(gt, "unused", task="agreement")


def test_unknown_task_names_the_registered_ones(gt):
    with pytest.raises(ValueError, match="the tasks are: semantic, instance, panoptic"):
        cio.evaluate(gt, gt, task="depth")


# -- panoptic predictions as a Dataset --------------------------------------------------------------
def test_panoptic_dataset_predictions_give_the_numbers_of_the_files(gt, tmp_path):
    pred_root = str(tmp_path / "pred")
    generate(pred_root, splits={"val": 3}, size=(256, 128), photos=False, seed=7)  # the same ids, other pixels
    preds = cio.open(pred_root)
    out = str(tmp_path / "sub")
    cio.export_predictions(preds, out, task="panoptic")
    files = cio.evaluate(gt, f"{out}/cityscapes_panoptic_val.json", task="panoptic")
    done = []
    dataset = cio.evaluate(gt, preds, task="panoptic", progress=done.append)
    assert json.dumps(dataset.to_dict()) == json.dumps(files.to_dict())
    assert str(dataset) == str(files) and done == [1, 2, 3]
    assert 0 < dataset.pq < 1
    assert json.dumps(cio.evaluate(gt, preds, task="panoptic", workers=2).to_dict()) == json.dumps(files.to_dict())
    # The ground truth as its own prediction scores 1.
    assert cio.evaluate(gt, cio.open(gt), task="panoptic").pq == pytest.approx(1.0)
    assert cio.check_predictions(gt, preds, task="panoptic") == []


def test_panoptic_dataset_predictions_problems(gt):
    ds = cio.open(gt)
    frames = list(ds)
    fewer = cio.Dataset.from_iterable(frames[1:], ds.labels)
    problems = cio.check_predictions(gt, fewer, task="panoptic")
    assert len(problems) == 1 and f"no prediction for frame {frames[0].id}" in problems[0]
    with pytest.raises(CityscapesIOError, match="no prediction for frame"):
        cio.evaluate(gt, fewer, task="panoptic")
