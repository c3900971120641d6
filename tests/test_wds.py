"""Tar shards (format="wds"): written from any dataset, read back as the same frames (one
sequential read per shard, or by range), by the webdataset package too; over zip and S3."""
from __future__ import annotations

import glob
import json
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.formats import detect_format
from cityscapes_io.writing import JOB_FILE
from cityscapes_io.testing import generate

from conftest import read_tree


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("wds") / "src")
    generate(root, splits={"train": 5, "val": 2}, size=(64, 32))
    return root


def _same_frames(a, b):
    fa, fb = list(a), list(b)
    assert [(f.split, f.id) for f in fa] == [(f.split, f.id) for f in fb]
    for f, g in zip(fa, fb):
        assert f.original("instanceIds") == g.original("instanceIds")  # copied, not re-encoded
        assert f.original("labelIds") == g.original("labelIds")
        assert f.image_bytes() == g.image_bytes()
        assert np.array_equal(f.instance_ids(), g.instance_ids()) and g.instance_ids().dtype == np.uint16
        assert f.instances() == g.instances()


def test_round_trip_and_index(src, tmp_path):
    out = str(tmp_path / "shards")
    report = cio.convert(src, out, format="wds", frames_per_shard=2)
    assert report.written == 7 and report.ok
    assert sorted(os.listdir(out)) == [JOB_FILE, "shards.json", "train-000000.tar", "train-000001.tar", "train-000002.tar",
                                       "val-000000.tar"]
    with open(os.path.join(out, "shards.json")) as f:
        index = json.load(f)
    assert [s["frames"] for s in index["splits"]["train"]] == [2, 2, 1]
    assert detect_format(out) == "wds"
    ds = cio.open(out, format="wds")
    assert ds.splits() == ["train", "val"] and ds.count() == 7
    assert ds.labels == cio.open(src).labels
    _same_frames(cio.open(src), ds)
    # the members as tar lists them, one key per frame, in WebDataset's naming
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        names = tf.getnames()
    assert names[:4] == ["aachen/aachen_000000_000019.image.png", "aachen/aachen_000000_000019.instance_ids.png",
                         "aachen/aachen_000000_000019.label_ids.png", "aachen/aachen_000000_000019.json"]


def test_a_frame_in_another_process_reads_by_range(src, tmp_path):
    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=3)
    ds = cio.open(out, format="wds")
    frame = pickle.loads(pickle.dumps(ds[4]))  # a frame of the second shard, alone
    want = cio.open(src)[4]
    assert frame.id == want.id and np.array_equal(frame.instance_ids(), want.instance_ids())
    assert frame.source.size() == (32, 64)
    read = ds[4]
    read.instance_ids()
    assert b"IHDR" not in pickle.dumps(read)  # where the members are, never their bytes


def test_the_webdataset_package_reads_the_shards(src, tmp_path):
    webdataset = pytest.importorskip("webdataset")
    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=4)
    samples = list(webdataset.WebDataset(sorted(glob.glob(os.path.join(out, "*.tar"))), shardshuffle=False))
    frames = list(cio.open(src))
    assert [s["__key__"] for s in samples] == [f.id for f in frames]
    for s, f in zip(samples, frames):
        assert s["instance_ids.png"] == f.original("instanceIds") and s["image.png"] == f.image_bytes()
        meta = json.loads(s["json"])
        assert (meta["id"], meta["split"], meta["city"], meta["width"], meta["height"]) == (f.id, f.split, f.city, 64, 32)


def test_train_ids_and_other_formats_read_from_shards(src, tmp_path):
    out = str(tmp_path / "shards")
    cio.open(src).to_train_ids().export(out, "wds")
    ds = cio.open(out, format="wds")
    assert ds.labels.is_train_ids
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        assert any(n.endswith(".instance_train_ids.png") for n in tf.getnames())
    for f, g in zip(cio.open(src).to_train_ids(), ds):
        assert np.array_equal(f.instance_ids(), g.instance_ids())
    assert main(["convert", out, str(tmp_path / "voc"), "-f", "voc", "-q"]) == 0
    assert len(glob.glob(str(tmp_path / "voc" / "SegmentationClass" / "*" / "*.png"))) == 7


def test_shards_into_a_zip_and_on_s3(src, tmp_path, s3):
    fs, opts, bucket = s3
    zipped = str(tmp_path / "shards.zip")
    cio.convert(src, zipped, format="wds", frames_per_shard=3)
    _same_frames(cio.open(src), cio.open(zipped, format="wds"))
    url = f"s3://{bucket}/shards"
    cio.convert(src, url, format="wds", frames_per_shard=3, dst_storage_options=opts)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{bucket}/shards")) == [
        JOB_FILE, "shards.json", "train-000000.tar", "train-000001.tar", "val-000000.tar"]
    _same_frames(cio.open(src), cio.open(url, format="wds", storage_options=opts))
    zipped_url = f"zip::s3://{bucket}/z.zip"
    fs.put_file(zipped, f"{bucket}/z.zip")
    assert cio.open(zipped_url, format="wds", storage_options={"s3": opts}).count() == 7


def test_bad_shards_are_named(src, tmp_path):
    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=5)
    tar = os.path.join(out, "train-000000.tar")
    with open(tar, "r+b") as f:
        f.truncate(os.path.getsize(tar) // 2)
    with pytest.raises(cio.InvalidFileError, match="train-000000.tar: truncated shard"):
        for frame in cio.open(out, format="wds"):
            frame.instance_ids()
    os.remove(os.path.join(out, "shards.json"))
    with pytest.raises(cio.DatasetNotFoundError, match="no shards.json"):
        cio.open(out, format="wds")




def _tar_ids(path):
    with tarfile.open(path) as tf:
        return list(dict.fromkeys(n.split(".", 1)[0] for n in tf.getnames()))


def test_every_mode_writes_the_same_bytes(src, tmp_path):
    one = str(tmp_path / "one")
    assert cio.convert(src, one, format="wds", frames_per_shard=2).written == 7
    want = read_tree(one)
    assert sorted(want) == [JOB_FILE, "shards.json", "train-000000.tar", "train-000001.tar", "train-000002.tar",
                            "val-000000.tar"]
    pool = str(tmp_path / "pool")
    report = cio.convert(src, pool, format="wds", frames_per_shard=2, workers=2)
    assert report.written == 7 and report.ok
    assert read_tree(pool) == want
    # shards: whole tars, tar units numbered over all splits (train 0, 1, 2, val 0): u % 2 == I
    sharded = str(tmp_path / "sharded")
    first = cio.convert(src, sharded, format="wds", frames_per_shard=2, shard="0/2")
    assert (first.read, first.written) == (3, 3)
    assert sorted(os.listdir(sharded)) == [JOB_FILE, "train-000000.tar", "train-000002.tar"]  # no index: finalize writes it
    second = cio.convert(src, sharded, format="wds", frames_per_shard=2, shard=(1, 2), workers=2)
    assert (second.read, second.written) == (4, 4)
    final = cio.convert(src, sharded, format="wds", frames_per_shard=2, finalize=True)
    assert (final.read, final.indexed, final.skipped) == (7, 7, [])
    assert read_tree(sharded) == want
    # more shards than tars: some shards write nothing
    many = str(tmp_path / "many")
    for i in range(6):
        cio.convert(src, many, format="wds", frames_per_shard=2, shard=(i, 6))
    cio.convert(src, many, format="wds", frames_per_shard=2, finalize=True)
    assert read_tree(many) == want
    _same_frames(cio.open(src), cio.open(sharded, format="wds"))


def test_resume_writes_only_the_missing_tar(src, tmp_path):
    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=2)
    want = read_tree(out)
    old = 1_000_000_000
    for name in want:
        os.utime(os.path.join(out, name), (old, old))
    os.remove(os.path.join(out, "train-000001.tar"))
    os.remove(os.path.join(out, "shards.json"))  # interrupted before the index
    with open(os.path.join(out, ".cityscapes-io-tmp-0123"), "wb") as f:  # a tar being written then
        f.write(b"partial")
    report = cio.convert(src, out, format="wds", frames_per_shard=2, resume=True)
    assert (report.read, report.written, report.resumed, report.skipped) == (7, 7, 5, [])
    assert read_tree(out) == want  # the index rebuilt from the tars' headers is the same
    fresh = sorted(n for n in want if os.path.getmtime(os.path.join(out, n)) > old)
    assert fresh == ["shards.json", "train-000001.tar"]
    # nothing missing: nothing written again but the index, in processes too
    for name in want:
        os.utime(os.path.join(out, name), (old, old))
    report = cio.convert(src, out, format="wds", frames_per_shard=2, resume=True, workers=2)
    assert (report.written, report.resumed) == (7, 7)
    assert [n for n in want if os.path.getmtime(os.path.join(out, n)) > old] == ["shards.json"]
    assert read_tree(out) == want


def test_finalize_reports_the_frames_of_a_missing_tar(src, tmp_path):
    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=2, shard="0/2")  # shard 1/2 never ran
    with pytest.raises(cio.CityscapesIOError, match=r"output missing \(no shard wrote it\): train-000001.tar"):
        cio.convert(src, out, format="wds", frames_per_shard=2, finalize=True)
    report = cio.convert(src, out, format="wds", frames_per_shard=2, finalize=True, on_error="skip")
    frames = list(cio.open(src))
    missing = [(f.split, f.id) for f in frames[2:4] + frames[5:]]  # train-000001 and val-000000
    assert [(s, i) for s, i, _ in report.skipped] == missing
    assert report.read == 7 and report.read == report.written + report.indexed + len(report.skipped)
    assert "val-000000.tar" in report.skipped[-1][2]
    ds = cio.open(out, format="wds")
    assert ds.splits() == ["train"] and [f.id for f in ds] == [f.id for f in frames[:2] + frames[4:5]]
    # a finalize with another frames_per_shard belongs to another job: refused before anything is read
    with pytest.raises(cio.CityscapesIOError, match=r"another job \(option frames_per_shard 2 there, 1 now\)"):
        cio.convert(src, out, format="wds", frames_per_shard=1, finalize=True, on_error="skip")


def test_a_failing_frame_is_left_out_of_its_tar(src, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(src, bad)
    frames = list(cio.open(bad))
    victim = frames[2]  # the first frame of train-000001.tar
    with open(victim.files["instanceIds"], "wb") as f:
        f.write(b"not a png")
    good = str(tmp_path / "good")
    cio.convert(src, good, format="wds", frames_per_shard=2)
    outs = []
    for name, extra in (("one", {}), ("pool", {"workers": 2}), ("decode", {"decode_ahead": False})):
        out = str(tmp_path / name)
        report = cio.convert(bad, out, format="wds", frames_per_shard=2, on_error="skip", **extra)
        assert (report.read, report.written) == (7, 6)
        assert [(s, i) for s, i, _ in report.skipped] == [(victim.split, victim.id)]
        outs.append(read_tree(out))
    assert outs[0] == outs[1] == outs[2]
    out = str(tmp_path / "one")
    # the positions are the listing's: the tar is one frame shorter, the others are unchanged
    assert _tar_ids(os.path.join(out, "train-000001.tar")) == [frames[3].id]
    for name in ("train-000000.tar", "train-000002.tar", "val-000000.tar"):
        assert outs[0][name] == read_tree(good)[name]
    with open(os.path.join(out, "shards.json")) as f:
        assert [s["frames"] for s in json.load(f)["splits"]["train"]] == [2, 1, 1]
    assert [f.id for f in cio.open(out, format="wds")] == [f.id for f in frames if f.id != victim.id]
    # resumed: the tar is there, so the frame left out of it is reported again, not written
    report = cio.convert(bad, out, format="wds", frames_per_shard=2, on_error="skip", resume=True)
    assert (report.read, report.written, report.resumed) == (7, 6, 6)
    assert [(s, i) for s, i, _ in report.skipped] == [(victim.split, victim.id)]
    assert "left out when the shard was written" in report.skipped[0][2]
    assert read_tree(out) == outs[0]


def test_shards_on_s3_in_processes(src, tmp_path, s3):
    fs, opts, bucket = s3
    local = str(tmp_path / "local")
    cio.convert(src, local, format="wds", frames_per_shard=2)
    want = read_tree(local)
    url = f"s3://{bucket}/shards"
    report = cio.convert(src, url, format="wds", frames_per_shard=2, workers=2, dst_storage_options=opts)
    assert report.written == 7 and report.ok
    fs.invalidate_cache()
    assert {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in fs.ls(f"{bucket}/shards")} == want
    fs.rm(f"{bucket}/shards/train-000002.tar")
    report = cio.convert(src, url, format="wds", frames_per_shard=2, resume=True, dst_storage_options=opts)
    assert (report.written, report.resumed) == (7, 6)  # the index entries of the others read from their headers
    fs.invalidate_cache()
    assert {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in fs.ls(f"{bucket}/shards")} == want
    _same_frames(cio.open(src), cio.open(url, format="wds", storage_options=opts))


def test_cli_frames_per_shard_workers_and_shards(src, tmp_path):
    one = str(tmp_path / "one")
    assert main(["convert", src, one, "-f", "wds", "-q", "--", "--frames-per-shard", "3"]) == 0
    assert sorted(os.listdir(one)) == [JOB_FILE, "shards.json", "train-000000.tar", "train-000001.tar",
                                       "val-000000.tar"]
    pool = str(tmp_path / "pool")
    assert main(["convert", src, pool, "-f", "wds", "-q", "--frames-per-shard", "3", "-j", "2"]) == 0
    assert read_tree(pool) == read_tree(one)
    sharded = str(tmp_path / "sharded")
    for i in range(2):
        assert main(["convert", src, sharded, "-f", "wds", "-q", "--frames-per-shard", "3", "--shard", f"{i}/2"]) == 0
    assert main(["convert", src, sharded, "-f", "wds", "-q", "--frames-per-shard", "3", "--finalize"]) == 0
    assert read_tree(sharded) == read_tree(one)


def test_bad_options_are_refused_clearly(src, tmp_path):
    with pytest.raises(ValueError, match="frames_per_shard must be at least 1"):
        cio.convert(src, str(tmp_path / "b"), format="wds", frames_per_shard=0)
    with pytest.raises(ValueError, match="an archive is written in one go by one process"):
        cio.convert(src, str(tmp_path / "c.zip"), format="wds", workers=2)


def test_frames_fetched_ahead_still_stream(src, tmp_path, monkeypatch):
    """A remote dataset's prefetch runs ahead of the consumer into the next shards: the frames
    left behind still come from their shard's stream (one sequential read), not by range."""
    from cityscapes_io.formats import wds

    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=2)
    ranged = []
    real = wds._ranged
    monkeypatch.setattr(wds, "_ranged", lambda *a: ranged.append(a[2:]) or real(*a))
    got = [(f.id, f.image_bytes(), f.original("instanceIds")) for f in cio.open(out, format="wds", prefetch=4)]
    want = [(f.id, f.image_bytes(), f.original("instanceIds")) for f in cio.open(src)]
    assert got == want and ranged == []


def test_the_shard_stream_reads_ahead_in_blocks(src, tmp_path, monkeypatch):
    """Members straddling the stream's blocks come back whole; a split read in order makes no
    ranged reads, one read per block; out of order, or a frame alone, reads by range; a frame
    fetched ahead alone reads its members in one request."""
    from concurrent.futures import ThreadPoolExecutor

    from cityscapes_io.formats import wds

    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=5)
    want = {(f.split, f.id): {k: f.source.read_bytes(k) for k in ("image", "instanceIds", "labelIds")}
            for f in cio.open(src)}
    monkeypatch.setattr(wds, "STREAM_BLOCK", 4096)  # small blocks: members straddle them
    ranged = []
    real = wds._ranged
    monkeypatch.setattr(wds, "_ranged", lambda *a: ranged.append(a) or real(*a))
    streams = set()
    for frame in cio.open(out, format="wds"):
        streams.add(frame.source._stream)
        for kind, data in want[(frame.split, frame.id)].items():
            assert frame.source.read_bytes(kind) == data, (frame.id, kind)
    assert ranged == []
    for stream in streams:
        assert stream.blocks_read == -(-stream.end // 4096)
    frames = list(cio.open(out, format="wds", split="train"))
    assert frames[3].source.read_bytes("image") == want[("train", frames[3].id)]["image"]
    assert frames[1].source.read_bytes("labelIds") == want[("train", frames[1].id)]["labelIds"]
    assert len(ranged) == 1  # the one out of order
    alone = pickle.loads(pickle.dumps(frames[2]))
    ranged.clear()
    with ThreadPoolExecutor(2) as pool:
        alone.source.fetch_ahead(["image", "instanceIds", "labelIds"], pool)
        assert {k: alone.source.read_bytes(k) for k in want[("train", alone.id)]} == want[("train", alone.id)]
    assert len(ranged) == 1  # one request for the three members


def test_the_stream_survives_pauses_and_forks_and_closes_when_read(src, tmp_path, monkeypatch):
    import time

    from cityscapes_io.formats import wds

    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=5)
    monkeypatch.setattr(wds, "STREAM_BLOCK", 1024)
    monkeypatch.setattr(wds._ShardStream, "IDLE", 0.002)  # the thread ends between reads, again and again
    want = {f.id: f.source.read_bytes("instanceIds") for f in cio.open(src)}
    frames = []
    for frame in cio.open(out, format="wds", split="train"):
        time.sleep(0.005)
        assert frame.source.read_bytes("instanceIds") == want[frame.id]
        frames.append(frame)
    for kind in ("image", "labelIds"):  # the rest of the members, out of order: by range where needed
        for frame in frames:
            frame.source.read_bytes(kind)
    streams = {f.source._stream for f in frames}
    assert all(s._closed and s._blocks == {} for s in streams)  # every member a reader asks for was read
    # a frame of an iteration in progress read in a forked child (the thread stays in the parent)
    it = iter(cio.open(out, format="wds", split="train"))
    first = next(it)
    first.source.read_bytes("image")
    second = next(it)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = second.source.read_bytes("instanceIds") == want[second.id]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_failing_frame_stops_its_shard_under_raise(src, tmp_path):
    """With on_error="raise" nothing of the failing frame's shard is written, so that a rerun
    after the fix (or resume) writes it whole."""
    import shutil

    bad = str(tmp_path / "bad")
    shutil.copytree(src, bad)
    frame = cio.open(bad, split="train")[3]
    path = frame.source.path("instanceIds")
    good = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(good[:50])
    for workers in (1, 2):
        out = str(tmp_path / f"out{workers}")
        with pytest.raises(cio.InvalidFileError, match="instanceIds.png"):
            cio.convert(bad, out, format="wds", frames_per_shard=2, workers=workers)
        assert "train-000001.tar" not in os.listdir(out)  # frames 2 and 3
    with open(path, "wb") as f:
        f.write(good)
    report = cio.convert(bad, str(tmp_path / "out1"), format="wds", frames_per_shard=2, resume=True)
    assert report.ok and report.written == 7
    whole = str(tmp_path / "whole")
    cio.convert(src, whole, format="wds", frames_per_shard=2)
    for name in sorted(os.listdir(whole)):
        if name != JOB_FILE:  # (it names the job's source, which differs)
            assert open(os.path.join(whole, name), "rb").read() == open(os.path.join(tmp_path, "out1", name),
                                                                        "rb").read()


def test_attach_streams_for_a_share_of_a_split(src, tmp_path):
    """A DataLoader worker's frames (pickled, so without the reader's stream) get one stream
    per run of one shard in order; not when the members read are a small part (no photos)."""
    from cityscapes_io.formats.wds import attach_streams

    out = str(tmp_path / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=3)
    frames = pickle.loads(pickle.dumps(list(cio.open(out, format="wds", split="train"))))
    assert all(f.source._stream is None for f in frames)
    share = [frames[0], frames[1], frames[2], frames[4], frames[3]]  # shard 0 in order, then shard 1 backwards
    got = attach_streams(share)
    streams = [f.source._stream for f in got]
    assert streams[0] is not None and streams[0] is streams[1] is streams[2]
    assert streams[3] is None and streams[4] is None  # runs of one frame
    want = {f.id: f.source.read_bytes("image") for f in cio.open(src, split="train")}
    assert all(f.source.read_bytes("image") == want[f.id] for f in got)
    labels_only = attach_streams(share, lambda f: ["labelIds"])
    assert all(f.source._stream is None for f in labels_only)
