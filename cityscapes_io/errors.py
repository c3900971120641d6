"""Errors raised by cityscapes_io.

There is one base class, :class:`CityscapesIOError`; every leaf also inherits the builtin
exception a caller would naturally catch (``FileNotFoundError``, ``ValueError``), and every
error carries the path of the file it is about and the reason, so messages read
``<path>: <reason>``.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Union

__all__ = [
    "CityscapesIOError",
    "DatasetNotFoundError",
    "InvalidFileError",
    "LabelMapError",
    "UnknownLabelError",
    "StorageError",
    "UnsafePathError",
    "RefusedError",
    "OnError",
    "apply_policy",
    "check_policy",
]


class CityscapesIOError(Exception):
    """Base class of every error this library raises.

    Parameters
    ----------
    path : str or None
        The file (or folder) the error is about.
    reason : str
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, path: Optional[str], reason: Optional[str] = None):
        if reason is None:
            # One argument: the whole message. (PyTorch's DataLoader re-raises a worker's error
            # as ``type(error)(message)``; this keeps its type, so ``except InvalidFileError``
            # still catches it.)
            path, reason = None, str(path)
        self.path = path
        self.reason = reason
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason

    def __reduce__(self):
        # Keep errors picklable (they cross process boundaries in parallel conversion).
        return (type(self), (self.path, self.reason))


class DatasetNotFoundError(CityscapesIOError, FileNotFoundError):
    """A root, split, frame or file that was asked for does not exist."""


class InvalidFileError(CityscapesIOError, ValueError):
    """A file exists but cannot be used: corrupt, wrong pixel type, wrong size, bad syntax."""


class LabelMapError(InvalidFileError):
    """A label file (``label_colors.txt``, ``dataset_meta.json``) or label map is invalid."""


class UnknownLabelError(InvalidFileError):
    """A pixel value refers to a label that is not in the dataset's label map."""


class StorageError(CityscapesIOError, OSError):
    """The storage failed: a network or server error after the filesystem's own retries,
    credentials refused, a destination that cannot be created or written, a missing fsspec
    backend (``s3fs`` for ``s3://``)."""


class UnsafePathError(InvalidFileError):
    """A path found inside a dataset file (an index, a list, a JSON, a prediction) that would lead
    outside the root it belongs to: absolute, with a drive letter or a NUL byte, climbing out with
    ``..``, or (on local disk) a symbolic link whose target lies outside. ``path`` names the file
    the entry was found in."""


class RefusedError(CityscapesIOError, ValueError):
    """Refused before anything was written: a destination that holds data (pass ``overwrite``)
    or is a source, the output of another job, an option value that cannot be used (a label-map
    file that does not exist). The command line exits with the status of a wrong command line."""


# -- the on_error policy ------------------------------------------------------------------------
#: What to do with an error in one item (a frame, a file): ``"raise"`` it, ``"skip"`` the item
#: with a warning, or hand the error to a callable (which may raise it).
OnError = Union[str, Callable[[Exception], Any]]


def apply_policy(on_error: OnError, error: Exception) -> None:
    """Apply an ``on_error`` policy to ``error``: re-raise it (``"raise"``), warn (``"skip"``) or
    hand it to a callable. Returns only when the caller should skip the offending item."""
    if on_error == "raise":
        raise error
    if on_error == "skip":
        warnings.warn(f"skipped: {error}", stacklevel=3)
        return
    if callable(on_error):
        on_error(error)
        return
    raise ValueError(f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}")


def check_policy(on_error: OnError) -> OnError:
    """``on_error`` itself, or ValueError when it is not ``"raise"``, ``"skip"`` or a callable."""
    if not (on_error in ("raise", "skip") or callable(on_error)):
        raise ValueError(f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}")
    return on_error
