"""What a conversion did: the :class:`Report`, and the one step that accounts for each frame
(:meth:`Report.account`: the writer records the entry, the report counts it or its error)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..errors import OnError
from ..formats.base import Entry, Result, Writer

__all__ = ["Report"]


@dataclass
class Report:
    """What a conversion did.

    Every frame read is either written (or, by ``finalize``, indexed) or in ``skipped``; frames
    written without a part (no photo with ``save_media``, no ground truth) are also listed in
    ``warnings``.

    Attributes
    ----------
    read : int
        Frames read from the input (in this shard).
    written : int
        Frames written, including those ``resume`` found complete. ``finalize`` writes none.
    resumed : int
        Frames ``resume`` found complete already (not written again).
    indexed : int
        Frames ``finalize`` found complete and put in the index files.
    skipped : list of (split, frame id, reason)
        Frames not written, with why. ``read == written + indexed + len(skipped)``.
    destination, format : str
    seconds : float
    """

    destination: str
    format: str
    read: int = 0
    written: int = 0
    resumed: int = 0
    indexed: int = 0
    skipped: List[Tuple[str, str, str]] = field(default_factory=list)
    warnings: List[Tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    shard: Optional[Tuple[int, int]] = None

    @property
    def ok(self) -> bool:
        return not self.skipped

    def record(self, split: str, frame_id: str, result: Result, on_error: OnError, complete: bool = False,
               indexing: bool = False) -> None:
        """Account for one frame: an :class:`Entry` is counted written (or indexed), an error is
        raised or listed as skipped, as ``on_error`` says."""
        if isinstance(result, Entry):
            if indexing:
                self.indexed += 1
                return
            self.written += 1
            self.resumed += int(complete)
            self.warnings.extend((result.split, result.id, note) for note in result.warnings)
            return
        if on_error == "raise":
            raise result
        self.skipped.append((split, frame_id, str(result)))
        if callable(on_error):
            on_error(result)

    def account(self, w: Writer, split: str, frame_id: str, result: Result, on_error: OnError,
                complete: bool = False, indexing: bool = False) -> None:
        """The one record step of every driver: one frame read, its entry recorded in ``w``
        (for the index files) and in the report, or its error raised or listed as ``on_error``
        says."""
        self.read += 1
        if isinstance(result, Entry):
            w.record(result)
        self.record(split, frame_id, result, on_error, complete, indexing)

    def summary(self) -> str:
        where = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        if self.indexed or (self.read and not self.written and not self.skipped):
            lines = [f"{self.read} frames listed, {self.indexed} indexed, {len(self.skipped)} missing{where} "
                     f"-> {self.destination} ({self.format}, index files written, {self.seconds:.1f} s)"]
        else:
            rate = (self.written - self.resumed) / self.seconds if self.seconds > 0 else 0.0
            extra = f", {self.resumed} already complete" if self.resumed else ""
            # Written now apart from found complete (``written`` counts both, as the API documents).
            lines = [f"{self.read} frames read, {self.written - self.resumed} written{extra}, {len(self.skipped)} "
                     f"skipped{where} "
                     f"-> {self.destination} ({self.format}, {self.seconds:.1f} s, {rate:.1f} frames/s)"]
        lines += [f"  skipped {split}/{fid}: {reason}" for split, fid, reason in self.skipped]
        if self.warnings:
            lines.append(f"  {len(self.warnings)} frames written incomplete:")
            lines += [f"  warning {split}/{fid}: {reason}" for split, fid, reason in self.warnings[:20]]
            if len(self.warnings) > 20:
                lines.append(f"  ... and {len(self.warnings) - 20} more")
        return "\n".join(lines)
