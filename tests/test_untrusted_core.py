"""The shared guards of untrusted input: the one resolver of paths found inside dataset files,
the JSON parser, and the structural check of photos copied without decoding."""
import os

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from cityscapes_io import InvalidFileError, UnsafePathError, jsonfile, png
from cityscapes_io.storage import check_inside, resolve_inside

LOCAL = LocalFileSystem()


@pytest.mark.parametrize("rel, why", [
    ("../../../../etc/passwd", "leads outside its root"),
    ("a/../../x.png", "leads outside its root"),
    ("/etc/passwd", "is absolute"),
    ("\\\\server\\share\\x.png", "is absolute"),
    ("C:/Windows/x.png", "is absolute"),
    ("c:x.png", "is absolute"),
    ("a\0b.png", "NUL"),
    ("s3://other-bucket/x.png", "is a URL"),
    ("zip::file.zip", "is a URL"),
    ("", "is empty"),
    ("..\\..\\etc\\passwd", "leads outside its root"),
])
def test_paths_leaving_the_root_are_refused(tmp_path, rel, why):
    root = str(tmp_path / "root")
    with pytest.raises(UnsafePathError, match=why) as info:
        resolve_inside(LOCAL, root, rel, index=f"{root}/shards.json", entry="shard 0 'file'")
    assert info.value.path == f"{root}/shards.json"
    assert "shard 0 'file'" in str(info.value)
    assert isinstance(info.value, InvalidFileError)


def test_paths_inside_the_root_resolve(tmp_path):
    root = str(tmp_path / "root")
    assert resolve_inside(LOCAL, root, "a/b.png", index="i", entry="e") == f"{root}/a/b.png"
    assert resolve_inside(LOCAL, root, "./a/../b.png", index="i", entry="e") == f"{root}/b.png"
    assert resolve_inside(LOCAL, root, "../c.png", base=f"{root}/sub", index="i", entry="e") == f"{root}/c.png"
    with pytest.raises(UnsafePathError):
        resolve_inside(LOCAL, root, "../../c.png", base=f"{root}/sub", index="i", entry="e")
    mem = MemoryFileSystem()
    assert resolve_inside(mem, "bucket/ds", "x/y.png", index="i", entry="e") == "bucket/ds/x/y.png"
    with pytest.raises(UnsafePathError):
        resolve_inside(mem, "bucket/ds", "../other/y.png", index="i", entry="e")
    # A root at the top of an archive ("" inside a zip).
    assert resolve_inside(mem, "", "a/b.png", index="i", entry="e") == "a/b.png"
    with pytest.raises(UnsafePathError):
        resolve_inside(mem, "", "../b.png", index="i", entry="e")


def test_symlinks_out_of_the_root_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    canary = tmp_path / "canary.txt"
    canary.write_text("secret")
    (root / "inside.txt").write_text("ok")
    os.symlink(canary, root / "leak.txt")
    os.symlink(root / "inside.txt", root / "fine.txt")
    assert resolve_inside(LOCAL, str(root), "fine.txt", index="i", entry="e") == f"{root}/fine.txt"
    with pytest.raises(UnsafePathError, match="symbolic link") as info:
        resolve_inside(LOCAL, str(root), "leak.txt", index=f"{root}/list.txt", entry="line 3")
    assert info.value.path == f"{root}/list.txt" and "line 3" in str(info.value)
    with pytest.raises(UnsafePathError, match="symbolic link") as info:
        check_inside(LOCAL, str(root), f"{root}/leak.txt")
    assert info.value.path == f"{root}/leak.txt"


@pytest.mark.parametrize("text, reason", [
    (b'{"a": 1e400}', "out of range"),
    (b'{"a": NaN}', "NaN"),
    (b'[Infinity]', "Infinity"),
    (b'[-Infinity]', "Infinity"),
    (b"[" * 200000, "recursion"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"a": ', "Expecting value"),
])
def test_json_refusals(text, reason):
    with pytest.raises(InvalidFileError, match=f"not valid JSON: .*{reason}") as info:
        jsonfile.loads(text, "x/meta.json")
    assert info.value.path == "x/meta.json"


def test_json_accepts_a_byte_order_mark():
    assert jsonfile.loads(b'\xef\xbb\xbf{"a": [1, 2.5]}', "x.json") == {"a": [1, 2.5]}


def _photo():
    rng = np.random.default_rng(0)
    return png.encode_png(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))


def test_structure_of_copied_photos():
    good = _photo()
    assert png.structure_problem(good) is None
    assert "truncated PNG" in png.structure_problem(good[: len(good) // 3])
    assert "no IEND" in png.structure_problem(good[:-12])
    bad = bytearray(good)
    bad[40] ^= 0xFF
    assert "fails its CRC check" in png.structure_problem(bytes(bad))
    assert "not a PNG" in png.structure_problem(b"just some text\n", ".png")
    jpg = png.encode_image(np.zeros((16, 16, 3), np.uint8), ".jpg")
    assert png.structure_problem(jpg) is None
    assert png.structure_problem(jpg + b"\0\0\n") is None  # padding after EOI is common
    assert "no EOI" in png.structure_problem(jpg[:-40])
    assert "no SOI" in png.structure_problem(b"text", ".jpg")
    with pytest.raises(InvalidFileError, match="truncated PNG") as info:
        png.check_structure(good[:100], "a/b_leftImg8bit.png")
    assert info.value.path == "a/b_leftImg8bit.png"


def test_a_zip_the_zip_library_cannot_index_is_an_error_naming_it(tmp_path):
    # A member with an empty name makes zipfile itself raise IndexError while fsspec indexes
    # the archive: that is a corrupt archive, not a bug of ours.
    import zipfile

    import cityscapes_io as cio
    from cityscapes_io import CityscapesIOError

    path = str(tmp_path / "ds.zip")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("gtFine/val/a/a_000000_000001_gtFine_labelIds.png", png.encode_png(np.zeros((4, 4), np.uint8)))
        info = zipfile.ZipInfo("x")
        info.filename = ""
        zf.writestr(info, b"x")
    with pytest.raises(CityscapesIOError, match="corrupt archive or storage") as info:
        list(cio.open(path))
    assert info.value.path == path


@pytest.mark.parametrize("fmt, index", [
    ("coco_instances", "annotations/instancesonly_filtered_gtFine_val.json"),
    ("coco_panoptic", "annotations/panoptic_val.json"),
    ("wds", "shards.json"),
])
def test_index_files_linked_out_of_the_root_are_refused(tmp_path, fmt, index):
    # The index file itself found by name, then replaced by a link to a (valid) copy outside.
    import shutil

    import cityscapes_io as cio

    root = str(tmp_path / "ds")
    cio.convert(cio.sample_path(), root, format=fmt, split="val")
    path = os.path.join(root, index)
    assert os.path.isfile(path), sorted(os.listdir(os.path.dirname(path)))
    outside = str(tmp_path / "elsewhere.json")
    shutil.move(path, outside)
    os.symlink(outside, path)
    with pytest.raises(UnsafePathError, match="symbolic link") as info:
        list(cio.open(root, format=fmt))
    assert info.value.path.endswith(os.path.basename(index))


@pytest.mark.parametrize("number", ["1e400", "1E+400", "-1e309", "1e0400", "1" + "0" * 400 + ".5",
                                    "1" + "0" * 290 + "e20", "1" + "0" * 220 + ".0e99"])
def test_every_number_that_overflows_is_refused(number):
    # Floats are checked in Python only when the text may hold such a number: every shape of it.
    with pytest.raises(InvalidFileError, match="out of range"):
        jsonfile.loads(f'{{"a": [1.5, {number}]}}'.encode(), "x.json")


@pytest.mark.parametrize("number", ["1e-400", "1.7e308", "1" + "0" * 150 + ".5", "0.25e99"])
def test_large_finite_numbers_are_kept(number):
    assert jsonfile.loads(f"[{number}]", "x.json") == [float(number)]
