"""Untrusted list files and label files (issue 17): VOC and CamVid list lines stay inside their
root, ``dataset_meta.json`` / ``label_colors.txt`` of any shape give a ``LabelMapError`` naming
the file, and odd text (BOM, CRLF, blank lines, bad UTF-8, long lines) reads or is refused clearly.

A canary file beside the root must never be opened: an audit hook records every file opened."""
import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import cityscapes_io as cio
from cityscapes_io import CityscapesIOError, InvalidFileError, LabelMap, LabelMapError, UnsafePathError
from cityscapes_io.cli import main
from cityscapes_io.formats import detect_format

from conftest import upload_dir, write_file, write_frame, zip_dir

IDS = ("aachen_000000_000019", "aachen_000001_000019")
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small Cityscapes tree converted to CamVid and VOC (with photos), made once."""
    base = tmp_path_factory.mktemp("made")
    src = str(base / "src")
    for frame_id in IDS:
        write_frame(src, "train", frame_id)
    cio.convert(src, str(base / "camvid"), format="camvid", save_media=True)
    cio.convert(src, str(base / "voc"), format="voc", save_media=True)
    return base


@pytest.fixture
def camvid(made, tmp_path):
    """``(root, canary)``: a CamVid dataset and, beside it, a valid mask that must never be read."""
    root = str(tmp_path / "ds")
    shutil.copytree(made / "camvid", root)
    canary = str(tmp_path / "canary.png")
    shutil.copy(os.path.join(root, "trainannot", f"{IDS[0]}.png"), canary)
    os.makedirs(tmp_path / "sibling" / "trainannot")
    shutil.copy(canary, tmp_path / "sibling" / "trainannot" / f"{IDS[0]}.png")
    return root, canary


@pytest.fixture
def voc(made, tmp_path):
    root = str(tmp_path / "vocds")
    shutil.copytree(made / "voc", root)
    canary = str(tmp_path / "canary.png")
    shutil.copy(os.path.join(root, "SegmentationClass", f"{IDS[0]}.png"), canary)
    return root, canary


def read_all(root, fmt):
    """Every frame of every split, decoded: ``{id: instanceIds}``."""
    return {f.id: f.instance_ids() for f in cio.open(root, format=fmt)}


def set_list(root, rel, text):
    write_file(root, rel, text if isinstance(text, bytes) else text.encode("utf-8"))


def leaked(opened, root):
    """Files opened beside ``root``: the canary, or the sibling dataset's."""
    beside = os.path.dirname(os.path.realpath(root))
    return [p for p in opened if os.path.realpath(p) == os.path.join(beside, "canary.png")
            or os.path.realpath(p).startswith(os.path.join(beside, "sibling") + os.sep)]


# -- CamVid list lines ---------------------------------------------------------------------------
ESCAPES = [
    # (image, mask) fields of the second line; {canary} is the canary's absolute path
    ("/train/{id}.png", "/../canary.png"),
    ("/train/{id}.png", "/trainannot/../../canary.png"),
    ("/train/{id}.png", "/../sibling/trainannot/{id}.png"),
    ("/train/{id}.png", "/{canary}"),  # //abs: one "/" stripped leaves an absolute path
    ("/train/{id}.png", "/C:/canary.png"),
    ("/../canary.png", "/trainannot/{id}.png"),
    ('"/train/{id}.png"', '"/trainannot/../../canary.png"'),
]


@pytest.mark.parametrize("image, mask", ESCAPES)
def test_camvid_list_lines_cannot_leave_the_root(camvid, opened, image, mask):
    root, canary = camvid
    line = f"{image} {mask}".format(id=IDS[1], canary=canary)
    set_list(root, "train.txt", f"/train/{IDS[0]}.png /trainannot/{IDS[0]}.png\n{line}\n")
    with pytest.raises(UnsafePathError) as info:
        read_all(root, "camvid")
    assert info.value.path == os.path.join(root, "train.txt")
    assert str(info.value).startswith(f"{root}/train.txt: line 2: path ") and "(refused)" in str(info.value)
    assert not leaked(opened, root)


def test_camvid_nul_in_a_list_line_is_refused(camvid):
    root, _ = camvid
    set_list(root, "train.txt", f"/train/{IDS[0]}.png /trainannot/{IDS[0]}\0.png\n")
    with pytest.raises(UnsafePathError, match=r"train\.txt: line 1: .*NUL"):
        read_all(root, "camvid")


def test_camvid_symlinked_mask_is_refused(camvid, opened):
    root, canary = camvid
    os.remove(os.path.join(root, "trainannot", f"{IDS[1]}.png"))
    os.symlink(canary, os.path.join(root, "trainannot", f"{IDS[1]}.png"))
    with pytest.raises(UnsafePathError, match=r"train\.txt: line 2: .*symbolic link"):
        read_all(root, "camvid")
    # Without the list, the masks are found by listing: the link is refused all the same.
    os.remove(os.path.join(root, "train.txt"))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_all(root, "camvid")
    assert canary not in opened


def test_camvid_convert_refuses_an_escaping_line(camvid, opened, tmp_path, capsys):
    root, canary = camvid
    set_list(root, "train.txt", f"/train/{IDS[0]}.png /trainannot/{IDS[0]}.png\n\n"
                                f"/train/{IDS[1]}.png /trainannot/../../canary.png\n")
    assert main(["convert", root, str(tmp_path / "out"), "-if", "camvid", "-f", "cityscapes"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{root}/train.txt: line 3" in err
    assert not leaked(opened, root)


def test_camvid_leading_slash_is_optional_and_odd_text_reads(camvid):
    root, _ = camvid
    want = read_all(root, "camvid")
    lines = [f"/train/{IDS[0]}.png\t/trainannot/{IDS[0]}.png", f"  train/{IDS[1]}.png   trainannot/{IDS[1]}.png  "]
    set_list(root, "train.txt", b"\xef\xbb\xbf" + ("\r\n\r\n".join(lines) + "\r\n").encode())
    got = read_all(root, "camvid")
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
    assert detect_format(root) == "camvid"


def test_camvid_detected_by_a_list_with_a_bom(camvid):
    root, _ = camvid
    for folder in ("trainannot", "trainannot_instances"):
        shutil.rmtree(os.path.join(root, folder))
    set_list(root, "train.txt", b"\xef\xbb\xbf" + f"/train/{IDS[0]}.png\n".encode())
    assert detect_format(root) == "camvid"


@pytest.mark.parametrize("data, reason", [
    (b"/train/a.png /trainannot/\xff.png\n", "not UTF-8"),
    (b"\xff\xfe/\x00t\x00", "not UTF-8"),
    (b'"/train/a.png /trainannot/a.png\n', "quotes"),
    (b"/train/a.png /x.png /y.png\n", "expected"),
])
def test_camvid_bad_list_text_names_the_file(camvid, data, reason):
    root, _ = camvid
    set_list(root, "train.txt", data)
    with pytest.raises(InvalidFileError, match=reason) as info:
        read_all(root, "camvid")
    assert info.value.path == os.path.join(root, "train.txt")


def test_camvid_very_long_line(camvid):
    root, _ = camvid
    set_list(root, "train.txt", f"/train/{IDS[0]}.png /trainannot/{IDS[0]}.png\n"
                                f"/train/{'x' * 100000}.png /trainannot/{'y' * 100000}.png\n")
    with pytest.raises(InvalidFileError, match=r"line 2: a path of 100010 characters") as info:
        read_all(root, "camvid")
    assert info.value.path == os.path.join(root, "train.txt") and len(str(info.value)) < 500


#: Pieces of list text: path parts, separators, escapes and odd characters.
PIECES = st.sampled_from(["/", "../", "..", "train", "trainannot", "/train/", "/trainannot/", IDS[0], IDS[1],
                          ".png", " ", "\t", '"', "\r\n", "\n", "\r", "\ufeff", "\0", "C:", "\\", "//", "\x85",
                          "\u2028", "\u00e9", "canary.png", "sibling/"])


@pytest.fixture(scope="module")
def both(made, tmp_path_factory):
    """``{format: root}``: a CamVid and a VOC dataset side by side, the canary and a sibling
    dataset beside them (made once for the examples of a property test)."""
    base = tmp_path_factory.mktemp("both")
    shutil.copytree(made / "camvid", base / "camvid")
    shutil.copytree(made / "voc", base / "voc")
    shutil.copytree(made / "camvid", base / "sibling")
    shutil.copy(base / "camvid" / "trainannot" / f"{IDS[0]}.png", base / "canary.png")
    return {"camvid": str(base / "camvid"), "voc": str(base / "voc")}


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(PIECES, max_size=24), fmt=st.sampled_from(["camvid", "voc"]), tail=st.sampled_from([b"", b"\xff"]))
def test_any_list_text_reads_or_is_refused(both, opened, pieces, fmt, tail):
    """Whatever a list holds: frames, or a CityscapesIOError naming the list; nothing beside the
    root is opened."""
    rel = "train.txt" if fmt == "camvid" else "ImageSets/Segmentation/train.txt"
    set_list(both[fmt], rel, "".join(pieces).encode("utf-8") + tail)
    opened.clear()
    try:
        read_all(both[fmt], fmt)
    except CityscapesIOError as exc:
        assert exc.path and (rel in exc.path or "annot" in exc.path or "Segmentation" in exc.path), exc
    assert not leaked(opened, both[fmt])


# -- VOC list lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("frame_id", ["../../canary", "/etc/passwd", "../../../canary", "a\0b", "C:/canary"])
def test_voc_ids_cannot_leave_the_root(voc, opened, frame_id):
    root, canary = voc
    set_list(root, "ImageSets/Segmentation/train.txt", f"{IDS[0]}\n{frame_id}\n")
    for on_error in ("raise", "skip"):
        with pytest.raises(UnsafePathError) as info:
            list(cio.open(root, format="voc", on_error=on_error))
        assert info.value.path == os.path.join(root, "ImageSets/Segmentation/train.txt")
        assert "line 2: path" in str(info.value)
    assert canary not in opened


def test_voc_convert_refuses_an_escaping_id(voc, tmp_path, capsys):
    root, canary = voc
    set_list(root, "ImageSets/Segmentation/train.txt", f"{IDS[0]}\n../../canary\n")
    assert main(["convert", root, str(tmp_path / "out"), "-if", "voc", "-f", "cityscapes"]) != 0
    err = capsys.readouterr().err
    assert f"{root}/ImageSets/Segmentation/train.txt: line 2: path '../../canary'" in err


def test_voc_symlinked_mask_is_refused(voc, opened):
    root, canary = voc
    mask = os.path.join(root, "SegmentationClass", f"{IDS[1]}.png")
    os.remove(mask)
    os.symlink(canary, mask)
    with pytest.raises(UnsafePathError, match=r"train\.txt: line 2: .*symbolic link"):
        read_all(root, "voc")
    assert canary not in opened


def test_voc_odd_list_text(voc):
    root, _ = voc
    want = read_all(root, "voc")
    set_list(root, "ImageSets/Segmentation/train.txt",
             b"\xef\xbb\xbf" + f"{IDS[0]}\r\n\r\n  {IDS[1]}\t\r\n".encode())
    got = read_all(root, "voc")
    assert sorted(got) == sorted(want)
    set_list(root, "ImageSets/Segmentation/train.txt", b"\xff\n")
    with pytest.raises(InvalidFileError, match="not UTF-8") as info:
        read_all(root, "voc")
    assert info.value.path == os.path.join(root, "ImageSets/Segmentation/train.txt")


# -- label files ---------------------------------------------------------------------------------
META = {"label_map": {"0": "background", "1": "car"}, "segmentation_colors": [[0, 0, 0], [0, 0, 142]]}


def meta_with(**changes):
    meta = dict(META, **changes)
    return json.dumps(meta)


BAD_META = [
    ('{"label_map": {"0": "a"}, "segmentation_colors": [[NaN, 0, 0]]}', "not valid JSON"),
    ('{"label_map": {"0": "a"}, "segmentation_colors": [[Infinity, 0, 0]]}', "not valid JSON"),
    ('{"label_map": {"0": "a"}, "segmentation_colors": [[1e400, 0, 0]]}', "not valid JSON"),
    ('{"label_map": ' + "[" * 100000, "not valid JSON"),
    (meta_with(segmentation_colors=["000", [0, 0, 142]]), "colour"),
    (meta_with(segmentation_colors=["red", [0, 0, 142]]), "colour"),
    (meta_with(segmentation_colors=[[0, 0], [0, 0, 142]]), "colour"),
    (meta_with(segmentation_colors=[[0, 0, 0, 0], [0, 0, 142]]), "colour"),
    (meta_with(segmentation_colors=[[0, 0, 0], [0, 0, 256]]), "0..255"),
    (meta_with(segmentation_colors=[[0, 0, 0], [0, -1, 0]]), "0..255"),
    (meta_with(segmentation_colors=[[0, 0, 0], [0.5, 0, 0]]), "colour"),
    (meta_with(segmentation_colors=[[0, 0, 0], [True, 0, 0]]), "colour"),
    (meta_with(segmentation_colors=[[0, 0, 0], {"r": 1, "g": 2, "b": 3}]), "colour"),
    (meta_with(segmentation_colors=[[0, 0, 0], [[0], [0], [0]]]), "colour"),
    (meta_with(segmentation_colors={"0": [0, 0, 0]}), "segmentation_colors"),
    (meta_with(label_map={"x": "a"}), "integer"),
    (meta_with(label_map={"1.5": "a"}), "integer"),
    (meta_with(label_map={"1_0": "a"}), "integer"),
    (meta_with(label_map={"9" * 5000: "a"}), "out of range"),
    (meta_with(label_map={"0": "a", str(10 ** 12): "b"}), "out of range"),
    (meta_with(label_map=["a", "b"]), "label_map"),
    (meta_with(label_map={"0": ["a"], "1": "b"}), "name"),
    (meta_with(label_map={"0": None, "1": "b"}), "name"),
    (meta_with(label_map={}), "no labels"),
    (json.dumps({"labels": "abc"}), "labels"),
    (json.dumps({"labels": [{"name": "a"}]}), "name"),
    (json.dumps({"label_map": {str(i): f"l{i}" for i in range(70000)}}), "labels: at most"),
    (json.dumps({"labels": [f"l{i}" for i in range(70000)]}), "labels: at most"),
    ("[1, 2]", "JSON object"),
    ('"label_map"', "JSON object"),
    (b"\xff\xfe{}", "not valid JSON"),
]


@pytest.mark.parametrize("text, reason", BAD_META)
def test_bad_dataset_meta_names_the_file(text, reason):
    with pytest.raises(LabelMapError, match=reason) as info:
        LabelMap.parse_dataset_meta(text, source="/data/dataset_meta.json")
    assert info.value.path == "/data/dataset_meta.json"


BAD_COLORS = [
    ("0 0 0 bg\n0 0 256 car\n", "0..255"),
    ("0 0 0 bg\n0 0 1.5 car\n", "expected 'R G B name'"),
    ("0 0 0 bg\n0 0 \u0663 car\n", "expected 'R G B name'"),  # an Arabic-Indic digit
    ("0 0 0 bg\n0 0 " + "9" * 5000 + " car\n", "0..255"),
    ("0 0 0 bg\n0 0 car\n", "expected 'R G B name'"),
    ("".join(f"l{i}\n" for i in range(70000)), "labels: at most"),
]


@pytest.mark.parametrize("text, reason", BAD_COLORS)
def test_bad_label_colors_names_the_file(text, reason):
    with pytest.raises(LabelMapError, match=reason) as info:
        LabelMap.parse_label_colors(text, source="/data/label_colors.txt")
    assert info.value.path == "/data/label_colors.txt"


def test_label_colors_with_a_bom_reads_as_without():
    text = "0 0 0 background\n0 0 142 car\n"
    assert LabelMap.parse_label_colors("\ufeff" + text) == LabelMap.parse_label_colors(text)


@pytest.fixture
def cityscapes_tree(tmp_path):
    root = str(tmp_path / "cs")
    write_frame(root, "train", IDS[0])
    return root


@pytest.mark.parametrize("fmt", ["cityscapes", "camvid"])
@pytest.mark.parametrize("name, data, reason", [
    ("dataset_meta.json", meta_with(segmentation_colors=["abc", [0, 0, 142]]).encode(), "colour"),
    ("dataset_meta.json", b'{"label_map": {"0": "a"}, "segmentation_colors": [[NaN, 0, 0]]}', "not valid JSON"),
    ("dataset_meta.json", b"\xff{}", "not valid JSON: not UTF-8"),
    ("label_colors.txt", b"0 0 0 bg\n\xff 0 0 car\n", "not UTF-8"),
    ("label_colors.txt", b"0 0 0 bg\n0 0 300 car\n", "0..255"),
])
def test_readers_give_label_map_errors(camvid, cityscapes_tree, fmt, name, data, reason):
    root = camvid[0] if fmt == "camvid" else cityscapes_tree
    write_file(root, name, data)
    with pytest.raises(LabelMapError, match=reason) as info:
        cio.open(root, format=fmt)
    assert info.value.path == os.path.join(root, name)


@pytest.mark.parametrize("fmt", ["cityscapes", "camvid"])
def test_readers_accept_a_bom(camvid, cityscapes_tree, fmt):
    root = camvid[0] if fmt == "camvid" else cityscapes_tree
    write_file(root, "label_colors.txt", b"\xef\xbb\xbf0 0 0 background\n0 0 142 car\n")
    assert cio.open(root, format=fmt).labels.names == ["background", "car"]
    write_file(root, "dataset_meta.json", b"\xef\xbb\xbf" + meta_with().encode())
    assert cio.open(root, format=fmt).labels.names == ["background", "car"]


@pytest.mark.parametrize("fmt, name", [("cityscapes", "label_colors.txt"), ("camvid", "dataset_meta.json"),
                                       ("camvid", "label_colors.txt"), ("voc", "labelmap.txt"),
                                       ("camvid", "train.txt"), ("voc", "ImageSets/Segmentation/train.txt")])
def test_label_and_list_files_linked_outside_are_refused(camvid, voc, cityscapes_tree, tmp_path, opened, fmt, name):
    root = {"cityscapes": cityscapes_tree, "camvid": camvid[0], "voc": voc[0]}[fmt]
    secret = str(tmp_path / "secret.txt")
    write_file(str(tmp_path), "secret.txt", b"0 0 0 background\n")
    path = os.path.join(root, name)
    if os.path.exists(path):
        os.remove(path)
    os.symlink(secret, path)
    opened.clear()
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_all(root, fmt)
    assert secret not in opened


def test_existing_label_files_still_read(camvid, voc):
    assert len(cio.open(camvid[0], format="camvid").labels) == len(LabelMap.cityscapes())
    lm = LabelMap.parse_dataset_meta(json.dumps({"label_map": {"0": "bg", "255": "ignore"},
                                                 "segmentation_colors": [[0, 0, 0]] * 256}))
    assert lm.ids == [0, 255]
    lm = LabelMap.parse_dataset_meta(json.dumps({"label_map": {"-1": "plate", "0": "bg"}}))
    assert lm.ids == [-1, 0]
    assert set(read_all(voc[0], "voc")) == set(IDS)


# -- other filesystems ---------------------------------------------------------------------------
def check_elsewhere(made, tree, publish, url, opts=None):
    """Lines resolve the same way on archives and object stores; a sibling dataset beside the
    root (a folder of the archive, another prefix of the bucket) is out of reach. ``publish(rel)``
    copies the local ``tree`` there (``rel``: the one file changed, None for all)."""
    shutil.copytree(made / "camvid", os.path.join(tree, "ds"))
    shutil.copytree(made / "camvid", os.path.join(tree, "sibling"))
    shutil.copytree(made / "voc", os.path.join(tree, "vocds"))
    publish(None)
    assert [f.id for f in cio.open(url("ds"), format="camvid", storage_options=opts)] == list(IDS)
    assert [f.id for f in cio.open(url("vocds"), format="voc", storage_options=opts)] == list(IDS)
    for rel, text, fmt in (("ds/train.txt", f"/train/{IDS[0]}.png /../sibling/trainannot/{IDS[0]}.png\n", "camvid"),
                           ("vocds/ImageSets/Segmentation/train.txt", f"../../sibling/trainannot/{IDS[0]}\n", "voc")):
        write_file(tree, rel, text.encode())
        publish(rel)
        with pytest.raises(UnsafePathError, match=r"train\.txt: line 1: path .* leads outside its root"):
            list(cio.open(url(rel.split("/")[0]), format=fmt, storage_options=opts))


def test_lists_in_a_zip(made, tmp_path):
    archive = str(tmp_path / "data.zip")
    check_elsewhere(made, str(tmp_path / "tree"), lambda rel: zip_dir(str(tmp_path / "tree"), archive),
                    lambda name: f"zip://{name}::{archive}")


def test_lists_on_s3(made, tmp_path, s3):
    fs, opts, bucket = s3
    tree = str(tmp_path / "tree")

    def publish(rel):
        if rel is None:
            upload_dir(fs, tree, bucket)
        else:  # only the list changed
            fs.put_file(os.path.join(tree, rel), f"{bucket}/{rel}")
            fs.invalidate_cache()

    check_elsewhere(made, tree, publish, lambda name: f"s3://{bucket}/{name}", opts)


# -- a line repeated: the frame would be given (and written) twice ---------------------------------
@pytest.mark.parametrize("fmt", ["camvid", "voc"])
def test_a_repeated_list_line_is_an_error_not_a_second_frame(camvid, voc, tmp_path, fmt):
    root = camvid[0] if fmt == "camvid" else voc[0]
    rel = "train.txt" if fmt == "camvid" else "ImageSets/Segmentation/train.txt"
    lines = open(os.path.join(root, rel), encoding="utf-8").read().splitlines()
    assert len(lines) == 2
    set_list(root, rel, "\n".join(lines + [lines[0]]) + "\n")
    with pytest.raises(InvalidFileError, match=rf"line 3: lists '{IDS[0]}' again \(first on line 1\)") as info:
        list(cio.open(root, format=fmt))
    assert info.value.path.endswith(rel)
    # Reading with skip: the frame once, the repeat reported.
    with pytest.warns(UserWarning, match="again"):
        assert [f.id for f in cio.open(root, format=fmt, on_error="skip")] == list(IDS)
    # A conversion (whose policy is for frames) refuses the list: it never writes a frame twice.
    with pytest.raises(InvalidFileError, match="line 3: lists"):
        cio.convert(root, str(tmp_path / "out"), src_format=fmt, format="cityscapes", on_error="skip")
