"""``cityscapes-io synthetic``: a synthetic Cityscapes dataset."""
from __future__ import annotations

from typing import Dict

from .args import command, json_object, progress
from .status import UsageError


def register(subparsers, help: str) -> None:
    p = command(subparsers, "synthetic", help=help, quiet="no progress bar")
    p.add_argument("dst", metavar="DST", help="destination path or fsspec URL")
    p.add_argument("--frames", type=int, default=3, help="frames per split (default 3)")
    p.add_argument("--splits", default="train",
                   help="comma-separated split names, each SPLIT or SPLIT=N frames (default: train)")
    p.add_argument("--coarse", metavar="SPLIT[=N],...",
                   help="also a gtCoarse tree for these splits (train_extra: photos too), e.g. train=3,train_extra=5")
    p.add_argument("--cities", default="aachen,bad-honnef", help="comma-separated city names")
    p.add_argument("--size", default="2048x1024", help="WIDTHxHEIGHT (default 2048x1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-photos", dest="photos", action="store_false", help="ground truth only")
    p.add_argument("--distinct", type=int, default=None,
                   help="generate only this many distinct frames per split and copy them for the rest")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what DST holds (a destination that is not empty is refused otherwise)")
    p.add_argument("--storage-options", type=json_object, metavar="JSON")
    p.add_argument("--parts", metavar="LIST|all",
                   help="also write these parts of the release for every frame, comma-separated folder names "
                        "(rightImg8bit, disparity, camera, vehicle, timestamp, leftImg8bit_sequence, "
                        "leftImg8bit_foggy, gtBboxCityPersons, gtBbox3d, ...), or all")
    p.add_argument("--demo-frames", type=int, default=3,
                   help="frames per city of the demoVideo split (part leftImg8bit_demoVideo; default 3)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..testing import generate

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT, got {args.size!r}") from None
    splits = _split_counts(args.splits, args.frames, "--splits")
    coarse = _split_counts(args.coarse, args.frames, "--coarse") if args.coarse else None
    # Every gtFine frame, and the coarse frames of splits without fine ones (train_extra).
    total = sum(splits.values()) + sum(n for s, n in (coarse or {}).items() if s not in splits)
    bar = progress(args, "synthetic", total=total)
    ids = generate(args.dst, splits=splits, cities=tuple(c for c in args.cities.split(",") if c), size=(w, h),
                   seed=args.seed, photos=args.photos, distinct=args.distinct, storage_options=args.storage_options,
                   coarse=coarse, overwrite=args.overwrite, progress=bar, parts=args.parts,
                   demo_frames=args.demo_frames)
    bar.close()
    print(f"wrote {len(ids)} frames to {args.dst}")
    return 0


def _split_counts(text: str, default: int, flag: str) -> Dict[str, int]:
    """``train,val`` (``default`` frames each) or ``train=4,val=2``."""
    out: Dict[str, int] = {}
    for item in (t for t in text.split(",") if t):
        name, sep, n = item.partition("=")
        if sep and not n.isdigit():
            raise UsageError(f"{flag}: {item!r} is not SPLIT or SPLIT=N")
        out[name] = int(n) if sep else default
    return out
