"""Parsing JSON found in datasets and submissions, which may come from anywhere.

Python's :mod:`json` accepts what JSON does not (``NaN``, ``Infinity``, numbers that overflow to
``inf`` such as ``1e400``) and raises ``RecursionError`` on deep nesting. :func:`loads` refuses all
of these as "not valid JSON: <reason>" naming the file, so a crafted file gives a
:class:`~cityscapes_io.InvalidFileError` and never a traceback or a non-finite number further on.
"""
from __future__ import annotations

import json
import math
from typing import Any, Union

from .errors import InvalidFileError

__all__ = ["loads"]

# Digits to "0", exponent letters to "e", signs to "+": an exponent of 3 digits or more, or a
# run of 200 digits, is then a plain substring search (a regular expression costs as much as the
# parse itself on a file of 80 MB). A number of D integer digits and exponent E overflows when
# D + E > 308: with E below 100 that needs D above 208.
_SHAPES = bytes.maketrans(b"0123456789Ee-", b"0000000000ee+")


def _maybe_huge(data: bytes) -> bool:
    """Whether ``data`` may hold a number that overflows to infinity (false positives are fine:
    they take the checked parse)."""
    shapes = data.translate(_SHAPES)
    return b"e000" in shapes or b"e+000" in shapes or b"0" * 200 in shapes


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads(data: Union[bytes, bytearray, str], path: str) -> Any:
    """Parse ``data`` (UTF-8, a byte-order mark accepted) as JSON.

    Raises
    ------
    InvalidFileError
        ``"<path>: not valid JSON: <reason>"`` for bad syntax, bad encoding, a non-finite number
        (``NaN``, ``Infinity``, ``1e400``), or nesting deep enough to exhaust the parser's
        recursion (the C parser checks its depth and raises ``RecursionError``: no crash).
    """
    try:
        if isinstance(data, (bytes, bytearray)):
            text = bytes(data).decode("utf-8-sig")
        else:
            text = data[1:] if data.startswith("\ufeff") else data
        # Without a number that may overflow (see _maybe_huge), floats are parsed by the C
        # parser alone (checking each float in Python costs half the parse again on a COCO
        # file full of polygon coordinates).
        if not _maybe_huge(data if isinstance(data, (bytes, bytearray)) else text.encode("utf-8", "replace")):
            return json.loads(text, parse_constant=_constant)
        return json.loads(text, parse_constant=_constant, parse_float=_float)
    except UnicodeDecodeError as exc:
        raise InvalidFileError(path, f"not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidFileError(path, f"not valid JSON: {exc}") from exc

