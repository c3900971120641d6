"""Issue 18, semantic evaluation as a model trainer runs it: prediction PNGs written in train ids
(0..18, what a model outputs) and evaluated without ``--pred-train-ids`` collapse to IoU 0.000;
the result says so and names the option, without changing a number."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.png import encode_png
from cityscapes_io.testing import generate


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gt"))
    generate(root, splits={"val": 2}, size=(128, 64), seed=1)
    return root


def _write_predictions(gt_root: str, out: str, kind: str) -> str:
    """One ``<city>_<seq>_<frame>_pred.png`` per val frame, in city folders: ``kind`` "train"
    writes the ground truth's train ids (255, ignore, predicted as 0: ignored pixels do not
    count), "label" its label ids."""
    for frame in cio.open(gt_root).frames("val"):
        if kind == "train":
            arr = frame.train_ids().copy()
            arr[arr == 255] = 0
        else:
            arr = frame.label_ids()
        assert arr is not None
        base = os.path.basename(frame.id)
        city = base.split("_")[0]
        os.makedirs(os.path.join(out, city), exist_ok=True)
        with open(os.path.join(out, city, f"{base}_pred.png"), "wb") as f:
            f.write(encode_png(arr.astype(np.uint8)))
    return out


@pytest.fixture(scope="module")
def train_pred(gt, tmp_path_factory):
    return _write_predictions(gt, str(tmp_path_factory.mktemp("train_pred")), "train")


@pytest.fixture(scope="module")
def label_pred(gt, tmp_path_factory):
    return _write_predictions(gt, str(tmp_path_factory.mktemp("label_pred")), "label")


def test_train_id_predictions_read_as_label_ids_warn_naming_the_flag(gt, train_pred):
    values = set()
    for name in os.listdir(train_pred):
        for f in os.listdir(os.path.join(train_pred, name)):
            values |= set(np.unique(cio.png.decode_gray(open(os.path.join(train_pred, name, f), "rb").read(),
                                                        f)).tolist())
    assert max(values) <= 18
    with pytest.warns(UserWarning, match=r"--pred-train-ids") as record:
        result = cio.evaluate(gt, train_pred, task="semantic")
    assert result.average_classes < 0.2  # the numbers are what they were: the warning only explains them
    text = str(record[0].message)
    assert "train ids" in text and "pred_train_ids=True" in text
    assert f"{result.average_classes:.3f}" in text  # the IoU as label ids, as printed
    assert "1.000" in text  # as train ids


def test_the_warning_comes_with_processes_too_and_check_only_is_silent(gt, train_pred):
    with pytest.warns(UserWarning, match=r"--pred-train-ids"):
        one = cio.evaluate(gt, train_pred, task="semantic").to_dict()
    with pytest.warns(UserWarning, match=r"--pred-train-ids"):
        two = cio.evaluate(gt, train_pred, task="semantic", workers=2).to_dict()
    assert one["confMatrix"] == two["confMatrix"]
    assert one["averageScoreClasses"] == two["averageScoreClasses"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cio.check_predictions(gt, train_pred, task="semantic") == []


def test_with_pred_train_ids_no_warning_and_iou_one(gt, train_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cio.evaluate(gt, train_pred, task="semantic", pred_train_ids=True)
    assert result.average_classes == pytest.approx(1.0)
    assert result.average_categories == pytest.approx(1.0)


def test_label_id_predictions_do_not_warn(gt, label_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cio.evaluate(gt, label_pred, task="semantic")
    assert result.average_classes == pytest.approx(1.0)


def test_poor_label_id_predictions_within_0_18_do_not_warn(gt, tmp_path):
    """A label-id prediction that happens to use only ids <= 18 but scores no better as train ids is
    not called train ids: everything predicted as road (7)."""
    out = str(tmp_path / "road")
    for frame in cio.open(gt).frames("val"):
        base = os.path.basename(frame.id)
        os.makedirs(os.path.join(out, base.split("_")[0]), exist_ok=True)
        arr = np.full(frame.label_ids().shape, 7, np.uint8)
        with open(os.path.join(out, base.split("_")[0], f"{base}_pred.png"), "wb") as f:
            f.write(encode_png(arr))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cio.evaluate(gt, out, task="semantic")


def test_a_dataset_of_predictions_does_not_warn(gt):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cio.evaluate(gt, cio.open(gt), task="semantic")
    assert result.average_classes == pytest.approx(1.0)


def test_cli_prints_the_hint_on_stderr(gt, train_pred):
    proc = subprocess.run([sys.executable, "-m", "cityscapes_io", "eval", gt, train_pred, "--task", "semantic"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "--pred-train-ids" in proc.stderr and "train ids" in proc.stderr
    assert "Score Average" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "cityscapes_io", "eval", gt, train_pred, "--task", "semantic",
                           "--pred-train-ids"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "--pred-train-ids" not in proc.stderr


def test_cli_main_warns(gt, train_pred, capsys):
    assert main(["eval", gt, train_pred, "--task", "semantic"]) == 0
    out, err = capsys.readouterr()
    assert "Score Average" in out
    assert [line for line in err.splitlines() if "--pred-train-ids" in line][0].startswith("warning: ")
