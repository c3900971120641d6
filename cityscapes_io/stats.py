"""Dataset statistics, computed in one streaming pass (one frame's pixels at a time), in this
process or on an executor (a frame's counts there, summed here in frame order)."""
from __future__ import annotations

import collections
import contextlib
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from .errors import CityscapesIOError, apply_policy
from .parallel import Collector, WorkerDied, collecting, ordered_map

__all__ = ["compute_stats", "format_stats", "FrameStats", "frame_stats"]


@dataclass(frozen=True)
class FrameStats:
    """What one frame adds to :func:`compute_stats` (small: counts, no pixels).

    Attributes
    ----------
    has_image, has_annotations : bool
    parts : tuple of str
        The parts of the release the frame has (``None``: the format has no parts).
    image_keys : tuple of str
        Its photo keys (with ``parts``).
    size : (height, width) or None
    instances : tuple of (name, label id, area, crowd, label has instances)
        Its segments, in the frame's order (crowd: a whole-class segment).
    """

    has_image: bool
    has_annotations: bool
    parts: Optional[Tuple[str, ...]]
    image_keys: Tuple[str, ...]
    size: Optional[Tuple[int, int]]
    instances: Tuple[Tuple[str, int, int, bool, bool], ...]


def frame_stats(frame) -> FrameStats:
    """The counts of one frame (decoded here, then released)."""
    try:
        parts = tuple(sorted(frame.parts.present())) if frame.parts is not None else None
        keys = tuple(frame.image_keys()) if frame.parts is not None else ()
        instances: List[Tuple[str, int, int, bool, bool]] = []
        if frame.has_annotations:
            for inst in frame.instances():
                name = inst.label.name if inst.label is not None else str(inst.label_id)
                instances.append((name, int(inst.label_id), int(inst.area), bool(inst.is_crowd),
                                  bool(inst.label is not None and inst.label.has_instances)))
        return FrameStats(bool(frame.has_image), bool(frame.has_annotations), parts, keys, frame.size(),
                          tuple(instances))
    finally:
        frame.release()


def _counted(frame) -> Tuple[FrameStats, List[Exception]]:
    """:func:`frame_stats`, and the errors handed meanwhile to the frame's policy when it is a
    :class:`~cityscapes_io.parallel.Collector` (the frame was sent to an executor)."""
    stats = frame_stats(frame)
    return stats, list(frame.on_error.errors) if isinstance(frame.on_error, Collector) else []


def compute_stats(ds, progress: Optional[Callable[[int], None]] = None, *,
                  executor: Optional[Executor] = None) -> Dict:
    """Per split and per label: frames containing it, pixels, instances (values ≥ 1000) and
    crowd regions (whole-class segments of classes that have instances); image sizes; per part
    of the release, how many frames have it (``parts``: ``disparity``, ``camera``, photo folders,
    ``_sequence`` folders, ...) and per photo key (``image_keys``).

    Parameters
    ----------
    ds : Dataset
    progress : callable, optional
        Called with the number of frames counted so far.
    executor : concurrent.futures.Executor, optional
        Count the frames on this executor (a local ``ProcessPoolExecutor``,
        ``distributed.Client(...).get_executor()``, a Ray executor): frames go as file
        references (with their filesystem and storage options), each frame's counts
        (:class:`FrameStats`) come back and are summed here in frame order: the same dict as one
        process.

    Returns a JSON-serialisable dict::

        {"frames": N, "labels_source": ..., "splits": {split: {"frames": n, "with_photo": n,
         "with_annotations": n, "image_sizes": {"2048x1024": n}, "parts": {part: n},
         "image_keys": {key: n}, "labels": {name: {"frames": n, "pixels": n, "instances": n,
         "crowd_regions": n, "regions": n}}}}}
    """
    out: Dict = {"frames": 0, "labels_source": ds.labels.source, "splits": {}}
    rows: Dict[str, Dict[str, Any]] = {}
    held: Deque[Tuple[str, Any]] = collections.deque()  # the split and policy of each frame taken, in order

    def frames() -> Iterator[Any]:
        for split in ds.splits():
            rows[split] = {"frames": 0, "with_photo": 0, "with_annotations": 0, "image_sizes": Counter(),
                           "parts": Counter(), "image_keys": Counter(), "labels": {}}
            for frame in ds.frames(split):
                held.append((split, frame.on_error))
                if executor is None:
                    yield frame
                else:  # the errors its policy is handed there come back with its counts
                    yield collecting(frame)
                    frame.release()

    done = 0
    counted = ordered_map(_counted, frames(), executor=executor)
    try:
        with contextlib.closing(counted):
            for result in counted:
                assert result is not None
                split, policy = held.popleft()
                for error in result[1]:  # handed to the frame's policy there: here, in order
                    apply_policy(policy, error)
                _add(rows[split], result[0])
                done += 1
                if progress is not None:
                    progress(done)
    except WorkerDied as exc:
        raise CityscapesIOError(" + ".join(map(str, ds.roots)) or None,
                                f"the executor lost a worker (it died, was killed, or its cluster went away) "
                                f"before {len(exc.lost)} frame(s) were counted; run again") from exc.__cause__
    for split, s in rows.items():
        s["image_sizes"] = dict(s["image_sizes"])
        s["parts"] = dict(sorted(s["parts"].items()))
        s["image_keys"] = dict(sorted(s["image_keys"].items()))
        s["labels"] = dict(sorted(s["labels"].items(), key=lambda kv: kv[1]["id"]))
        out["splits"][split] = s
        out["frames"] += s["frames"]
    return out


def _add(s: Dict[str, Any], fs: FrameStats) -> None:
    """One frame's counts added to its split's row."""
    s["frames"] += 1
    s["with_photo"] += fs.has_image
    if fs.parts is not None:
        s["parts"].update(fs.parts)
        s["image_keys"].update(fs.image_keys)
    if fs.size is not None:
        s["image_sizes"][f"{fs.size[1]}x{fs.size[0]}"] += 1
    if fs.has_annotations:
        s["with_annotations"] += 1
        seen = set()
        for name, label_id, area, crowd, has_instances in fs.instances:
            row = s["labels"].setdefault(name, {"id": label_id, "frames": 0, "pixels": 0, "instances": 0,
                                                "crowd_regions": 0, "regions": 0})
            row["pixels"] += area
            if crowd:
                row["regions"] += 1
                if has_instances:
                    row["crowd_regions"] += 1
            else:
                row["instances"] += 1
            if name not in seen:
                seen.add(name)
                row["frames"] += 1


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
