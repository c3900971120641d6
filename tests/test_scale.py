"""Parallel, sharded, resumed conversion: the output equals a single uninterrupted run."""
import hashlib
import os

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.testing import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("scale") / "cs")
    generate(root, splits={"train": 7, "val": 3}, size=(96, 48), seed=11)
    return root


def tree_digest(root):
    """{relative path: sha256} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.mark.parametrize("fmt", ["voc", "camvid", "cityscapes"])
def test_workers_give_identical_output(synth, tmp_path, fmt):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    r1 = cio.convert(synth, one, format=fmt, save_media=True, label_map="cityscapes" if fmt == "cityscapes" else "source")
    r2 = cio.convert(synth, two, format=fmt, save_media=True, workers=2,
                     label_map="cityscapes" if fmt == "cityscapes" else "source")
    assert r1.written == r2.written == 10
    assert tree_digest(one) == tree_digest(two)


def test_shards_then_finalize_equal_one_run(synth, tmp_path):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format="voc", save_media=True)
    reports = [cio.convert(synth, out, format="voc", save_media=True, shard=f"{i}/3") for i in range(3)]
    assert sum(r.read for r in reports) == 10 and sum(r.written for r in reports) == 10
    assert not os.path.exists(os.path.join(out, "labelmap.txt"))  # shards write no index files
    final = cio.convert(synth, out, format="voc", save_media=True, finalize=True)
    assert final.indexed == 10 and final.written == 0 and final.ok  # finalize writes index files only
    assert tree_digest(ref) == tree_digest(out)


def test_finalize_reports_missing_frames(synth, tmp_path):
    out = str(tmp_path / "out")
    cio.convert(synth, out, format="voc", shard="0/2")
    final = cio.convert(synth, out, format="voc", finalize=True, on_error="skip")
    assert final.read == 10 and final.indexed == 5 and len(final.skipped) == 5
    assert all("no shard wrote it" in reason for _, _, reason in final.skipped)


def test_resume_after_partial_run(synth, tmp_path):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format="cityscapes", save_media=True, label_map="cityscapes")
    cio.convert(synth, out, format="cityscapes", save_media=True, label_map="cityscapes", split="train")
    # a frame half written: one of its files removed
    victim = next(iter(cio.open(synth, split="val")))
    cio.convert(synth, out, format="cityscapes", save_media=True, label_map="cityscapes",
                cities=[victim.city], split="val", resume=True)  # adds to what is there
    os.remove(os.path.join(out, "gtFine", "val", victim.id + "_gtFine_color.png"))
    report = cio.convert(synth, out, format="cityscapes", save_media=True, label_map="cityscapes", resume=True)
    assert report.written == 10 and report.resumed == 7 + 1 and report.ok  # train + the val frame complete
    assert tree_digest(ref) == tree_digest(out)


def test_cli_scale_flags(synth, tmp_path):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert main(["convert", synth, ref, "-f", "camvid", "--save-media", "-q"]) == 0
    for i in range(2):
        assert main(["convert", synth, out, "-f", "camvid", "--save-media", "--shard", f"{i}/2", "-q"]) == 0
    assert main(["convert", synth, out, "-f", "camvid", "--save-media", "--finalize", "-q"]) == 0
    assert tree_digest(ref) == tree_digest(out)
    assert main(["convert", synth, str(tmp_path / "w"), "-f", "camvid", "--save-media", "-j", "2", "-q"]) == 0
    assert tree_digest(ref) == tree_digest(str(tmp_path / "w"))
    assert main(["convert", synth, out, "-f", "voc", "--shard", "2/2"]) == 2  # a bad option value: refused
