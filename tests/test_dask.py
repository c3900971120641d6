"""Conversion on a Dask LocalCluster started by the test."""
import pytest

import cityscapes_io as cio
from cityscapes_io.testing import generate

from test_scale import tree_digest

pytest.importorskip("dask.bag")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("dask") / "cs")
    generate(root, splits={"train": 5, "val": 2}, size=(96, 48), seed=13)
    return root


def test_bag_partitions(synth):
    from cityscapes_io.dask import to_bag

    ds = cio.open(synth)
    bag = to_bag(ds, "city")
    assert bag.npartitions == len({(f.split, f.city) for f in ds})
    assert [f.id for f in bag.compute(scheduler="sync")] == [f.id for f in ds]
    assert to_bag(ds, 3).npartitions == 3


@pytest.mark.parametrize("partition", ["city", 2])
def test_convert_on_local_cluster_equals_one_process(synth, tmp_path, cluster, partition):
    from cityscapes_io.dask import convert_on_dask

    _, client = cluster
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format="voc", save_media=True)
    report = convert_on_dask(cio.open(synth), out, "voc", client=client, partition=partition, save_media=True)
    assert report.written == 7 and report.ok
    assert tree_digest(ref) == tree_digest(out)


def test_cli_scheduler_address(synth, tmp_path, cluster):
    from cityscapes_io.cli import main

    c, _ = cluster
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format="camvid", save_media=True)
    assert main(["convert", synth, out, "-f", "camvid", "--save-media", "--scheduler", c.scheduler_address,
                 "-q"]) == 0
    assert tree_digest(ref) == tree_digest(out)
