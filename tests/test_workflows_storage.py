"""Issue 18, storage: a chained zip destination (``zip::s3://bucket/out.zip``) is written with
the destination's storage options, given plain or keyed by protocol, as the same spelling is read."""
import json
import zipfile

import numpy as np
import pytest

import cityscapes_io as cio
import cityscapes_io.cli
import cityscapes_io.testing


@pytest.fixture
def offline(monkeypatch):
    """Options that are ignored must fail at once on 127.0.0.1, never reach AWS: the default
    endpoint is a closed local port (an explicit endpoint_url overrides it), one attempt."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")


@pytest.fixture
def src(tmp_path):
    root = str(tmp_path / "cs")
    cio.testing.generate(root, splits={"val": 2}, size=(64, 32), seed=1)
    return root


def _frames(ds):
    return [(f.split, f.id, f.label_ids()) for f in ds]


def _check(fs, bucket, name, opts, expected):
    fs.invalidate_cache()
    assert fs.find(bucket) == [f"{bucket}/{name}"]  # the archive, and nothing beside it
    with fs.open(f"{bucket}/{name}", "rb") as f:
        assert zipfile.ZipFile(f).testzip() is None
    back = _frames(cio.open(f"zip::s3://{bucket}/{name}", format="voc", storage_options=opts))
    assert [f[:2] for f in back] == [f[:2] for f in expected] and len(back) == 2
    for (_, _, a), (_, _, b) in zip(back, expected):
        assert np.array_equal(a, b)


def _convert_to_a_chained_zip_on_s3(src, tmp_path, s3, keyed):
    fs, opts, bucket = s3
    local = str(tmp_path / "voc")
    cio.convert(src, local, format="voc")
    expected = _frames(cio.open(local, format="voc"))
    url = f"zip::s3://{bucket}/out.zip"
    report = cio.convert(src, url, format="voc", dst_storage_options={"s3": opts} if keyed else opts)
    assert report.ok and report.written == 2
    _check(fs, bucket, "out.zip", opts, expected)
    with pytest.raises(cio.CityscapesIOError, match="archive exists already"):
        cio.convert(src, url, format="voc", dst_storage_options=opts)


def test_convert_to_a_chained_zip_on_s3(src, tmp_path, s3, offline):
    _convert_to_a_chained_zip_on_s3(src, tmp_path, s3, keyed=False)


def test_convert_to_a_chained_zip_on_s3_options_keyed(src, tmp_path, s3, offline):
    _convert_to_a_chained_zip_on_s3(src, tmp_path, s3, keyed=True)


def test_cli_convert_to_a_chained_zip_on_s3(src, tmp_path, s3, offline):
    fs, opts, bucket = s3
    local = str(tmp_path / "voc")
    cio.convert(src, local, format="voc")
    url = f"zip::s3://{bucket}/cli.zip"
    assert cio.cli.main(["convert", src, url, "-f", "voc", "--dst-storage-options", json.dumps(opts), "-q"]) == 0
    _check(fs, bucket, "cli.zip", opts, _frames(cio.open(local, format="voc")))


def test_ignored_options_fail_fast_offline(src, s3, offline):
    """The guard itself: without the options the write fails on the closed local port."""
    fs, opts, bucket = s3
    with pytest.raises(cio.CityscapesIOError):
        cio.convert(src, f"s3://{bucket}/none.zip", format="voc")
    fs.invalidate_cache()
    assert fs.find(bucket) == []


def test_chained_zip_on_local_disk(src, tmp_path):
    archive = str(tmp_path / "sub" / "out.zip")
    cio.convert(src, f"zip::{archive}", format="voc")
    assert cio.open(f"zip::{archive}", format="voc").count() == 2
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.zip"]
