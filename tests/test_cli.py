"""The command line, in process (main([...])) and as the installed console script."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main


def test_info_on_the_sample(capsys):
    assert main(["info", cio.sample_path()]) == 0
    out = capsys.readouterr().out
    assert "frames:  6" in out and "train: 4 frames in 2 cities" in out and "bad-honnef: 1" in out
    assert "labels:  35 from cityscapes" in out
    assert main(["info", cio.sample_path(), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 6 and info["splits"]["val"]["cities"] == {"aachen": 1, "bad-honnef": 1}


def test_info_error_names_the_path(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing" in err


def test_convert_both_spellings(tmp_path, capsys):
    src = cio.sample_path()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["convert", src, a, "-f", "voc", "--save-media"]) == 0
    assert main(["convert", "-if", "cityscapes", "-i", src, "-f", "voc", "-o", b, "--", "--save-media"]) == 0
    for root in (a, b):
        assert len(os.listdir(os.path.join(root, "JPEGImages", "aachen"))) == 3
    for fa, fb in zip(cio.open(a, format="voc"), cio.open(b, format="voc")):
        assert np.array_equal(fa.label_ids(), fb.label_ids())
    assert "6 frames read, 6 written, 0 skipped" in capsys.readouterr().out


def test_convert_options_after_double_dash(tmp_path):
    out = str(tmp_path / "cs")
    assert main(["convert", "-i", cio.sample_path(), "-f", "cityscapes", "-o", out, "--",
                 "--save-media", "--save-dataset-meta", "--image-ext", ".jpg"]) == 0
    assert os.path.exists(os.path.join(out, "dataset_meta.json"))
    frame = next(iter(cio.open(out)))
    assert frame.path("image").endswith(".jpg")


def test_convert_usage_errors(tmp_path, capsys):
    assert main(["convert", cio.sample_path(), str(tmp_path / "x")]) == 2
    assert "-f" in capsys.readouterr().err


def test_synthetic_command(tmp_path):
    out = str(tmp_path / "syn")
    assert main(["synthetic", out, "--frames", "2", "--splits", "train,val", "--size", "64x32"]) == 0
    ds = cio.open(out)
    assert ds.splits() == ["train", "val"] and ds.count() == 4


def test_console_script_and_module(tmp_path):
    exe = shutil.which("cityscapes-io", path=os.path.dirname(sys.executable))
    assert exe, "the console script is installed beside the interpreter"
    out = str(tmp_path / "voc")
    run = subprocess.run([exe, "convert", cio.sample_path(), out, "-f", "voc", "--save-media"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert os.path.exists(os.path.join(out, "labelmap.txt"))
    run = subprocess.run([sys.executable, "-m", "cityscapes_io", "info", out + "-missing"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and run.stderr.startswith("error: ")
