"""Issue 18, "a CLI that talks like a tool": what the CLI says about resumed conversions, and
``synthetic`` refusing a destination that is not empty."""
import os
import re

import pytest

from cityscapes_io import CityscapesIOError
from cityscapes_io.cli import main
from cityscapes_io.testing import generate


def _summary(capsys) -> str:
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if "frames read" in line]
    assert len(lines) == 1, out + err
    return lines[0]


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, splits={"val": 3}, size=(64, 32), seed=1)
    return root


def _convert(src, dst, *extra):
    return main(["convert", src, dst, "-f", "coco_panoptic", *extra])


def test_resume_of_a_complete_conversion_says_nothing_was_written(tree, tmp_path, capsys):
    dst = str(tmp_path / "out")
    assert _convert(tree, dst) == 0
    assert re.search(r"\b3 written\b", _summary(capsys))
    assert _convert(tree, dst, "--resume") == 0
    line = _summary(capsys)
    assert re.search(r"\b0 written, 3 already complete\b", line), line


def test_resume_of_a_partly_done_conversion_counts_each_apart(tree, tmp_path, capsys):
    dst = str(tmp_path / "out")
    assert _convert(tree, dst) == 0
    capsys.readouterr()
    folder = os.path.join(dst, "annotations", "panoptic_val")
    pngs = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".png"))
    assert len(pngs) == 3
    os.unlink(pngs[0])
    assert _convert(tree, dst, "--resume") == 0
    line = _summary(capsys)
    assert re.search(r"\b1 written, 2 already complete\b", line), line
    assert os.path.exists(pngs[0])


def test_report_fields_are_unchanged_by_the_wording(tree, tmp_path):
    import cityscapes_io as cio
    dst = str(tmp_path / "out")
    cio.open(tree).export(dst, "coco_panoptic")
    report = cio.open(tree).export(dst, "coco_panoptic", resume=True)
    assert (report.written, report.resumed) == (3, 3)


def test_synthetic_refuses_a_destination_that_is_not_empty(tmp_path, capsys):
    dst = tmp_path / "cs"
    assert main(["synthetic", str(dst), "--size", "64x32", "--frames", "2"]) == 0
    capsys.readouterr()
    before = sorted(p for p in dst.rglob("*"))
    assert main(["synthetic", str(dst), "--size", "64x32", "--frames", "1"]) != 0
    err = capsys.readouterr().err
    assert "destination is not empty (holds gtFine, leftImg8bit)" in err and "--overwrite" in err
    assert sorted(p for p in dst.rglob("*")) == before


def test_synthetic_overwrite_replaces_what_the_destination_holds(tmp_path, capsys):
    dst = tmp_path / "cs"
    dst.mkdir()
    (dst / "stray.txt").write_text("old")
    assert main(["synthetic", str(dst), "--size", "64x32", "--frames", "1", "--no-photos", "--overwrite"]) == 0
    assert not (dst / "stray.txt").exists()
    assert not (dst / "leftImg8bit").exists()
    assert len(list((dst / "gtFine").rglob("*_labelIds.png"))) == 1


def test_generate_refuses_and_overwrites(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, frames=1, size=(64, 32))
    with pytest.raises(CityscapesIOError, match=r"destination is not empty .*overwrite=True \(--overwrite\)"):
        generate(root, frames=1, size=(64, 32))
    assert generate(root, frames=2, size=(64, 32), overwrite=True) == generate(str(tmp_path / "b"), frames=2,
                                                                                 size=(64, 32))


def test_generate_into_missing_or_empty_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(generate(str(empty), frames=1, size=(64, 32))) == 1
    assert len(generate(str(tmp_path / "a" / "b"), frames=1, size=(64, 32))) == 1
    import fsspec
    memory = fsspec.filesystem("memory")
    if memory.exists("/h18-synthetic"):
        memory.rm("/h18-synthetic", recursive=True)
    assert len(generate("memory://h18-synthetic", frames=1, size=(64, 32))) == 1
    with pytest.raises(CityscapesIOError, match="not empty"):
        generate("memory://h18-synthetic", frames=1, size=(64, 32))
    assert len(generate("memory://h18-synthetic", frames=1, size=(64, 32), overwrite=True)) == 1
