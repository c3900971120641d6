"""Regressions found reviewing the COCO code: detection beside gtFine/, streamed index files
that fail midway, Spool records read twice, instance values beyond 16 bits, and the size of a
coco_panoptic frame without files."""
from __future__ import annotations

import json
import os

import pytest

import cityscapes_io as cio
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.formats import detect_format
from cityscapes_io.formats.coco import paint_annotations
from cityscapes_io.storage.sinks import TMP_PREFIX, Chunks, open_sink
from cityscapes_io.testing import generate
from cityscapes_io.formats.spool import Spool, json_lists


class Boom(Exception):
    pass


def failing() -> Chunks:
    def make():
        yield b'{"images": ['
        raise Boom("stopped midway")

    return Chunks(make)


def test_mmdetection_layout_beside_gtfine_reads_as_cityscapes(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, splits={"val": 1}, size=(64, 32), seed=1)
    cio.convert(root, str(tmp_path / "coco"), format="coco_instances")
    os.rename(str(tmp_path / "coco" / "annotations"), os.path.join(root, "annotations"))
    assert detect_format(root) == "cityscapes"


@pytest.mark.parametrize("url", ["local", "memory://review/out"])
def test_a_stream_that_fails_leaves_no_file(tmp_path, url):
    dest = str(tmp_path / "out") if url == "local" else url
    sink = open_sink(dest, existing="replace")
    sink.put_many([("annotations/a.json", b"{}")])
    with pytest.raises(Boom):
        sink.put_many([("annotations/b.json", b"[]"), ("annotations/c.json", failing())])
    if url == "local":
        names = sorted(os.listdir(os.path.join(dest, "annotations")))
        assert names == ["a.json"] and not any(n.startswith(TMP_PREFIX) for n in names)
    else:
        import fsspec

        fs = fsspec.filesystem("memory")
        assert not fs.exists("/review/out/annotations/c.json")


def test_spooled_lists_can_be_written_twice():
    spool = Spool()
    for k in range(3):
        spool.add("images", {"id": k})
    doc = json_lists([("images", spool.records("images"))])
    first, second = b"".join(doc), b"".join(doc)
    assert first == second and json.loads(first) == {"images": [{"id": 0}, {"id": 1}, {"id": 2}]}
    spool.close()


def test_instance_values_beyond_16_bits_are_an_error_naming_the_annotation():
    mask = {"size": [2, 2], "counts": [0, 4]}
    anns = [(k, 65, False, mask) for k in range(600)]
    with pytest.raises(InvalidFileError, match="annotation id 536.*does not fit 16-bit"):
        paint_annotations(2, 2, anns, {65: True}, 0, "x.json")


def test_coco_panoptic_frame_without_files_has_its_records_size(tmp_path):
    root = tmp_path / "pan"
    (root / "annotations").mkdir(parents=True)
    doc = {"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 10}], "annotations": [],
           "categories": [{"id": 7, "name": "road", "isthing": 0, "color": [128, 64, 128]}]}
    (root / "annotations" / "panoptic_val.json").write_text(json.dumps(doc))
    frame = next(iter(cio.open(str(root), format="coco_panoptic")))
    assert frame.size() == (8, 10) and not frame.has_annotations
