"""Untrusted input, the write side (issue 17): the one guard between writing commands and their
inputs, resume that checks the destination belongs to its job, crashed workers, photos copied
without decoding, a full temporary folder, an S3 archive whose endpoint goes away."""
from __future__ import annotations

import os

import pytest

import cityscapes_io as cio
from cityscapes_io.output import open_sink
from cityscapes_io.storage import resolve_root


def _files(root: str) -> dict:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


# -- one guard: open_sink refuses a destination that overlaps a source --------------------------------
def test_open_sink_refuses_a_source_before_touching_anything(tree, tmp_path):
    src = resolve_root(tree)
    before = _files(tree)
    for dst, existing, words in ((tree, "keep", "is the source"), ("file://" + tree + "/", "refuse", "is the source"),
                                 (str(tmp_path), "keep", "holds the source"),
                                 (str(tmp_path), "replace", "holds the source"),
                                 (tree + "/gtFine", "replace", "inside the source"),
                                 (tree + ".zip", "replace", None)):
        if words is None:
            open_sink(dst, existing=existing, sources=[src]).abort()  # beside the source: fine
            continue
        with pytest.raises(cio.CityscapesIOError, match=words) as info:
            open_sink(dst, existing=existing, sources=[src])
        assert str(info.value).startswith(dst) and tree in str(info.value)
    assert _files(tree) == before
    # A new folder inside the source destroys nothing: allowed (without replacing).
    sink = open_sink(tree + "/converted", sources=[src])
    sink.put("a.txt", b"x")
    sink.close()
    assert open(os.path.join(tree, "converted", "a.txt"), "rb").read() == b"x"
