"""Reading from zip archives and from S3 (a real S3 protocol server on 127.0.0.1)."""
import numpy as np
import pytest

import cityscapes_io as cio

from conftest import SEMANTIC, TREE_ORDER as EXPECTED, upload_dir, zip_dir




def check(ds):
    frames = list(ds)
    assert [(f.split, f.id) for f in frames] == EXPECTED
    for f in frames:
        if f.has("instanceIds"):
            assert np.array_equal(f.instance_ids(), SEMANTIC)
            assert sorted(i.value for i in f.instances()) == [0, 7, 26, 24001, 26000, 26003, 26005]
        if f.has_image:
            assert f.image().shape == (24, 32, 3)
    assert frames[0].image() is None and frames[-1].instances() == []


def test_zip_spellings(tree, tmp_path):
    archive = zip_dir(tree, str(tmp_path / "cityscapes.zip"))
    check(cio.open(archive))
    check(cio.open(f"zip://::{archive}"))
    check(cio.Dataset.import_from(archive, "cityscapes"))


def test_zip_with_wrapping_folder(tree, tmp_path):
    archive = zip_dir(tree, str(tmp_path / "wrapped.zip"), prefix="Cityscapes")
    check(cio.open(archive))


def test_two_archive_layout_unpacked_or_not(tree, tmp_path):
    gt = zip_dir(tree, str(tmp_path / "gtFine_trainvaltest.zip"), only="gtFine/")
    img = zip_dir(tree, str(tmp_path / "leftImg8bit_trainvaltest.zip"), only="leftImg8bit/")
    ds = cio.open([gt, img])
    check(ds)
    frame = ds.frame("aachen/aachen_000010_000019")
    # One filesystem object per archive, shared by every frame.
    assert frame.source.locations()["instanceIds"][0] is ds.reader.roots[0].fs
    assert frame.source.locations()["image"][0] is ds.reader.roots[1].fs
    # Mixed: ground truth zipped, photos unpacked.
    check(cio.open([gt, tree]))


def test_s3_prefix(tree, s3):
    fs, opts, bucket = s3
    upload_dir(fs, tree, f"{bucket}/data/cityscapes")
    ds = cio.open(f"s3://{bucket}/data/cityscapes", storage_options=opts)
    assert ds.prefetch > 0
    check(ds)
    check(cio.open(f"s3://{bucket}/data/cityscapes", storage_options=opts, prefetch=0))


def test_s3_prefetch_reads_the_right_bytes(tree, s3):
    fs, opts, bucket = s3
    upload_dir(fs, tree, f"{bucket}/ds")
    ds = cio.open(f"s3://{bucket}/ds", storage_options=opts, prefetch=2)
    seen = 0
    for f in ds:
        if f.has("instanceIds"):
            pending = set(f.source._pending)  # fetched ahead by the dataset
            assert np.array_equal(f.instance_ids(), SEMANTIC)
            seen += bool(pending)
    assert seen >= 2  # later frames arrived prefetched


def test_zip_on_s3(tree, s3, tmp_path):
    fs, opts, bucket = s3
    archive = zip_dir(tree, str(tmp_path / "cs.zip"))
    with open(archive, "rb") as f:
        fs.pipe_file(f"{bucket}/cs.zip", f.read())
    fs.invalidate_cache()
    check(cio.open(f"zip::s3://{bucket}/cs.zip", storage_options={"s3": opts}))
    check(cio.open(f"zip::s3://{bucket}/cs.zip", storage_options=opts))
    check(cio.open(f"s3://{bucket}/cs.zip", storage_options=opts))


def test_missing_roots(tmp_path, s3):
    fs, opts, bucket = s3
    with pytest.raises(cio.DatasetNotFoundError):
        cio.open(str(tmp_path / "nope.zip"))
    with pytest.raises(cio.DatasetNotFoundError, match="no such directory"):
        cio.open(f"s3://{bucket}/nothing-here", storage_options=opts)
    # A bucket that does not exist is said as such (issue 18).
    for url in (f"s3://{bucket}-missing/cs", f"s3://{bucket}-missing"):
        with pytest.raises(cio.DatasetNotFoundError, match=f"bucket '{bucket}-missing' does not exist") as info:
            cio.open(url, storage_options=opts)
        assert info.value.path == url
