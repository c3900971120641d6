"""``executor=`` on every long operation: convert, prepare, evaluate, check_predictions, validate
and compute_stats on a real Dask cluster (a two-worker LocalCluster) and on a local process pool
give the bytes and numbers of one process; the command line's ``--scheduler``; credentials that
reach the workers through ``storage_options`` only; warnings and lost workers coming back."""
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import time
import warnings

import pytest

import cityscapes_io as cio
from cityscapes_io.parallel import WorkerDied, executor_width, ordered_map
from cityscapes_io.png import encode_png
from cityscapes_io.testing import generate
from cityscapes_io.validate import validate

from conftest import read_tree, upload_dir, write_file

distributed = pytest.importorskip("distributed", reason="the dask extra installs distributed: pip install '.[dask]'")

_AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_PROFILE")


@pytest.fixture(scope="module")
def cluster():
    """A two-worker Dask cluster in processes, started without AWS credentials in their
    environment (the S3 test's credentials can only come with the tasks), and whose scheduler
    gives up on a task at the first worker it kills (the lost-worker test)."""
    import dask

    saved = {k: os.environ.pop(k) for k in _AWS if k in os.environ}
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                               dashboard_address=None, host="127.0.0.1")
    finally:
        os.environ.update(saved)
    with cluster, distributed.Client(cluster) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def dask_executor(cluster):
    return cluster[1].get_executor(pure=False)


@pytest.fixture(scope="module")
def pool_executor():
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.fixture(params=["dask", "pool"])
def executor(request):
    return request.getfixturevalue(f"{request.param}_executor")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("executor") / "cs")
    generate(root, splits={"train": 3, "val": 4}, size=(96, 48), seed=13)
    return root


@pytest.fixture(scope="module")
def predictions(synth, tmp_path_factory):
    """Predictions of the val split in the official layouts: another synthetic dataset with the
    same frame ids (other scenes), exported per task."""
    base = tmp_path_factory.mktemp("predictions")
    other = str(base / "other")
    generate(other, splits={"train": 3, "val": 4}, size=(96, 48), seed=14)
    out = {}
    for task in ("semantic", "instance", "panoptic"):
        folder = str(base / task)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*: all .* instance predictions have the same score")
            cio.export_predictions(other, folder, task=task, split="val")
        out[task] = folder if task != "panoptic" else os.path.join(folder, "cityscapes_panoptic_val.json")
    out["dataset"] = other
    return out


def _same_result(a, b) -> None:
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    assert str(a) == str(b)


# -- the ordered map ----------------------------------------------------------------------------
def test_warnings_come_back_in_order_from_the_cluster(dask_executor):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(ordered_map(warnings.warn, [f"w{k}" for k in range(7)], executor=dask_executor, chunk=2))
    assert out == [None] * 7
    assert [str(w.message) for w in caught] == [f"w{k}" for k in range(7)]


def _warn_slowly(k: int) -> int:
    for j in range(3):
        warnings.warn(f"{k}.{j}")
        time.sleep(0.002 * ((k * 7 + j) % 3))
    return k * k


def test_warnings_of_tasks_in_threads_are_kept_apart():
    """Tasks running at once in threads of one process (as a Dask worker with several threads
    runs them): each task's warnings come back with it, in order, none lost or swapped."""
    before = (list(warnings.filters), warnings.showwarning)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = list(ordered_map(_warn_slowly, range(24), executor=pool))
    assert out == [k * k for k in range(24)]
    assert [str(w.message) for w in caught] == [f"{k}.{j}" for k in range(24) for j in range(3)]
    assert (list(warnings.filters), warnings.showwarning) == before  # the process's state is as it was


def test_window_bounds_the_items_taken(pool_executor):
    taken = []

    def items():
        for k in range(20):
            taken.append(k)
            yield k

    results = ordered_map(abs, items(), executor=pool_executor, window=3)
    assert next(results) == 0
    assert len(taken) <= 4  # the window, and the one whose result is being taken
    results.close()
    assert executor_width(pool_executor) == 2


def test_an_exception_of_fn_comes_back_as_itself_at_its_turn(dask_executor):
    results = ordered_map(int, ["1", "2", "x", "4"], executor=dask_executor)
    assert next(results) == 1 and next(results) == 2
    with pytest.raises(ValueError, match="invalid literal"):
        next(results)


def test_a_lost_process_of_a_pool_is_worker_died():
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(WorkerDied) as info:
            list(ordered_map(os._exit, [3, 4], executor=pool))
    assert info.value.foreign and info.value.lost == [3, 4]
    assert isinstance(info.value.__cause__, concurrent.futures.process.BrokenProcessPool)


def test_convert_on_a_broken_executor_is_a_clear_error(synth, predictions, tmp_path):
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    with pytest.raises(WorkerDied):
        list(ordered_map(os._exit, [3], executor=pool))
    with pytest.raises(cio.CityscapesIOError, match="the executor lost a worker .* before 1 frames were accounted "
                                                    "for: aachen/aachen_000000_000019; .*--resume"):
        cio.convert(synth, str(tmp_path / "out"), format="voc", executor=pool)
    with pytest.raises(cio.CityscapesIOError, match="the executor lost a worker .*4 frame\\(s\\) not accounted for"):
        cio.evaluate(synth, predictions["semantic"], executor=pool)
    pool.shutdown()


# -- convert --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, options", [("cityscapes", {"save_train_ids": True}), ("voc", {}),
                                          ("wds", {"frames_per_shard": 2})])
def test_convert_on_an_executor_equals_one_process(synth, tmp_path, executor, fmt, options):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format=fmt, save_media=True, **options)
    report = cio.convert(synth, out, format=fmt, save_media=True, executor=executor, **options)
    assert report.written == 7 and report.ok
    tree = read_tree(ref)
    assert len(tree) >= 6 and tree == read_tree(out)
    if fmt == "wds":
        assert sum(name.endswith(".tar") for name in tree) == 4  # units are tar shards


@pytest.mark.parametrize("partition", ["city", 3])
def test_convert_partitions_and_resume(synth, tmp_path, dask_executor, partition):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format="cityscapes", save_media=True)
    cio.convert(synth, out, format="cityscapes", save_media=True, executor=dask_executor, partition=partition,
                shard=(0, 2))
    report = cio.convert(synth, out, format="cityscapes", save_media=True, executor=dask_executor,
                         partition=partition, resume=True)
    assert (report.written, report.resumed) == (7, 4)
    assert read_tree(ref) == read_tree(out)


def test_convert_skips_a_bad_frame_as_one_process_does(synth, tmp_path, executor):
    src = str(tmp_path / "src")
    shutil.copytree(synth, src)
    write_file(src, "gtFine/val/aachen/aachen_000002_000042_gtFine_instanceIds.png", b"\x89PNG broken")
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    seen_ref, seen_out = [], []
    one = cio.convert(src, ref, format="voc", save_media=True, on_error=seen_ref.append)
    other = cio.convert(src, out, format="voc", save_media=True, on_error=seen_out.append, executor=executor)
    assert one.skipped == other.skipped and len(other.skipped) == 1 and other.written == 6
    assert [str(e) for e in seen_ref] == [str(e) for e in seen_out] and len(seen_out) == 1
    assert read_tree(ref) == read_tree(out)


def test_convert_on_dask_keeps_its_api(synth, tmp_path, cluster):
    from cityscapes_io.dask import convert_on_dask

    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    cio.convert(synth, ref, format="wds", frames_per_shard=3)
    report = convert_on_dask(cio.open(synth), out, "wds", client=cluster[1], partition=1, frames_per_shard=3)
    assert report.written == 7 and read_tree(ref) == read_tree(out)  # tar shards: no longer refused on Dask


def test_executor_and_workers_are_one_or_the_other(synth, tmp_path, pool_executor):
    with pytest.raises(ValueError, match="not both"):
        cio.convert(synth, str(tmp_path / "a"), format="voc", workers=2, executor=pool_executor)
    with pytest.raises(ValueError, match="an archive is written in one go by one process: no .*executor"):
        cio.convert(synth, str(tmp_path / "a.zip"), format="voc", executor=pool_executor)


# -- prepare --------------------------------------------------------------------------------------
def test_prepare_on_an_executor_equals_one_process(synth, tmp_path, executor):
    kinds = ["labelTrainIds", "instanceTrainIds", "panoptic"]
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    one = cio.prepare(synth, kinds, dst=ref, save_media=True)
    other = cio.prepare(synth, kinds, dst=out, save_media=True, executor=executor)
    assert (other.written, other.photos) == (one.written, one.photos) == (7, 7)
    tree = read_tree(ref)
    assert "gtFine/cityscapes_panoptic_val.json" in tree and tree == read_tree(out)


def test_prepare_from_polygons_next_to_the_source(synth, tmp_path, dask_executor):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    shutil.copytree(synth, a)
    shutil.copytree(synth, b)
    cio.prepare(a, ["labelTrainIds", "color"], source="polygons", overwrite=True)
    report = cio.prepare(b, ["labelTrainIds", "color"], source="polygons", overwrite=True, executor=dask_executor)
    assert report.written == 7 and read_tree(a) == read_tree(b)


# -- evaluate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_evaluate_on_an_executor_equals_one_process(synth, predictions, executor, task):
    with warnings.catch_warnings(record=True) as one_warned:
        warnings.simplefilter("always")
        one = cio.evaluate(synth, predictions[task], task=task)
    with warnings.catch_warnings(record=True) as other_warned:
        warnings.simplefilter("always")
        other = cio.evaluate(synth, predictions[task], task=task, executor=executor)
    _same_result(one, other)
    assert [str(w.message) for w in one_warned] == [str(w.message) for w in other_warned]
    assert cio.check_predictions(synth, predictions[task], task=task, executor=executor) == []


def test_evaluate_predictions_given_as_a_dataset(synth, predictions, dask_executor):
    preds = cio.open(predictions["dataset"], split="val")
    _same_result(cio.evaluate(synth, preds, task="semantic"),
                 cio.evaluate(synth, preds, task="semantic", executor=dask_executor))


def test_check_predictions_lists_the_problems_in_order(synth, predictions, tmp_path, executor):
    pred = str(tmp_path / "pred")
    shutil.copytree(predictions["semantic"], pred)
    names = sorted(os.listdir(os.path.join(pred, "bad-honnef")))
    write_file(pred, f"bad-honnef/{names[0]}", encode_png(__import__("numpy").zeros((5, 5), "uint8")))
    os.remove(os.path.join(pred, "aachen", sorted(os.listdir(os.path.join(pred, "aachen")))[0]))
    one = cio.check_predictions(synth, pred)
    assert len(one) == 2 and cio.check_predictions(synth, pred, executor=executor) == one
    with pytest.raises(cio.CityscapesIOError) as a:
        cio.evaluate(synth, pred)
    with pytest.raises(cio.CityscapesIOError) as b:
        cio.evaluate(synth, pred, executor=executor)
    assert str(a.value) == str(b.value)


# -- validate and stats ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flawed(synth, tmp_path_factory):
    """The synthetic tree with problems of several kinds: a corrupt PNG, a photo of another
    size, an unknown label value, a file that is no frame's, a frame without photo."""
    import numpy as np

    root = str(tmp_path_factory.mktemp("flawed") / "cs")
    shutil.copytree(synth, root)
    write_file(root, "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", b"\x89PNG\r\n\x1a\n broken")
    write_file(root, "leftImg8bit/val/aachen/aachen_000002_000042_leftImg8bit.png",
               encode_png(np.zeros((10, 20, 3), np.uint8)))
    inst = np.full((48, 96), 7, np.uint16)
    inst[5:9, 5:9] = 61001  # label 61: not in the table
    write_file(root, "gtFine/val/bad-honnef/bad-honnef_000001_000019_gtFine_instanceIds.png", encode_png(inst))
    write_file(root, "gtFine/val/aachen/notes.txt", b"hello")
    os.remove(os.path.join(root, "leftImg8bit/val/bad-honnef/bad-honnef_000002_000042_leftImg8bit.png"))
    return root


def test_validate_on_an_executor_equals_one_process(flawed, executor):
    done_one, done_other = [], []
    one = list(validate(flawed, progress=done_one.append))
    other = list(validate(flawed, progress=done_other.append, executor=executor))
    assert {p.code for p in one} >= {"corrupt-png", "size-mismatch", "unknown-label", "unknown-file", "missing-photo"}
    assert other == one
    assert done_one == done_other == list(range(1, 8))


def test_validate_a_dataset_with_a_callable_policy(flawed, dask_executor):
    ds = cio.open(flawed, on_error=lambda exc: None)
    assert list(validate(ds, executor=dask_executor)) == list(validate(ds))


def test_compute_stats_on_an_executor_equals_one_process(synth, executor):
    from cityscapes_io.stats import compute_stats

    ds = cio.open(synth)
    one, other = compute_stats(ds), compute_stats(ds, executor=executor)
    assert one["frames"] == 7 and one["splits"]["val"]["labels"]
    assert json.dumps(other) == json.dumps(one)  # the same numbers, in the same order


def test_compute_stats_hands_errors_to_the_callers_policy(flawed, executor):
    """A callable policy stays in this process: the errors handed to it on the workers come back
    and are handed to it here, in frame order."""
    from cityscapes_io.stats import compute_stats

    seen_one, seen_other = [], []
    one = compute_stats(cio.open(flawed, on_error=seen_one.append))
    other = compute_stats(cio.open(flawed, on_error=seen_other.append), executor=executor)
    assert json.dumps(one) == json.dumps(other)
    assert [str(e) for e in seen_one] == [str(e) for e in seen_other]
    assert any("label id 61" in str(e) for e in seen_other)


# -- what travels -----------------------------------------------------------------------------------
class Recording(concurrent.futures.Executor):
    """An executor of the caller's own (the plain Executor interface, as a Ray executor is):
    it runs the tasks on a process pool and records the pickled size of what goes and comes."""

    max_workers = 2

    def __init__(self, inner):
        self.inner, self.sent, self.back = inner, [], []

    def submit(self, fn, /, *args, **kwargs):
        import cloudpickle

        self.sent.append(len(cloudpickle.dumps((fn, args, kwargs))))
        future = self.inner.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda f: self.back.append(len(cloudpickle.dumps(f.result()))))
        return future


def test_units_are_frames_sent_without_pixels(synth, predictions, tmp_path, pool_executor):
    """A task is a frame (file references, its label map, the job) of some 4 KB, and what
    comes back is index entries or counts: never a frame's pixels (its photo alone is
    96 x 48 x 3 = 13,824 bytes decoded) nor its files."""
    from cityscapes_io.stats import compute_stats

    runs = {"convert": lambda ex: cio.convert(synth, str(tmp_path / "c"), format="cityscapes", save_media=True,
                                              executor=ex),
            "prepare": lambda ex: cio.prepare(synth, dst=str(tmp_path / "p"), save_media=True, executor=ex),
            "validate": lambda ex: list(validate(synth, executor=ex)),
            "stats": lambda ex: compute_stats(cio.open(synth), executor=ex),
            "evaluate": lambda ex: cio.evaluate(synth, predictions["semantic"], executor=ex)}
    for name, run in runs.items():
        rec = Recording(pool_executor)
        run(rec)
        assert len(rec.sent) == (4 if name == "evaluate" else 7), name  # a task per frame
        assert max(rec.sent) < 6000, (name, rec.sent)
        # evaluate: a frame's confusion matrix (34 x 34 counts) and its iIoU sums; the others: entries
        assert max(rec.back) < (12000 if name == "evaluate" else 1000), (name, rec.back)


# -- credentials through storage_options ----------------------------------------------------------
def test_storage_options_reach_the_workers_with_the_tasks(synth, tmp_path, s3, cluster, dask_executor):
    """The workers have no AWS credentials in their environment: reading the source from the S3
    server and writing the prepared tree back there works with the storage options alone."""
    from cityscapes_io.stats import compute_stats

    fs, opts, bucket = s3
    assert [dask_executor.submit(os.getenv, k).result() for k in _AWS[:2]] == [None, None]
    upload_dir(fs, synth, f"{bucket}/cs")
    ref = str(tmp_path / "ref")
    cio.prepare(synth, dst=ref, save_media=True)
    report = cio.prepare(f"s3://{bucket}/cs", dst=f"s3://{bucket}/out", storage_options=opts, save_media=True,
                         executor=dask_executor)
    assert report.written == 7
    fs.invalidate_cache()
    got = {p[len(f"{bucket}/out/"):]: fs.cat_file(p) for p in fs.find(f"{bucket}/out")}
    assert got == read_tree(ref)
    ds = cio.open(f"s3://{bucket}/cs", storage_options=opts)
    assert compute_stats(ds, executor=dask_executor) == compute_stats(cio.open(synth))


# -- the command line --------------------------------------------------------------------------------
def test_cli_scheduler_for_every_command(synth, predictions, flawed, tmp_path, cluster, capsys):
    from cityscapes_io.cli import main

    address = cluster[0].scheduler_address
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert main(["convert", synth, ref, "-f", "voc", "--save-media", "-q"]) == 0
    assert main(["convert", synth, out, "-f", "voc", "--save-media", "--scheduler", address, "--partition", "2",
                 "-q"]) == 0
    assert read_tree(ref) == read_tree(out)

    assert main(["prepare", synth, "-o", str(tmp_path / "p1"), "--kinds", "labelTrainIds,panoptic", "-q"]) == 0
    assert main(["prepare", synth, "-o", str(tmp_path / "p2"), "--kinds", "labelTrainIds,panoptic", "-q",
                 "--scheduler", address]) == 0
    assert read_tree(str(tmp_path / "p1")) == read_tree(str(tmp_path / "p2"))
    capsys.readouterr()

    for task in ("semantic", "panoptic"):
        assert main(["eval", synth, predictions[task], "--task", task, "-q"]) == 0
        one = capsys.readouterr().out
        assert main(["eval", synth, predictions[task], "--task", task, "-q", "--scheduler", address]) == 0
        assert capsys.readouterr().out == one and ("Score" in one or "PQ" in one)
    assert main(["eval", synth, predictions["instance"], "--task", "instance", "--check-only", "-q",
                 "--scheduler", address]) == 0

    assert main(["validate", flawed, "--json"]) == 1
    one = capsys.readouterr().out
    assert main(["validate", flawed, "--json", "--scheduler", address]) == 1
    assert capsys.readouterr().out == one and json.loads(one)["error"] >= 3


def test_cli_scheduler_refusals(synth, tmp_path, cluster, capsys):
    from cityscapes_io.cli import main

    address = cluster[0].scheduler_address
    assert main(["prepare", synth, "-o", str(tmp_path / "p"), "-j", "2", "--scheduler", address]) == 2
    assert "no -j" in capsys.readouterr().err
    assert main(["convert", synth, str(tmp_path / "c"), "-f", "voc", "--scheduler", address,
                 "--partition", "0"]) == 2
    assert "--partition takes 'city' or a number" in capsys.readouterr().err


def test_executor_from_args_closes_its_client(cluster):
    import argparse

    from cityscapes_io.cli.args import executor_from_args

    with executor_from_args(argparse.Namespace(scheduler=None)) as none:
        assert none is None
    with executor_from_args(argparse.Namespace(scheduler=cluster[0].scheduler_address)) as ex:
        assert ex.submit(abs, -3).result() == 3 and executor_width(ex) == 2
    assert ex._client.status == "closed"


# -- last: a worker of the cluster lost ---------------------------------------------------------------
def test_a_worker_killed_on_the_cluster_is_a_clear_error(dask_executor):
    """A task that ends its worker process: the scheduler (here allowed no retry) gives up with
    KilledWorker, which comes back as WorkerDied naming the items; the nanny restarts the worker."""
    with pytest.raises(WorkerDied) as info:
        list(ordered_map(os._exit, [0, 1], executor=dask_executor, chunk=2))
    assert info.value.foreign and info.value.lost == [0, 1]
    assert type(info.value.__cause__).__name__ == "KilledWorker"
    assert "a worker of the executor was lost: 2 item(s) not accounted for" in str(info.value)
