"""``cityscapes-io eval``: predictions evaluated against the ground truth with the official rules
(or, with --check-only, their problems listed)."""
from __future__ import annotations

import json
import sys

from ..evaluation import TASKS
from ..evaluation.common import FRAMES_PER_PROCESS, processes_for
from .args import add_scheduler, as_given, command, executor_from_args, json_object, progress, terminal
from .status import EXIT_ERROR, UsageError


def register(subparsers, help: str) -> None:
    p = command(subparsers, "eval", help=help,
                description="cityscapes-io eval GT PRED --task semantic|instance|panoptic|citypersons [--split val] [-j N] "
                            "[--scheduler ADDRESS] [--json OUT] [--check-only]", quiet="no progress bar")
    p.add_argument("gt", metavar="GT", help="Cityscapes root with the ground truth (path, .zip or fsspec URL)")
    p.add_argument("pred", metavar="PRED",
                   help="the predictions in the official layout: semantic, a folder of PNGs (label ids) named "
                        "<city>_<seq>_<frame>*.png; instance, a folder of <city>_<seq>_<frame>*.txt files "
                        "(lines: mask.png labelId confidence); panoptic, the COCO panoptic JSON (PNGs in the "
                        "folder of the same stem beside it); citypersons, a COCO results JSON (image_id, bbox, "
                        "score)")
    p.add_argument("--task", default="semantic", choices=tuple(TASKS),
                   help="semantic (default), instance, panoptic or citypersons (MR-2 of CityPersons' setups)")
    p.add_argument("--split", default="val", help="the split evaluated (default val)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="processes (default 1, which already works on two frames at once in two threads): "
                        "more pay only above 2, with as many cores and %d frames or more each; otherwise "
                        "one process runs (the results are the same)" % FRAMES_PER_PROCESS)
    add_scheduler(p, "evaluate")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the official results JSON here")
    p.add_argument("--check-only", action="store_true",
                   help="list every problem of the predictions (one per line, naming the file) without "
                        "evaluating; exit 1 when there is any")
    p.add_argument("--pred-train-ids", action="store_true", help="semantic: the PNGs hold train ids, not label ids")
    p.add_argument("--images", metavar="JSON",
                   help="citypersons: a COCO JSON whose 'images' give the integer image_ids' frames (the coco_citypersons "
                        "export's annotations file); without it integers number the split's frames 1..N")
    p.add_argument("--image", metavar="KEY",
                   help="semantic, instance: evaluate the predictions of this photo only, when PRED holds those of "
                        "several photos of each frame (<id>_leftImg8bit_foggy_beta_0.02*.png: "
                        "--image leftImg8bit_foggy@beta_0.02; leftImg8bit: the clear photos)")
    p.add_argument("--storage-options", type=json_object, metavar="JSON", help="for GT")
    p.add_argument("--pred-storage-options", type=json_object, metavar="JSON", help="for PRED")
    p.set_defaults(func=run)


def run(args) -> int:
    options = {"pred_train_ids": True} if args.pred_train_ids else {}
    if args.image is not None:
        options["image"] = args.image
    if args.images is not None:
        if args.task != "citypersons":
            raise UsageError("--images applies to --task citypersons")
        options["images"] = args.images
    if args.pred_train_ids and args.task != "semantic":
        raise UsageError("--pred-train-ids applies to --task semantic")
    if args.jobs < 1:
        raise UsageError(f"-j takes a number of processes, 1 or more, got {args.jobs}")
    args.given = [(args.gt, args.storage_options), (args.pred, args.pred_storage_options)]
    with executor_from_args(args, args.jobs) as executor:
        return _run(args, options, executor)


def _run(args, options: dict, executor) -> int:
    from ..dataset import open as open_dataset
    from ..evaluation import check_predictions, evaluate

    workers = 1
    total = None
    # one listing pass: the processes that pay, the time left
    if (args.jobs > 1 and executor is None) or terminal(args):
        total = open_dataset(args.gt, split=args.split, storage_options=args.storage_options).count()
        workers = processes_for(args.jobs, total) if executor is None else 1
    bar = progress(args, "check" if args.check_only else args.task, total=total)
    common = dict(split=args.split, storage_options=args.storage_options,
                  pred_storage_options=args.pred_storage_options, workers=workers, progress=bar,
                  executor=executor, **options)
    if args.check_only:
        problems = check_predictions(args.gt, args.pred, args.task, **common)
        bar.close()
        if problems:  # the count first, then one problem a line
            print(f"{len(problems)} problem(s) with the predictions:", file=sys.stderr)
        for problem in problems:
            print(as_given(problem, args))
        if not problems:
            print("no problems: the predictions can be evaluated", file=sys.stderr)
        return EXIT_ERROR if problems else 0
    result = evaluate(args.gt, args.pred, args.task, **common)
    bar.close()
    print(result)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=2)
    return 0
