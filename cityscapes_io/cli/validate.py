"""``cityscapes-io validate``: every problem of a dataset, with file and reason."""
from __future__ import annotations

import json

from .args import add_scheduler, add_source, command, executor_from_args, input_format, items, open_source, terminal
from .status import EXIT_ERROR


def register(subparsers, help: str) -> None:
    p = command(subparsers, "validate", help=help, quiet="no progress line")
    add_source(p, project=False)
    p.add_argument("--split", action="append", help="only this split (repeatable, or a comma-separated list)")
    p.add_argument("--city", action="append", dest="cities", metavar="CITY",
                   help="only this city (repeatable, or a comma-separated list; an unknown city is an error)")
    p.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")
    add_scheduler(p, "check the frames")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import CityscapesIOError
    from ..progress import Progress
    from ..project import require_cities
    from ..validate import summarize, validate

    src = args.src[0] if len(args.src) == 1 else args.src
    fmt = input_format(args, src, args.input_format)
    splits, cities = items(args.split) or None, items(args.cities) or None
    problems = []
    enabled = terminal(args)
    total = None
    if enabled or cities:  # one listing pass, nothing decoded: the cities asked for, a total for the time left
        try:
            ds = open_source(src, fmt, args.storage_options, split=splits, on_error=lambda exc: None,
                             annotations=args.annotations, image=args.image)
        except (CityscapesIOError, OSError):
            ds = None  # validate reports it
        if ds is not None and cities:
            require_cities(ds, cities, splits)
        if ds is not None and enabled:
            total = ds.filter(cities=cities).count() if cities else ds.count()
    bar = args.progress_bar = Progress(total, label="validate", enabled=enabled)
    with executor_from_args(args) as executor:
        for problem in validate(src, format=fmt, split=splits, cities=cities,
                                storage_options=args.storage_options, progress=bar, annotations=args.annotations,
                                image=args.image, executor=executor):
            problems.append(problem)
            if not args.json:
                bar.clear()
                print(problem, flush=True)
    bar.close()
    summary = summarize(problems)
    if args.json:
        print(json.dumps({**summary, "problems": [p.as_dict() for p in problems]}, indent=2, ensure_ascii=False))
    else:
        print(f"{summary['error']} errors, {summary['warning']} warnings")
    return EXIT_ERROR if summary["error"] or (args.strict and summary["warning"]) else 0
