"""``cityscapes-io show``: a frame's instances drawn over its photo, with a legend."""
from __future__ import annotations

from .args import formats_help, command, dataset, json_object


def register(subparsers, help: str) -> None:
    p = command(subparsers, "show", help=help)
    p.add_argument("src_one", metavar="SRC")
    p.add_argument("frame_id", metavar="FRAME_ID", help="the frame's id, with its city folder: aachen/aachen_000000_000019")
    p.add_argument("-o", "--output", required=True, metavar="PNG")
    p.add_argument("-if", "--input-format", metavar="FORMAT",
                   help=f"input format: {formats_help()} (default: detected from the folders)")
    p.add_argument("--split", action="append", help="the frame's split (when the id is in several)")
    p.add_argument("--max-width", type=int, default=None, help="downscale the picture to this width")
    p.add_argument("--storage-options", type=json_object, metavar="JSON")
    p.set_defaults(func=run, project=None)


def run(args) -> int:
    from ..errors import DatasetNotFoundError
    from ..names import parse_frame_id
    from ..show import save

    args.src = [args.src_one]
    ds = dataset(args, with_ops=False)
    split = args.split[0] if args.split else None
    try:
        frame = ds.frame(args.frame_id, split=split)
    except DatasetNotFoundError as exc:
        city = parse_frame_id(args.frame_id).city
        if "/" in args.frame_id or city is None:
            raise
        candidate = f"{city}/{args.frame_id}"
        try:
            ds.frame(candidate, split=split)
        except DatasetNotFoundError:
            raise exc from None
        raise DatasetNotFoundError(args.frame_id, f"no such frame; frame ids include the city folder: "
                                                  f"{candidate}") from None
    save(frame, args.output, max_width=args.max_width)
    print(f"wrote {args.output}")
    return 0
