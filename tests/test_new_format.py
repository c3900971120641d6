"""A new format is its module plus one registry line: a tiny format defined here (a module
written into a temporary folder), registered with one ``register`` call, then detected, read,
written, converted from Cityscapes and back through the API and the command line (``-f tiny``),
and unregistered. Nothing else in the library is told about it."""
from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest
from conftest import TREE_ORDER

import cityscapes_io as cio
from cityscapes_io import formats
from cityscapes_io.cli import main
from cityscapes_io.errors import DatasetNotFoundError
from cityscapes_io.validate import validate

#: The format's whole module: ``tiny.json`` marks the root, ``<split>/<id>_gt.png`` holds a
#: frame's 16-bit instance ids, ``<split>/<id><ext>`` its photo.
TINY = '''
"""tiny: a format made up by the tests."""
import json
import posixpath

import numpy as np

from cityscapes_io import png
from cityscapes_io.formats.base import Option, Reader, Writer
from cityscapes_io.frame import Frame
from cityscapes_io.labels import LabelMap
from cityscapes_io.names import sort_key
from cityscapes_io.storage import find_files, listdir, resolve_single_root

MARK = "tiny.json"
GT = "_gt.png"


class TinyReader(Reader):
    format = "tiny"
    EVIDENCE = "tiny.json"

    @classmethod
    def detect(cls, root, listing):
        return MARK if listing.get(MARK) == "file" else None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error="raise"):
        self.root = resolve_single_root(url, storage_options, "tiny")
        self.roots = [self.root]
        self.on_error = on_error
        self.labels = LabelMap.cityscapes()
        self._splits = sorted(n for n, t in listdir(self.root, "").items() if t == "directory")

    def splits(self):
        return list(self._splits)

    def iter_frames(self, split):
        base = self.root.join(split)
        frames = {}
        for path in find_files(self.root.fs, base):
            rel = path[len(base) + 1:]
            if rel.endswith(GT):
                frames.setdefault(rel[:-len(GT)], {})["instanceIds"] = (self.root.fs, path)
            else:
                frames.setdefault(posixpath.splitext(rel)[0], {})["image"] = (self.root.fs, path)
        for frame_id in sorted(frames, key=sort_key):
            yield Frame(frame_id, split, self.labels, frames[frame_id], on_error=self.on_error)


class TinyWriter(Writer):
    format = "tiny"
    OPTIONS = Writer.OPTIONS + (Option("tiny_note", "tiny: a note written into tiny.json", argparse={"metavar": "TEXT"}),)

    def __init__(self, url, *, tiny_note="", **options):
        self.tiny_note = tiny_note
        super().__init__(url, **options)

    def frame_files(self, frame, seg):
        split = frame.split or "default"
        files = []
        photo = self.photo(frame, None if seg is None else seg.ids.shape) if self.save_media else None
        if photo is not None:
            files.append((f"{split}/{frame.id}{photo[1]}", photo[0]))
        if seg is not None:
            files.append((f"{split}/{frame.id}{GT}", png.encode_png(seg.ids.astype(np.uint16))))
        return files

    def planned_files(self, frame):
        split = frame.split or "default"
        files = [f"{split}/{frame.id}{GT}"] if frame.has_annotations else []
        ext = self.photo_ext(frame) if self.save_media else None
        return files + ([f"{split}/{frame.id}{ext}"] if ext else [])

    def index_files(self):
        return [(MARK, json.dumps({"splits": list(self.subsets), "note": self.tiny_note}).encode("utf-8"))]
'''


def install(tmp_path):
    """Write the module into a folder on ``sys.path`` and register it: the one line."""
    folder = tmp_path / "modules"
    folder.mkdir(exist_ok=True)
    (folder / "tiny_format.py").write_text(textwrap.dedent(TINY))
    sys.path.insert(0, str(folder))
    formats.register("tiny", "tiny_format", "TinyReader", "TinyWriter", aliases=("tiny_masks",), rank=5)
    return folder


def uninstall(folder):
    formats.unregister("tiny")
    sys.path.remove(str(folder))
    sys.modules.pop("tiny_format", None)


@pytest.fixture
def tiny(tmp_path):
    """The format ``tiny``, registered for the test, then unregistered."""
    folder = install(tmp_path)
    try:
        yield "tiny"
    finally:
        uninstall(folder)


def frames_of(ds):
    return {(f.split, f.id): f for f in ds}


def assert_same_frames(a, b):
    """The same frames, the same ground truth, the same photo bytes."""
    fa, fb = frames_of(a), frames_of(b)
    assert sorted(fa) == sorted(fb) == sorted(TREE_ORDER)
    for key, frame in fa.items():
        other = fb[key]
        assert frame.has_annotations == other.has_annotations
        if frame.has_annotations:
            np.testing.assert_array_equal(frame.instance_ids(), other.instance_ids())
        assert frame.image_bytes() == other.image_bytes()


def test_a_registered_format_is_named_detected_read_written_and_converted(tiny, tree, tmp_path):
    assert "tiny" in formats.format_names() and "tiny_masks" in formats.format_names()
    assert formats.resolve_format("TINY_MASKS") == "tiny"
    assert formats.detect_order()[0] == "tiny"

    out = str(tmp_path / "out")
    report = cio.convert(tree, out, format="tiny", save_media=True)
    assert report.written == len(TREE_ORDER)
    assert os.path.isfile(os.path.join(out, "tiny.json"))
    assert formats.detect(out) == ("tiny", f"tiny.json in {out}")

    ds = cio.open(out, format="tiny")
    assert ds.format == "tiny"
    assert_same_frames(cio.open(tree), ds)
    with pytest.raises(ValueError, match="annotations= is a Cityscapes option; format 'tiny' has one annotation tree"):
        cio.open(out, format="tiny", annotations="gtFine")
    # validate asks the reader's capabilities: no Cityscapes name grammar here
    problems = list(validate(out, format="tiny"))
    assert not [p for p in problems if p.severity == "error"], problems

    back = str(tmp_path / "back")
    cio.convert(out, back, src_format="tiny", format="cityscapes", save_media=True)
    assert_same_frames(cio.open(tree), cio.open(back))

    # Writing frame by frame through the writer API.
    single = str(tmp_path / "single")
    with cio.writer(single, "tiny", labels=ds.labels, save_media=True) as w:
        for frame in cio.open(tree):
            w.write(frame)
    assert_same_frames(cio.open(tree), cio.open(single, format="tiny"))


def test_a_registered_format_on_the_command_line(tiny, tree, tmp_path):
    out = str(tmp_path / "out")
    assert main(["convert", tree, out, "-f", "tiny", "--save-media", "-q"]) == 0
    back = str(tmp_path / "back")
    assert main(["convert", out, back, "-f", "cityscapes", "--save-media", "-q"]) == 0  # input detected
    assert_same_frames(cio.open(tree), cio.open(back))
    again = str(tmp_path / "again")
    assert main(["convert", back, again, "-if", "cityscapes", "-f", "tiny_masks", "--save-media", "-q"]) == 0
    assert_same_frames(cio.open(out, format="tiny"), cio.open(again, format="tiny"))
    assert main(["info", out]) == 0
    # Listed by the help of -f, as registered after the command line's modules were imported.
    assert "tiny_masks" in _help(["convert", "--help"]).replace("\n", " ").split("output format:")[1]
    # The writer's own option, declared by its class: offered by the command line for -f tiny only.
    noted = str(tmp_path / "noted")
    assert main(["convert", tree, noted, "-f", "tiny", "--tiny-note", "hello", "-q"]) == 0
    with open(os.path.join(noted, "tiny.json")) as f:
        assert json.load(f)["note"] == "hello"
    assert main(["convert", tree, str(tmp_path / "y"), "-f", "voc", "--tiny-note", "x"]) == 2
    assert main(["convert", out, str(tmp_path / "x"), "-f", "cityscapes", "--annotations", "gtFine"]) == 2
    assert main(["prepare", out]) == 2


def test_detection_lists_a_registered_format_and_forgets_it_unregistered(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as before:
        formats.detect(str(empty))
    assert str(before.value) == (
        f"{empty}: cannot tell the format: no gtFine/ or leftImg8bit/ (cityscapes), SegmentationClass/ (voc), "
        "<subset>annot/ or <subset>.txt (camvid), annotations/instances_*.json or panoptic_*.json or "
        "annotations/citypersons_*.json (coco), shards.json (wds), data.yaml and labels/ (yolo), Annotations/ and "
        "ImageSets/Main/ (voc_detection); give it with -if")
    folder = install(tmp_path)
    try:
        with pytest.raises(ValueError, match="is another format's"):
            formats.register("other", "tiny_format", "TinyReader", "TinyWriter", aliases=("voc",))
        with pytest.raises(DatasetNotFoundError) as listed:
            formats.detect(str(empty))
        assert str(listed.value) == str(before.value).replace("(voc_detection);", "(voc_detection), tiny.json (tiny);")
    finally:
        uninstall(folder)
    assert "tiny" not in formats.format_names()
    with pytest.raises(DatasetNotFoundError) as after:
        formats.detect(str(empty))
    assert str(after.value) == str(before.value)
    with pytest.raises(ValueError, match="unknown format 'tiny'"):
        cio.open(str(empty), format="tiny")


def _help(argv) -> str:
    """What ``main(argv)`` prints for a ``--help``."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    return out.getvalue()
