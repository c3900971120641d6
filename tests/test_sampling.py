"""Rare-class sampling: DAFormer's per-frame class statistics (``cityscapes_io.sampling``, ``stats
--per-frame``) and :class:`cityscapes_io.torch.RareClassSampler`.

The files are checked against pixel counts made here with numpy from the label PNGs (through the
official id → train id table), against a small reader written from what DAFormer's
``mmseg/datasets/uda_dataset.py`` does with them, and, opt-in, byte for byte against DAFormer's
own script (``tools/convert_datasets/cityscapes.py``) run in the cityscapesScripts environment:
set ``CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON`` (README, Development) and ``CITYSCAPES_IO_DAFORMER``
to a checkout of https://github.com/lhoyer/DAFormer.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.sampling import (ClassStats, RareClassTable, class_stats, read_class_stats,
                                    read_samples_with_class)
from cityscapes_io.testing import generate

FRAMES = 12
SIZE = (128, 64)
#: The official label id → train id table (cityscapesScripts helpers/labels.py), the 19 classes.
TRAIN_OF_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
               26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
LUT = np.full(256, 255, np.uint8)
for _id, _train in TRAIN_OF_ID.items():
    LUT[_id] = _train
#: Small frames: a class is a candidate with more than this many pixels (DAFormer's 3000 is
#: for 2048x1024; here traffic lights have 8 pixels at most in a frame, some frames fewer than 5).
MIN_PIXELS = 5
TEMPERATURE = 0.1
NAMES = ("sample_class_stats.json", "samples_with_class.json", "sample_class_stats_dict.json")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("rcs") / "cityscapes"
    generate(str(path), splits={"train": FRAMES, "val": 2}, size=SIZE, photos=False)
    return path


@pytest.fixture(scope="module")
def expected(root):
    """``{train-split id: counts of train ids 0..18}`` from the labelIds PNGs, with numpy alone."""
    out = {}
    for png in sorted((root / "gtFine" / "train").rglob("*_gtFine_labelIds.png")):
        ids = LUT[np.asarray(Image.open(png))]
        frame_id = f"{png.parent.name}/{png.name[: -len('_gtFine_labelIds.png')]}"
        out[frame_id] = np.bincount(ids.ravel(), minlength=256)[:19]
    assert len(out) == FRAMES
    return out


@pytest.fixture(scope="module")
def written(root, tmp_path_factory):
    """DAFormer's files written by the command line into a folder of their own."""
    out = tmp_path_factory.mktemp("rcs_out")
    assert main(["stats", str(root), "--per-frame", str(out), "-q"]) == 0
    return out


def _file(root, frame_id):
    return f"{root}/gtFine/train/{frame_id}_gtFine_labelTrainIds.png"


# -- the files --------------------------------------------------------------------------------------
def test_counts_match_numpy_on_the_label_pngs(root, expected, written):
    rows = json.loads((written / "sample_class_stats.json").read_text())
    assert len(rows) == FRAMES  # the train split only: no val frame
    by_file = {row["file"]: row for row in rows}
    for frame_id, counts in expected.items():
        row = dict(by_file[_file(root, frame_id)])
        assert list(row)[-1] == "file"
        del row["file"]
        present = np.flatnonzero(counts)
        assert list(row) == [str(c) for c in present]  # ids present only, ascending, as strings
        assert [row[str(c)] for c in present] == counts[present].tolist()
    # in the dataset's frame order
    assert [r["file"] for r in rows] == [_file(root, f.id) for f in cio.open(str(root), split="train")]


def test_files_are_json_dump_indent_2(written):
    for name in NAMES:
        raw = (written / name).read_text()
        assert raw == json.dumps(json.loads(raw), indent=2), name
        assert not raw.endswith("\n")


def test_samples_with_class_lists_every_frame_with_the_class(root, expected, written):
    rows = json.loads((written / "sample_class_stats.json").read_text())
    samples = json.loads((written / "samples_with_class.json").read_text())
    by_file = json.loads((written / "sample_class_stats_dict.json").read_text())
    # keys in the order the classes first occur among the frames
    first = list(dict.fromkeys(k for r in rows for k in r if k != "file"))
    assert list(samples) == first
    for key, pairs in samples.items():
        c = int(key)
        want = [[_file(root, f), int(n[c])] for f, n in expected.items() if n[c] > 0]
        assert sorted(pairs) == sorted(want)  # not filtered by a minimum: the reader does that
        assert all(isinstance(p, list) and len(p) == 2 for p in pairs)
    assert by_file == {r["file"]: {k: v for k, v in r.items() if k != "file"} for r in rows}


def test_python_api_streams_and_writes_to_any_fsspec_url(root, expected):
    ds = cio.open(str(root), split="train")
    seen = []
    stats = class_stats(ds, "memory://rcs/out", root="data/cityscapes", progress=seen.append)
    assert seen == list(range(1, FRAMES + 1))
    assert stats.files[0].startswith("data/cityscapes/gtFine/train/")
    for f, counts in zip(ds, stats.counts):
        np.testing.assert_array_equal(counts, expected[f.id])
    back = read_class_stats("memory://rcs/out")
    assert back.files == stats.files
    np.testing.assert_array_equal(back.counts, stats.counts)
    assert read_samples_with_class("memory://rcs/out") == stats.samples_with_class()


def test_executor_gives_the_same_counts(root):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ds = cio.open(str(root), split="train")
    one = class_stats(ds)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        two = class_stats(ds, executor=pool)
    assert one.files == two.files
    np.testing.assert_array_equal(one.counts, two.counts)
    assert one.to_json() == two.to_json()


def test_cli_needs_a_train_split_or_split(tmp_path, capsys):
    val = tmp_path / "val_only"
    generate(str(val), splits={"val": 1}, size=(32, 16), photos=False)
    assert main(["stats", str(val), "--per-frame", str(tmp_path / "o")]) == 2
    assert "--split" in capsys.readouterr().err
    assert main(["stats", str(val), "--per-frame", str(tmp_path / "o"), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 1
    assert json.loads((tmp_path / "o" / "sample_class_stats.json").read_text())[0]["file"].startswith(
        f"{val}/gtFine/val/")


def test_bad_files_are_named(tmp_path):
    (tmp_path / "sample_class_stats.json").write_text('[{"0": 5}]')
    with pytest.raises(InvalidFileError, match="sample_class_stats.json.*entry 0"):
        read_class_stats(str(tmp_path))
    (tmp_path / "sample_class_stats.json").write_text('[{"x": 5, "file": "a.png"}]')
    with pytest.raises(InvalidFileError, match="'x' is not a train id"):
        read_class_stats(str(tmp_path))
    (tmp_path / "sample_class_stats.json").write_text('[{"3": 5, "file": "a.png"}]')
    (tmp_path / "samples_with_class.json").write_text('{"4": [["a.png", 5]]}')
    with pytest.raises(InvalidFileError, match="samples_with_class.json: no entry for train id 3"):
        RareClassTable.read(str(tmp_path), min_pixels=0)
    (tmp_path / "samples_with_class.json").write_text('{"3": [["a.png", -1]]}')
    with pytest.raises(InvalidFileError, match="pixels -1"):
        read_samples_with_class(str(tmp_path))


# -- DAFormer's reader, written from what it does -----------------------------------------------------
def daformer_reader(data_root, temperature, min_pixels, seg_maps):
    """What DAFormer's UDADataset makes of the two files: the classes (fewest pixels first),
    their probabilities, and per class the dataset indices of the frames with more than
    ``min_pixels`` of it (matched by base name)."""
    with open(os.path.join(data_root, "sample_class_stats.json")) as f:
        rows = json.load(f)
    totals = {}
    for row in rows:
        row = dict(row)
        row.pop("file")
        for key, n in row.items():
            totals[int(key)] = totals.get(int(key), 0) + n
    classes = sorted(totals, key=lambda c: totals[c])  # stable: ties in order of appearance
    freq = np.array([totals[c] for c in classes], np.float64)
    freq = 1 - freq / freq.sum()
    p = np.exp(freq / temperature - (freq / temperature).max())
    p /= p.sum()
    with open(os.path.join(data_root, "samples_with_class.json")) as f:
        samples = {int(k): v for k, v in json.load(f).items() if int(k) in totals}
    index = {m.split("/")[-1]: i for i, m in enumerate(seg_maps)}
    members = {}
    for c in classes:
        members[c] = [index[file.split("/")[-1]] for file, pixels in samples[c] if pixels > min_pixels]
        assert members[c], c
    return classes, p, members


@pytest.fixture(scope="module")
def dataset(root):
    torch = pytest.importorskip("torch", reason="the torch extra installs it: pip install 'cityscapes_io[torch]'")
    del torch
    from cityscapes_io.torch import CityscapesDataset

    return CityscapesDataset(str(root), split="train", targets=("train_ids",))


def _seg_maps(ds):
    return [f"gtFine/train/{f.id}_gtFine_labelTrainIds.png" for f in ds.frames]


def test_daformer_reader_loads_our_files_and_the_sampler_agrees(written, dataset):
    from cityscapes_io.torch import RareClassSampler

    classes, p, members = daformer_reader(written, TEMPERATURE, MIN_PIXELS, _seg_maps(dataset))
    for stats in (str(written), None):  # read from the files, and computed from the dataset
        sampler = RareClassSampler(dataset, temperature=TEMPERATURE, min_pixels=MIN_PIXELS, stats=stats)
        assert list(sampler.classes) == classes
        np.testing.assert_allclose(sampler.probabilities, p, rtol=1e-12)
        got = {c: sorted(m.tolist()) for c, m in zip(sampler.classes, sampler._members)}
        assert got == {c: sorted(m) for c, m in members.items()}


def test_probabilities_are_the_softmax_of_one_minus_frequency(expected, dataset):
    from cityscapes_io.torch import RareClassSampler

    totals = np.sum(list(expected.values()), axis=0)
    for temperature in (0.01, 0.1, 1.0):
        sampler = RareClassSampler(dataset, temperature=temperature, min_pixels=0)
        f = totals / totals.sum()
        w = {c: np.exp((1 - f[c]) / temperature - (1 - f).max() / temperature) for c in np.flatnonzero(totals)}
        want = np.array([w[c] for c in sampler.classes]) / sum(w.values())
        np.testing.assert_allclose(sampler.probabilities, want, rtol=1e-9)
        assert list(sampler.classes) == sorted(sampler.classes, key=lambda c: totals[c])
        assert len(sampler.classes) == np.count_nonzero(totals)


def test_draws_follow_the_probabilities_and_the_minimum(expected, dataset):
    from cityscapes_io.torch import RareClassSampler

    sampler = RareClassSampler(dataset, temperature=1.0, min_pixels=MIN_PIXELS, num_samples=40000, seed=3)
    positions, drawn = sampler.draws(classes=True)
    counts = np.array([np.count_nonzero(drawn == c) for c in sampler.classes]) / len(drawn)
    np.testing.assert_allclose(counts, sampler.probabilities, atol=0.01)
    by_position = [expected[f.id] for f in dataset.frames]
    assert all(by_position[i][c] > MIN_PIXELS for i, c in zip(positions[:2000], drawn[:2000]))
    # uniform among a class's candidates
    c = sampler.classes[-1]
    members = sampler._members[-1]
    hits = np.bincount(positions[drawn == c], minlength=len(dataset))[members]
    assert hits.min() > 0.6 * hits.mean()


def test_same_seed_and_epoch_same_draws(dataset):
    from cityscapes_io.torch import RareClassSampler

    a = RareClassSampler(dataset, temperature=TEMPERATURE, min_pixels=MIN_PIXELS, seed=5, num_samples=50)
    b = RareClassSampler(dataset, temperature=TEMPERATURE, min_pixels=MIN_PIXELS, seed=5, num_samples=50)
    assert list(a) == list(b) == a.draws().tolist()
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b) == a.draws(1).tolist()
    c = RareClassSampler(dataset, temperature=TEMPERATURE, min_pixels=MIN_PIXELS, seed=6, num_samples=50)
    c.set_epoch(1)
    assert list(c) != list(a)
    assert len(a) == 50
    copy = pickle.loads(pickle.dumps(a))  # a copy keeps the epoch, with a counter of its own
    assert copy.epoch == 1 and list(copy) == list(a)
    copy.set_epoch(2)
    assert a.epoch == 1


def test_two_ranks_two_workers_share_the_one_process_draw(dataset):
    from cityscapes_io.torch import RareClassSampler

    kw = dict(temperature=TEMPERATURE, min_pixels=MIN_PIXELS, seed=2, num_samples=23)  # odd: uneven shares
    one = RareClassSampler(dataset, **kw).draws().tolist()
    with pytest.warns(UserWarning, match="even=True"):
        ranks = [RareClassSampler(dataset, rank=r, world_size=2, **kw) for r in range(2)]
    assert [len(s) for s in ranks] == [12, 11]
    assert list(ranks[0]) + list(ranks[1]) == one
    shares = [s.positions(w, 2) for s in ranks for w in range(2)]
    assert [len(s) for s in shares] == [6, 6, 6, 5]
    assert sum(shares, []) == one  # disjoint slices of the draw, together all of it
    even = [RareClassSampler(dataset, rank=r, world_size=2, even=True, **kw) for r in range(2)]
    assert [len(s) for s in even] == [11, 11] and list(even[0]) + list(even[1]) == one[:22]


def _with_worker(sample):
    from torch.utils.data import get_worker_info

    return {**sample, "worker": get_worker_info().id}


def test_a_real_dataloader_with_two_workers(root, dataset):
    from torch.utils.data import DataLoader

    from cityscapes_io.torch import CityscapesDataset, RareClassSampler, collate

    ds = CityscapesDataset(str(root), split="train", targets=("train_ids",), transform=_with_worker)
    kw = dict(temperature=TEMPERATURE, min_pixels=MIN_PIXELS, seed=4, num_samples=22)
    ids = [f.id for f in ds.frames]
    one = [ids[i] for i in RareClassSampler(ds, **kw).draws(1)]
    got = []
    for rank in range(2):
        sampler = RareClassSampler(ds, rank=rank, world_size=2, **kw)
        sampler.set_epoch(1)
        loader = DataLoader(ds, sampler=sampler, batch_size=2, num_workers=2, multiprocessing_context="fork",
                            collate_fn=collate)
        batches = list(loader)
        assert [b["id"] for b in batches] == [[ids[i] for i in sampler.positions()[k:k + 2]]
                                              for k in range(0, len(sampler), 2)]
        for k, b in enumerate(batches):  # each batch to one worker, in turn
            assert list(b["worker"]) == [k % 2] * len(b["id"])
            assert torch_equal_train_ids(b, root)
        got += [(rank, int(w), i) for b in batches for w, i in zip(b["worker"], b["id"])]
    assert [i for _, _, i in got] == one
    assert {(r, w) for r, w, _ in got} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def torch_equal_train_ids(batch, root):
    """The batch's train ids are the frames' own (read with numpy here)."""
    for frame_id, ids in zip(batch["id"], batch["train_ids"]):
        png = root / "gtFine" / "train" / f"{frame_id}_gtFine_labelIds.png"
        if not np.array_equal(ids.numpy(), LUT[np.asarray(Image.open(png))]):
            return False
    return True


class _Drawn:
    """An iterable dataset iterating the sampler inside each worker."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        from torch.utils.data import get_worker_info

        for i in self.sampler:
            yield get_worker_info().id, i


def test_inside_workers_each_takes_its_contiguous_share(dataset):
    from torch.utils.data import DataLoader, IterableDataset

    from cityscapes_io.torch import RareClassSampler

    class Drawn(_Drawn, IterableDataset):
        pass

    kw = dict(temperature=TEMPERATURE, min_pixels=MIN_PIXELS, seed=9, num_samples=19)
    one = RareClassSampler(dataset, **kw)
    for epoch in (0, 3):
        got = []
        for rank in range(2):
            sampler = RareClassSampler(dataset, rank=rank, world_size=2, even=True, **kw)
            loader = DataLoader(Drawn(sampler), batch_size=None, num_workers=2, multiprocessing_context="fork",
                                persistent_workers=True)
            list(loader)  # the workers start (epoch 0); set_epoch must reach them
            sampler.set_epoch(epoch)
            pairs = [(int(w), int(i)) for w, i in loader]
            by_worker = [[i for w, i in pairs if w == k] for k in range(2)]
            assert by_worker == [sampler.positions(k, 2) for k in range(2)]
            got += by_worker[0] + by_worker[1]
        assert got == one.draws(epoch).tolist()[:18]


RANK_SCRIPT = r"""
import json, sys
import torch.distributed as dist
from cityscapes_io.torch import CityscapesDataset, RareClassSampler
dist.init_process_group("gloo", init_method=sys.argv[1], rank=int(sys.argv[2]), world_size=2)
ds = CityscapesDataset(sys.argv[3], split="train", targets=("train_ids",))
sampler = RareClassSampler(ds, temperature=0.1, min_pixels=5, seed=1, num_samples=20, stats=sys.argv[4])
sampler.set_epoch(2)
print(json.dumps([sampler.rank, sampler.world_size, list(sampler)]))
dist.destroy_process_group()
"""


def test_torch_distributed_ranks(root, written, dataset):
    from cityscapes_io.torch import RareClassSampler

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, f"tcp://127.0.0.1:{port}", str(r), str(root),
                               str(written)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o[:2] for o in outs] == [[0, 2], [1, 2]]
    one = RareClassSampler(dataset, temperature=0.1, min_pixels=MIN_PIXELS, seed=1, num_samples=20,
                           stats=str(written))
    assert outs[0][2] + outs[1][2] == one.draws(2).tolist()


def test_statistics_of_other_frames_are_refused(root, written, tmp_path, dataset):
    from cityscapes_io.torch import CityscapesDataset, RareClassSampler

    aachen = CityscapesDataset(str(root), split="train", cities=["aachen"], targets=("train_ids",))
    with pytest.raises(ValueError, match="not in the dataset"):
        RareClassSampler(aachen, temperature=TEMPERATURE, min_pixels=MIN_PIXELS, stats=str(written))
    with pytest.raises(ValueError, match="lower min_pixels"):
        RareClassSampler(dataset, temperature=TEMPERATURE, min_pixels=10 ** 6)
    stats = ClassStats(("x/a.png",), np.ones((1, 19), np.int64))
    with pytest.raises(ValueError, match="not in the dataset"):
        RareClassSampler(dataset, min_pixels=0, stats=stats)


# -- DAFormer's own code (opt-in) --------------------------------------------------------------------
CS_PYTHON = os.environ.get("CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON")
DAFORMER = os.environ.get("CITYSCAPES_IO_DAFORMER")
needs_daformer = pytest.mark.skipif(
    not (CS_PYTHON and DAFORMER),
    reason="opt-in: set CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON (a python with cityscapesscripts 2.3.0, README, "
           "Development) and CITYSCAPES_IO_DAFORMER (a checkout of https://github.com/lhoyer/DAFormer)")

#: Runs DAFormer's tools/convert_datasets/cityscapes.py functions on the polygons files given, in
#: that order: convert_json_to_label (official json2labelImg, then its counts) and save_class_stats.
#: The script imports mmcv at the top and uses it only in main(): a stand-in module is enough.
DAFORMER_CONVERT = r"""
import importlib.util, sys, types
sys.modules["mmcv"] = types.ModuleType("mmcv")
path = sys.argv[1] + "/tools/convert_datasets/cityscapes.py"
spec = importlib.util.spec_from_file_location("daformer_cityscapes", path)
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)
stats = [script.convert_json_to_label(path) for path in sys.argv[3:]]
script.save_class_stats(sys.argv[2], stats)
"""


@needs_daformer
def test_daformer_script_writes_the_same_bytes(root, tmp_path):
    tree = tmp_path / "cityscapes"
    shutil.copytree(root, tree)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    theirs.mkdir()
    # every polygons file, val included (the script keeps train/ only), in our frame order
    polygons = [str(tree / "gtFine" / f.split / f"{f.id}_gtFine_polygons.json") for f in cio.open(str(tree))]
    run = subprocess.run([CS_PYTHON, "-c", DAFORMER_CONVERT, DAFORMER, str(theirs), *polygons],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert main(["stats", str(tree), "--per-frame", str(ours), "-q"]) == 0
    for name in NAMES:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    # its labelTrainIds (official rasterisation) hold what we counted
    rows = json.loads((ours / "sample_class_stats.json").read_text())
    assert len(rows) == FRAMES
    for row in rows:
        ids = np.asarray(Image.open(row["file"]))
        counts = np.bincount(ids.ravel(), minlength=256)
        assert {k: v for k, v in row.items() if k != "file"} == {str(c): int(counts[c]) for c in range(19) if counts[c]}


@needs_daformer
def test_daformer_get_rcs_class_probs_on_our_files(written, dataset):
    """Runs DAFormer's get_rcs_class_probs itself (taken from its file, not copied) on our files."""
    torch = pytest.importorskip("torch")
    from cityscapes_io.torch import RareClassSampler

    source = (Path(DAFORMER) / "mmseg" / "datasets" / "uda_dataset.py").read_text()
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_rcs_class_probs")
    namespace = {"json": json, "osp": os.path, "torch": torch}
    exec(compile(ast.Module([fn], []), "uda_dataset.py", "exec"), namespace)  # noqa: S102 - the peer's code
    for temperature in (0.01, 0.1, 1.0):
        classes, p = namespace["get_rcs_class_probs"](str(written), temperature)
        sampler = RareClassSampler(dataset, temperature=temperature, min_pixels=0, stats=str(written))
        assert list(sampler.classes) == classes
        np.testing.assert_allclose(sampler.probabilities, p, rtol=1e-5, atol=1e-7)  # theirs in float32
