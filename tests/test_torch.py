"""cityscapes_io.torch with a real DataLoader: workers (fork and spawn), persistent workers over
epochs, simulated ranks, from local disk, a zip and the local S3 server. Every frame exactly once
per epoch, the same batches for the same seed and epoch, other orders for other epochs, 16-bit
values kept."""
from __future__ import annotations

import collections
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402

import cityscapes_io as cio  # noqa: E402
from cityscapes_io.testing import generate  # noqa: E402
from cityscapes_io.torch import CityscapesDataset, CityscapesIterable, collate, epoch_order  # noqa: E402
from conftest import upload_dir, zip_dir  # noqa: E402

FRAMES = 7  # odd: shares across 2 ranks × 2 workers are uneven


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("torch") / "cityscapes")
    generate(path, splits={"train": FRAMES, "val": 2}, size=(64, 32))
    return path


@pytest.fixture(scope="module")
def all_ids(root):
    return [f.id for f in cio.open(root, split="train")]


def _ids(loader):
    return [list(b["id"]) for b in loader]


def _flat(batches):
    return [i for b in batches for i in b]


def _loader(ds, workers=2, ctx="fork", **kw):
    kw.setdefault("batch_size", 2)
    return DataLoader(ds, num_workers=workers, multiprocessing_context=ctx if workers else None,
                      collate_fn=collate, **kw)


# -- samples ----------------------------------------------------------------------------------------
def test_import_cityscapes_io_does_not_import_torch():
    code = "import sys, cityscapes_io; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_targets_match_the_frame(root):
    targets = ("image", "semantic", "train_ids", "instance_ids", "instances", "panoptic")
    ds = CityscapesDataset(root, split="train", targets=targets)
    frame = cio.open(root, split="train")[0]
    s = ds[0]
    assert (s["id"], s["split"]) == (frame.id, "train")
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (32, 64, 3)
    assert np.array_equal(s["image"].numpy(), frame.image())
    assert s["semantic"].dtype == torch.uint8 and np.array_equal(s["semantic"].numpy(), frame.label_ids())
    assert np.array_equal(s["train_ids"].numpy(), frame.train_ids())
    ids = s["instance_ids"]
    assert ids.dtype == torch.uint16 and np.array_equal(ids.numpy(), frame.instance_ids())
    assert ids.numpy().max() > 255  # 16-bit values survive
    inst = s["instances"]
    things = [i for i in frame.instances() if i.label.has_instances]
    assert len(things) > 0 and inst["masks"].shape == (len(things), 32, 64) and inst["masks"].dtype == torch.bool
    assert inst["labels"].dtype == torch.int64 and inst["labels"].tolist() == [i.label_id for i in things]
    assert inst["ids"].tolist() == [i.value for i in things]
    assert inst["iscrowd"].tolist() == [i.is_crowd for i in things]
    for k, i in enumerate(things):
        x, y, w, h = i.bbox
        assert inst["boxes"][k].tolist() == [x, y, x + w, y + h]
        assert np.array_equal(inst["masks"][k].numpy(), i.mask)
    pan = s["panoptic"]
    assert pan["segments"].dtype == torch.uint16 and int(pan["segments"].to(torch.int32).max()) > 255
    assert set(pan["ids"].tolist()) == set(np.unique(pan["segments"].numpy()).tolist()) - {0}


def test_train_ids_dataset_channels_first_and_transform(root):
    seen = []

    def transform(sample):
        seen.append(sample["id"])
        return {**sample, "extra": 1}

    ds = CityscapesDataset(cio.open(root).to_train_ids(), split="train", targets=("image", "semantic", "train_ids"),
                           transform=transform, channels_first=True)
    s = ds[1]
    assert s["image"].shape == (3, 32, 64) and s["extra"] == 1 and seen == [s["id"]]
    assert torch.equal(s["semantic"], s["train_ids"]) and int(s["semantic"].max()) == 255
    assert len(ds) == FRAMES
    with pytest.raises(ValueError, match="unknown target"):
        CityscapesDataset(root, targets=("normals",))


def test_pickles_without_pixels_and_opens_nothing_until_used(root):
    ds = CityscapesDataset(root, split="train", targets=("image", "instance_ids"))
    ds[0]
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # file references, no pixels
    back = pickle.loads(blob)
    assert back._frames._frames is None  # not unpickled until a sample is asked for
    assert len(back) == FRAMES and back[0]["id"] == ds[0]["id"]


def test_collate_stacks_tensors_and_lists_instances(root):
    ds = CityscapesDataset(root, split="train", targets=("image", "instances"))
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 32, 64, 3) and isinstance(batch["instances"], list)
    assert batch["id"] == [ds[0]["id"], ds[1]["id"]]


# -- map-style with workers ---------------------------------------------------------------------------
def test_map_style_fork_workers_keep_16_bit(root, all_ids):
    ds = CityscapesDataset(root, split="train", targets=("instance_ids", "instances"))
    ids, values = [], []
    for batch in _loader(ds, batch_size=3):
        ids += batch["id"]
        assert batch["instance_ids"].dtype == torch.uint16 and isinstance(batch["instances"], list)
        values.append(batch["instance_ids"].numpy())
    assert ids == all_ids
    direct = [f.instance_ids() for f in cio.open(root, split="train")]
    assert np.array_equal(np.concatenate(values), np.stack(direct)) and max(v.max() for v in direct) > 255


def test_map_style_spawn_from_zip(root, all_ids, tmp_path):
    archive = zip_dir(root, str(tmp_path / "cs.zip"))
    ds = CityscapesDataset(archive, split="train", targets=("image", "semantic"))
    assert _flat(_ids(_loader(ds, ctx="spawn", batch_size=3))) == all_ids


def test_distributed_sampler_covers_every_frame(root, all_ids):
    ds = CityscapesDataset(root, split="train", targets=("semantic",))
    orders = {}
    for epoch in (0, 1):
        got = []
        for rank in (0, 1):
            sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
            sampler.set_epoch(epoch)
            got += _flat(_ids(_loader(ds, workers=0, sampler=sampler)))
        assert set(got) == set(all_ids) and len(got) == FRAMES + 1  # the sampler pads to an even count
        orders[epoch] = got
    assert orders[0] != orders[1]


# -- iterable: ranks × workers ------------------------------------------------------------------------
def test_epoch_order_is_a_bounded_deterministic_shuffle():
    a = epoch_order(100, 8, seed=1, epoch=0)
    assert sorted(a.tolist()) == list(range(100)) and a.tolist() == epoch_order(100, 8, 1, 0).tolist()
    assert a.tolist() != epoch_order(100, 8, 1, 1).tolist() != epoch_order(100, 8, 2, 0).tolist()
    pos = np.empty(100, int)
    pos[a] = np.arange(100)
    # a block of 8 consecutive frames (a tar shard's) stays together, but for the buffer's tail
    spreads = [pos[i:i + 8].max() - pos[i:i + 8].min() for i in range(0, 100, 8)]
    assert np.mean(spreads) < 3 * 8 and np.median(spreads) < 2.5 * 8, spreads
    assert epoch_order(5, 0, 1, 3).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="seed and epoch must be >= 0"):
        epoch_order(5, 2, -1, 0)


def test_ranks_see_other_parts_of_the_dataset_each_epoch():
    """The blocks are permuted before the buffer: a rank's contiguous share of the order is
    not the same part of storage every epoch (it would be with a bounded buffer alone)."""
    n, world = 400, 4
    seen = set()
    for epoch in range(6):
        order = epoch_order(n, 10, seed=0, epoch=epoch)
        share = order[: n // world]
        seen.update(share.tolist())
        assert share.max() - share.min() > n // 2  # not one quarter of storage
    assert len(seen) > 0.6 * n


def _epoch(source, epoch, *, ctx="fork", **kw):
    """Batches of each of 2 ranks (2 workers each) for one epoch."""
    out = []
    for rank in (0, 1):
        ds = CityscapesIterable(source, split="train", targets=("instance_ids",), shuffle=3, seed=5, rank=rank,
                                world_size=2, **kw)
        ds.set_epoch(epoch)
        out.append(_ids(_loader(ds, ctx=ctx)))
    return out


def test_iterable_two_ranks_two_workers_every_frame_once(root, all_ids):
    e0, e0_again, e1 = _epoch(root, 0), _epoch(root, 0), _epoch(root, 1)
    for ranks in (e0, e1):
        counts = collections.Counter(_flat(ranks[0]) + _flat(ranks[1]))
        assert sorted(counts) == sorted(all_ids) and set(counts.values()) == {1}
        assert [len(_flat(r)) for r in ranks] == [4, 3]  # uneven: every frame once, counts differ by one
    assert e0 == e0_again  # same seed and epoch: the same batches
    assert _flat(e0[0]) + _flat(e0[1]) != _flat(e1[0]) + _flat(e1[1])


def test_iterable_len_and_even(root, all_ids):
    assert [len(CityscapesIterable(root, split="train", rank=r, world_size=2)) for r in (0, 1)] == [4, 3]
    dropped = []
    for epoch in (0, 1):
        got = []
        for rank in (0, 1):
            ds = CityscapesIterable(root, split="train", targets=("semantic",), shuffle=4, seed=0, rank=rank,
                                    world_size=2, even=True)
            ds.set_epoch(epoch)
            assert len(ds) == 3
            ids = _flat(_ids(_loader(ds, workers=0)))
            assert len(ids) == 3
            got += ids
        assert len(set(got)) == 6
        dropped.append(set(all_ids) - set(got))
    assert all(len(d) == 1 for d in dropped)
    with pytest.raises(ValueError):
        CityscapesIterable(root, rank=2, world_size=2)


def test_iterable_persistent_workers_follow_set_epoch(root):
    ds = CityscapesIterable(root, split="train", targets=("semantic",), shuffle=4, seed=7)
    loader = _loader(ds, persistent_workers=True)
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        orders.append(_ids(loader))
    for epoch in (0, 1):  # what fresh workers give for that epoch
        fresh = CityscapesIterable(root, split="train", targets=("semantic",), shuffle=4, seed=7)
        fresh.set_epoch(epoch)
        assert _ids(_loader(fresh)) == orders[epoch]
    assert orders[0] != orders[1] and sorted(_flat(orders[0])) == sorted(_flat(orders[1]))


# -- S3 ---------------------------------------------------------------------------------------------
@pytest.fixture
def s3_root(s3, root):
    fs, opts, bucket = s3
    upload_dir(fs, root, f"{bucket}/cs")
    return f"s3://{bucket}/cs", opts


def test_s3_fork_workers_after_the_parent_used_the_filesystem(s3_root, all_ids, root):
    url, opts = s3_root
    ds = CityscapesDataset(url, split="train", targets=("image", "instance_ids"), storage_options=opts)
    first = ds[0]  # the parent's s3fs instance has run its event loop: workers must not use it
    got = list(_loader(ds, batch_size=3))
    assert _flat([b["id"] for b in got]) == all_ids
    assert torch.equal(got[0]["instance_ids"][0].to(torch.int32), first["instance_ids"].to(torch.int32))
    assert _epoch(url, 1, storage_options=opts) == _epoch(root, 1)  # the same split as local disk


def test_s3_spawn_persistent_iterable(s3_root, all_ids):
    url, opts = s3_root
    ds = CityscapesIterable(url, split="train", targets=("image", "instance_ids"), shuffle=3, seed=1,
                            storage_options=opts)
    loader = _loader(ds, ctx="spawn", persistent_workers=True)
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        batches = list(loader)
        assert all(b["instance_ids"].dtype == torch.uint16 for b in batches)
        orders.append([i for b in batches for i in b["id"]])
        assert sorted(orders[-1]) == sorted(all_ids)
    assert orders[0] != orders[1]



def test_collate_detection_tuples_and_frames_of_several_sizes(root, tmp_path):
    """torchvision's detection models take (images, targets) with lists of each: a transform
    returning (image, target) pairs batches so; frames of different sizes come as lists."""
    ds = CityscapesDataset(root, split="train", targets=("image", "instances"),
                           transform=lambda s: (s["image"], s["instances"]))
    counts = [len(ds[k][1]["labels"]) for k in range(len(ds))]
    a, b = next((i, j) for i in range(len(ds)) for j in range(len(ds)) if counts[i] != counts[j])
    images, targets = collate([ds[a], ds[b]])
    assert images.shape == (2, 32, 64, 3) and isinstance(targets, list)
    assert [len(t["labels"]) for t in targets] == [counts[a], counts[b]]
    other = str(tmp_path / "big")
    generate(other, splits={"train": 1}, size=(96, 48))
    big = CityscapesDataset(other, split="train", targets=("image", "semantic"))
    small = CityscapesDataset(root, split="train", targets=("image", "semantic"))
    batch = collate([small[0], big[0]])
    assert [tuple(t.shape) for t in batch["image"]] == [(32, 64, 3), (48, 96, 3)]
    assert batch["id"] == [small[0]["id"], big[0]["id"]]


def test_errors_keep_their_type_through_workers(root, tmp_path):
    import shutil

    bad = str(tmp_path / "bad")
    shutil.copytree(root, bad)
    frame = cio.open(bad, split="train")[3]
    with open(frame.source.path("instanceIds"), "r+b") as f:
        f.truncate(60)
    ds = CityscapesDataset(bad, split="train", targets=("instance_ids",))
    with pytest.raises(cio.InvalidFileError, match=r"_gtFine_instanceIds.png"):
        for _ in _loader(ds, workers=2):
            pass


def test_a_copy_follows_set_epoch_in_persistent_workers(root):
    import copy

    ds = copy.deepcopy(CityscapesIterable(root, split="train", targets=("instance_ids",), shuffle=3, seed=1))
    loader = _loader(ds, workers=2, persistent_workers=True)
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        orders.append(_flat(_ids(loader)))
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])
    with pytest.raises(ValueError, match="seed must be >= 0"):
        CityscapesIterable(root, split="train", seed=-1)
    with pytest.raises(TypeError, match="indices are ints"):
        CityscapesDataset(root, split="train")[1:3]


def test_iterable_over_a_zip_and_tar_shards_equals_local_disk(root, tmp_path, s3):
    """Two ranks × two workers, the same seed and epoch: the same batches from a zip, from tar
    shards on disk and from tar shards on the S3 server as from the folder."""
    fs, opts, bucket = s3
    zipped = str(tmp_path / "cs.zip")
    zip_dir(root, zipped)
    shards = str(tmp_path / "shards")
    cio.convert(root, shards, format="wds", frames_per_shard=3)
    upload_dir(fs, shards, f"{bucket}/shards")
    want = _epoch(root, 1)
    assert _epoch(zipped, 1) == want
    assert _epoch(cio.open(shards, format="wds"), 1) == want
    assert _epoch(f"s3://{bucket}/shards", 1, format="wds", storage_options=opts) == want
    ds = CityscapesDataset(f"s3://{bucket}/shards", split="train", format="wds", storage_options=opts,
                           targets=("instance_ids",))
    got = _flat(_ids(_loader(ds, ctx="spawn")))
    assert got == [f.id for f in cio.open(root, split="train")]


def test_uneven_ranks_warn_of_ddp_and_even_does_not(root):
    with pytest.warns(UserWarning, match="shares differ by one frame.*even=True"):
        CityscapesIterable(root, split="train", rank=0, world_size=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CityscapesIterable(root, split="train", rank=0, world_size=2, even=True)
        CityscapesIterable(root, split="train", rank=0, world_size=1)
