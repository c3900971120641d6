"""Train ids: ``frame.train_ids()`` / ``frame.instance_train_ids()``, ``prepare`` (next to the
source, under a destination, from a zip, on the local S3 server, resumed, in processes, from the
command line), and the Cityscapes writer's train-id trees, ``save_train_ids`` and polygons."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import png
from cityscapes_io.cli import main
from cityscapes_io.errors import CityscapesIOError
from cityscapes_io.labels import LabelMap
from cityscapes_io.names import gt_path
from cityscapes_io.testing import generate

from conftest import upload_dir, zip_dir

# prepare() into a destination without the photos says so (a warning); these trees are the
# ground truth alone on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*no photos written")

OFFICIAL = LabelMap.cityscapes()
#: The official table's train ids, written out from the label records (255 = ignore).
TRAIN = np.full(256, 255, dtype=np.int64)
for _lab in OFFICIAL:
    if _lab.id >= 0 and 0 <= _lab.train_id < 255:
        TRAIN[_lab.id] = _lab.train_id
HAS_INSTANCES = {lab.id for lab in OFFICIAL if lab.has_instances}


def expected_instance_train(inst: np.ndarray) -> np.ndarray:
    """instanceTrainIds by the official rule, pixel by pixel from the instanceIds values."""
    inst = inst.astype(np.int64)
    cls = np.where(inst >= 1000, inst // 1000, inst)
    t = TRAIN[cls]
    return np.where((inst >= 1000) & (t != 255), t * 1000 + inst % 1000, t)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("train-ids") / "cs")
    generate(root, splits={"train": 3, "val": 2}, size=(96, 48), seed=3)
    return root


def read_png(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        return png.decode_gray(f.read(), path)


def prepared_tree(root: str, prefix: str = "") -> dict:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(("_labelTrainIds.png", "_instanceTrainIds.png")):
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root)] = read_png(full)
    return out


# -- frames -------------------------------------------------------------------------------------
def test_frame_train_ids_are_the_official_lookup(synth):
    for frame in cio.open(synth):
        label_ids = read_png(frame.path("labelIds"))
        inst = read_png(frame.path("instanceIds"))
        t = frame.train_ids()
        assert t.dtype == np.uint8 and np.array_equal(t, TRAIN[label_ids])
        it = frame.instance_train_ids()
        assert it.dtype == np.uint16 and np.array_equal(it, expected_instance_train(inst))
        assert (it >= 1000).any() and (it == 255).any()


def test_train_ids_of_a_train_mapped_frame_are_its_ids(synth):
    frame = next(iter(cio.open(synth).to_train_ids()))
    assert np.array_equal(frame.train_ids(), frame.label_ids())
    assert np.array_equal(frame.instance_train_ids(), frame.instance_ids())


# -- prepare --------------------------------------------------------------------------------------
def test_prepare_writes_next_to_the_source_and_resumes(synth, tmp_path):
    root = str(tmp_path / "cs")
    shutil.copytree(synth, root)
    report = cio.prepare(root)
    assert report.ok and (report.read, report.written, report.resumed) == (5, 5, 0)
    for frame in cio.open(root):
        assert frame.has("labelTrainIds") and frame.has("instanceTrainIds")
        assert frame.path("labelTrainIds").endswith("_gtFine_labelTrainIds.png")
        assert np.array_equal(read_png(frame.path("labelTrainIds")), TRAIN[read_png(frame.path("labelIds"))])
        assert np.array_equal(read_png(frame.path("instanceTrainIds")),
                              expected_instance_train(read_png(frame.path("instanceIds"))))
        # The dataset still reads with the official labels (its instanceIds win over train ids).
        assert frame.labels == OFFICIAL
    first = prepared_tree(root)
    # Interrupted run: one file missing, another replaced by garbage. Without overwrite the
    # missing one is written and the others are kept; with overwrite every file is replaced.
    victim = sorted(first)[0]
    os.remove(os.path.join(root, victim))
    again = cio.prepare(root)
    assert (again.written, again.resumed) == (5, 4)
    assert prepared_tree(root).keys() == first.keys()
    bad = os.path.join(root, sorted(first)[1])
    with open(bad, "wb") as f:
        f.write(png.encode_png(np.zeros((48, 96), np.uint8)))
    cio.prepare(root)
    assert not read_png(bad).any()  # kept
    assert cio.prepare(root, overwrite=True, workers=2).resumed == 0
    final = prepared_tree(root)
    assert final.keys() == first.keys() and all(np.array_equal(final[k], first[k]) for k in first)


def test_prepare_into_dst_from_a_zip(synth, tmp_path):
    archive = zip_dir(synth, str(tmp_path / "gtFine.zip"))
    with pytest.raises(CityscapesIOError, match="read-only"):
        cio.prepare(archive)
    dst = str(tmp_path / "prepared")
    report = cio.prepare(archive, dst=dst, kinds="labelTrainIds")
    assert report.ok and report.written == 5
    got = prepared_tree(dst)
    assert len(got) == 5 and all(k.startswith(os.path.join("gtFine", "")) for k in got)
    for frame in cio.open(synth):
        rel = gt_path(frame.split, frame.id, "labelTrainIds")
        assert np.array_equal(got[os.path.normpath(rel)], frame.train_ids())


def test_prepare_on_s3_in_place_and_in_processes(synth, s3, tmp_path):
    fs, opts, bucket = s3
    upload_dir(fs, synth, f"{bucket}/cs")
    report = cio.prepare(f"s3://{bucket}/cs", storage_options=opts, workers=2)
    assert report.ok and report.written == 5
    local = str(tmp_path / "local")
    shutil.copytree(synth, local)
    cio.prepare(local)
    want = prepared_tree(local)
    fs.invalidate_cache()
    for rel, arr in want.items():
        key = f"{bucket}/cs/{rel.replace(os.sep, '/')}"
        assert np.array_equal(png.decode_gray(fs.cat_file(key), key), arr)
    assert cio.prepare(f"s3://{bucket}/cs", storage_options=opts).resumed == 5


def test_prepare_from_polygons_reports_frames_without_them(synth, tmp_path):
    root = str(tmp_path / "cs")
    shutil.copytree(synth, root)
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith("_polygons.json"):
                os.remove(os.path.join(dirpath, name))
    report = cio.prepare(root, source="polygons", on_error="skip")
    assert report.read == 5 and report.written == 0 and len(report.skipped) == 5
    assert all("no polygons file" in reason for _, _, reason in report.skipped)
    with pytest.raises(CityscapesIOError, match="no polygons file"):
        cio.prepare(root, source="polygons")


def test_prepare_arguments_are_checked(synth):
    with pytest.raises(ValueError, match="not available from png"):
        cio.prepare(synth, kinds=("labelIds",))
    with pytest.raises(ValueError, match="source must be"):
        cio.prepare(synth, source="jpeg")


def test_prepare_command_line(synth, tmp_path, capsys):
    root = str(tmp_path / "cs")
    shutil.copytree(synth, root)
    assert main(["prepare", root, "--kinds", "labelTrainIds", "-q"]) == 0
    assert len(prepared_tree(root)) == 5 and all(k.endswith("_labelTrainIds.png") for k in prepared_tree(root))
    assert main(["prepare", root, "-j", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 frames read, 5 written" in out
    assert len(prepared_tree(root)) == 10
    archive = zip_dir(synth, str(tmp_path / "a.zip"))
    assert main(["prepare", archive]) != 0
    assert "read-only" in capsys.readouterr().err
    assert main(["prepare", archive, "-o", str(tmp_path / "dst"), "-q"]) == 0
    assert len(prepared_tree(str(tmp_path / "dst"))) == 10
    assert main(["prepare", root, "--kinds", "color"]) == 2  # a usage error


# -- the writer -----------------------------------------------------------------------------------
def test_train_mapped_dataset_writes_train_id_files_only(synth, tmp_path):
    out = str(tmp_path / "train")
    cio.open(synth).to_train_ids().export(out, "cityscapes")
    names = [n for _, _, files in os.walk(out) for n in files]
    assert not [n for n in names if n.endswith(("_labelIds.png", "_instanceIds.png"))]
    assert len([n for n in names if n.endswith("_gtFine_labelTrainIds.png")]) == 5
    assert len([n for n in names if n.endswith("_gtFine_instanceTrainIds.png")]) == 5
    back = cio.open(out)
    assert back.labels.is_train_ids
    for src, mapped, got in zip(cio.open(synth), cio.open(synth).to_train_ids(), back):
        assert got.labels.is_train_ids and got.labels["road"].id == 0
        assert np.array_equal(read_png(got.path("labelTrainIds")), src.train_ids())
        assert np.array_equal(got.instance_ids(), src.instance_train_ids())
        assert [(i.value, i.label.name, i.area) for i in got.instances()] == [
            (i.value, i.label.name, i.area) for i in mapped.instances()]


def test_save_train_ids_writes_both_beside_the_official_files(synth, tmp_path):
    out = str(tmp_path / "both")
    cio.convert(synth, out, save_train_ids=True)
    for src, got in zip(cio.open(synth), cio.open(out)):
        assert got.has("labelIds") and got.has("instanceIds")
        assert np.array_equal(read_png(got.path("labelTrainIds")), src.train_ids())
        assert np.array_equal(read_png(got.path("instanceTrainIds")), src.instance_train_ids())
    # Resume knows the two extra files: removing one makes that frame be written again.
    victim = next(iter(cio.open(out)))
    os.remove(victim.path("instanceTrainIds"))
    again = cio.convert(synth, out, save_train_ids=True, resume=True)
    assert (again.written, again.resumed) == (5, 4)


def _add_polygons(root: str) -> None:
    """A polygons file beside every frame (a road and a car), when the tree has none."""
    for frame in cio.open(root):
        if frame.has("polygons"):
            continue
        h, w = frame.size()
        doc = {"imgHeight": h, "imgWidth": w, "objects": [
            {"label": "road", "polygon": [[0, h // 2], [w - 1, h // 2], [w - 1, h - 1], [0, h - 1]], "deleted": 0},
            {"label": "cargroup", "polygon": [[1, 1], [5, 1], [5, 5]], "deleted": 0}]}
        path = frame.path("instanceIds").replace("_instanceIds.png", "_polygons.json")
        with open(path, "w") as f:
            json.dump(doc, f)


def test_polygons_are_copied_renamed_or_dropped_with_one_warning(synth, tmp_path):
    root = str(tmp_path / "cs")
    shutil.copytree(synth, root)
    _add_polygons(root)
    originals = {f.id: f.read_bytes("polygons") for f in cio.open(root)}
    copied = str(tmp_path / "copied")
    cio.convert(root, copied)
    assert {f.id: f.read_bytes("polygons") for f in cio.open(copied)} == originals

    renamed = str(tmp_path / "renamed")
    cio.open(root).remap_labels({"car": "automobile"}).export(renamed, "cityscapes")
    for f in cio.open(renamed):
        labels = [o.label for o in f.polygons()]
        before = [o.label for o in cio.open(root).frame(f.id, f.split).polygons()]
        assert labels == [{"cargroup": "automobilegroup", "car": "automobile"}.get(n, n) for n in before]

    for name, ds in (("train", cio.open(root).to_train_ids()),
                     ("merged", cio.open(root).remap_labels({"car": "vehicle", "truck": "vehicle"}))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds.export(str(tmp_path / name), "cityscapes")
        polygon_warnings = [str(w.message) for w in caught if "polygons" in str(w.message)]
        assert len(polygon_warnings) == 1 and "merged or dropped" in polygon_warnings[0]
        assert "(5 frames)" in polygon_warnings[0]
        assert not [f for f in cio.open(str(tmp_path / name)) if f.has("polygons")]


# -- found in review --------------------------------------------------------------------------------
def test_prepare_refuses_the_source_archive_and_keeps_an_existing_one(synth, tmp_path):
    archive = zip_dir(synth, str(tmp_path / "src.zip"))
    size = os.path.getsize(archive)
    with pytest.raises(CityscapesIOError, match="destination is the source"):
        cio.prepare(archive, dst=archive)
    assert os.path.getsize(archive) == size and len(cio.open(archive)) == 5
    out = str(tmp_path / "out.zip")
    assert cio.prepare(synth, dst=out).written == 5
    with pytest.raises(CityscapesIOError, match="archive exists already"):
        cio.prepare(synth, dst=out)
    assert cio.prepare(synth, dst=out, overwrite=True).written == 5
    assert len(prepared_tree_zip(out)) == 10


def prepared_tree_zip(path: str) -> list:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return [n for n in z.namelist() if n.endswith(("_labelTrainIds.png", "_instanceTrainIds.png"))]


def test_renamed_polygons_are_read_drawn_and_validated_with_the_dataset_labels(synth, tmp_path):
    from cityscapes_io.validate import validate

    out = str(tmp_path / "renamed")
    cio.open(synth).remap_labels({"car": "automobile"}).export(out, "cityscapes")
    assert [p for p in validate(out) if p.severity == "error"] == []
    for frame in cio.open(out):
        p = frame.polygons()
        names = {o.label for o in p}
        assert "car" not in names and ("automobile" in names or "automobilegroup" in names)
        assert all(o.resolved is not None for o in p if not o.deleted)
        # The renamed polygons draw the renamed dataset's own classes. (Its instance numbers
        # too for the official names; label_colors.txt does not say whether a renamed class has
        # instances, so "automobile" is drawn as a plain class in instanceIds.)
        assert np.array_equal(cio.rasterize(p, "ids"), frame.label_ids())
        inst = frame.instance_ids()
        automobile = frame.labels["automobile"].id
        kept = np.where(inst >= 1000, inst // 1000, inst) != automobile
        assert np.array_equal(cio.rasterize(p, "instanceIds")[kept], inst[kept])


def test_label_maps_that_merely_share_names_are_not_train_ids():
    labels = LabelMap.from_colors({"road": (128, 64, 128), "sidewalk": (244, 35, 232)})
    assert [(l.name, l.id) for l in labels][:2] == [("background", 0), ("road", 1)] or labels["road"].id == 0
    assert not labels.is_train_ids
    assert not LabelMap([cio.Label("road", 0), cio.Label("sidewalk", 1)]).is_train_ids


def test_a_frame_s_own_train_id_files_are_copied_not_lost_or_redrawn(synth, tmp_path):
    """cityscapes -> cityscapes (and through tar shards) keeps the input's train-id files byte
    for byte, with or without save_train_ids: the official ones are drawn from the polygons
    and may differ at edges from train ids made from instanceIds (one pixel changed here shows
    they are copied, not made again). Labels changed: they cannot follow and are not written."""
    src = str(tmp_path / "src")
    shutil.copytree(synth, src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no photos in the synthetic tree: prepare says so
        cio.prepare(src)
    victim = next(iter(cio.open(src)))
    arr = read_png(victim.path("labelTrainIds"))
    arr[0, 0] = 254  # no train id makes this
    with open(victim.path("labelTrainIds"), "wb") as f:
        f.write(png.encode_png(arr))
    given = {rel: open(os.path.join(src, rel), "rb").read() for rel in prepared_tree(src)}
    assert len(given) == 10

    def train_files(root):
        return {rel: open(os.path.join(root, rel), "rb").read() for rel in prepared_tree(root)}

    for out, extra in (("plain", []), ("asked", ["--save-train-ids"])):
        assert main(["convert", src, str(tmp_path / out), "-f", "cityscapes", "-q", *extra]) == 0
        assert train_files(str(tmp_path / out)) == given, out
    assert main(["convert", src, str(tmp_path / "wds"), "-f", "wds", "-q"]) == 0
    assert main(["convert", str(tmp_path / "wds"), str(tmp_path / "back"), "-f", "cityscapes", "-q"]) == 0
    assert train_files(str(tmp_path / "back")) == given
    # Resume counts them among a frame's files.
    os.remove(os.path.join(str(tmp_path / "plain"), sorted(given)[0]))
    again = cio.convert(src, str(tmp_path / "plain"), resume=True)
    assert (again.written, again.resumed) == (5, 4)
    assert train_files(str(tmp_path / "plain")) == given
    # Labels renamed away from the official ones: the train-id files no longer name the same
    # classes and are not copied.
    assert main(["convert", src, str(tmp_path / "remapped"), "-f", "cityscapes", "-q", "--remap", "car:vehicle"]) == 0
    assert train_files(str(tmp_path / "remapped")) == {}
