"""Workflows of a Datumaro user (issue 18): a VOC round trip back to Cityscapes paints the
official colours, Datumaro imports our Cityscapes trees without photos, names the train-id
masks of a ``--save-train-ids`` tree right, and reads (as we do) VOC's ``dataset_meta.json``.

Each defect has a plain test; where Datumaro decides, an opt-in oracle test runs Datumaro itself
(``CITYSCAPES_IO_DATUMARO_PYTHON``, as in test_datumaro_interop.py).
"""
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import write_file, write_frame
from test_datumaro_interop import DATUMARO_PYTHON, datumaro_read, npy_name, run_datumaro

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.formats.voc import parse_voc_meta
from cityscapes_io.mapping import distinct_colors
from cityscapes_io.png import decode_rgb, encode_png
from cityscapes_io.validate import validate

needs_datumaro = pytest.mark.skipif(not DATUMARO_PYTHON, reason="opt-in: set CITYSCAPES_IO_DATUMARO_PYTHON")
OFFICIAL = cio.LabelMap.cityscapes()
TRAIN = cio.LabelMap.cityscapes_train()


def color_pixels(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        return decode_rgb(f.read(), path)


def color_files(root: str) -> dict:
    """``{path under gtFine/: path}`` of every ``_color.png`` of a tree."""
    out = {}
    for dirpath, _, names in os.walk(os.path.join(root, "gtFine")):
        for name in names:
            if name.endswith("_color.png"):
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root)] = full
    return out


# -- 1. a VOC round trip paints the official colours -----------------------------------------------
def test_voc_round_trip_writes_the_official_colors(tmp_path):
    voc, back = str(tmp_path / "voc"), str(tmp_path / "back")
    assert main(["convert", cio.sample_path(), voc, "-f", "voc"]) == 0
    with open(os.path.join(voc, "labelmap.txt")) as f:
        assert "ego vehicle:0,0,1::" in f.read()  # VOC keeps its de-collided colours
    assert main(["convert", voc, back, "-f", "cityscapes"]) == 0
    originals = color_files(cio.sample_path())
    written = color_files(back)
    assert sorted(written) == sorted(originals) and written
    for rel, path in written.items():
        assert np.array_equal(color_pixels(path), color_pixels(originals[rel])), rel
    labels = cio.open(back).labels  # the label file has the official colours too
    assert [(l.id, l.color) for l in labels] == [(i, l.color) for i, l in enumerate(OFFICIAL)]


def test_a_cityscapes_tree_with_decollided_colors_is_repainted(tmp_path):
    """A tree whose label file and ``_color.png`` carry VOC's colours (as this library wrote
    them before): its colour files are not copied but painted with the official colours."""
    voc, src, out = str(tmp_path / "voc"), str(tmp_path / "src"), str(tmp_path / "out")
    cio.convert(cio.sample_path(), voc, format="voc")
    shutil.copytree(cio.sample_path(), src)
    decollided = cio.open(voc, format="voc").labels
    with open(os.path.join(src, "label_colors.txt"), "w") as f:
        f.write(decollided.to_label_colors(keep_spaces=True))
    table = decollided.color_table()
    for frame in cio.open(src):
        rgba = np.full(frame.label_ids().shape + (4,), 255, np.uint8)
        rgba[..., :3] = table[frame.label_ids()]
        write_file(src, os.path.relpath(frame.path("color"), src), encode_png(rgba))
    assert main(["convert", src, out, "-f", "cityscapes"]) == 0
    originals = color_files(cio.sample_path())
    for rel, path in color_files(out).items():
        assert np.array_equal(color_pixels(path), color_pixels(originals[rel])), rel


def test_official_colors_given_back_only_to_the_labels_moved_apart():
    """The labels VOC moved to a colour of their own (the later ones of a shared official
    colour) take the official colour back; colours chosen on purpose stay."""
    voc = cio.LabelMap(cio.Label(l.name, l.id, c) for l, c in zip(OFFICIAL, distinct_colors(list(OFFICIAL))))
    assert voc["ego vehicle"].color == (0, 0, 1) and voc["license plate"].color != (0, 0, 142)
    assert [l.color for l in voc.with_official_colors()] == [l.color for l in OFFICIAL]
    spelled = cio.LabelMap(cio.Label(l.name.replace(" ", "_"), l.id, l.color) for l in voc)  # label_colors.txt
    assert [l.color for l in spelled.with_official_colors()] == [l.color for l in OFFICIAL]
    chosen = cio.LabelMap(replace(l, color={"road": (1, 2, 3), "car": (4, 5, 6), "unlabeled": (7, 8, 9)}.get(
        l.name, l.color)) for l in OFFICIAL)  # the first of a shared colour (car, unlabeled) may be recoloured
    assert chosen.with_official_colors() is chosen
    assert OFFICIAL.with_official_colors() is OFFICIAL and TRAIN.with_official_colors() is TRAIN


def test_a_custom_map_keeps_its_colors_in_color_png(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    write_frame(src, "train", "a/a_000000_000001", photo=False)
    custom = {"unlabeled": (0, 0, 0), "road": (1, 2, 3), "car": (4, 5, 6), "person": (7, 8, 9)}
    cio.convert(src, out, label_map=custom)
    frame = next(iter(cio.open(out)))
    got = color_pixels(frame.path("color"))
    assert {tuple(c) for c in got.reshape(-1, 3).tolist()} == set(custom.values())


# -- 2. Datumaro imports a tree written without photos -----------------------------------------------
def test_tree_without_photos_has_the_empty_photo_folders(tree, tmp_path):
    out = str(tmp_path / "out")
    assert main(["convert", tree, out, "-f", "cityscapes"]) == 0
    for split in ("train", "val"):
        assert os.path.isdir(os.path.join(out, "leftImg8bit", split))
        assert os.listdir(os.path.join(out, "leftImg8bit", split)) == []
    ours = cio.open(out)
    assert ours.splits() == ["train", "val"]
    assert sorted(f.id for f in ours) == sorted(f.id for f in cio.open(tree) if f.has_annotations)
    # Empty photo folders are no problem: only the missing photos are noted, as before.
    assert {str(p).rsplit(": ", 1)[-1] for p in validate(out)} == {"ground truth without a photo"}


def test_a_split_without_ground_truth_gets_no_photo_folder(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    write_frame(src, "train", "a/a_000000_000001")
    write_frame(src, "test", "b/b_000000_000001", gt=False)  # a photo only: nothing of it is written
    cio.convert(src, out)
    assert os.listdir(os.path.join(out, "leftImg8bit")) == ["train"]
    assert cio.open(out).splits() == ["train"]


def test_photo_folders_on_a_filesystem_with_folders_in_a_zip_and_on_s3(tree, s3, tmp_path):
    import zipfile

    import fsspec

    archive = str(tmp_path / "out.zip")
    cio.convert(tree, archive)  # a directory entry, as unzip and zipfile make folders
    with zipfile.ZipFile(archive) as z:
        entries = [i for i in z.infolist() if i.filename.startswith("leftImg8bit/")]
    assert [(i.filename, i.is_dir()) for i in entries] == [("leftImg8bit/train/", True), ("leftImg8bit/val/", True)]
    assert len(cio.open(archive)) == 5

    mem = fsspec.filesystem("memory")
    cio.convert(tree, "memory://wf-datumaro/out")
    assert mem.isdir("/wf-datumaro/out/leftImg8bit/train") and not mem.ls("/wf-datumaro/out/leftImg8bit/train")
    mem.rm("/wf-datumaro", recursive=True)
    fs, opts, bucket = s3
    cio.convert(tree, f"s3://{bucket}/out", dst_storage_options=opts)
    fs.invalidate_cache()
    # An object store has no folders: nothing is made there (no marker objects).
    assert not fs.exists(f"{bucket}/out/leftImg8bit")
    assert len(list(cio.open(f"s3://{bucket}/out", storage_options=opts))) == 5


def test_resume_makes_the_photo_folders(tree, tmp_path):
    out = str(tmp_path / "out")
    cio.convert(tree, out)
    shutil.rmtree(os.path.join(out, "leftImg8bit"))
    os.remove(os.path.join(out, "label_colors.txt"))
    cio.convert(tree, out, resume=True)
    assert os.path.isdir(os.path.join(out, "leftImg8bit", "train"))


@needs_datumaro
def test_datumaro_imports_our_tree_without_photos(tmp_path):
    out = str(tmp_path / "nophotos")
    assert main(["convert", cio.sample_path(), out, "-f", "cityscapes"]) == 0
    result, arrays = datumaro_read(tmp_path, out, "cityscapes")
    ours = cio.open(out)
    assert sorted(result["items"]) == sorted(f.id for f in ours)
    for frame in ours:
        assert result["items"][frame.id][0] == frame.split
        theirs = np.load(arrays / npy_name(frame.id))
        mine = frame.label_ids().astype(np.int32)
        covered = theirs >= 0
        assert covered.any() and np.array_equal(theirs[covered], mine[covered])


# -- 3. the train-id masks of a --save-train-ids tree ----------------------------------------------
def test_save_train_ids_tree_names_the_train_classes_for_datumaro(tmp_path):
    out = str(tmp_path / "both")
    assert main(["convert", cio.sample_path(), out, "-f", "cityscapes", "--save-train-ids"]) == 0
    assert not os.path.exists(os.path.join(out, "label_colors.txt"))
    with open(os.path.join(out, "dataset_meta.json")) as f:
        meta = json.load(f)
    # Datumaro numbers "labels" first: the values of _labelTrainIds.png, road = 0 .. bicycle = 18.
    assert meta["labels"] == TRAIN.names[:19]
    # This library reads label_map: the official ids, as before, and the same frames.
    ours = cio.open(out)
    assert ours.labels.names == OFFICIAL.names and [l.color for l in ours.labels] == [l.color for l in OFFICIAL]
    assert [l.id for l in ours.labels][:34] == list(range(34))
    for src, got in zip(cio.open(cio.sample_path()), ours):
        assert got.id == src.id and np.array_equal(got.label_ids(), src.label_ids())
        assert np.array_equal(got.train_ids(), src.train_ids())


def test_save_train_ids_with_a_map_lacking_train_classes_warns(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    write_frame(src, "train", "a/a_000000_000001", photo=False)
    with pytest.warns(UserWarning, match=r"lack some of the 19 train classes: Datumaro will name"):
        cio.convert(src, out, label_map={"unlabeled": (0, 0, 0), "road": (128, 64, 128), "car": (0, 0, 142),
                                         "person": (220, 20, 60)}, save_train_ids=True)
    assert os.path.exists(os.path.join(out, "label_colors.txt"))
    assert cio.open(out).labels.names == ["unlabeled", "road", "car", "person"]


@needs_datumaro
def test_datumaro_names_the_train_id_masks_right(tmp_path):
    out = str(tmp_path / "both")
    assert main(["convert", cio.sample_path(), out, "-f", "cityscapes", "--save-train-ids"]) == 0
    result, arrays = datumaro_read(tmp_path, out, "cityscapes")
    assert result["labels"][:19] == TRAIN.names[:19]
    checked = 0
    for frame in cio.open(out):
        theirs = np.load(arrays / npy_name(frame.id))
        train = frame.train_ids().astype(np.int32)
        # Datumaro's own rules: index 0 (road) is never imported, 255 is no index of its list.
        kept = (train != 0) & (train != 255)
        assert np.array_equal(theirs[kept], train[kept]), frame.id
        assert (theirs[~kept] == -1).all()
        checked += int(kept.sum())
    assert checked > 0


# -- 4. dataset_meta.json for VOC --------------------------------------------------------------------
def test_voc_save_dataset_meta_is_written_as_datumaro_writes_it(tmp_path):
    out = str(tmp_path / "voc")
    cio.convert(cio.sample_path(), out, format="voc", save_dataset_meta=True)
    assert not os.path.exists(os.path.join(out, "labelmap.txt"))
    with open(os.path.join(out, "dataset_meta.json")) as f:
        meta = json.load(f)
    n = len(OFFICIAL)
    assert list(meta) == ["labels", "label_map", "segmentation_colors", "parts", "actions"]
    assert meta["labels"] == OFFICIAL.names
    assert meta["label_map"] == {str(i): name for i, name in enumerate(OFFICIAL.names)}
    assert meta["segmentation_colors"][:2] == [[0, 0, 0], [0, 0, 1]]  # VOC's unique colours
    assert len({tuple(c) for c in meta["segmentation_colors"]}) == n
    assert meta["parts"] == meta["actions"] == {str(i): [] for i in range(n)}
    back = cio.open(out, format="voc")
    assert back.labels.source.endswith("dataset_meta.json") and back.labels.names == OFFICIAL.names
    for src, got in zip(cio.open(cio.sample_path()), back):
        assert np.array_equal(got.label_ids(), src.label_ids())


def test_voc_meta_is_read_as_datumaro_reads_it(tmp_path):
    """Names from ``labels``, then ``label_map``'s others; the i-th ``label_map`` name takes the
    i-th colour (its keys are not ids); the meta file wins over ``labelmap.txt``."""
    root = str(tmp_path / "voc")
    meta = {"labels": ["background", "road"], "label_map": {"7": "road", "9": "car"},
            "segmentation_colors": [[128, 64, 128], [0, 0, 142]]}
    write_file(root, "dataset_meta.json", json.dumps(meta).encode())
    write_file(root, "labelmap.txt", b"# label:color_rgb:parts:actions\nother:1,2,3::\n")
    cls = np.array([[0, 1], [2, 255]], np.uint8)
    write_file(root, "SegmentationClass/x.png", encode_png(cls))
    ds = cio.open(root, format="voc")
    assert [(l.name, l.id, l.color) for l in ds.labels] == [
        ("background", 0, None), ("road", 1, (128, 64, 128)), ("car", 2, (0, 0, 142))]
    assert ds.frame("x").label_ids().tolist() == [[0, 1], [2, 0]]
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, :], rgb[1, 0], rgb[1, 1] = (128, 64, 128), (0, 0, 142), (224, 224, 192)
    write_file(root, "SegmentationClass/x.png", encode_png(rgb))  # an RGB mask: read by those colours
    assert cio.open(root, format="voc").frame("x").label_ids().tolist() == [[1, 1], [2, 0]]


@pytest.mark.parametrize("text, reason", [
    (b"[]", "expected a JSON object"),
    (b"{}", "missing key 'labels' (or 'label_map')"),
    (b'{"labels": "car"}', "'labels' must be a list of names"),
    (b'{"labels": ["a", 3]}', "label names must be strings, got 3"),
    (b'{"labels": ["a", "b", "a"]}', "'labels' lists 'a' twice"),
    (b'{"label_map": {"0": "a", "1": "b"}, "segmentation_colors": [[1, 2, 3]]}', "has 1 entries: too few"),
    (b'{"label_map": {"0": "a"}, "segmentation_colors": [[1, 2, 300]]}', "is not three integers in 0..255"),
    (b'{"labels": ["a"', "dataset_meta.json: "),
])
def test_bad_voc_meta_is_refused_naming_the_file(tmp_path, text, reason):
    root = str(tmp_path / "voc")
    write_file(root, "dataset_meta.json", text)
    write_file(root, "SegmentationClass/x.png", encode_png(np.zeros((2, 2), np.uint8)))
    with pytest.raises(cio.LabelMapError) as info:
        cio.open(root, format="voc")
    assert str(info.value).startswith(os.path.join(root, "dataset_meta.json") + ": ")
    assert reason in str(info.value)


def test_voc_meta_parser_bounds_the_labels():
    with pytest.raises(cio.LabelMapError, match="more than 65536 labels"):
        parse_voc_meta(json.dumps({"labels": [str(i) for i in range(65537)]}).encode(), "m.json")


@needs_datumaro
def test_datumaro_reads_our_voc_dataset_meta_and_we_read_its(tmp_path):
    out = str(tmp_path / "voc_meta")
    cio.convert(cio.sample_path(), out, format="voc", save_dataset_meta=True)
    result, arrays = datumaro_read(tmp_path, out, "voc_segmentation")
    assert result["labels"] == OFFICIAL.names
    for frame in cio.open(cio.sample_path()):
        theirs = np.load(arrays / npy_name(frame.id))
        mine = frame.label_ids().astype(np.int32)
        covered = theirs >= 0
        assert np.array_equal(theirs[covered], mine[covered]), frame.id
        assert set(np.unique(mine[~covered]).tolist()) <= {0}
    # Datumaro's own export with the option, read by us with the same classes.
    theirs_dir = str(tmp_path / "dm_voc_meta")
    run_datumaro(EXPORT_VOC_META, out, theirs_dir)
    assert os.path.exists(os.path.join(theirs_dir, "dataset_meta.json"))
    assert not os.path.exists(os.path.join(theirs_dir, "labelmap.txt"))
    back = cio.open(theirs_dir, format="voc")
    assert back.labels.names == OFFICIAL.names
    for frame in cio.open(out, format="voc"):
        assert np.array_equal(back.frame(frame.id).label_ids(), frame.label_ids()), frame.id


#: Imports a VOC tree with Datumaro and exports it again with ``save_dataset_meta``.
EXPORT_VOC_META = r"""
import json, sys, datumaro as dm
dm.Dataset.import_from(sys.argv[1], "voc_segmentation").export(sys.argv[2], "voc_segmentation",
                                                              save_dataset_meta=True)
print(json.dumps({}))
"""
