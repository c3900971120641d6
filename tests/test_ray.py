"""Ray: a dataset as a ``ray.data.Dataset`` (decoded on the workers), our tar shards read by
``ray.data.read_webdataset``, and the Ray executor (issue 22). One local Ray for the module."""
from __future__ import annotations

import glob
import json
import os
import urllib.parse

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.testing import generate

from conftest import upload_dir

ray = pytest.importorskip("ray", reason="Ray is an extra: pip install '.[ray]' (the test extra has it)")
pytest.importorskip("ray.data", reason="Ray Data needs pandas: pip install '.[ray]' (ray[data])")

from cityscapes_io.ray import RayExecutor, decode_webdataset_row, to_ray_dataset  # noqa: E402

SIZE = (64, 32)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ray") / "cs")
    generate(root, splits={"train": 3, "val": 2}, size=SIZE, parts=["disparity", "camera"], demo_frames=0)
    return root


def _check_rows(rows, ds, targets):
    by_id = {r["id"]: r for r in rows}
    frames = list(ds)
    assert sorted(by_id) == sorted(f.id for f in frames)
    for f in frames:
        row = by_id[f.id]
        assert row["split"] == f.split
        for target, want in (("image", f.image()), ("instance_ids", f.instance_ids()), ("depth", f.depth()),
                             ("train_ids", f.train_ids())):
            if target in targets:
                assert row[target].dtype == want.dtype and np.array_equal(row[target], want, equal_nan=True), target


def test_a_dataset_as_a_ray_dataset(local_ray, tree):
    ds = cio.open(tree)
    targets = ("image", "instance_ids", "depth", "train_ids")
    data = to_ray_dataset(ds, targets=targets, batch_size=2)
    _check_rows(data.take_all(), ds, targets)
    with pytest.raises(ValueError, match="unknown target"):
        to_ray_dataset(ds, targets=("instances",))


def test_frames_from_the_s3_server_carry_their_storage_options(local_ray, tree, s3):
    """The credentials travel with the frames (their filesystem's storage_options), not through
    the workers' environment."""
    fs, options, bucket = s3
    upload_dir(fs, tree, f"{bucket}/cs")
    ds = cio.open(f"s3://{bucket}/cs", storage_options=options, split="val")
    _check_rows(to_ray_dataset(ds, targets=("image", "instance_ids")).take_all(), cio.open(tree, split="val"),
                ("image", "instance_ids"))


def test_read_webdataset_reads_our_shards(local_ray, tree, tmp_path):
    out = str(tmp_path / "wds")
    cio.convert(tree, out, format="wds", frames_per_shard=2)
    shards = sorted(glob.glob(os.path.join(out, "*.tar")))
    truth = {f.id: f for f in cio.open(tree)}
    rows = ray.data.read_webdataset(shards).take_all()  # Ray's own decoder: the 16-bit member stays 16-bit
    raw = {r["__key__"]: decode_webdataset_row(r) for r in ray.data.read_webdataset(shards, decoder=None).take_all()}
    assert len(rows) == len(truth) == len(raw)
    for row in rows:
        frame = truth[urllib.parse.unquote(row["__key__"])]
        assert row["instance_ids.png"].dtype == np.uint16 and np.array_equal(row["instance_ids.png"], frame.instance_ids())
        assert np.array_equal(row["image.png"], frame.image())
        ours = raw[row["__key__"]]
        assert np.array_equal(ours["instance_ids.png"], frame.instance_ids()) and ours["image.png"].shape == (32, 64, 3)


def test_the_ray_executor_runs_calls_as_tasks(local_ray):
    with RayExecutor() as executor:
        assert list(executor.map(len, ["ab", "c", ""])) == [2, 1, 0]
        fut = executor.submit(divmod, 7, 2)
        assert fut.result() == (3, 1)
    assert ray.is_initialized()  # it did not start Ray: it leaves it running
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(len, "x")


def test_operations_on_the_ray_executor_equal_one_process(local_ray, tree, tmp_path, capsys):
    from conftest import read_tree

    with RayExecutor() as executor:
        assert executor.max_workers == 2
        one, on_ray = str(tmp_path / "one"), str(tmp_path / "ray")
        cio.convert(tree, one, format="voc", save_media=True)
        cio.convert(tree, on_ray, format="voc", save_media=True, executor=executor)
        assert read_tree(one) == read_tree(on_ray)
        preds = str(tmp_path / "preds")
        cio.export_predictions(tree, preds, task="semantic", split="val")
        on_cluster, alone = cio.evaluate(tree, preds, executor=executor), cio.evaluate(tree, preds)
        assert json.dumps(on_cluster.to_dict()) == json.dumps(alone.to_dict())  # (NaN where a class is absent)
        assert str(on_cluster) == str(alone)
        from cityscapes_io.stats import compute_stats

        assert compute_stats(cio.open(tree), executor=executor) == compute_stats(cio.open(tree))
    from cityscapes_io.cli import main

    assert main(["stats", tree, "--json", "--scheduler", "ray", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == compute_stats(cio.open(tree))
