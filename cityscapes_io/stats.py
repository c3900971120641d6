"""Dataset statistics, computed in one streaming pass (one frame's pixels at a time)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Dict, Optional

__all__ = ["compute_stats", "format_stats"]


def compute_stats(ds, progress: Optional[Callable[[int], None]] = None) -> Dict:
    """Per split and per label: frames containing it, pixels, instances (values ≥ 1000) and
    crowd regions (whole-class segments of classes that have instances); image sizes; per part
    of the release, how many frames have it (``parts``: ``disparity``, ``camera``, photo folders,
    ``_sequence`` folders, ...) and per photo key (``image_keys``).

    Returns a JSON-serialisable dict::

        {"frames": N, "labels_source": ..., "splits": {split: {"frames": n, "with_photo": n,
         "with_annotations": n, "image_sizes": {"2048x1024": n}, "parts": {part: n},
         "image_keys": {key: n}, "labels": {name: {"frames": n, "pixels": n, "instances": n,
         "crowd_regions": n, "regions": n}}}}}
    """
    out: Dict = {"frames": 0, "labels_source": ds.labels.source, "splits": {}}
    done = 0
    for split in ds.splits():
        s: Dict[str, Any] = {"frames": 0, "with_photo": 0, "with_annotations": 0, "image_sizes": Counter(),
                             "parts": Counter(), "image_keys": Counter(), "labels": {}}
        for frame in ds.frames(split):
            s["frames"] += 1
            s["with_photo"] += frame.has_image
            if frame.parts is not None:
                s["parts"].update(frame.parts.present())
                s["image_keys"].update(frame.image_keys())
            size = frame.size()
            if size is not None:
                s["image_sizes"][f"{size[1]}x{size[0]}"] += 1
            if frame.has_annotations:
                s["with_annotations"] += 1
                seen = set()
                for inst in frame.instances():
                    name = inst.label.name if inst.label is not None else str(inst.label_id)
                    row = s["labels"].setdefault(name, {"id": inst.label_id, "frames": 0, "pixels": 0,
                                                        "instances": 0, "crowd_regions": 0, "regions": 0})
                    row["pixels"] += inst.area
                    if inst.is_crowd:
                        row["regions"] += 1
                        if inst.label is not None and inst.label.has_instances:
                            row["crowd_regions"] += 1
                    else:
                        row["instances"] += 1
                    if name not in seen:
                        seen.add(name)
                        row["frames"] += 1
            frame.release()
            done += 1
            if progress is not None:
                progress(done)
        s["image_sizes"] = dict(s["image_sizes"])
        s["parts"] = dict(sorted(s["parts"].items()))
        s["image_keys"] = dict(sorted(s["image_keys"].items()))
        s["labels"] = dict(sorted(s["labels"].items(), key=lambda kv: kv[1]["id"]))
        out["splits"][split] = s
        out["frames"] += s["frames"]
    return out


def format_stats(stats: Dict) -> str:
    """A readable table of :func:`compute_stats`' result."""
    lines = [f"frames: {stats['frames']}  (labels from {stats['labels_source']})"]
    for split, s in stats["splits"].items():
        sizes = ", ".join(f"{k} ×{v}" for k, v in s["image_sizes"].items()) or "-"
        lines.append(f"\n{split}: {s['frames']} frames, {s['with_photo']} with photo, "
                     f"{s['with_annotations']} annotated; sizes: {sizes}")
        if s.get("image_keys"):
            lines.append("  photos: " + ", ".join(f"{k} {v}" for k, v in s["image_keys"].items()))
        others = {k: v for k, v in s.get("parts", {}).items() if k not in {key.split("@")[0] for key in s["image_keys"]}}
        if others:
            lines.append("  parts: " + ", ".join(f"{k} {v}" for k, v in others.items()))
        if s["labels"]:
            lines.append(f"  {'id':>4} {'label':<22} {'frames':>7} {'pixels':>14} {'instances':>9} {'crowds':>6}")
            for name, row in s["labels"].items():
                lines.append(f"  {row['id']:>4} {name:<22} {row['frames']:>7} {row['pixels']:>14} "
                             f"{row['instances']:>9} {row['crowd_regions']:>6}")
    return "\n".join(lines)
