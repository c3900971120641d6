"""The command line's exit statuses, as every command's help lists them, and the error a
command raises for a wrong command line (:func:`cityscapes_io.cli.main` maps errors to these)."""
from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_NOT_FOUND", "EXIT_STORAGE", "EXIT_INTERRUPTED",
           "EXIT_STATUSES", "UsageError"]

EXIT_ERROR = 1
EXIT_REFUSED = EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130

EXIT_STATUSES = f"""exit status:
  0    done
  {EXIT_ERROR}    an error in the data (a corrupt file, a bad label map, predictions with problems), frames
       failed (skipped), validate problems
  {EXIT_REFUSED}    refused, nothing done: a wrong command line, a bad option value, a destination that holds
       data (--overwrite) or is a source, a label-map file that does not exist
  {EXIT_NOT_FOUND}    a dataset, split, city, frame or file that does not exist
  {EXIT_STORAGE}    the storage failed (disk, network, credentials, a missing fsspec backend)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
errors print 'error: <where>: <reason>' (a list: its count, then one item a line); --debug shows the
traceback instead. Warnings print one line each, 'warning: <where>: <reason>'; -q counts them instead"""


class UsageError(Exception):
    """A wrong command line (exit status 2, nothing done)."""
