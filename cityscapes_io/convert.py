"""Conversion: read frames, write them in another format, and report what happened.

Every frame of the input is either written or reported: a frame that cannot be read or encoded
is skipped as a whole (none of its files are written) under ``on_error="skip"``, and the report
lists it with the reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from .dataset import Dataset, open as open_dataset
from .errors import CityscapesIOError
from .frame import OnError
from .writers import writer as open_writer

__all__ = ["Report", "convert", "write_dataset"]


@dataclass
class Report:
    """What a conversion did.

    Attributes
    ----------
    read : int
        Frames read from the input.
    written : int
        Frames written.
    skipped : list of (split, frame id, reason)
        Frames not written, with why. ``read == written + len(skipped)``.
    destination, format : str
    seconds : float
    """

    destination: str
    format: str
    read: int = 0
    written: int = 0
    skipped: List[Tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.skipped

    def summary(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.read} frames read, {self.written} written, {len(self.skipped)} skipped "
                 f"-> {self.destination} ({self.format}, {self.seconds:.1f} s, {rate:.1f} frames/s)"]
        lines += [f"  skipped {split}/{fid}: {reason}" for split, fid, reason in self.skipped]
        return "\n".join(lines)


def write_dataset(ds: Dataset, url, format: str, *, storage_options=None, on_error: OnError = "raise",
                  progress: Optional[Callable[[int], None]] = None, **options) -> Report:
    """Write every frame of ``ds`` to ``url`` in ``format``; see :func:`convert`."""
    _refuse_overwriting_source(ds, url)
    report = Report(str(url), format)
    start = time.perf_counter()
    with open_writer(url, format, storage_options=storage_options, labels=ds.labels, **options) as w:
        for frame in ds:
            report.read += 1
            try:
                w.write(frame)
                report.written += 1
            except CityscapesIOError as exc:
                if on_error == "raise":
                    raise
                report.skipped.append((frame.split, frame.id, str(exc)))
                if callable(on_error):
                    on_error(exc)
            finally:
                frame.release()
            if progress is not None:
                progress(report.read)
    report.seconds = time.perf_counter() - start
    return report


def _refuse_overwriting_source(ds: Dataset, url) -> None:
    """Writing into a local source root would overwrite the frames being read."""
    import os

    if "://" in str(url) or "::" in str(url):
        return
    dst = os.path.realpath(str(url))
    for root in ds.roots:
        if "://" in root or "::" in root or root.lower().endswith(".zip"):
            continue
        src = os.path.realpath(root)
        if dst == src:
            raise CityscapesIOError(str(url), f"destination is the source {root}: choose another folder")


def convert(src, dst, *, src_format: str = "cityscapes", format: str = "cityscapes", storage_options=None,
            dst_storage_options=None, on_error: OnError = "raise", split=None, cities=None,
            progress: Optional[Callable[[int], None]] = None, **options) -> Report:
    """Convert a dataset from one format to another, frame by frame in constant memory.

    Parameters
    ----------
    src : str or list of str
        Input root(s) (path, ``.zip``, fsspec URL).
    dst : str
        Output root (path, ``.zip``, fsspec URL).
    src_format, format : str
        ``"cityscapes"``, ``"voc"`` or ``"camvid"``.
    storage_options, dst_storage_options : dict, optional
        fsspec options of the input and of the output.
    on_error : "raise", "skip" or callable
        ``"skip"`` (or a callable, which receives each error) skips a frame that cannot be read
        or written and lists it in the report.
    split, cities :
        Only these splits / cities.
    **options :
        Writer options: ``save_media``, ``image_ext``, ``label_map``, ``save_dataset_meta``.

    Returns
    -------
    Report
    """
    # Frames raise their errors; write_dataset applies the policy to whole frames, so a frame
    # with a bad pixel value is skipped entirely rather than written without the instance.
    ds = open_dataset(src, split=split, cities=cities, storage_options=storage_options, format=src_format)
    return write_dataset(ds, dst, format, storage_options=dst_storage_options, on_error=on_error,
                         progress=progress, **options)
