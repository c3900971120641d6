"""``cityscapes-io project``: projects, sources and operations recorded in project.json
(Datumaro's ``project`` commands): create, import, filter, transform, info, export."""
from __future__ import annotations

import json

from . import info
from .args import formats_help, QUIET_WRITING, add_operations, add_output, command, input_format, json_object, \
    operations_from_args
from .convert import export, output_format
from .status import UsageError


def register(subparsers, help: str) -> None:
    p = command(subparsers, "project", help=help)
    psub = p.add_subparsers(dest="project_command", metavar="ACTION")
    psub.required = True
    q = command(psub, "create", help="create a project")
    q.add_argument("-o", "--output", metavar="DIR", help="project folder (default: here)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=run)
    q = command(psub, "import", help="add a source to a project (local paths are recorded relative to it)",
                quiet="do not say which input format was detected")
    q.add_argument("src", nargs="+", metavar="SRC")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    q.add_argument("-f", "--format", metavar="FORMAT",
                   help=f"the source's format: {formats_help()} (default: detected from the folders)")
    q.add_argument("-n", "--name", help="source name")
    q.add_argument("--storage-options", type=json_object, metavar="JSON")
    q.set_defaults(func=run)
    for action, help_ in (("filter", "record a filter"), ("transform", "record a label or split transform")):
        q = command(psub, action, help=help_)
        q.add_argument("-p", "--project", default=".", metavar="DIR")
        add_operations(q)
        q.set_defaults(func=run)
    q = command(psub, "info", help="the project's sources, operations and resulting dataset")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    q.set_defaults(func=run, src=[])
    q = command(psub, "export", help="export the project's dataset", quiet=QUIET_WRITING)
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    add_output(q, default_output=" (default, as in Datumaro: export-<format> here, "
                                  "export-<format>.1 ... when that exists)")
    q.set_defaults(func=run, src=[])


def run(args) -> int:
    return _ACTIONS[args.project_command](args)


def _create(args) -> int:
    from ..project import Project

    project = Project.create(args.output or ".", overwrite=args.overwrite)
    print(f"created {project.file}")
    return 0


def _import(args) -> int:
    from ..project import Project

    project = Project.load(args.project)
    src = args.src if len(args.src) > 1 else args.src[0]
    fmt = input_format(args, src, args.format)
    source = project.add_source(src, format=fmt, name=args.name, storage_options=args.storage_options)
    print(f"imported {source['name']} ({source['format']}) into {project.file}")
    return 0


def _ops(args) -> int:
    from ..project import Project

    ops = operations_from_args(args)
    if not ops:
        raise UsageError("no operation given (see --help)")
    project = Project.load(args.project)
    project.add_operations(ops)
    print(f"recorded {', '.join(o['op'] for o in ops)} in {project.file}")
    return 0


def _info(args) -> int:
    from ..project import Project

    project = Project.load(args.project)
    print(f"project: {project.file}")
    for s in project.data["sources"]:
        urls = s["url"] if isinstance(s["url"], list) else [s["url"]]
        print(f"  source {s['name']}: {', '.join(urls)} ({s['format']})")
    for op in project.data["operations"]:
        print(f"  operation: {json.dumps(op, ensure_ascii=False)}")
    if project.data["sources"]:
        args.src, args.json = [], False
        return info.run(args)
    return 0


def _export(args) -> int:
    from ..project import Project

    args.src = []
    output_format(args)
    project = Project.load(args.project)
    if not args.finalize:
        project.check_unique_ids()  # listing only: fail before the first frame is written
    # The project folder is an input too: an output there, holding it, or replacing a folder in it is refused.
    return export(args, project.dataset(), args.output, default_output=True, protect=[project.folder])


_ACTIONS = {"create": _create, "import": _import, "filter": _ops, "transform": _ops, "info": _info,
            "export": _export}
