"""Issue 18: a prediction's ``Instance.score`` is kept where a format can keep it (the tar shards'
JSON, the official ``.txt``), comes back as ``Instance.score`` on read, survives every path from a
prediction dataset to the submission, and a submission whose scores are all equal is announced
(AP on ties) once by ``export_predictions`` and once by ``evaluate``."""
from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.png import encode_png

from conftest import label_ids_of, read_tree, write_frame

IDS = ["aachen/aachen_000000_000019", "aachen/aachen_000001_000019"]
H, W = 40, 60
#: Ground truth boxes (y0, y1, x0, x1) and their instanceIds values.
TRUTH = [((5, 15, 5, 20), 26000), ((20, 30, 5, 20), 26001), ((5, 15, 30, 45), 24000)]
#: Predictions: (box, label id, score). A confident false positive (the second car) makes the
#: ranking matter: AP with these scores differs from AP on ties.
PREDICTED = [((5, 15, 5, 20), 26, 0.9), ((20, 30, 30, 45), 26, 0.95), ((20, 30, 5, 20), 26, 0.1 + 0.2),
             ((5, 15, 30, 45), 24, 0.7)]
#: The instanceIds value each prediction is painted with (unnumbered: numbered in order per label).
VALUES = [26000, 26001, 26002, 24000]
TIES = "all 8 instance predictions have the same score (1.0): AP is computed on ties; "


def _mask(box):
    y0, y1, x0, x1 = box
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("scores") / "gt")
    arr = np.full((H, W), 7, np.uint16)
    for box, value in TRUTH:
        arr[_mask(box)] = value
    for frame_id in IDS:
        write_frame(root, "val", frame_id, arr)
    return root


def _predictions(scored=True):
    frames = [cio.Frame.from_arrays(id=frame_id, split="val", instances=[
        cio.Instance.from_mask(_mask(box), label_id=label, score=score if scored else None)
        for box, label, score in PREDICTED]) for frame_id in IDS]
    return cio.Dataset.from_iterable(frames)


def _ties(record):
    return [str(w.message) for w in record if "instance predictions have the same score" in str(w.message)]


def _txt_lines(out):
    with open(os.path.join(out, "aachen", "aachen_000000_000019_pred.txt")) as f:
        return [line.split()[1:] for line in f.read().splitlines()]


def test_scores_go_into_the_shards_json_and_come_back_as_instance_score(tmp_path):
    out = str(tmp_path / "shards")
    _predictions().export(out, "wds")
    with tarfile.open(os.path.join(out, "val-000000.tar")) as tf:
        meta = json.load(tf.extractfile("aachen/aachen_000000_000019.json"))
    assert meta["scores"] == {str(v): s for v, (_, _, s) in zip(VALUES, PREDICTED)}
    ds = cio.open(out, format="wds")
    for frame in ds:
        got = {i.value: i.score for i in frame.instances() if i.value >= 1000}
        assert got == {v: s for v, (_, _, s) in zip(VALUES, PREDICTED)}
        assert all(i.score is None for i in frame.instances() if i.value < 1000)  # background: no score
        assert frame.original_instances() is None  # read from files: the segments, with their scores
    # a frame handed to another process keeps them; a view (train ids) carries them to its values
    again = pickle.loads(pickle.dumps(ds[0]))
    assert {i.value: i.score for i in again.instances()}[26002] == 0.1 + 0.2
    train = {i.value: i.score for i in ds.to_train_ids()[0].instances() if i.score is not None}
    assert train == {13000: 0.9, 13001: 0.95, 13002: 0.1 + 0.2, 11000: 0.7}  # car 13, person 11


def test_frames_made_in_memory_list_their_scores_in_instances():
    frame = _predictions()[0]
    assert {i.value: i.score for i in frame.instances() if i.score is not None} == {
        v: s for v, (_, _, s) in zip(VALUES, PREDICTED)}
    # a numpy score (a model's output) is a Python float; anything but a number is refused
    inst = cio.Instance.from_mask(_mask(TRUTH[0][0]), label_id=26, score=np.float32(0.5))
    assert type(inst.score) is float and inst.score == 0.5
    with pytest.raises(ValueError, match="score must be a number, got str 'high'"):
        cio.Instance.from_mask(_mask(TRUTH[0][0]), label_id=26, score="high")


def test_a_score_survives_every_path_to_the_official_txt_and_the_evaluation(gt, tmp_path):
    ds = _predictions()
    shards = str(tmp_path / "shards")
    ds.export(shards, "wds")
    want = [["26", "0.9"], ["26", "0.95"], ["26", repr(0.1 + 0.2)], ["24", "0.7"]]
    results = {"memory": cio.evaluate(gt, ds, task="instance").to_dict(),
               "shards": cio.evaluate(gt, cio.open(shards, format="wds"), task="instance").to_dict()}
    read = cio.open(shards, format="wds")
    for name, source in (("memory", ds), ("shards", read), ("shards-train", read.to_train_ids())):
        out = str(tmp_path / f"sub-{name}")
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            cio.export_predictions(source, out, task="instance")
        assert _ties(record) == []
        lines = _txt_lines(out)
        # the txt lists the segments by value when read from files, the instances as given in memory
        assert sorted(lines) == sorted(want), name
        results[name] = cio.evaluate(gt, out, task="instance").to_dict()
    assert all(json.dumps(r) == json.dumps(results["memory"]) for r in results.values())
    with pytest.warns(UserWarning, match="the prediction dataset: all 8 instance predictions have the same score"):
        tied = cio.evaluate(gt, _predictions(scored=False), task="instance").to_dict()
    assert tied["averages"]["allAp"] != results["memory"]["averages"]["allAp"]  # the scores are what ranks


def test_equal_scores_are_announced_once_by_export_and_once_by_evaluate(gt, tmp_path):
    shards = str(tmp_path / "shards")
    _predictions(scored=False).export(shards, "wds")
    ds = cio.open(shards, format="wds")
    out = str(tmp_path / "sub")
    with pytest.warns(UserWarning) as record:
        cio.export_predictions(ds, out, task="instance")
    assert _ties(record) == [f"{ds.roots[0]}: {TIES}give each prediction its confidence (Instance.score), or keep "
                             f"the predictions in a format that stores scores (COCO results' score, tar shards, the "
                             f"official .txt)"]
    assert record[0].filename == __file__  # points at the caller
    for predictions, where in ((out, out), (ds, ds.roots[0])):
        with pytest.warns(UserWarning) as record:
            cio.evaluate(gt, predictions, task="instance")
        assert len(_ties(record)) == 1 and _ties(record)[0].startswith(f"{where}: {TIES}")
    # made in memory: the output names the submission; equal given scores count as ties too
    same = _predictions()
    frames = [cio.Frame.from_arrays(id=frame_id, split="val", instances=[
        cio.Instance.from_mask(_mask(box), label_id=label, score=0.5) for box, label, _ in PREDICTED])
        for frame_id in IDS]
    out2 = str(tmp_path / "sub2")
    with pytest.warns(UserWarning) as record:
        cio.export_predictions(cio.Dataset.from_iterable(frames), out2, task="instance")
    assert _ties(record) == [f"{out2}: {TIES.replace('(1.0)', '(0.5)')}give each prediction its confidence "
                             f"(Instance.score), or keep the predictions in a format that stores scores (COCO "
                             f"results' score, tar shards, the official .txt)"]
    # scores that tell the predictions apart, or a single prediction: nothing said
    for source in (same, cio.Dataset.from_iterable([cio.Frame.from_arrays(id=IDS[0], split="val", instances=[
            cio.Instance.from_mask(_mask(TRUTH[0][0]), label_id=26)])])):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            cio.export_predictions(source, str(tmp_path / f"quiet{source.count()}"), task="instance")
        assert _ties(record) == []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cio.evaluate(gt, same, task="instance")
    assert _ties(record) == []


def test_a_score_that_is_not_finite_is_refused_with_its_frame(tmp_path):
    frame = cio.Frame.from_arrays(id=IDS[0], split="val", instances=[
        cio.Instance.from_mask(_mask(TRUTH[0][0]), label_id=26, score=float("nan"))])
    with pytest.raises(cio.CityscapesIOError, match=r"val/aachen/aachen_000000_000019: instance value 26000: "
                                                     r"score nan is not a finite number"):
        cio.Dataset.from_iterable([frame]).export(str(tmp_path / "shards"), "wds")
    with pytest.raises(cio.CityscapesIOError, match=r"1 frame\(s\) not exported:\n  val/aachen/aachen_000000_000019: "
                                                     r"instance value 26: score nan is not a finite number"):
        cio.export_predictions(cio.Dataset.from_iterable([frame]), str(tmp_path / "sub"), task="instance")


def test_resume_rebuilds_the_scores_of_the_index_from_the_shards(tmp_path):
    src = str(tmp_path / "src")
    _predictions().export(src, "wds")
    out = str(tmp_path / "shards")
    cio.convert(src, out, src_format="wds", format="wds", frames_per_shard=1)
    want = read_tree(out)
    assert '"scores"' in want["shards.json"].decode()
    os.remove(os.path.join(out, "shards.json"))  # interrupted before the index
    report = cio.convert(src, out, src_format="wds", format="wds", frames_per_shard=1, resume=True)
    assert (report.written, report.resumed) == (2, 2)
    assert read_tree(out) == want  # the scores read back from each frame's JSON


def _old_shard(root):
    """A tar-shard dataset as written before scores and Cityscapes members existed: four members a
    frame, an index without ``scores``."""
    arr = np.full((H, W), 7, np.uint16)
    arr[_mask(TRUTH[0][0])] = 26000
    key = "aachen/aachen_000000_000019"
    members = [(f"{key}.instance_ids.png", encode_png(arr)), (f"{key}.label_ids.png", encode_png(label_ids_of(arr))),
               (f"{key}.json", json.dumps({"id": key, "split": "val", "annotations": "gtFine"}).encode())]
    os.makedirs(root)
    with tarfile.open(os.path.join(root, "val-000000.tar"), "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with tarfile.open(os.path.join(root, "val-000000.tar")) as tf:
        files = [[m.name, m.offset_data, m.size] for m in tf.getmembers()]
    index = {"kind": "cityscapes_io-wds", "version": 1, "frames_per_shard": 100, "labels": "cityscapes",
             "splits": {"val": [{"file": "val-000000.tar", "frames": 1,
                                 "members": [{"id": key, "annotations": "gtFine", "files": files}]}]}}
    with open(os.path.join(root, "shards.json"), "w") as f:
        json.dump(index, f)
    return arr


def test_shards_written_before_scores_still_read(tmp_path):
    root = str(tmp_path / "old")
    arr = _old_shard(root)
    (frame,) = list(cio.open(root, format="wds"))
    assert np.array_equal(frame.instance_ids(), arr)
    assert [(i.value, i.score) for i in frame.instances()] == [(7, None), (26000, None)]
    assert sorted(frame.files) == ["instanceIds", "json", "labelIds"]


@pytest.mark.parametrize("scores, message", [
    ([0.5], "'scores': expected an object of instanceIds values to scores, got list"),
    ({"car": 0.5}, "'scores': 'car' is not an instanceIds value (0..65535 in decimal)"),
    ({"026000": 0.5}, "'scores': '026000' is not an instanceIds value"),
    ({"70000": 0.5}, "'scores': '70000' is not an instanceIds value"),
    ({"26000": "high"}, "'scores': the score of 26000 is not a finite number: 'high'"),
    ({"26000": True}, "'scores': the score of 26000 is not a finite number: True"),
    ({"26000": 10 ** 400}, "'scores': the score of 26000 is not a finite number"),
])
def test_wrong_scores_in_the_index_are_refused_when_opened(tmp_path, scores, message):
    root = str(tmp_path / "old")
    _old_shard(root)
    path = os.path.join(root, "shards.json")
    with open(path) as f:
        index = json.load(f)
    index["splits"]["val"][0]["members"][0]["scores"] = scores
    with open(path, "w") as f:
        json.dump(index, f)
    with pytest.raises(cio.InvalidFileError) as err:
        cio.open(root, format="wds")
    assert str(err.value).startswith(f"{path}: split 'val' shard 0 frame 0 {message}")


def test_scores_go_from_tar_shards_to_coco(tmp_path):
    """Scores read from shards (Source.scores) reach COCO's ``score`` exactly."""
    _predictions().export(str(tmp_path / "wds"), format="wds")
    cio.open(str(tmp_path / "wds"), format="wds").export(str(tmp_path / "coco"), format="coco_instances",
                                                           classes="all")
    back = cio.open(str(tmp_path / "coco"), format="coco_instances")
    expected = sorted(score for _, _, score in PREDICTED)
    for frame in back:
        assert sorted(i.score for i in frame.original_instances()) == expected


@pytest.mark.parametrize("fmt", ["cityscapes", "voc", "camvid", "coco_panoptic"])
def test_formats_without_scores_say_they_were_not_written(tmp_path, fmt):
    with pytest.warns(UserWarning) as record:
        _predictions().export(str(tmp_path / fmt), format=fmt)
    lost = [str(w.message) for w in record if "Instance.score" in str(w.message)]
    assert lost == [f"{tmp_path / fmt}: the scores (Instance.score) of 2 frame(s) not written: {fmt} has no place "
                    "for a prediction's confidence (coco_instances and wds keep them)"]


@pytest.mark.parametrize("fmt", ["coco_instances", "wds"])
def test_formats_that_keep_scores_say_nothing_of_them(tmp_path, fmt):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _predictions().export(str(tmp_path / fmt), format=fmt)
    assert not [w for w in record if "Instance.score" in str(w.message)]
    with warnings.catch_warnings(record=True) as record:  # and nothing without scores anywhere
        warnings.simplefilter("always")
        _predictions(scored=False).export(str(tmp_path / "voc"), format="voc")
    assert not [w for w in record if "Instance.score" in str(w.message)]
