"""Tar shards (format="wds"): written from any dataset, read back as the same frames (one
sequential read per shard, or by range), by the webdataset package too; over zip and S3."""
from __future__ import annotations

import glob
import json
import os
import pickle
import tarfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.formats import detect_format
from cityscapes_io.synthetic import generate


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
    assert sorted(os.listdir(out)) == ["shards.json", "train-000000.tar", "train-000001.tar", "train-000002.tar",
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
        "shards.json", "train-000000.tar", "train-000001.tar", "val-000000.tar"]
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


def test_parallel_modes_are_refused_clearly(src, tmp_path):
    with pytest.raises(ValueError, match="wds is written in one go by one process"):
        cio.convert(src, str(tmp_path / "a"), format="wds", workers=2)
    with pytest.raises(ValueError, match="frames_per_shard must be at least 1"):
        cio.convert(src, str(tmp_path / "b"), format="wds", frames_per_shard=0)
