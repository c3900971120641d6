"""Issue 21: the writers copy the release's parts a user selects (``parts=``, ``--parts``) byte
for byte. A Cityscapes tree with every part goes through ``convert(..., parts="all")`` (from a
folder, from one zip per package, from the S3 server) and through the tar shards and back, file
for file; the shards carry the parts as members that the ``webdataset`` package reads too, and
frames read from the shards expose them."""
from __future__ import annotations

import glob
import json
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import png
from cityscapes_io.cli import main
from cityscapes_io.errors import RefusedError
from cityscapes_io.formats.base import parse_parts
from cityscapes_io.formats.wds import frame_key, member_part, part_member
from cityscapes_io.testing import generate
from cityscapes_io.writing import JOB_FILE

from conftest import read_tree, upload_dir, write_file
from test_boxes3d import file_doc
from test_release import FOGGY_BETAS, RAIN, SIZE, _packages, add_parts, camera_json, disparity_png, photo

#: Files a conversion adds to the destination besides the tree: its job record and label file.
ADDED = (JOB_FILE, "label_colors.txt")
FOGGY = "leftImg8bit_foggy@beta_0.02"


def _tree(root: str) -> dict:
    """The files of a tree written by a conversion, without what the conversion adds."""
    return {k: v for k, v in read_tree(root).items() if k not in ADDED}


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    """A tree with every part of the release: train frames 0 (every part, its sequence and a
    gtBbox3d file), 1 (every part but the sequences and the foggy photos) and 2 (none); a val
    frame with every part but the sequences. Returns the root and the frame ids, in order."""
    root = str(tmp_path_factory.mktemp("parts") / "cs")
    generate(root, splits={"train": 3, "val": 1}, size=SIZE)
    ids = [f.id for f in cio.open(root)]
    train, val = ids[:3], ids[3]
    add_parts(root, train[0])
    add_parts(root, train[1], sequence=False)
    for beta in FOGGY_BETAS:
        os.remove(os.path.join(root, "leftImg8bit_foggy/train", f"{train[1]}_leftImg8bit_foggy_beta_{beta}.png"))
    add_parts(root, val, split="val", sequence=False)
    write_file(root, f"gtBbox3d/train/{train[0]}_gtBbox3d.json", json.dumps(file_doc()).encode())
    return root, ids


def _base(frame_id: str) -> str:
    return frame_id.split("/")[1]


# -- the option ------------------------------------------------------------------------------------------
def test_the_parts_option_takes_names_lists_and_all():
    assert parse_parts(None) == ()
    assert parse_parts("all") == ("all",)
    assert parse_parts("disparity, camera,disparity") == ("disparity", "camera")
    assert parse_parts(["rightImg8bit", FOGGY, "leftImg8bit_foggy", "leftImg8bit_sequence", "timestamp_sequence",
                        "gtBbox3d", "gtBboxCityPersons", "vehicle", "timestamp", "leftImg16bit", "all"]) == (
        "rightImg8bit", FOGGY, "leftImg8bit_foggy", "leftImg8bit_sequence", "timestamp_sequence", "gtBbox3d",
        "gtBboxCityPersons", "vehicle", "timestamp", "leftImg16bit", "all")
    for bad in ("disparty", "gtFine", "", "camera/../x", "leftImg8bit_sequence@x", "foo_sequence", "rightImg8bit@",
                "rightImg8bit@a/b"):
        with pytest.raises(ValueError, match=f"parts: unknown part {bad!r}"):
            parse_parts(["camera", bad])
    with pytest.raises(ValueError, match="expected part names, got int"):
        parse_parts([1])


def test_unknown_parts_are_refused_before_anything_is_written(cs, tmp_path, capsys):
    root, _ = cs
    for fmt in ("cityscapes", "wds"):
        out = tmp_path / f"out-{fmt}"
        with pytest.raises(ValueError, match="unknown part 'disparty'"):
            cio.convert(root, str(out), format=fmt, parts=["disparity", "disparty"])
        assert not out.exists()
        capsys.readouterr()
        assert main(["convert", root, str(out), "-f", fmt, "--parts", "disparity,disparty"]) == 2  # a usage error
        err = capsys.readouterr().err
        assert "error: parts: unknown part 'disparty'" in err and not out.exists()
    assert main(["convert", root, str(tmp_path / "voc"), "-f", "voc", "--parts", "disparity"]) == 2
    assert "--parts applies to -f cityscapes and -f wds only" in capsys.readouterr().err
    assert not (tmp_path / "voc").exists()


# -- the Cityscapes writer -------------------------------------------------------------------------------
def test_all_parts_reproduce_every_file_of_the_tree(cs, tmp_path):
    root, _ = cs
    out = str(tmp_path / "out")
    report = cio.convert(root, out, format="cityscapes", save_media=True, parts="all")
    assert report.ok and report.written == 4 and report.warnings == []  # "all": what each frame has
    want = read_tree(root)
    assert len(want) == 106 and len([n for n in want if n.startswith("leftImg8bit_sequence/")]) == 29
    assert _tree(out) == want
    # Without save_media "all" still copies the photos (leftImg8bit/ is a part folder), byte for byte.
    bare = str(tmp_path / "bare")
    cio.convert(root, bare, parts=["all"])
    assert _tree(bare) == want


def test_every_mode_writes_the_same_parts(cs, tmp_path):
    root, _ = cs
    one, pool = str(tmp_path / "one"), str(tmp_path / "pool")
    cio.convert(root, one, save_media=True, parts="all", decode_ahead=False)
    cio.convert(root, pool, save_media=True, parts="all", workers=2)
    assert read_tree(pool) == read_tree(one) and _tree(one) == read_tree(root)


def test_all_parts_from_one_zip_per_package(cs, tmp_path):
    root, _ = cs
    zips = _packages(root, str(tmp_path / "zips"))
    assert len(zips) == 13  # gtFine, leftImg8bit and 11 part packages
    out = str(tmp_path / "out")
    report = cio.convert(zips, out, save_media=True, parts="all")
    assert report.ok and _tree(out) == read_tree(root)


def test_all_parts_from_the_s3_server_and_through_shards_there(cs, tmp_path, s3):
    fs, options, bucket = s3
    root, ids = cs
    upload_dir(fs, root, f"{bucket}/cs")
    out = str(tmp_path / "out")
    report = cio.convert(f"s3://{bucket}/cs", out, storage_options=options, save_media=True, parts="all")
    assert report.ok and _tree(out) == read_tree(root)
    # Cityscapes on S3 -> shards on S3 -> a Cityscapes tree on disk.
    shards = f"s3://{bucket}/shards"
    cio.convert(f"s3://{bucket}/cs", shards, format="wds", storage_options=options, dst_storage_options=options,
                parts="all", frames_per_shard=2)
    ds = cio.open(shards, format="wds", storage_options=options)
    assert ds[ids[0]].camera() == cio.open(root)[ids[0]].camera()
    back = str(tmp_path / "back")
    assert cio.convert(shards, back, src_format="wds", storage_options=options, save_media=True, parts="all").ok
    assert _tree(back) == read_tree(root)


def test_a_selection_copies_only_its_parts(cs, tmp_path):
    root, ids = cs
    out = str(tmp_path / "out")
    report = cio.convert(root, out, parts="disparity,camera,leftImg8bit_foggy@beta_0.01,timestamp_sequence")
    assert report.ok and report.written == 4
    got = _tree(out)
    src = read_tree(root)
    parts = sorted(n for n in got if not n.startswith("gtFine/"))
    f0, f1 = ids[0], ids[1]
    stem = _base(f0)[:-6]
    sequence = [f"timestamp_sequence/train/{f0.split('/')[0]}/{stem}{n:06d}_timestamp.txt" for n in range(30) if n != 22]
    assert parts == sorted([f"camera/train/{f}_camera.json" for f in (f0, f1)] + [f"camera/val/{ids[3]}_camera.json"]
                           + [f"disparity/train/{f}_disparity.png" for f in (f0, f1)]
                           + [f"disparity/val/{ids[3]}_disparity.png"]
                           + [f"leftImg8bit_foggy/train/{f0}_leftImg8bit_foggy_beta_0.01.png",
                              f"leftImg8bit_foggy/val/{ids[3]}_leftImg8bit_foggy_beta_0.01.png"] + sequence)
    assert all(got[n] == src[n] for n in parts)  # byte for byte
    assert got[f"disparity/train/{f0}_disparity.png"] == disparity_png()
    assert got[f"camera/train/{f0}_camera.json"] == camera_json()
    # A frame lacking a selected part gets nothing of it and a note in the report.
    notes = {(split, fid): note for split, fid, note in report.warnings}
    assert notes == {
        ("train", f1): "selected parts not there (nothing of them written): leftImg8bit_foggy@beta_0.01, "
                       "timestamp_sequence",
        ("train", ids[2]): "selected parts not there (nothing of them written): disparity, camera, "
                           "leftImg8bit_foggy@beta_0.01, timestamp_sequence",
        ("val", ids[3]): "selected parts not there (nothing of them written): timestamp_sequence"}
    assert "3 frames written incomplete" in report.summary()
    # Photo folders (every variant) with save_media; the frames renamed into another split.
    out2 = str(tmp_path / "out2")
    cio.open(root, split="train").rename_splits({"train": "training"}).export(
        out2, "cityscapes", save_media=True, parts=["leftImg8bit_foggy", "rightImg8bit"])
    got = _tree(out2)
    assert sorted(n for n in got if n.startswith("leftImg8bit_foggy/")) == [
        f"leftImg8bit_foggy/training/{f0}_leftImg8bit_foggy_beta_{b}.png" for b in FOGGY_BETAS]
    assert got[f"rightImg8bit/training/{f1}_rightImg8bit.png"] == png.encode_png(photo(200))
    assert len([n for n in got if n.startswith("leftImg8bit/training/")]) == 3


def test_a_dataset_opened_with_another_photo_key(cs, tmp_path):
    """The frame's photo is the foggy one: save_media writes it as leftImg8bit/ unless the
    selection holds the release's own leftImg8bit photo, which then keeps its place (the
    foggy photo goes to its own); "all" writes the tree as it is."""
    root, ids = cs
    src = read_tree(root)
    left, fog = f"leftImg8bit/train/{ids[0]}_leftImg8bit.png", f"leftImg8bit_foggy/train/{ids[0]}_leftImg8bit_foggy_beta_0.02.png"
    ds = cio.open(root, image=FOGGY)
    out = str(tmp_path / "all")
    report = ds.export(out, "cityscapes", save_media=True, parts="all")
    assert report.ok and _tree(out) == src
    assert [(fid, note) for _, fid, note in report.warnings] == [  # (frames 1 and 2 have no foggy photo)
        (ids[1], "no photo: written without one"), (ids[2], "no photo: written without one")]
    # Without the leftImg8bit photos among the parts: the foggy photo is the frame's photo.
    out = str(tmp_path / "disparity")
    ds.export(out, "cityscapes", save_media=True, parts=["disparity"])
    got = _tree(out)
    assert got[left] == src[fog] and not any(n.startswith("leftImg8bit_foggy/") for n in got)
    # Its folder selected: the folder is complete, and the photo is also the frame's photo.
    out = str(tmp_path / "foggy")
    ds.export(out, "cityscapes", save_media=True, parts=["leftImg8bit_foggy"])
    got = _tree(out)
    assert got[left] == src[fog] and got[fog] == src[fog]
    assert sorted(n for n in got if n.startswith("leftImg8bit_foggy/")) == sorted(
        n for n in src if n.startswith("leftImg8bit_foggy/"))
    # The leftImg8bit photos selected: they keep their place, the foggy photo goes to its own.
    out = str(tmp_path / "left")
    ds.export(out, "cityscapes", save_media=True, parts=["leftImg8bit"])
    got = _tree(out)
    assert got[left] == src[left] and got[fog] == src[fog]
    assert sorted(n for n in got if n.startswith("leftImg8bit_foggy/")) == [
        fog, f"leftImg8bit_foggy/val/{ids[3]}_leftImg8bit_foggy_beta_0.02.png"]


def test_resume_writes_the_missing_part_files_again(cs, tmp_path):
    root, ids = cs
    out = str(tmp_path / "out")
    cio.convert(root, out, save_media=True, parts="all")
    os.remove(os.path.join(out, f"disparity/train/{ids[0]}_disparity.png"))
    stem = _base(ids[0])[:-6]
    os.remove(os.path.join(out, f"leftImg8bit_sequence/train/{ids[0].split('/')[0]}/{stem}000005_leftImg8bit.png"))
    os.remove(os.path.join(out, f"camera/val/{ids[3]}_camera.json"))
    report = cio.convert(root, out, save_media=True, parts="all", resume=True)
    assert report.ok and report.written == 4 and report.resumed == 2  # frames 0 and 3 written again
    assert _tree(out) == read_tree(root)
    with pytest.raises(RefusedError, match=r"option parts all there, disparity now"):
        cio.convert(root, out, save_media=True, parts=["disparity"], resume=True)


def test_the_command_line_copies_parts(cs, tmp_path):
    root, ids = cs
    out = str(tmp_path / "out")
    assert main(["convert", root, out, "-f", "cityscapes", "--save-media", "--parts", "all", "-q"]) == 0
    assert _tree(out) == read_tree(root)
    # The job's record reads the same as from Python: a resume there takes it.
    assert cio.convert(root, out, save_media=True, parts="all", resume=True).resumed == 4
    out = str(tmp_path / "datumaro")  # writer options after '--', as in Datumaro
    assert main(["convert", "-if", "cityscapes", "-i", root, "-f", "cityscapes", "-o", out, "-q", "--",
                 "--parts", "gtBbox3d,vehicle"]) == 0
    assert sorted(n for n in _tree(out) if not n.startswith("gtFine/")) == [
        f"gtBbox3d/train/{ids[0]}_gtBbox3d.json", f"vehicle/train/{ids[0]}_vehicle.json",
        f"vehicle/train/{ids[1]}_vehicle.json", f"vehicle/val/{ids[3]}_vehicle.json"]
    assert cio.convert(root, out, parts=["gtBbox3d", "vehicle"], resume=True).resumed == 4


# -- tar shards --------------------------------------------------------------------------------------------
def test_member_names_give_back_the_release_names():
    base = "aachen_000000_000019"
    cases = [
        ("disparity", f"{base}_disparity.png", "disparity.png"),
        ("camera", f"{base}_camera.json", "camera.json"),
        ("vehicle", f"{base}_vehicle.json", "vehicle.json"),
        ("timestamp", f"{base}_timestamp.txt", "timestamp.txt"),
        ("gtBboxCityPersons", f"{base}_gtBboxCityPersons.json", "gtBboxCityPersons.json"),
        ("gtBbox3d", f"{base}_gtBbox3d.json", "gtBbox3d.json"),
        ("rightImg8bit", f"{base}_rightImg8bit.png", "rightImg8bit.png"),
        ("leftImg16bit", f"{base}_leftImg16bit.png", "leftImg16bit.png"),
        ("leftImg8bit", f"{base}_leftImg8bit.jpg", "leftImg8bit.jpg"),
        ("leftImg8bit_foggy", f"{base}_leftImg8bit_foggy_beta_0.02.png", "leftImg8bit_foggy@beta_0.02.png"),
        ("leftImg8bit_rain", f"{base}_leftImg8bit_rain_{RAIN}.png", f"leftImg8bit_rain@{RAIN}.png"),
        ("leftImg8bit_sequence", "aachen_000000_000005_leftImg8bit.png", "leftImg8bit_sequence.000005.png"),
        ("rightImg8bit_sequence", "aachen_000000_000029_rightImg8bit.png", "rightImg8bit_sequence.000029.png"),
        ("timestamp_sequence", "aachen_000000_000000_timestamp.txt", "timestamp_sequence.000000.txt"),
        ("vehicle_sequence", "aachen_000000_000019_vehicle.json", "vehicle_sequence.000019.json"),
        ("leftImg8bit_foggy_sequence", "aachen_000000_000007_leftImg8bit_foggy_beta_0.01.png",
         "leftImg8bit_foggy_sequence.000007@beta_0.01.png"),
    ]
    for folder, name, suffix in cases:
        assert part_member(folder, base, name) == suffix, (folder, name)
        assert member_part(suffix, base) == (folder, name), suffix
    for folder, name in (("disparity", f"{base}_disparity.jpg"), ("rightImg8bit", f"{base}_rightImg8bit.txt"),
                         ("rightImg8bit", f"{base}_rightImg8bitX.png"), ("camera", f"{base}_camera.json.bak"),
                         ("leftImg8bit_sequence", "aachen_000001_000005_x.png"), ("gtFine", f"{base}_gtFine.png"),
                         ("leftImg8bit_foggy", f"{base}_leftImg8bit_foggy_beta_0.02")):
        assert part_member(folder, base, name) is None, (folder, name)
    for suffix in ("image.png", "json", "instance_ids.png", "polygons.json", "disparity.jpg", "gtFine.png",
                   "leftImg8bit_sequence.00005.png", "leftImg8bit_sequence.000005", "leftImg8bit_sequence.000005x.png",
                   "leftImg8bit_foggy@beta_0.02", "leftImg8bit@a/b.png", "foo_sequence.000005.png"):
        assert member_part(suffix, base) is None, suffix
    assert member_part("leftImg8bit_sequence.000005.png", "a/b") is None  # a base outside the grammar


def test_shards_carry_the_selected_parts_as_members(cs, tmp_path):
    root, ids = cs
    out = str(tmp_path / "shards")
    report = cio.convert(root, out, format="wds", parts="all", frames_per_shard=2)
    assert report.ok and report.warnings == []
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        names = [n[len(ids[0]) + 1:] for n in tf.getnames() if n.startswith(ids[0] + ".")]
    stem = _base(ids[0])[:-6]
    assert names[:5] == ["image.png", "instance_ids.png", "label_ids.png", "json", "polygons.json"]
    assert names[5:] == (["camera.json", "disparity.png", "gtBbox3d.json", "gtBboxCityPersons.json"]
                         + [f"leftImg8bit_foggy@beta_{b}.png" for b in FOGGY_BETAS]
                         + [f"leftImg8bit_rain@{RAIN}.png"]
                         + [f"leftImg8bit_sequence.{n:06d}.png" for n in range(30) if n != 22]
                         + ["rightImg8bit.png", "timestamp.txt"]
                         + [f"timestamp_sequence.{n:06d}.txt" for n in range(30) if n != 22] + ["vehicle.json"])
    assert f"{stem}000019" == _base(ids[0])
    # Frames read from the shards have their parts.
    src, ds = cio.open(root), cio.open(out, format="wds")
    for fid in ids:
        a, b = src[fid], ds[fid]
        assert b.image_keys() == a.image_keys()
        assert b.camera() == a.camera() and b.vehicle() == a.vehicle() and b.timestamp() == a.timestamp()
        assert b.persons() == a.persons() and (b.boxes3d() is None) == (a.boxes3d() is None)
        assert (b.disparity() is None) == (a.disparity() is None)
        assert [s.number for s in b.snippet()] == [s.number for s in a.snippet()]
        assert b.part_files(["all"]) == a.part_files(["all"])
        for key in a.image_keys():
            assert np.array_equal(b.image(key), a.image(key))
    frame = ds[ids[0]]
    np.testing.assert_array_equal(frame.disparity(), src[ids[0]].disparity())
    assert (frame.image("rightImg8bit") == photo(200)).all() and (frame.image(FOGGY) == photo(20)).all()
    assert frame.snippet()[5].image().shape == (32, 64, 3) and frame.snippet()[19].timestamp() == 1000 + 19 * 58823
    assert frame.boxes3d().objects == src[ids[0]].boxes3d().objects
    assert frame.has_part("gtBbox3d") and not ds[ids[1]].has_part("gtBbox3d")
    assert frame.parts.shown(frame.parts.find("camera")).endswith(f"train-000000.tar/{ids[0]}.camera.json")
    copy = pickle.loads(pickle.dumps(frame))  # where the members are, not their bytes
    assert copy.camera() == frame.camera() and len(pickle.dumps(frame)) < 20000
    # A selection; the shards of a conversion without parts have none.
    some = str(tmp_path / "some")
    cio.convert(root, some, format="wds", parts=["camera", "rightImg8bit"])
    got = cio.open(some, format="wds")[ids[0]]
    assert got.camera() == frame.camera() and got.disparity() is None and got.image_keys() == [
        "leftImg8bit", "rightImg8bit"]
    plain = str(tmp_path / "plain")
    cio.convert(root, plain, format="wds")
    with tarfile.open(os.path.join(plain, "train-000000.tar")) as tf:
        assert [n for n in tf.getnames() if n.startswith(ids[0] + ".")] == [
            f"{ids[0]}.{m}" for m in ("image.png", "instance_ids.png", "label_ids.png", "json", "polygons.json")]


def test_a_tree_goes_through_the_shards_and_back_with_its_parts(cs, tmp_path):
    root, _ = cs
    shards, back = str(tmp_path / "shards"), str(tmp_path / "back")
    cio.convert(root, shards, format="wds", parts="all", frames_per_shard=3)
    report = cio.convert(shards, back, src_format="wds", save_media=True, parts="all")
    assert report.ok and report.warnings == []
    assert _tree(back) == read_tree(root)
    # Opened with another photo key: the shards say which photo their image member is.
    shards, back = str(tmp_path / "foggy-shards"), str(tmp_path / "foggy-back")
    cio.open(root, image=FOGGY).export(shards, "wds", parts="all")
    with open(os.path.join(shards, "shards.json")) as f:
        records = [m for s in json.load(f)["splits"]["train"] for m in s["members"]]
    assert [r.get("image") for r in records] == [FOGGY] * 3
    ds = cio.open(shards, format="wds")
    first = ds[0]
    assert first.image_key == FOGGY and (first.image() == photo(20)).all()
    assert first.image("leftImg8bit").shape == (32, 64, 3) and not (first.image("leftImg8bit") == photo(20)).all()
    assert cio.convert(shards, back, src_format="wds", save_media=True, parts="all").ok
    assert _tree(back) == read_tree(root)


def test_the_webdataset_package_reads_the_part_members(cs, tmp_path):
    webdataset = pytest.importorskip("webdataset")
    root, ids = cs
    out = str(tmp_path / "shards")
    cio.convert(root, out, format="wds", parts="all", frames_per_shard=2)
    tars = sorted(glob.glob(os.path.join(out, "*.tar")))
    samples = list(webdataset.WebDataset(tars, shardshuffle=False))
    assert sorted(s["__key__"] for s in samples) == sorted(ids)
    src = read_tree(root)
    first = next(s for s in samples if s["__key__"] == ids[0])
    city, stem = ids[0].split("/")[0], _base(ids[0])[:-6]
    assert first["disparity.png"] == src[f"disparity/train/{ids[0]}_disparity.png"]
    # (webdataset lowercases what follows the key: its samples' keys are the member names in lower case)
    assert first["leftimg8bit_foggy@beta_0.02.png"] == src[
        f"leftImg8bit_foggy/train/{ids[0]}_leftImg8bit_foggy_beta_0.02.png"]
    assert first["leftimg8bit_sequence.000005.png"] == src[
        f"leftImg8bit_sequence/train/{city}/{stem}000005_leftImg8bit.png"]
    assert first["timestamp_sequence.000029.txt"] == src[f"timestamp_sequence/train/{city}/{stem}000029_timestamp.txt"]
    assert len([k for k in first if not k.startswith("__")]) == 5 + 8 + 29 + 2 + 29 + 1
    # Its decoders go by the last extension: JSON parsed, photos decoded.
    decoded = next(s for s in webdataset.WebDataset(tars, shardshuffle=False).decode("rgb8")
                   if s["__key__"] == ids[0])
    assert decoded["camera.json"]["intrinsic"]["u0"] == 32.1
    assert decoded["gtbbox3d.json"]["objects"][0]["instanceId"] == 26013
    assert (decoded["rightimg8bit.png"] == photo(200)).all()
    assert decoded["timestamp.txt"].strip() == "1428577543563849"


def test_resumed_shards_keep_their_parts(cs, tmp_path):
    root, _ = cs
    out = str(tmp_path / "shards")
    cio.convert(root, out, format="wds", parts="all", frames_per_shard=2)
    want = read_tree(out)
    os.remove(os.path.join(out, "train-000001.tar"))
    os.remove(os.path.join(out, "shards.json"))
    report = cio.convert(root, out, format="wds", parts="all", frames_per_shard=2, resume=True)
    assert report.ok and report.resumed == 3  # train-000000 and val-000000, read back from their headers
    assert read_tree(out) == want  # the index rebuilt from the tars' headers is the same


def test_a_part_file_the_shards_cannot_name_is_reported(cs, tmp_path):
    root, ids = cs
    tree = str(tmp_path / "cs")
    shutil.copytree(root, tree)
    write_file(tree, f"rightImg8bit/train/{ids[0]}_rightImg8bit.txt", b"notes")
    out = str(tmp_path / "shards")
    report = cio.convert(tree, out, format="wds", parts=["rightImg8bit", "gtBbox3d"])
    assert report.ok
    notes = {fid: note for _, fid, note in report.warnings}
    assert notes[ids[0]].startswith("1 file(s) of the selected parts not written: their names are not the release's")
    assert notes[ids[0]].endswith(f"rightImg8bit/train/{ids[0]}_rightImg8bit.txt")
    assert notes[ids[1]] == "selected parts not there (nothing of them written): gtBbox3d"
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        assert [n for n in tf.getnames() if n.startswith(ids[0] + ".")][5:] == [  # in the selection's order
            f"{ids[0]}.rightImg8bit.png", f"{ids[0]}.gtBbox3d.json"]
    # A Cityscapes tree takes it as it is: every file of the folder named after the frame.
    copy = str(tmp_path / "copy")
    cio.convert(tree, copy, parts=["rightImg8bit"])
    assert read_tree(copy)[f"rightImg8bit/train/{ids[0]}_rightImg8bit.txt"] == b"notes"


def test_part_paths_from_shards_stay_inside_the_destination(cs, tmp_path):
    root, ids = cs
    out = str(tmp_path / "shards")
    cio.convert(root, out, format="wds", parts="all", frames_per_shard=4)
    index_path = os.path.join(out, "shards.json")
    with open(index_path) as f:
        index = json.load(f)
    record = index["splits"]["train"][0]["members"][0]
    evil = "../../evil/" + _base(record["id"])
    for member in record["files"]:
        member[0] = frame_key(evil) + member[0][len(frame_key(record["id"])):]
    record["id"] = evil
    with open(index_path, "w") as f:
        json.dump(index, f)
    frame = cio.open(out, format="wds")[0]
    assert frame.id == evil and frame.camera() is not None  # read: the index's names are only names
    dst = tmp_path / "a" / "b" / "dst"
    report = cio.convert(out, str(dst), src_format="wds", save_media=True, parts="all", on_error="skip")
    assert report.written == 3 and [fid for _, fid, _ in report.skipped] == [evil]
    assert "refused to write outside the destination" in report.skipped[0][2]
    assert not glob.glob(str(tmp_path / "**" / "evil"), recursive=True)
    assert all(not n.startswith(("..", "/")) for n in read_tree(str(dst)))
