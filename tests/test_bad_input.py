"""Bad input: one clear error naming the file under on_error="raise"; with "skip" the run
completes and the report lists every skipped frame (read == written + skipped)."""
import os
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.png import encode_png

from conftest import SEMANTIC, write_file, write_frame

GOOD = ["a/a_000000_000001", "a/a_000000_000003"]
BAD = "a/a_000000_000002"


def make(root, corrupt):
    for fid in GOOD:
        write_frame(root, "train", fid)
    write_frame(root, "train", BAD)
    corrupt(root)
    return root


def gt(root, kind="instanceIds", fid=BAD):
    return os.path.join(root, "gtFine", "train", f"{fid}_gtFine_{kind}.png")


def truncate(root):
    data = open(gt(root), "rb").read()
    open(gt(root), "wb").write(data[: len(data) // 2])


def not_png(root):
    open(gt(root), "wb").write(b"GIF89a this is not a png at all")


def rgb(root):
    open(gt(root), "wb").write(encode_png(np.zeros(SEMANTIC.shape + (3,), np.uint8)))


def unknown_label(root):
    bad = SEMANTIC.copy()
    bad[0, 0] = 40001
    open(gt(root), "wb").write(encode_png(bad))


def huge(root):
    # A valid PNG header declaring 100000 x 100000 pixels (40 GB as 32-bit): refused up front.
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 16, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    open(gt(root), "wb").write(data + b"\x00" * 64)


def size_mismatch(root):
    path = os.path.join(root, "leftImg8bit", "train", f"{BAD}_leftImg8bit.png")
    open(path, "wb").write(encode_png(np.zeros((10, 10, 3), np.uint8)))


CASES = {
    "truncated": (truncate, gt, "truncated PNG"),
    "not-a-png": (not_png, gt, "not a PNG"),
    "rgb-instanceids": (rgb, gt, "expected a single-channel"),
    "unknown-label": (unknown_label, gt, "not in the label map"),
    "huge-dimensions": (huge, gt, "more than the limit"),
    "size-mismatch": (size_mismatch, lambda r: os.path.join(r, "leftImg8bit", "train", f"{BAD}_leftImg8bit.png"),
                      "photo is 10x10 but the ground truth is 32x24"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fmt", ["voc", "cityscapes"])
def test_bad_frame_raise_then_skip(case, fmt, tmp_path):
    corrupt, path_of, reason = CASES[case]
    root = make(str(tmp_path / "src"), corrupt)
    with pytest.raises(cio.CityscapesIOError) as e:
        cio.convert(root, str(tmp_path / "raise"), format=fmt, save_media=True)
    assert path_of(root) in str(e.value) and reason in str(e.value)
    start = time.perf_counter()
    report = cio.convert(root, str(tmp_path / "skip"), format=fmt, save_media=True, on_error="skip")
    assert time.perf_counter() - start < 30
    assert (report.read, report.written, len(report.skipped)) == (3, 2, 1)
    assert report.skipped[0][:2] == ("train", BAD) and reason in report.skipped[0][2]
    back = cio.open(str(tmp_path / "skip"), format=fmt)
    assert sorted(f.id for f in back) == GOOD  # nothing of the bad frame was written
    for dirpath, _, files in os.walk(tmp_path / "skip"):
        assert not [f for f in files if "a_000000_000002" in f]


def test_cli_skip_summary_and_exit_status(tmp_path, capsys):
    root = make(str(tmp_path / "src"), not_png)
    assert main(["convert", root, str(tmp_path / "o1"), "-f", "voc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "a_000000_000002_gtFine_instanceIds.png: not a PNG" in err
    assert main(["convert", root, str(tmp_path / "o2"), "-f", "voc", "--on-error", "skip"]) == 1
    err = capsys.readouterr().err
    assert "3 frames read, 2 written, 1 skipped" in err and f"skipped train/{BAD}" in err
    assert main(["convert", root, str(tmp_path / "o3"), "-f", "voc", "--on-error", "skip", "--allow-skipped"]) == 0


def test_missing_counterpart_is_written_and_reported(tmp_path):
    root = str(tmp_path / "src")
    write_frame(root, "train", GOOD[0])
    write_frame(root, "train", BAD, photo=False)  # ground truth without its photo
    write_frame(root, "train", GOOD[1], gt=False)  # photo without ground truth
    report = cio.convert(root, str(tmp_path / "out"), format="cityscapes", save_media=True)
    assert (report.read, report.written, report.skipped) == (3, 3, [])
    notes = {fid: reason for _, fid, reason in report.warnings}
    assert "no photo" in notes[BAD] and "no ground truth" in notes[GOOD[1]]
    assert "written incomplete" in report.summary()


def test_unknown_suffix_is_ignored(tmp_path):
    root = str(tmp_path / "src")
    write_frame(root, "train", GOOD[0])
    write_file(root, "gtFine/train/a/notes.txt", b"hello")
    write_file(root, "leftImg8bit/train/a/a_000000_000001_rightImg8bit.png", b"x")
    report = cio.convert(root, str(tmp_path / "out"), format="voc")
    assert (report.read, report.written) == (1, 1)


def test_empty_split_and_empty_dataset(tmp_path, capsys):
    root = str(tmp_path / "src")
    write_frame(root, "train", GOOD[0])
    os.makedirs(os.path.join(root, "gtFine", "val"))
    ds = cio.open(root)
    assert ds.splits() == ["train", "val"] and list(ds.frames("val")) == []
    assert cio.convert(root, str(tmp_path / "o"), format="voc").written == 1
    empty = str(tmp_path / "empty")
    os.makedirs(os.path.join(empty, "gtFine", "train"))
    report = cio.convert(empty, str(tmp_path / "o2"), format="voc")
    assert (report.read, report.written) == (0, 0)
    assert main(["convert", empty, str(tmp_path / "o3"), "-f", "voc"]) == 1
    assert "no frames to convert" in capsys.readouterr().err
    with pytest.raises(cio.DatasetNotFoundError, match="not a Cityscapes dataset"):
        cio.open(str(tmp_path / "o2"))  # a VOC tree is not a Cityscapes one
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    assert main(["convert", str(nothing), str(tmp_path / "o4"), "-f", "voc"]) == 3


@pytest.mark.parametrize("name, text, reason", [
    ("label_colors.txt", "0 0 0 background\n0 124 elephant\n", "line 2: expected 'R G B name'"),
    ("label_colors.txt", "0 0 0 a\n1 1 1 a\n", "duplicate label name 'a'"),
    ("label_colors.txt", "0 0 0 a\n1 2 3x b\n", "expected 'R G B name'"),
    ("dataset_meta.json", "{not json", "not valid JSON"),
    ("dataset_meta.json", '{"segmentation_colors": []}', "missing key 'label_map'"),
])
def test_bad_label_files(tmp_path, capsys, name, text, reason):
    root = str(tmp_path / "src")
    write_frame(root, "train", GOOD[0])
    write_file(root, name, text.encode())
    for on_error in ("raise", "skip"):
        with pytest.raises(cio.LabelMapError) as e:
            cio.convert(root, str(tmp_path / "out"), format="voc", on_error=on_error)
        assert str(e.value).endswith(f"{name}: {reason}") or (name in str(e.value) and reason in str(e.value))
    assert main(["convert", root, str(tmp_path / "out"), "-f", "voc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and name in err and reason in err
    assert not os.path.exists(tmp_path / "out" / "labelmap.txt")


def test_three_word_line_is_not_taken_for_a_name(tmp_path):
    # Datumaro reads "0 124 134" plus a name by splitting; a line of three words is an error here,
    # never silently a label called "0 124 elephant" or a colour of two numbers.
    with pytest.raises(cio.LabelMapError, match="line 1"):
        cio.LabelMap.parse_label_colors("0 124 elephant\n")
    assert cio.LabelMap.parse_label_colors("0 0 0 bg\n1 2 3 big elephant\n")[1].name == "big elephant"


def test_huge_dimensions_refused_before_allocation(tmp_path):
    import tracemalloc

    root = make(str(tmp_path / "src"), huge)
    frame = cio.open(root).frame(BAD)
    tracemalloc.start()
    with pytest.raises(cio.InvalidFileError, match="100000x100000"):
        frame.instance_ids()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_zip_member_names_cannot_escape(tmp_path):
    src = str(tmp_path / "evil.zip")
    data = encode_png(SEMANTIC)
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("gtFine/train/a/a_000000_000001_gtFine_instanceIds.png", data)
        zf.writestr("gtFine/train/a/../../../../escaped_000000_000001_gtFine_instanceIds.png", data)
        zf.writestr("/gtFine/train/b/b_000000_000001_gtFine_instanceIds.png", data)
    out = tmp_path / "deep" / "out"
    report = cio.convert(src, str(out), format="cityscapes", on_error="skip")
    assert report.read == report.written + len(report.skipped)
    reasons = {fid: reason for _, fid, reason in report.skipped}
    # the '..' member is refused; the absolute one (not readable through the archive) is reported
    assert "outside the destination" in reasons["a/../../../../escaped_000000_000001"]
    assert "cannot be read" in reasons["b/b_000000_000001"]
    assert report.written == 1
    inside = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    assert all(not p.startswith("..") for p in inside)
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*") if out not in p.parents)
    with pytest.raises(cio.InvalidFileError, match="outside the destination"):
        cio.convert(src, str(tmp_path / "raise"), format="cityscapes")


def test_unsafe_label_names_never_become_paths(tmp_path):
    root = str(tmp_path / "src")
    inst = np.array([[0, 1, 1001, 2]], np.uint16)
    write_frame(root, "train", "a/a_000000_000001", inst, photo=False)
    write_file(root, "label_colors.txt", b"0 0 0 background\n1 2 3 ../../evil\n4 5 6 /etc/passwd\n")
    for fmt in ("cityscapes", "voc", "camvid"):
        out = tmp_path / f"out-{fmt}"
        cio.convert(root, str(out), format=fmt)
        back = cio.open(str(out), format=fmt)
        assert [n.replace("_", " ") for n in back.labels.names][1:] == ["../../evil", "/etc/passwd"] or \
            back.labels.names[1:] == ["../../evil", "/etc/passwd"]
    assert not list(tmp_path.rglob("evil*")) and not (tmp_path.parent / "evil").exists()
