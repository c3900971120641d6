#!/usr/bin/env python
"""DataLoader throughput of ``cityscapes_io.torch`` against a plain Pillow dataset, from local
disk and from a local S3 server.

A synthetic split (``--frames`` frames of ``--size`` with photos, ``--distinct`` frame contents)
is generated locally and uploaded to moto's S3 server, run as a separate process on 127.0.0.1.
Each row is one epoch of ``DataLoader(ds, batch_size=--batch, num_workers=w)`` for w in
``--workers`` (default 0, 1, 2), samples of photo + label ids (``targets=("image", "semantic")``,
what torchvision's ``Cityscapes(target_type="semantic")`` gives), in a fresh interpreter per
figure, alternated, best of ``--repeat``:

- ours, map-style: ``CityscapesDataset(url, split="train")`` (on S3 each batch's files are fetched
  concurrently);
- ours, iterable: ``CityscapesIterable(url, split="train")`` (on S3 the next frames' files are
  fetched while one decodes);
- baseline: :class:`PillowCityscapes` below, a map-style dataset that lists
  ``leftImg8bit/<split>/<city>/`` in its constructor and opens the photo and the
  ``_gtFine_labelIds.png`` with ``PIL.Image.open`` as torchvision's ``Cityscapes`` does (over
  fsspec for S3: what one would write by hand);
- tar shards (``format="wds"``), when that format is registered: the split converted with
  ``convert(..., format="wds", frames_per_shard=--shard)``, read from disk and from S3 by both
  of our datasets.

Printed per row: frames/s over the epoch (worker start-up included), frames/s after the first
batch (steady state), and seconds to the first batch.

Usage::

    python benchmarks/bench_torch.py [--frames 48] [--size 2048x1024] [--distinct 4] [--repeat 2]
                                     [--workers 0,1,2] [--batch 4] [--shard 16] [--workdir DIR]
                                     [--json PATH]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

BUCKET = "cityscapes-io-bench-torch"


# ------------------------------------------------------------------------------------------------
# The baseline (no torchvision: the same reads torchvision's Cityscapes makes)
# ------------------------------------------------------------------------------------------------
class PillowCityscapes:
    """Map-style: lists ``leftImg8bit/<split>/<city>/*`` when made; an item opens the photo and
    its ``_gtFine_labelIds.png`` with Pillow and returns ``{"image", "semantic"}`` tensors. Over
    fsspec for any URL (one filesystem per process, made on first use)."""

    def __init__(self, url: str, split: str = "train", storage_options: Optional[Dict] = None):
        import fsspec

        self.url, self.opts = url.rstrip("/"), dict(storage_options or {})
        fs, root = fsspec.core.url_to_fs(self.url, **self.opts)
        self.images: List[str] = []
        self.targets: List[str] = []
        img_dir = f"{root}/leftImg8bit/{split}"
        for city in sorted(fs.ls(img_dir, detail=False)):
            for path in sorted(fs.ls(city, detail=False)):
                if not path.endswith("_leftImg8bit.png"):
                    continue
                rel = path[len(img_dir) + 1:]
                self.images.append(f"{self.url}/leftImg8bit/{split}/{rel}")
                self.targets.append(f"{self.url}/gtFine/{split}/" + rel.replace("_leftImg8bit.png",
                                                                                 "_gtFine_labelIds.png"))
        self._fs = None
        self._pid = None

    def _open(self, url: str):
        import fsspec

        if self._pid != os.getpid():  # one filesystem per process (s3fs is not fork-safe)
            self._fs, self._pid = fsspec.core.url_to_fs(self.url, **self.opts)[0], os.getpid()
        return self._fs.open(url, "rb")

    def __getstate__(self):
        return {**self.__dict__, "_fs": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        import numpy as np
        import torch
        from PIL import Image

        with self._open(self.images[i]) as fh:
            image = Image.open(io.BytesIO(fh.read())).convert("RGB")
        with self._open(self.targets[i]) as fh:
            target = Image.open(io.BytesIO(fh.read()))
            target.load()
        return {"image": torch.from_numpy(np.array(image)), "semantic": torch.from_numpy(np.array(target))}


# ------------------------------------------------------------------------------------------------
# Child side (fresh interpreter, through C.run_func)
# ------------------------------------------------------------------------------------------------
def child_epoch(kind: str, url: str, opts_json: str, fmt: str, workers: str, batch: str) -> Dict:
    """One epoch of a DataLoader over ``kind`` (``map``, ``iterable``, ``baseline``)."""
    from torch.utils.data import DataLoader

    from cityscapes_io.torch import CityscapesDataset, CityscapesIterable, collate

    opts = json.loads(opts_json)
    w, b = int(workers), int(batch)
    t0 = time.perf_counter()
    if kind == "baseline":
        ds = PillowCityscapes(url, "train", opts)
        cfn = None
    else:
        cls = CityscapesDataset if kind == "map" else CityscapesIterable
        extra = {"format": fmt} if fmt != "cityscapes" else {}
        ds = cls(url, split="train", targets=("image", "semantic"), storage_options=opts or None, **extra)
        cfn = collate
    listed = time.perf_counter() - t0
    loader = DataLoader(ds, batch_size=b, num_workers=w, collate_fn=cfn,
                        multiprocessing_context="fork" if w else None)
    frames = 0
    first = None
    t1 = time.perf_counter()
    for out in loader:
        frames += len(out["image"])
        if first is None:
            first = time.perf_counter()
            first_frames = frames
    t2 = time.perf_counter()
    assert first is not None
    steady = (frames - first_frames) / (t2 - first) if frames > first_frames and t2 > first else float("nan")
    return {"frames": frames, "listing_s": listed, "epoch_s": t2 - t1, "first_batch_s": first - t1,
            "fps": frames / (t2 - t1), "steady_fps": steady}


# ------------------------------------------------------------------------------------------------
# Parent
# ------------------------------------------------------------------------------------------------
def upload(fs, local: str, dest: str) -> int:
    batch: Dict[str, bytes] = {}
    n = 0
    for dirpath, _, names in os.walk(local):
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            with open(full, "rb") as fh:
                batch[f"{dest}/{os.path.relpath(full, local).replace(os.sep, '/')}"] = fh.read()
            n += 1
            if len(batch) >= 64:
                fs.pipe(batch)
                batch = {}
    if batch:
        fs.pipe(batch)
    fs.invalidate_cache()
    return n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48, help="frames of the split (default 48)")
    parser.add_argument("--size", default="2048x1024", help="frame size WIDTHxHEIGHT (default 2048x1024)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct frame contents (default 4)")
    parser.add_argument("--repeat", type=int, default=2, help="fresh processes per figure (default 2)")
    parser.add_argument("--workers", default="0,1,2", help="DataLoader num_workers values (default 0,1,2)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--shard", type=int, default=16, help="frames per tar shard (format wds; default 16)")
    parser.add_argument("--workdir", help="keep the synthetic split here (reused when parameters match)")
    parser.add_argument("--no-s3", action="store_true", help="local disk only")
    parser.add_argument("--json", help="write the result rows to this JSON file")
    args = parser.parse_args(argv)
    size = C.parse_size(args.size, parser)
    workers = [int(w) for w in args.workers.split(",")]
    C.print_machine()

    import cityscapes_io
    from cityscapes_io.formats import format_names

    has_wds = "wds" in format_names()
    rows: List[Dict] = []
    with C.workdir(args.workdir, "cityscapes_io_bench_torch_") as wd:
        local = os.path.join(wd, f"torchsrc_{args.frames}_{size[0]}x{size[1]}")
        spent = C.make_split(local, args.frames, size, args.distinct, photos=True)
        print(f"data: {local}: {args.frames} frames of {size[0]}x{size[1]}, "
              + (f"generated in {spent:.1f} s" if spent else "reused"))
        shards = os.path.join(wd, f"wds_{args.frames}_{size[0]}x{size[1]}_{args.shard}")
        if has_wds and not os.path.isdir(shards):
            cityscapes_io.convert(local, shards, format="wds", frames_per_shard=args.shard)
        print(f"tar shards (format wds): {'yes, ' + str(args.shard) + ' frames per shard' if has_wds else 'not registered, rows left out'}")

        sources = [("local disk", local, {}, "cityscapes")]
        if has_wds:
            sources.append(("local disk, tar shards", shards, {}, "wds"))
        server = None
        try:
            if not args.no_s3:
                import s3fs

                server = C.MotoServer(log=os.path.join(wd, "moto.log")).start()
                opts = C.s3_options(server.endpoint)
                fs = s3fs.S3FileSystem(**opts)
                fs.mkdir(BUCKET)
                n = upload(fs, local, f"{BUCKET}/src")
                sources.append(("S3 (moto), loose files", f"s3://{BUCKET}/src", opts, "cityscapes"))
                if has_wds:
                    n += upload(fs, shards, f"{BUCKET}/wds")
                    sources.append(("S3 (moto), tar shards", f"s3://{BUCKET}/wds", opts, "wds"))
                print(f"S3: moto server pid {server.pid} at {server.endpoint}; uploaded {n} files")
            print()
            for label, url, opts, fmt in sources:
                kinds = ["map", "iterable"] + (["baseline"] if fmt == "cityscapes" else [])
                for w in workers:
                    runs = [(k, (lambda k=k: C.run_func("bench_torch", "child_epoch", k, url, json.dumps(opts), fmt,
                                                        w, args.batch))) for k in kinds]
                    got = C.alternate(runs, args.repeat)
                    for k in kinds:
                        best = max(got[k], key=lambda r: r["fps"])  # type: ignore[arg-type,return-value]
                        assert best["frames"] == args.frames, best  # type: ignore[index]
                        rows.append({"source": label, "dataset": k, "workers": w, **best})  # type: ignore[dict-item]
        finally:
            if server is not None:
                server.stop()

    names = {"map": "ours, CityscapesDataset", "iterable": "ours, CityscapesIterable",
             "baseline": "Pillow map-style (torchvision's reads)"}
    print(f"## DataLoader throughput: {args.frames} frames of {size[0]}x{size[1]}, batch {args.batch}, "
          f"photo + labelIds, best of {args.repeat}")
    print()
    print("| source | dataset | workers | frames/s (epoch) | frames/s (steady) | first batch (s) | vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        medium = r["source"].split(",")[0]
        base = next((b for b in rows if b["dataset"] == "baseline" and b["workers"] == r["workers"]
                     and b["source"].split(",")[0] == medium), None)
        ratio = f"{r['fps'] / base['fps']:.2f}x" if base and r is not base else "-"
        print(f"| {r['source']} | {names[r['dataset']]} | {r['workers']} | {r['fps']:.1f} | {r['steady_fps']:.1f} | "
              f"{r['first_batch_s']:.2f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
