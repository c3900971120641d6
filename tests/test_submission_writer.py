"""export_predictions writes each task's submission through a Writer (evaluation/submission.py),
driven like every writer: a ``.zip`` or an S3 URL holds the bytes a folder does, the
destination's guards refuse, an error of the destination stops the export, a frame's own error
is gathered while the others are written."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.errors import RefusedError, StorageError
from cityscapes_io.evaluation.submission import SUBMISSIONS, SemanticSubmission
from cityscapes_io.formats import format_names
from cityscapes_io.formats.base import Writer
from cityscapes_io.storage.sinks import LocalSink
from conftest import read_tree

IDS = ("aachen/aachen_000000_000019", "aachen/aachen_000001_000019", "bremen/bremen_000000_000019")
TASKS = ("semantic", "instance", "panoptic")


def _frame(frame_id: str, k: int) -> cio.Frame:
    h, w = 8, 10
    car = np.zeros((h, w), bool)
    car[1:4, 1 + k:5 + k] = True
    person = np.zeros((h, w), bool)
    person[5:8, 6 - k:9 - k] = True
    road = ~(car | person)
    return cio.Frame.from_arrays(id=frame_id, split="val", instances=[
        cio.Instance.from_mask(road, label_id=7, is_crowd=True),
        cio.Instance.from_mask(car, label_id=26, id=0, score=0.9 - 0.1 * k),
        cio.Instance.from_mask(person, label_id=24, id=3, score=0.5 + 0.1 * k)])


def _predictions() -> cio.Dataset:
    return cio.Dataset.from_iterable([_frame(frame_id, k) for k, frame_id in enumerate(IDS)])


def test_the_submissions_are_writers_not_formats():
    assert tuple(SUBMISSIONS) == TASKS
    for cls in SUBMISSIONS.values():
        assert issubclass(cls, Writer)
        assert cls.format not in format_names()  # not a -f choice
    with pytest.raises(ValueError, match="task must be one of semantic, instance, panoptic"):
        cio.export_predictions(_predictions(), "unused", task="depth")


@pytest.mark.parametrize("task", TASKS)
def test_a_zip_holds_what_a_folder_holds(tmp_path, task):
    folder, archive = str(tmp_path / "sub"), str(tmp_path / "sub.zip")
    assert cio.export_predictions(_predictions(), folder, task=task) == \
        cio.export_predictions(_predictions(), archive, task=task)
    with zipfile.ZipFile(archive) as zf:
        zipped = {name: zf.read(name) for name in zf.namelist()}
    assert zipped == read_tree(folder) and zipped


def test_an_s3_url_holds_what_a_folder_holds(tmp_path, s3):
    fs, opts, bucket = s3
    folder = str(tmp_path / "sub")
    expected = cio.export_predictions(_predictions(), folder, task="panoptic")
    progress = []
    assert cio.export_predictions(_predictions(), f"s3://{bucket}/sub", task="panoptic", out_storage_options=opts,
                                  progress=progress.append) == expected == {"frames": 3, "skipped_regions": 0}
    assert progress == [1, 2, 3]
    fs.invalidate_cache()
    there = {path[len(f"{bucket}/sub/"):]: fs.cat_file(path) for path in fs.find(f"{bucket}/sub")}
    assert there == read_tree(folder)
    index = json.loads(there["cityscapes_panoptic_val.json"])
    assert [image["id"] for image in index["images"]] == [os.path.basename(i) for i in IDS]


def test_a_frame_that_cannot_be_exported_is_listed_and_the_others_are_written(tmp_path):
    frames = [_frame(IDS[0], 0), cio.Frame.from_arrays(id=IDS[1], split="val"), _frame(IDS[2], 2)]
    out = str(tmp_path / "sub.zip")
    progress = []
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.export_predictions(cio.Dataset.from_iterable(frames), out, task="panoptic", progress=progress.append)
    assert str(info.value).splitlines() == ["1 frame(s) not exported:",
                                            f"  val/{IDS[1]}: frame {IDS[1]} has no instance ids"]
    assert progress == [1, 2, 3]
    with zipfile.ZipFile(out) as zf:  # the archive is complete, its index without the frame left out
        index = json.loads(zf.read("cityscapes_panoptic_val.json"))
        assert sorted(zf.namelist()) == ["cityscapes_panoptic_val.json",
                                         "cityscapes_panoptic_val/aachen_000000_000019_panoptic.png",
                                         "cityscapes_panoptic_val/bremen_000000_000019_panoptic.png"]
    assert [image["id"] for image in index["images"]] == ["aachen_000000_000019", "bremen_000000_000019"]


def test_an_error_of_the_destination_stops_the_export(tmp_path, monkeypatch):
    put = LocalSink.put
    calls = []

    def failing(self, rel, data):
        calls.append(rel)
        if rel.startswith("cityscapes_panoptic_val/aachen_000001"):
            raise StorageError(self.path(rel), "cannot write: disk full")
        put(self, rel, data)

    monkeypatch.setattr(LocalSink, "put", failing)
    out = str(tmp_path / "sub")
    with pytest.raises(StorageError, match="disk full"):  # raised as it is, not gathered as a frame's problem
        cio.export_predictions(_predictions(), out, task="panoptic")
    assert len(calls) == 2  # nothing more written: no third frame, no index
    assert sorted(read_tree(out)) == ["cityscapes_panoptic_val/aachen_000000_000019_panoptic.png"]


def test_the_destinations_guards(tmp_path):
    src = str(tmp_path / "pred")
    with pytest.warns(UserWarning, match="scores"):  # (cityscapes keeps no scores)
        _predictions().export(src, "cityscapes")
    with pytest.raises(RefusedError):  # a source is never replaced
        cio.export_predictions(src, src, task="instance", overwrite=True)
    with pytest.raises(RefusedError):
        cio.export_predictions(src, str(tmp_path), task="instance", overwrite=True)  # holds the source
    assert cio.open(src).count() == 3
    out = str(tmp_path / "sub")
    first = cio.export_predictions(_predictions(), out, task="instance")
    assert first == {"frames": 3, "skipped_regions": 3}
    with pytest.raises(cio.CityscapesIOError, match="not empty|exists"):
        cio.export_predictions(_predictions(), out, task="semantic")
    assert cio.export_predictions(_predictions(), out, task="semantic", overwrite=True) == \
        {"frames": 3, "skipped_regions": 0}
    assert sorted(read_tree(out)) == [f"{i}_pred.png" for i in IDS]  # replaced, not merged


def test_a_submission_writer_is_used_as_any_writer(tmp_path):
    out = str(tmp_path / "sub")
    ds = _predictions()
    with cio.writer(out, SemanticSubmission, labels=ds.labels) as w:
        for frame in ds:
            w.write(frame)
    cio.export_predictions(_predictions(), str(tmp_path / "sub2"))
    assert read_tree(out) == read_tree(str(tmp_path / "sub2"))
