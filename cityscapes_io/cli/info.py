"""``cityscapes-io info``: splits, cities, frame counts, label map and its source, file kinds, and
the PNG decoder that reads them (as ``--version`` says it)."""
from __future__ import annotations

import json
from typing import Any, Dict

from .args import dataset, report_command


def register(subparsers, help: str) -> None:
    report_command(subparsers, "info", run, help=help,
                   quiet="do not say which input format was detected")


def run(args) -> int:
    from ..decoder import describe
    from ..project import source_format

    ds = dataset(args)
    kinds_by_split: Dict[str, Dict[str, int]] = {}
    out: Dict[str, Any] = {"roots": ds.roots, "format": source_format(ds),
                           "labels": {"source": ds.labels.source, "count": len(ds.labels),
                                      "names": [f"{l.id}:{l.name}" for l in ds.labels]},
                           "splits": {}, "frames": 0, "png_decoder": describe()}
    base = ds.source_reader
    if getattr(base, "trees", None) is not None:
        out["annotations"] = {"trees": list(base.trees), "read": base.annotations}
    if getattr(base, "panoptic", None):
        out["panoptic"] = [p.as_dict() for p in base.panoptic]
    folders = getattr(base, "part_folders", None)
    if folders is not None:
        out["part_folders"] = folders.names()
        out["image_key"] = base.image_key
    for split in ds.splits():
        cities: Dict[str, int] = {}
        kinds = kinds_by_split.setdefault(split, {})
        keys: Dict[str, int] = {}
        for frame in ds.frames(split):
            for key in frame.image_keys() if folders is not None else ():
                keys[key] = keys.get(key, 0) + 1
            key = frame.city if frame.city is not None else "(no city folder)"
            cities[key] = cities.get(key, 0) + 1
            in_memory = ["in memory"] if frame.has_image or frame.has_annotations else []
            for kind in frame.files or in_memory:
                kinds[kind] = kinds.get(kind, 0) + 1
        n = sum(cities.values())
        out["splits"][split] = {"frames": n, "cities": cities, "files": kinds}
        if folders is not None:
            out["splits"][split]["image_keys"] = dict(sorted(keys.items()))
        out["frames"] += n
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"roots:   {', '.join(ds.roots) or '-'}")
    print(f"format:  {out['format']}")
    print(f"PNG decoder: {out['png_decoder']}")
    if "annotations" in out:
        trees = ", ".join(t + (" (read)" if t == out["annotations"]["read"] else "")
                          for t in out["annotations"]["trees"])
        print(f"annotations: {trees or 'none'}" + (" (--annotations to choose)" if len(out["annotations"]["trees"]) > 1
                                                  else ""))
    if out.get("part_folders"):
        print(f"parts:   {', '.join(out['part_folders'])} (photo read: {out['image_key']})")
    print(f"labels:  {len(ds.labels)} from {ds.labels.source}")
    print("          " + ", ".join(out["labels"]["names"]))
    print(f"frames:  {out['frames']}")
    for split, info in out["splits"].items():
        files = ", ".join(f"{k} {v}" for k, v in sorted(info["files"].items()))
        print(f"  {split}: {info['frames']} frames in {len(info['cities'])} cities; files: {files or 'none'}")
        if info.get("image_keys"):
            print("    photos (--image KEY): " + ", ".join(f"{k} {v}" for k, v in info["image_keys"].items()))
        for city, n in info["cities"].items():
            print(f"    {city}: {n}")
    if out.get("panoptic"):
        print("panoptic ground truth (not splits):")
        for p in out["panoptic"]:
            where = p["json"] or f"{p['folder']} (no JSON)"
            print(f"  {p['split']}{' (train ids)' if p['train_ids'] else ''}: {where}")
    return 0
