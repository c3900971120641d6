"""Tar shards from elsewhere (issue 17): a crafted ``shards.json`` or tar header makes the library
read nothing outside the root, allocate nothing past the shard's real size, and report nothing it
did not do; every fault is a CityscapesIOError naming the file and the entry."""
from __future__ import annotations

import glob
import io
import json
import os
import random
import shutil
import tarfile
import tracemalloc

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.formats import wds
from cityscapes_io.storage import resolve_root
from cityscapes_io.testing import generate

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Tar shards of 4 train frames (2 a shard) and 1 val frame, and the source they came from."""
    top = tmp_path_factory.mktemp("wds_untrusted")
    src = str(top / "src")
    generate(src, splits={"train": 4, "val": 1}, size=(32, 16))
    # Without polygons the shards hold four members a frame: the offsets and sizes named below
    # (a 20480-byte shard, the second frame's header at 5120) are theirs.
    for path in glob.glob(os.path.join(src, "gtFine", "*", "*", "*_polygons.json")):
        os.remove(path)
    out = str(top / "shards")
    cio.convert(src, out, format="wds", frames_per_shard=2)
    return src, out


@pytest.fixture
def ds(shards, tmp_path, opened):
    """A copy of the shards at ``<tmp>/data/ds`` with a canary shard beside it (a copy of a real
    shard, so that a read of it would pass for a frame), and ``edit(fn)`` to change the index."""
    root = tmp_path / "data" / "ds"
    shutil.copytree(shards[1], root)
    shutil.copyfile(root / "train-000000.tar", tmp_path / "data" / "canary.tar")
    opened.clear()

    def edit(change):
        path = root / "shards.json"
        index = json.loads(path.read_text())
        change(index)
        path.write_text(json.dumps(index))

    return str(root), edit


def _member(index, split="train", shard=0, frame=0, member=0):
    return index["splits"][split][shard]["members"][frame]["files"][member]


def _read_all(root):
    for frame in cio.open(root, format="wds"):
        for kind in ("image", "instanceIds", "labelIds"):
            frame.source.read_bytes(kind)


# -- 1. paths from shards.json stay inside the root ----------------------------------------------
@pytest.mark.parametrize("rel, why", [
    ("../../../../etc/passwd", "leads outside its root"),
    ("../canary.tar", "leads outside its root"),
    ("@ABS@", "is absolute"),
    ("link.tar", "symbolic link"),
    ("sub/../../canary.tar", "leads outside its root"),
    ("file:///etc/passwd", "is a URL"),
    ("train-000000.tar\0", "NUL byte"),
    (3, "must be a string"),
])
def test_a_shard_file_outside_the_root_is_refused(ds, tmp_path, capsys, opened, rel, why):
    root, edit = ds
    canary = str(tmp_path / "data" / "canary.tar")
    os.symlink(canary, os.path.join(root, "link.tar"))
    edit(lambda index: index["splits"]["train"][1].update(file=canary if rel == "@ABS@" else rel))
    where = f"{root}/shards.json: split 'train' shard 1 'file'"
    with pytest.raises(cio.UnsafePathError, match=why) as err:
        _read_all(root)
    assert str(err.value).startswith(where)
    with pytest.raises(cio.UnsafePathError, match=why):
        cio.convert(root, str(tmp_path / "out"), src_format="wds")
    assert main(["convert", root, str(tmp_path / "cli"), "-f", "cityscapes", "-q"]) != 0
    assert where in capsys.readouterr().err
    assert not [p for p in opened if "canary" in p]  # the canary was never opened


def test_shards_in_a_folder_inside_the_root_are_read(ds):
    root, edit = ds
    os.mkdir(os.path.join(root, "sub"))
    os.rename(os.path.join(root, "train-000001.tar"), os.path.join(root, "sub", "t.tar"))
    edit(lambda index: index["splits"]["train"][1].update(file="sub/./x/../t.tar"))
    assert cio.open(root, format="wds").reader.split_locations("train")[1].endswith("/ds/sub/t.tar")
    _read_all(root)


# -- 2. a frame id listed twice ------------------------------------------------------------------
def _twice_in_one_shard(index):
    shard = index["splits"]["train"][0]
    shard["members"].append(shard["members"][0])
    shard["frames"] += 1


def _twice_across_shards(index):
    index["splits"]["train"][1]["members"][0] = index["splits"]["train"][0]["members"][1]


@pytest.mark.parametrize("change", [_twice_in_one_shard, _twice_across_shards])
def test_a_frame_id_listed_twice_is_an_error(ds, tmp_path, change):
    root, edit = ds
    edit(change)
    with pytest.raises(cio.InvalidFileError, match=r"shards\.json: frame id 'aachen/aachen_00000[01]_000019' "
                                                   r"appears twice in split 'train'"):
        cio.convert(root, str(tmp_path / "out"), src_format="wds")


# -- 3. sizes and offsets are bounded before anything is read ---------------------------------------
def test_a_huge_member_is_refused_before_anything_is_allocated(ds):
    root, edit = ds
    edit(lambda index: _member(index, frame=1).__setitem__(2, 10**12))
    with pytest.raises(cio.InvalidFileError, match=r"shards\.json: split 'train' shard 0 frame 1 member 0 "
                                                   r"'aachen/aachen_000001_000019\.image\.png' size: 1000000000000 "
                                                   r"bytes is more than a member can hold \(1073741824 bytes; "
                                                   r"refused\)"):
        _read_all(root)


@pytest.mark.parametrize("offset, size", [(0, 10**9), (20480, 1), (20000, 1000), (10**15, 10)])
def test_a_member_past_the_end_of_its_shard_names_the_shard_and_member(ds, offset, size):
    root, edit = ds

    def change(index):
        _member(index, frame=1)[1:] = [offset, size]

    edit(change)
    frames = list(cio.open(root, format="wds", split="train"))
    assert frames[0].source.read_bytes("image")  # the frames before it are read
    tracemalloc.start()
    try:
        with pytest.raises(cio.InvalidFileError, match=rf"train-000000\.tar: truncated shard or wrong index: "
                                                       rf"member aachen/aachen_000001_000019\.image\.png \({size} "
                                                       rf"bytes at offset {offset}\) ends past the end of the shard "
                                                       rf"\(20480 bytes\)"):
            frames[1].image_bytes()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert frames[2].source.read_bytes("image")  # the next shard is read
    report = cio.convert(root, os.path.join(os.path.dirname(root), "out"), src_format="wds", on_error="skip",
                         save_media=True)
    assert [(s, i) for s, i, _ in report.skipped] == [("train", frames[1].id)] and report.written == 4


def test_a_missing_shard_is_named_and_not_read(ds):
    root, _ = ds
    os.remove(os.path.join(root, "train-000001.tar"))
    frames = list(cio.open(root, format="wds", split="train"))
    assert frames[1].image_bytes()
    with pytest.raises(cio.DatasetNotFoundError, match=r"train-000001\.tar: not there \(shards\.json lists it\)"):
        frames[2].image_bytes()


# -- 4. wrong types and values in shards.json -------------------------------------------------------
def _set(path, value):
    def change(index):
        *head, last = path
        obj = index
        for key in head:
            obj = obj[key]
        if value is _DROP:
            del obj[last]
        else:
            obj[last] = value
    return change


_DROP = object()
_T = ("splits", "train")


@pytest.mark.parametrize("change, message", [
    (_set(_T, "train-000000.tar"), "split 'train': expected a list of shards, got 'train-000000.tar'"),
    (_set(_T + (0,), ["x"]), "split 'train' shard 0: expected an object, got list"),
    (_set(_T + (0, "file"), _DROP), "split 'train' shard 0: no 'file'"),
    (_set(_T + (0, "frames"), -1), "split 'train' shard 0 'frames': expected a count, got -1"),
    (_set(_T + (0, "frames"), "2"), "split 'train' shard 0 'frames': expected a count, got '2'"),
    (_set(_T + (0, "frames"), True), "split 'train' shard 0 'frames': expected a count, got True"),
    (_set(_T + (0, "frames"), 3), "split 'train' shard 0: 'frames' is 3 but 'members' lists 2 frames"),
    (_set(_T + (0, "members"), {}), "split 'train' shard 0 'members': expected a list of frames, got dict"),
    (_set(_T + (0, "members", 1), "x"), "split 'train' shard 0 frame 1: expected an object, got 'x'"),
    (_set(_T + (0, "members", 1, "id"), 7), "split 'train' shard 0 frame 1 'id': expected a frame id, got 7"),
    (_set(_T + (0, "members", 1, "id"), ""), "split 'train' shard 0 frame 1 'id': expected a frame id, got ''"),
    (_set(_T + (0, "members", 1, "annotations"), "../x"),
     "split 'train' shard 0 frame 1 'annotations': expected gtFine or gtCoarse, got '../x'"),
    (_set(_T + (0, "members", 1, "files"), _DROP), "split 'train' shard 0 frame 1: no 'files'"),
    (_set(_T + (0, "members", 1, "files", 2), "x.png"),
     "split 'train' shard 0 frame 1 member 2: expected [name, offset, size], got 'x.png'"),
    (_set(_T + (0, "members", 1, "files", 2), [1, 2]),
     "split 'train' shard 0 frame 1 member 2: expected [name, offset, size], got list"),
    (_set(_T + (0, "members", 1, "files", 2, 1), -5),
     "split 'train' shard 0 frame 1 member 2 'aachen/aachen_000001_000019.label_ids.png' offset: "
     "expected a count, got -5"),
    (_set(_T + (0, "members", 1, "files", 2, 2), 2.5),
     "split 'train' shard 0 frame 1 member 2 'aachen/aachen_000001_000019.label_ids.png' size: "
     "expected a count, got 2.5"),
    (_set(_T + (0, "members", 1, "files", 2, 0), "../../etc/passwd"),
     "split 'train' shard 0 frame 1 member 2: the name '../../etc/passwd' is not the frame's key "
     "'aachen/aachen_000001_000019' and a suffix"),
    (_set(_T + (0, "members", 1, "files", 2, 0), "aachen/aachen_000001_000019.x/../../y"),
     "split 'train' shard 0 frame 1 member 2: the name 'aachen/aachen_000001_000019.x/../../y' is not"),
    (_set(_T + (0, "members", 1, "files", 2, 0), None),
     "split 'train' shard 0 frame 1 member 2: the name None is not"),
    (_set(_T + (0, "members", 1, "files", 2, 0), "aachen/aachen_000001_000019.image.jpg"),
     "split 'train' shard 0 frame 1 member 2: a second image member"),
])
def test_wrong_types_in_the_index_are_named(ds, change, message):
    root, edit = ds
    edit(change)
    with pytest.raises(cio.InvalidFileError) as err:
        _read_all(root)
    assert str(err.value) == f"{root}/shards.json: {message}" or str(err.value).startswith(
        f"{root}/shards.json: {message}")


@pytest.mark.parametrize("text, reason", [
    ('{"kind": "cityscapes_io-wds", "splits": {"train": [{"frames": 1e400}]}}', "out of range"),
    ('{"kind": "cityscapes_io-wds", "splits": {"train": NaN}}', "NaN is not a JSON number"),
    ("[" * 100_000, "maximum recursion depth exceeded"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_bad_json_in_the_index_is_named(ds, text, reason):
    root, _ = ds
    with open(os.path.join(root, "shards.json"), "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    with pytest.raises(cio.InvalidFileError, match=rf"shards\.json: not valid JSON: .*{reason}"):
        cio.open(root, format="wds")


# -- 3 (resume, finalize): crafted tar headers --------------------------------------------------------
def _header(data, at, **fields):
    """``data`` with the tar header at ``at`` changed (``name``/``size``: raw field bytes), its
    checksum made right again unless ``checksum`` is given."""
    block = bytearray(data[at:at + 512])
    spans = {"name": (0, 100), "size": (124, 12), "checksum": (148, 8)}
    for field, raw in fields.items():
        start, length = spans[field]
        block[start:start + length] = raw.ljust(length, b"\0")
    if "checksum" not in fields:
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    return data[:at] + bytes(block) + data[at + 512:]


@pytest.mark.parametrize("fields, message", [
    ({"size": b"77777777777"}, "declares 8589934591 bytes at offset 2560, past the end of the shard (20480 bytes)"),
    ({"size": b"\xff" * 11 + b"\x00"}, "declares -256 bytes"),
    ({"size": b"\xff" * 12}, "declares -1 bytes"),
    ({"size": b"\xff" * 10 + b"\xfe\x00"}, "declares -512 bytes"),  # the next header would be this one again
    ({"size": b"\x80" + b"\x00" * 6 + b"\xff" * 5}, "declares 1099511627775 bytes"),
    ({"size": b"12zz"}, "not a complete tar shard"),
    ({"checksum": b"0000000"}, "not a complete tar shard"),
    ({"name": b"../aachen_000000_000019.instance_ids.png"}, "member '../aachen_000000_000019.instance_ids.png': "
                                                            "the name is not a relative path inside the shard"),
    ({"name": b"/etc/aachen_000000_000019.instance_ids.png"}, "member '/etc/aachen_000000_000019.instance_ids.png': "
                                                             "the name is not a relative path inside the shard"),
])
@pytest.mark.parametrize("mode", ["resume", "finalize"])
def test_crafted_tar_headers_on_resume_and_finalize(shards, tmp_path, fields, message, mode):
    src, good = shards
    out = str(tmp_path / "out")
    shutil.copytree(good, out)
    os.remove(os.path.join(out, "shards.json"))
    tar = os.path.join(out, "train-000000.tar")
    with open(tar, "rb") as f:
        data = f.read()
    with open(tar, "wb") as f:
        f.write(_header(data, 2048, **fields))  # the header of the first frame's instance_ids.png
    options = {"resume": True} if mode == "resume" else {"finalize": True}
    report = cio.convert(src, out, format="wds", frames_per_shard=2, on_error="skip", **options)
    assert [r for _, _, r in report.skipped] == [report.skipped[0][2]] * 2
    assert report.skipped[0][2].startswith(f"{tar}: ") and message in report.skipped[0][2]
    with pytest.raises(cio.CityscapesIOError, match=rf"{tar}: .*{message[:20]}"):
        cio.convert(src, out, format="wds", frames_per_shard=2, **options)


def test_junk_after_an_unreadable_header_is_not_taken_for_the_end(shards, tmp_path):
    """An invalid header in the middle ends tarfile's listing without an error: the shard is
    refused rather than its later frames reported as left out."""
    src, good = shards
    out = str(tmp_path / "out")
    shutil.copytree(good, out)
    os.remove(os.path.join(out, "shards.json"))
    tar = os.path.join(out, "train-000000.tar")
    with open(tar, "rb") as f:
        data = f.read()
    with open(tar, "wb") as f:
        f.write(_header(data, 5120, checksum=b"1234567"))  # the second frame's first header
    report = cio.convert(src, out, format="wds", frames_per_shard=2, on_error="skip", resume=True)
    assert len(report.skipped) == 2
    assert f"{tar}: not a complete tar shard: no tar header at byte 5120" in report.skipped[0][2]


def test_a_pax_header_tarfile_cannot_parse_is_named(shards, tmp_path):
    """tarfile lets a ValueError out of a PAX header it cannot parse (a GNU sparse map that is
    not numbers): the shard is named, nothing crashes."""
    src, good = shards
    out = str(tmp_path / "out")
    shutil.copytree(good, out)
    os.remove(os.path.join(out, "shards.json"))
    tar = os.path.join(out, "train-000000.tar")
    with tarfile.open(os.path.join(good, "train-000000.tar")) as tf_in, \
            tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as tf_out:
        for info in tf_in:
            if info.name.endswith("000019.label_ids.png"):
                info.pax_headers = {"GNU.sparse.map": "0,x"}
            tf_out.addfile(info, tf_in.extractfile(info))
    report = cio.convert(src, out, format="wds", frames_per_shard=2, on_error="skip", resume=True)
    assert len(report.skipped) == 2
    assert report.skipped[0][2].startswith(f"{tar}: not a complete tar shard: invalid literal for int()")


def test_a_chain_of_long_name_headers_is_named(tmp_path):
    """tarfile follows each GNU long-name header by a recursive call: a long chain of them is a
    shard refused by name, not a RecursionError."""
    link = tarfile.TarInfo("././@LongLink")
    link.type, link.size = tarfile.GNUTYPE_LONGNAME, 2
    block = link.tobuf(format=tarfile.USTAR_FORMAT).replace(b"ustar\x0000", b"ustar  \0") + b"a".ljust(512, b"\0")
    block = _header(block, 0)  # the checksum again, after the magic changed
    path = str(tmp_path / "t.tar")
    with open(path, "wb") as f:
        f.write(block * 1000 + b"\0" * 1024)
    with pytest.raises(cio.InvalidFileError, match="t.tar: not a complete tar shard: a chain of extended headers"):
        wds._read_members(resolve_root(str(tmp_path)), path)


def test_random_header_damage_gives_only_library_errors(shards, tmp_path):
    """A seeded, bounded fuzz of the header blocks a resume reads back: a listing, or an
    InvalidFileError naming the shard; never another exception, never a read past the file."""
    tar = os.path.join(shards[1], "train-000000.tar")
    with open(tar, "rb") as f:
        data = f.read()
    with tarfile.open(tar) as tf:
        headers = [m.offset for m in tf]
    rng = random.Random(17)
    dest = resolve_root(str(tmp_path))
    path = str(tmp_path / "t.tar")
    outcomes = {"listed": 0, "refused": 0}
    for _ in range(300):
        damaged = bytearray(data)
        at = rng.choice(headers)
        for _ in range(rng.randint(1, 4)):
            damaged[at + rng.choice((rng.randrange(512), rng.randrange(124, 136), rng.randrange(148, 156)))] = \
                rng.randrange(256)
        if rng.random() < 0.3:
            del damaged[rng.randrange(len(damaged)):]
        with open(path, "wb") as f:
            f.write(damaged)
        try:
            members = wds._read_members(dest, path)
        except cio.InvalidFileError as exc:
            assert str(exc).startswith(f"{path}: ")
            outcomes["refused"] += 1
            continue
        outcomes["listed"] += 1
        for files in members.values():
            for name, offset, size in files:
                assert 0 <= offset and 0 <= size and offset + size <= len(damaged)
    assert outcomes["listed"] and outcomes["refused"]


def test_resume_names_the_shard_that_lacks_a_frame(tmp_path):
    # Found by the fuzz suite: the error named the frame id, which is no file a person can find.
    import tarfile

    out = str(tmp_path / "shards")
    cio.convert(cio.sample_path(), out, format="wds", split="val")
    tar_path = os.path.join(out, "val-000000.tar")
    os.remove(os.path.join(out, "shards.json"))  # interrupted before the index
    with tarfile.open(tar_path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    first = members[0][0].name.split(".", 1)[0]
    kept = [(m, data) for m, data in members if m.name.split(".", 1)[0] == first]
    assert 0 < len(kept) < len(members)
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tf:
        for m, data in kept:
            tf.addfile(m, io.BytesIO(data))
    with pytest.raises(cio.InvalidFileError, match=r"frame .* is not in it: it was left out") as info:
        cio.convert(cio.sample_path(), out, format="wds", split="val", resume=True)
    assert info.value.path.endswith("val-000000.tar")
