#!/usr/bin/env python
"""``prepare`` and ``evaluate`` on a cluster (``executor=``) against one process (issue 22).

On a synthetic ``train`` split (``--frames`` frames of ``--size`` without photos, ``--distinct``
contents copied under further names) and semantic predictions made from its labelIds (a shifted
block, 2% of the pixels swapped), each of these runs in this process, the driver:

- ``prepare(src, dst=OUT)`` (the two train-id files per frame; ``OUT`` deleted before each run)
  and ``evaluate(src, PRED, split="train")``, in one process (its defaults: a decode-ahead
  thread for prepare, two frames at once in threads for evaluate);
- the same with ``executor=`` each executor of ``--executors``: ``dask``, a
  ``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` and its
  client's ``get_executor()``; ``pool``, a local ``ProcessPoolExecutor(2)``. The executor is
  started once, before the runs (its start-up is printed apart, not timed), and warmed up by one
  untimed run of each operation (the workers import the library there).

Then ``--repeat`` rounds alternated (one process first on even rounds, the executors first on
odd ones), best time of the rounds per run; the ratio is one process's time over the
executor's (> 1: the cluster is faster). A last, untimed pass runs each operation through a
recording executor around each executor to measure what travels: the bytes of every task sent
(``cloudpickle`` of the function and its arguments: frames as file references, the job) and of
every result coming back (index entries, statistics), per frame. Every executor run is checked
against the one-process output (the prepared files byte for byte, the evaluation's JSON).

``ray``: a local Ray of two CPUs and :class:`cityscapes_io.ray.RayExecutor` (Ray tasks).
:func:`run_on` takes any executor, and :data:`EXECUTORS` maps a name to a function that starts
one (a context manager).

Usage::

    python benchmarks/bench_cluster.py [--frames 40] [--size 2048x1024] [--distinct 4] [--repeat 3]
                                       [--executors dask,pool,ray] [--workdir DIR] [--json PATH]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


@dataclass
class Data:
    """The inputs of one run: the dataset, the predictions, where prepare writes, the frames."""

    src: str
    preds: str
    out: str
    frames: int


# -- executors ------------------------------------------------------------------------------------
@contextlib.contextmanager
def dask_local() -> Iterator[concurrent.futures.Executor]:
    """Two Dask workers in processes, one thread each, and the client's executor."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        yield client.get_executor(pure=False)


@contextlib.contextmanager
def process_pool() -> Iterator[concurrent.futures.Executor]:
    """A local ProcessPoolExecutor of two spawned processes."""
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@contextlib.contextmanager
def ray_local() -> Iterator[concurrent.futures.Executor]:
    """A local Ray of two CPUs (no dashboard) and :class:`cityscapes_io.ray.RayExecutor`."""
    import ray

    from cityscapes_io.ray import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with RayExecutor() as executor:
            yield executor
    finally:
        ray.shutdown()


#: Executors by name: each a function giving a context manager that starts one and stops it.
EXECUTORS: Dict[str, Callable[[], ContextManager[concurrent.futures.Executor]]] = {
    "dask": dask_local, "pool": process_pool, "ray": ray_local}


class Measuring(concurrent.futures.Executor):
    """Any executor, with the pickled size of each task sent and of each result recorded."""

    def __init__(self, inner: concurrent.futures.Executor):
        from cityscapes_io.parallel import executor_width

        self.inner = inner
        self.max_workers = executor_width(inner)
        self.sent: List[int] = []
        self.back: List[int] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        import cloudpickle

        self.sent.append(len(cloudpickle.dumps((fn, args, kwargs))))
        future = self.inner.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda f: self.back.append(len(cloudpickle.dumps(f.result()))
                                                            if f.exception() is None else 0))
        return future


# -- the operations -------------------------------------------------------------------------------
def run_prepare(data: Data, executor=None) -> float:
    import cityscapes_io as cio

    shutil.rmtree(data.out, ignore_errors=True)
    start = time.perf_counter()
    report = cio.prepare(data.src, dst=data.out, executor=executor)
    seconds = time.perf_counter() - start
    assert report.written == data.frames, report.summary()
    return seconds


def run_evaluate(data: Data, executor=None) -> Tuple[float, Any]:
    import cityscapes_io as cio

    start = time.perf_counter()
    result = cio.evaluate(data.src, data.preds, split="train", executor=executor)
    return time.perf_counter() - start, result


def run_on(label: str, executor: concurrent.futures.Executor, data: Data, repeat: int,
           reference: Dict[str, Any]) -> Dict[str, Any]:
    """``prepare`` and ``evaluate`` on ``executor`` (any :class:`concurrent.futures.Executor`),
    alternated with one process: best seconds of each, the bytes each task sent and brought
    back per frame, and whether the outputs equal one process's. ``reference``: the one-process
    outputs (the prepared tree, the evaluation's JSON)."""
    run_prepare(data, executor)  # warm-up: the workers import the library
    run_evaluate(data, executor)
    same_files = read_tree(data.out) == reference["prepare"]
    same_numbers = json.dumps(run_evaluate(data, executor)[1].to_dict(), sort_keys=True) == reference["evaluate"]
    best: Dict[str, List[float]] = {"prepare 1": [], "evaluate 1": [], "prepare x": [], "evaluate x": []}
    for i in range(repeat):
        order = [(None, "1"), (executor, "x")]
        for ex, tag in (order if i % 2 == 0 else order[::-1]):
            best[f"prepare {tag}"].append(run_prepare(data, ex))
            best[f"evaluate {tag}"].append(run_evaluate(data, ex)[0])
    moved = {}
    for op, fn in (("prepare", run_prepare), ("evaluate", run_evaluate)):
        rec = Measuring(executor)
        fn(data, rec)
        moved[op] = (len(rec.sent), sum(rec.sent) / data.frames, sum(rec.back) / data.frames)
    return {"label": label, "best": {k: min(v) for k, v in best.items()}, "moved": moved,
            "identical": same_files and same_numbers}


# -- data -----------------------------------------------------------------------------------------
def make_predictions(root: str, preds: str) -> None:
    """One label-id prediction PNG per train frame: its labelIds with a shifted block and 2% of
    the pixels swapped."""
    import numpy as np

    import cityscapes_io as cio
    from cityscapes_io import png

    if os.path.isdir(preds):
        return
    tmp = preds + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rng = np.random.default_rng(0)
    for frame in cio.open(root, split="train"):
        lab = frame.label_ids().copy()
        h, w = lab.shape
        lab[h // 4: h // 2, w // 4: w // 2] = lab[h // 4 + 7: h // 2 + 7, w // 4 + 11: w // 2 + 11]
        noise = rng.random(lab.shape) < 0.02
        lab[noise] = rng.integers(0, 34, size=lab.shape, dtype=np.uint8)[noise]
        with open(os.path.join(tmp, frame.id.rsplit("/", 1)[-1] + "_pred.png"), "wb") as f:
            f.write(png.encode_label_png(lab))
        frame.release()
    os.replace(tmp, preds)


def read_tree(root: str) -> Dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="2048x1024")
    ap.add_argument("--distinct", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--executors", default="dask", help=f"comma-separated: {', '.join(EXECUTORS)}")
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args()
    size = C.parse_size(args.size, ap)
    names = [n for n in args.executors.split(",") if n]
    unknown = [n for n in names if n not in EXECUTORS]
    if unknown:
        ap.error(f"--executors: unknown {', '.join(unknown)} (known: {', '.join(EXECUTORS)})")
    info = C.print_machine()
    with C.workdir(args.workdir, "bench-cluster-") as work:
        root = os.path.join(work, f"train-{args.frames}-{size[0]}x{size[1]}")
        made = C.make_split(root, args.frames, size, args.distinct, photos=False)
        make_predictions(root, root + "-pred")
        data = Data(root, root + "-pred", os.path.join(work, "prepared"), args.frames)
        print(f"data: {args.frames} frames {size[0]}x{size[1]} ({made:.1f} s to generate)\n")
        run_prepare(data)
        reference = {"prepare": read_tree(data.out),
                     "evaluate": json.dumps(run_evaluate(data)[1].to_dict(), sort_keys=True)}
        results = []
        for name in names:
            start = time.perf_counter()
            with EXECUTORS[name]() as executor:
                started = time.perf_counter() - start
                got = run_on(name, executor, data, args.repeat, reference)
            got["start_s"] = started
            results.append(got)
    rows = []
    for r in results:
        for op in ("prepare", "evaluate"):
            one, other = r["best"][f"{op} 1"], r["best"][f"{op} x"]
            tasks, sent, back = r["moved"][op]
            rows.append([op, r["label"], f"{one / args.frames * 1e3:.1f}", f"{other / args.frames * 1e3:.1f}",
                         f"{one / other:.2f}", tasks, f"{sent:,.0f}", f"{back:,.0f}",
                         "yes" if r["identical"] else "NO"])
    print(C.markdown_table(["operation", "executor", "one process ms/frame", "executor ms/frame",
                            "ratio (one / executor)", "tasks", "bytes sent / frame", "bytes back / frame",
                            "identical output"], rows, "llrrrrrrl"))
    for r in results:
        print(f"\n{r['label']}: started in {r['start_s']:.1f} s (not timed)")
    print(f"\n{info.get('cpu count')} CPUs; best of {args.repeat} alternated rounds after a warm-up; "
          f"a decoded {size[0]}x{size[1]} frame is {size[0] * size[1] * 3:,} bytes of photo and "
          f"{size[0] * size[1] * 2:,} of instanceIds")
    C.write_json(args.json, {"frames": args.frames, "size": list(size), "results": results})
    if not all(r["identical"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
