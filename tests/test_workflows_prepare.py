"""``prepare`` as people run it (issue 18): the panoptic ground truth it writes beside the splits
(``gtFine/cityscapes_panoptic_<split>[_trainId]/`` and its ``.json``) is not a split for ``info``,
``stats``, ``convert`` and ``validate`` (which checks it against its split instead), and
``prepare -o OUT`` writes a tree training code reads: with ``save_media`` the photos, which
mmsegmentation's ``CityscapesDataset`` pairs with the ``_labelTrainIds.png``; without them a
warning. Real trees, archives and the real CLI."""
from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.errors import DatasetNotFoundError
from cityscapes_io.prepare import NO_PHOTO
from cityscapes_io.validate import validate

from conftest import needs_cityscapesscripts, read_tree, write_frame, zip_dir

FRAMES = {"train": ["aachen/aachen_000001_000019"],
          "val": ["aachen/aachen_000000_000019", "bad-honnef/bad-honnef_000000_000019"]}
SPLITS = {split: len(ids) for split, ids in FRAMES.items()}
PHOTO = "_leftImg8bit.png"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small tree (train 1 frame, val 2, photos for all)."""
    root = str(tmp_path_factory.mktemp("prepare_workflow") / "cs")
    for split, ids in FRAMES.items():
        for frame_id in ids:
            write_frame(root, split, frame_id)
    return root


@pytest.fixture(scope="module")
def panoptic(source, tmp_path_factory):
    """The tree with the panoptic ground truth of both kinds prepared beside its splits."""
    root = str(tmp_path_factory.mktemp("prepare_panoptic") / "cs")
    shutil.copytree(source, root)
    assert cio.prepare(root, kinds="panoptic").ok
    assert cio.prepare(root, kinds="panoptic", train_ids=True).ok
    assert os.path.isdir(os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId"))
    return root


@pytest.fixture
def copy(panoptic, tmp_path):
    """A copy of the prepared tree to spoil."""
    root = str(tmp_path / "cs")
    shutil.copytree(panoptic, root)
    return root


def _run(argv, capsys):
    """``main(argv)``: exit status, stdout, stderr; a Python warning fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(argv)
    out, err = capsys.readouterr()
    assert [str(w.message) for w in caught] == []
    return status, out, err


# -- the panoptic ground truth is not a split -------------------------------------------------------

def test_info_lists_the_splits_only(panoptic, capsys):
    status, out, err = _run(["info", panoptic, "--json"], capsys)
    assert status == 0 and "warning" not in err
    info = json.loads(out)
    assert {s: v["frames"] for s, v in info["splits"].items()} == SPLITS and info["frames"] == 3
    status, out, _ = _run(["info", panoptic], capsys)
    splits, _, listed = out.partition("panoptic ground truth (not splits):")
    assert status == 0 and "cityscapes_panoptic" not in splits and "frames:  3" in splits
    assert len(listed.strip().splitlines()) == 4 and "  val (train ids): " in listed
    assert [p["split"] for p in info["panoptic"]] == ["train", "train", "val", "val"]


def test_the_reader_says_where_the_panoptic_ground_truth_is(panoptic):
    reader = cio.open(panoptic).source_reader
    assert reader.splits() == ["train", "val"]
    assert [(p.split, p.train_ids, p.has_json, p.has_folder) for p in reader.panoptic] == [
        ("train", False, True, True), ("train", True, True, True), ("val", False, True, True), ("val", True, True, True)]
    assert reader.panoptic[3].as_dict() == {
        "split": "val", "train_ids": True, "json": f"{panoptic}/gtFine/cityscapes_panoptic_val_trainId.json",
        "folder": f"{panoptic}/gtFine/cityscapes_panoptic_val_trainId"}
    assert [p.split for p in cio.open(panoptic, split="val").source_reader.panoptic] == ["val", "val"]


def test_stats_counts_the_splits_only(panoptic, capsys):
    status, out, err = _run(["stats", panoptic, "--json"], capsys)
    assert status == 0 and "warning" not in err
    stats = json.loads(out)
    assert {s: v["frames"] for s, v in stats["splits"].items()} == SPLITS and stats["frames"] == 3


def test_validate_finds_nothing_wrong(panoptic, capsys):
    status, out, err = _run(["validate", panoptic], capsys)
    assert status == 0
    assert out.strip() == "0 errors, 0 warnings" and err == ""


def test_convert_writes_the_frames_of_the_splits(panoptic, tmp_path, capsys):
    out_dir = str(tmp_path / "out")
    status, out, err = _run(["convert", panoptic, out_dir, "-f", "cityscapes"], capsys)
    assert status == 0 and "warning" not in err and "warning" not in out
    assert "3 frames read, 3 written, 0 skipped" in out
    assert sorted(os.listdir(os.path.join(out_dir, "gtFine"))) == ["train", "val"]
    # Asked for as a split (it was an empty one: "no frames to convert"), it is named for what it is.
    status, _, err = _run(["convert", panoptic, str(tmp_path / "none"), "-f", "cityscapes", "--split",
                           "cityscapes_panoptic_val"], capsys)
    assert status != 0
    assert "cityscapes_panoptic_val is not a split but the panoptic ground truth of split val" in err


def test_the_panoptic_folder_asked_for_as_a_split_says_what_it_is(panoptic):
    with pytest.raises(DatasetNotFoundError, match="cityscapes_panoptic_val is not a split but the panoptic "
                                                   "ground truth of split val"):
        cio.open(panoptic, split="cityscapes_panoptic_val")


def test_a_tree_of_panoptic_files_only_says_so(source, tmp_path):
    out = str(tmp_path / "pan")
    with pytest.warns(UserWarning, match="no photos written .*: tools that pair the ground truth with its photos "
                                         "find none; pass --save-media"):
        assert cio.prepare(source, kinds="panoptic", dst=out).ok
    with pytest.raises(DatasetNotFoundError, match=r"not a Cityscapes dataset: .* \(gtFine/ holds only panoptic "
                                                   r"ground truth: .*cityscapes_panoptic_train.json"):
        cio.open(out)


@needs_cityscapesscripts
def test_the_official_scripts_output_is_recognised(source, tmp_path, capsys):
    """``csCreatePanopticImgs`` (both kinds) writes what the reader takes for panoptic ground
    truth, and validate finds it matches its splits."""
    from test_official_scripts import run_oracle

    root = str(tmp_path / "cs")
    shutil.copytree(source, root)
    for flag in ([], ["--use-train-id"]):
        run_oracle(["-m", "cityscapesscripts.preparation.createPanopticImgs", "--set-names", "val", "train", *flag],
                   env={"CITYSCAPES_DATASET": root})
    reader = cio.open(root).source_reader
    assert reader.splits() == ["train", "val"] and len(reader.panoptic) == 4
    status, out, _ = _run(["validate", root], capsys)
    assert status == 0 and out.strip() == "0 errors, 0 warnings"


# -- validate checks it against its split -----------------------------------------------------------

def _problems(root, **kwargs):
    return [(p.severity, p.code, os.path.relpath(p.path, root), p.reason) for p in validate(root, **kwargs)]


def test_validate_reports_a_missing_png_a_stray_file_and_a_frame_the_json_lacks(copy):
    gt = os.path.join(copy, "gtFine")
    os.remove(os.path.join(gt, "cityscapes_panoptic_val", "aachen_000000_000019_gtFine_panoptic.png"))
    open(os.path.join(gt, "cityscapes_panoptic_val", "notes.txt"), "w").close()
    with open(os.path.join(gt, "cityscapes_panoptic_train_trainId.json")) as f:
        doc = json.load(f)
    doc["annotations"] = []
    with open(os.path.join(gt, "cityscapes_panoptic_train_trainId.json"), "w") as f:
        json.dump(doc, f)
    problems = _problems(copy)
    assert problems == [
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_train_trainId",
         "1 file: aachen_000001_000019_gtFine_panoptic.png not listed in cityscapes_panoptic_train_trainId.json "
         "(ignored by evaluation; prepare --kinds panoptic --overwrite rewrites it)"),
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_train_trainId.json",
         "no annotation for 1 frame: aachen_000001_000019 of split 'train' (stale? prepare --kinds panoptic "
         "--overwrite rewrites it)"),
        ("error", "not-found", "gtFine/cityscapes_panoptic_val/aachen_000000_000019_gtFine_panoptic.png",
         "listed in cityscapes_panoptic_val.json but missing"),
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_val",
         "1 file: notes.txt not listed in cityscapes_panoptic_val.json (ignored by evaluation; prepare --kinds "
         "panoptic --overwrite rewrites it)"),
    ]
    # Only the splits asked for; with a city filter the JSON's frames of other cities are no fault.
    assert [p[1] for p in _problems(copy, split="train")] == ["panoptic-mismatch"] * 2
    assert [p[1] for p in _problems(copy, split="val", cities="bad-honnef")] == ["not-found", "panoptic-mismatch"]


def test_validate_reports_an_entry_naming_no_frame_and_a_json_that_is_not_coco_panoptic(copy):
    gt = os.path.join(copy, "gtFine")
    with open(os.path.join(gt, "cityscapes_panoptic_val.json")) as f:
        doc = json.load(f)
    doc["annotations"][0]["image_id"] = "lindau_000000_000019"
    with open(os.path.join(gt, "cityscapes_panoptic_val.json"), "w") as f:
        json.dump(doc, f)
    with open(os.path.join(gt, "cityscapes_panoptic_train.json"), "w") as f:
        f.write('{"annotations": [1]')
    with open(os.path.join(gt, "cityscapes_panoptic_train_trainId.json"), "w") as f:
        json.dump({"annotations": [{"image_id": 1}]}, f)
    problems = [p for p in _problems(copy)]
    assert [p[:3] for p in problems] == [
        ("error", "corrupt-panoptic", "gtFine/cityscapes_panoptic_train.json"),
        ("error", "corrupt-panoptic", "gtFine/cityscapes_panoptic_train_trainId.json"),  # and not compared
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_val.json"),
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_val.json"),
    ]
    assert problems[0][3].startswith("not valid JSON")
    assert problems[1][3] == ("annotation 0: no string image_id and file_name (not the COCO panoptic of "
                              "csCreatePanopticImgs)")
    assert problems[2][3].startswith("no annotation for 1 frame: aachen_000000_000019 of split 'val'")
    assert problems[3][3].startswith("1 image_id: lindau_000000_000019 of no annotated frame of split 'val'")


def test_validate_reports_a_folder_without_its_json_and_a_split_the_tree_lacks(copy, capsys):
    gt = os.path.join(copy, "gtFine")
    os.remove(os.path.join(gt, "cityscapes_panoptic_val.json"))
    os.makedirs(os.path.join(gt, "cityscapes_panoptic_test"))
    assert _problems(copy) == [
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_val",
         "panoptic PNGs without their JSON cityscapes_panoptic_val.json (prepare --kinds panoptic writes it last: "
         "an interrupted run? run it again)"),
        ("warning", "panoptic-mismatch", "gtFine/cityscapes_panoptic_test",
         "panoptic ground truth of split 'test', which the dataset does not have"),
    ]
    status, out, _ = _run(["validate", copy], capsys)
    assert status == 0 and out.splitlines()[-1] == "0 errors, 2 warnings"


# -- prepare -o OUT: a tree training code reads ------------------------------------------------------

def _mmseg_samples(root, split):
    """What mmsegmentation's CityscapesDataset lists: every ``*_leftImg8bit.png`` under
    ``leftImg8bit/<split>`` (recursively), each with its ``_gtFine_labelTrainIds.png`` at the
    same relative place under ``gtFine/<split>``."""
    img_dir = os.path.join(root, "leftImg8bit", split)
    out = []
    for dirpath, _, files in os.walk(img_dir):
        for name in sorted(files):
            if name.endswith(PHOTO):
                rel = os.path.relpath(os.path.join(dirpath, name), img_dir)
                out.append((rel, os.path.join(root, "gtFine", split, rel[:-len(PHOTO)] + "_gtFine_labelTrainIds.png")))
    return sorted(out)


def _photos(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if k.startswith("leftImg8bit/")}


def _check_mmseg_tree(out, source):
    """Every photo of ``source`` in ``out``, bytes unchanged, each with its labelTrainIds."""
    assert _photos(read_tree(out)) == _photos(read_tree(source))
    for split, n in SPLITS.items():
        samples = _mmseg_samples(out, split)
        assert len(samples) == n
        assert all(os.path.isfile(seg) for _, seg in samples)


def test_save_media_writes_the_photos_mmsegmentation_pairs(source, tmp_path):
    out = str(tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = cio.prepare(source, dst=out, save_media=True)
    assert report.ok and report.written == 3 and report.photos == 3 and report.warnings == []
    _check_mmseg_tree(out, source)
    # Resumed: complete frames (photos included) are not written again, and their photos counted.
    again = cio.prepare(source, dst=out, save_media=True)
    assert again.resumed == 3 and again.photos == 3


def test_an_output_without_photos_is_announced(source, tmp_path):
    out = str(tmp_path / "out")
    with pytest.warns(UserWarning) as caught:
        report = cio.prepare(source, dst=out)
    assert [str(w.message) for w in caught] == [
        f"{out}: no photos written (leftImg8bit/): mmsegmentation's CityscapesDataset finds 0 samples; "
        f"pass --save-media"]
    assert report.ok and report.photos == 0 and not os.path.exists(os.path.join(out, "leftImg8bit"))
    assert _mmseg_samples(out, "val") == []
    # A later run with save_media completes the tree.
    assert cio.prepare(source, dst=out, save_media=True).photos == 3
    _check_mmseg_tree(out, source)


def test_next_to_the_source_photos_are_not_counted_and_save_media_is_refused(source, tmp_path):
    root = str(tmp_path / "cs")
    shutil.copytree(source, root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cio.prepare(root).photos is None
    with pytest.raises(ValueError, match="save_media copies the photos into dst: without dst"):
        cio.prepare(root, save_media=True)


@pytest.mark.parametrize("dst", ["out", "out.zip"])
def test_save_media_from_a_zip_source(source, tmp_path, dst):
    archive = zip_dir(source, str(tmp_path / "cs.zip"))
    out = str(tmp_path / dst)
    report = cio.prepare(archive, dst=out, save_media=True, kinds=["labelTrainIds", "panoptic"])
    assert report.ok and report.photos == 3
    if dst.endswith(".zip"):
        folder = str(tmp_path / "unzipped")
        with zipfile.ZipFile(out) as zf:
            zf.extractall(folder)
        out = folder
    _check_mmseg_tree(out, source)
    assert cio.open(out).splits() == ["train", "val"]  # the photos' tree, with its panoptic ground truth beside


def test_a_frame_without_a_photo_is_listed(source, tmp_path):
    root = str(tmp_path / "cs")
    shutil.copytree(source, root)
    os.remove(os.path.join(root, "leftImg8bit", "train", "aachen", "aachen_000001_000019" + PHOTO))
    out = str(tmp_path / "out")
    report = cio.prepare(root, dst=out, save_media=True)
    assert report.ok and report.written == 3 and report.photos == 2
    assert report.warnings == [("train", "aachen/aachen_000001_000019", NO_PHOTO)]
    with pytest.warns(UserWarning, match="the source has none for the frames prepared"):
        assert cio.prepare(root, dst=str(tmp_path / "only"), save_media=True, split="train").photos == 0


def test_a_split_in_both_trees_gets_its_photos_once(tmp_path):
    from test_coarse import write_coarse  # a gtFine + gtCoarse tree, val in both
    from conftest import write_frame

    root = str(tmp_path / "cs")
    write_frame(root, "val", "lindau/lindau_000000_000019")
    write_coarse(root, "val", "lindau/lindau_000000_000019")
    write_coarse(root, "train_extra", "augsburg/augsburg_000000_000001", photo=True)
    out = str(tmp_path / "out.zip")
    report = cio.prepare(root, dst=out, save_media=True)
    assert report.ok and report.written == 3 and report.photos == 2
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert sorted(n for n in names if n.startswith("leftImg8bit/")) == [
        "leftImg8bit/train_extra/augsburg/augsburg_000000_000001_leftImg8bit.png",
        "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png"]


def test_save_media_with_workers(source, tmp_path):
    out = str(tmp_path / "out")
    report = cio.prepare(source, dst=out, save_media=True, workers=2)
    assert report.ok and report.photos == 3
    _check_mmseg_tree(out, source)


def test_save_media_from_an_s3_source(source, s3, tmp_path):
    from conftest import upload_dir

    fs, opts, bucket = s3
    upload_dir(fs, source, f"{bucket}/cs")
    out = str(tmp_path / "out")
    report = cio.prepare(f"s3://{bucket}/cs", dst=out, save_media=True, storage_options=opts)
    assert report.ok and report.photos == 3
    _check_mmseg_tree(out, source)
