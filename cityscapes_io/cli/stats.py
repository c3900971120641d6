"""``cityscapes-io stats``: per split and label, frames, pixels, instances, crowds; image sizes.
With ``--per-frame OUT``: DAFormer's per-frame class statistics for rare-class sampling."""
from __future__ import annotations

import json

from .args import add_scheduler, dataset, executor_from_args, items, progress, report_command
from .status import UsageError


def register(subparsers, help: str) -> None:
    p = report_command(subparsers, "stats", run, help=help, quiet="no progress bar")
    p.add_argument("--per-frame", metavar="OUT",
                   help="instead, write the per-frame pixel counts of the 19 train ids into the folder OUT (path or "
                        "fsspec URL) as DAFormer's rare-class sampling reads them (sample_class_stats.json, "
                        "samples_with_class.json, and sample_class_stats_dict.json as its script writes too): of "
                        "the train split unless --split says otherwise; their 'file' paths begin with SRC as given")
    add_scheduler(p, "count")


def run(args) -> int:
    if getattr(args, "per_frame", None):
        return _per_frame(args)
    from ..stats import compute_stats, format_stats

    ds = dataset(args)
    bar = progress(args, "stats", ds)
    with executor_from_args(args) as executor:
        stats = compute_stats(ds, progress=bar, executor=executor)
    bar.close()
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def _per_frame(args) -> int:
    from ..sampling import DEFAULT_ROOT, class_stats

    ds = dataset(args)
    if not items(args.split):  # DAFormer's script counts the frames under train/
        if "train" not in ds.splits():
            raise UsageError(f"--per-frame counts the train split, which the dataset lacks (splits: "
                             f"{', '.join(ds.splits()) or 'none'}): choose with --split")
        ds = ds.filter(split="train")
    # DAFormer's 'file' is the path of the labelTrainIds under the root its script was given.
    root = args.src[0] if len(args.src) == 1 and isinstance(args.src[0], str) else DEFAULT_ROOT
    bar = progress(args, "stats --per-frame", ds)
    with executor_from_args(args) as executor:
        stats = class_stats(ds, args.per_frame, root=root, progress=bar, executor=executor)
    bar.close()
    totals = stats.totals()
    summary = {"frames": len(stats), "without_ground_truth": list(stats.skipped), "out": args.per_frame,
               "classes": {str(c): {"frames": int((stats.counts[:, c] > 0).sum()), "pixels": int(totals[c])}
                           for c in range(stats.counts.shape[1]) if totals[c]}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"per-frame class statistics of {len(stats)} frames written to {args.per_frame}")
    if stats.skipped:
        print(f"{len(stats.skipped)} frames without ground truth left out")
    print(f"  {'train id':>8} {'frames':>7} {'pixels':>14}")
    for c, row in summary["classes"].items():
        print(f"  {c:>8} {row['frames']:>7} {row['pixels']:>14}")
    return 0
