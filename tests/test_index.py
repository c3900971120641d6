"""The Parquet index (``cityscapes_io.index``, ``cityscapes-io index``): every value against the
frames of a tree built at test time (sizes, files, the release's parts, instances and their
RLE), read back with pyarrow (and pandas when installed), from a folder, a zip and the S3
server, to a folder and to S3, in one process, in two, and on an executor (the same bytes)."""
from __future__ import annotations

import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="the index needs pyarrow: pip install 'cityscapes-io[parquet]'")
pq = pytest.importorskip("pyarrow.parquet", reason="the index needs pyarrow: pip install 'cityscapes-io[parquet]'")
pc = pytest.importorskip("pyarrow.compute", reason="the index needs pyarrow: pip install 'cityscapes-io[parquet]'")

import fsspec  # noqa: E402

import cityscapes_io as cio  # noqa: E402
from cityscapes_io import rle  # noqa: E402
from cityscapes_io.cli import EXIT_ERROR, EXIT_REFUSED, EXIT_USAGE, main  # noqa: E402
from cityscapes_io.index import FRAMES_FILE, INSTANCES_FILE, build_index, part_name  # noqa: E402
from cityscapes_io.release import PART_NAMES  # noqa: E402
from cityscapes_io.testing import generate  # noqa: E402
from conftest import upload_dir, zip_dir  # noqa: E402

PARTS = ["disparity", "camera", "leftImg8bit_foggy"]
SPLITS = {"train": 3, "val": 2}


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Train frames with disparity, camera and three foggy photos each; val frames without any
    part (their part folders removed)."""
    root = str(tmp_path_factory.mktemp("index") / "src")
    generate(root, splits=SPLITS, size=(128, 64), parts=PARTS, seed=5)
    for folder in ("disparity", "camera", "leftImg8bit_foggy"):
        shutil.rmtree(os.path.join(root, folder, "val"))
    return root


def _read(out, name, **options):
    if options or "://" in str(out):
        with fsspec.open(f"{str(out).rstrip('/')}/{name}", "rb", **options) as f:
            return pq.read_table(f)
    return pq.read_table(os.path.join(str(out), name))


def _bytes(out, name):
    with open(os.path.join(str(out), name), "rb") as f:
        return f.read()


def _expected_parts(frame):
    """``{key: location}`` of the frame's parts, from FrameParts' own look-ups."""
    parts = frame.parts
    want = {}
    for name in PART_NAMES:
        loc = parts.find(name)
        if loc is not None:
            want[name] = loc
    for key in parts.image_keys():
        want[key] = parts.photo(key)
    return want


def _open_url(url, **options):
    with fsspec.open(url, "rb", **options) as f:
        return f.read()


# -- values ----------------------------------------------------------------------------------------
def test_frames_table_against_the_frames(src, tmp_path):
    out = tmp_path / "index"
    done = []
    report = build_index(src, str(out), progress=done.append)
    assert done == [1, 2, 3, 4, 5]
    assert report.ok and report.frames == 5 and (report.frames_url, report.instances_url) == (
        f"{out}/{FRAMES_FILE}", f"{out}/{INSTANCES_FILE}")
    assert sorted(os.listdir(out)) == [FRAMES_FILE, INSTANCES_FILE]  # no temporary file left
    rows = _read(out, FRAMES_FILE).to_pylist()
    frames = list(cio.open(src))
    assert [(r["split"], r["id"]) for r in rows] == [(f.split, f.id) for f in frames]
    assert [r["split"] for r in rows] == ["train"] * 3 + ["val"] * 2
    for row, frame in zip(rows, frames):
        assert (row["city"], row["sequence"], row["frame"]) == (frame.city, frame.seq, frame.frame)
        assert (row["height"], row["width"]) == (64, 128) == frame.size()
        assert (row["annotations"], row["image_key"]) == ("gtFine", "leftImg8bit")
        files = dict(row["files"])
        assert files == {kind: os.path.join(src, path) if not os.path.isabs(path) else path
                         for kind, path in frame.files.items()}
        assert {"image", "instanceIds", "labelIds", "color", "polygons"} <= set(files)
        for kind, url in files.items():  # each path opens, and is the frame's file
            assert _open_url(url) == frame.read_bytes(kind)
        parts = dict(row["parts"])
        want = _expected_parts(frame)
        assert set(parts) == set(want)
        for key, (root, rel) in want.items():
            assert parts[key] == os.path.join(root.path, rel)
            with open(parts[key], "rb") as f:
                assert f.read() == frame.parts.read((root, rel))
        assert row["part_names"] == sorted(frame.parts.present())
        assert [k for k, _ in row["parts"]] == sorted(parts)  # map entries sorted by key
        if frame.split == "train":
            assert set(parts) == {"camera", "disparity", "leftImg8bit", "leftImg8bit_foggy@beta_0.005",
                                  "leftImg8bit_foggy@beta_0.01", "leftImg8bit_foggy@beta_0.02"}
            assert row["part_names"] == ["camera", "disparity", "leftImg8bit", "leftImg8bit_foggy"]
        else:  # the split without parts: its own photo only
            assert set(parts) == {"leftImg8bit"} and row["part_names"] == ["leftImg8bit"]
        frame.release()


def test_instances_table_against_the_frames(src, tmp_path):
    out = tmp_path / "index"
    report = build_index(src, str(out))
    table = _read(out, INSTANCES_FILE)
    assert table.num_rows == report.instances > 0
    rows = table.to_pylist()
    expected = []
    for frame in cio.open(src):
        for inst in frame.instances():
            expected.append((frame, inst))
    assert len(rows) == len(expected)
    pycoco = _pycocotools()
    for row, (frame, inst) in zip(rows, expected):
        assert (row["frame_id"], row["split"]) == (frame.id, frame.split)
        assert (row["value"], row["label_id"], row["label"], row["instance_id"], row["crowd"], row["area"]) == (
            inst.value, inst.label_id, inst.label.name, inst.id, inst.is_crowd, inst.area)
        assert (row["train_id"], row["has_instances"]) == (inst.label.train_id, inst.label.has_instances)
        assert (row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]) == inst.bbox
        assert row["rle"]["size"] == [64, 128]
        mask = rle.decode(row["rle"])
        assert np.array_equal(mask, inst.mask) and int(mask.sum()) == row["area"]
        if pycoco is not None:
            with warnings.catch_warnings():  # (pycocotools' own, under numpy 2)
                warnings.simplefilter("ignore", DeprecationWarning)
                assert np.array_equal(pycoco.decode(row["rle"]).astype(bool), inst.mask)
    crowd = [r for r in rows if r["crowd"]]
    numbered = [r for r in rows if not r["crowd"]]
    assert crowd and numbered  # both kinds in the data
    assert all(r["instance_id"] is None and r["value"] < 1000 for r in crowd)
    assert all(r["instance_id"] == r["value"] % 1000 and r["label_id"] == r["value"] // 1000 for r in numbered)


def _pycocotools():
    try:
        from pycocotools import mask
    except ImportError:
        return None
    return mask


def test_every_part_of_the_release(tmp_path):
    """Every part the generator writes (photos and their variants, one-file parts, 30-frame
    snippets of the _sequence folders, rain on every other frame) and the demoVideo split."""
    root = str(tmp_path / "all")
    generate(root, splits={"train": 3}, size=(64, 32), parts="all", demo_frames=1, seed=2)
    build_index(root, str(tmp_path / "out"))
    rows = _read(tmp_path / "out", FRAMES_FILE).to_pylist()
    frames = list(cio.open(root))
    assert [(r["split"], r["id"]) for r in rows] == [(f.split, f.id) for f in frames]
    assert {f.split for f in frames} == {"demoVideo", "train"}
    for row, frame in zip(rows, frames):
        parts = frame.parts
        want = {k: parts.read(loc) for k, loc in _expected_parts(frame).items()}
        for folder in parts.sequence_folders():
            stem = parts.base[:-6]
            for name, loc in parts.sequence_files(folder).items():
                want[f"{folder}.{name[len(stem):len(stem) + 6]}"] = parts.read(loc)
        got = dict(row["parts"])
        assert set(got) == set(want), frame.id
        for key, url in got.items():
            assert _open_url(url) == want[key], key
        assert row["part_names"] == sorted(parts.present())
        assert (row["height"], row["width"]) == (32, 64)
        if frame.split == "train":
            assert len([k for k in got if k.startswith("leftImg8bit_sequence.")]) == 30 - (19 - frame.frame if
                                                                                            frame.frame < 19 else 0)
            assert {"disparity", "camera", "vehicle", "timestamp", "gtBboxCityPersons", "gtBbox3d", "rightImg8bit",
                    "leftImg16bit", "leftImg8bit_blurred", "leftImg8bit_foggy@beta_0.02"} <= set(got)
        else:  # a demoVideo frame: its photo, no ground truth
            assert row["annotations"] is None and [k for k, _ in row["files"]] == ["image"]
        frame.release()
    rain = [r["id"] for r in rows if "leftImg8bit_rain" in r["part_names"]]
    assert 0 < len(rain) < 3  # a subset of the frames, by design


def test_engines_select_frames_with_a_part(src, tmp_path):
    build_index(src, str(tmp_path))
    frames = pq.read_table(str(tmp_path / FRAMES_FILE))
    train = [f.id for f in cio.open(src, split="train")]
    # pyarrow: the map's value for the key, and the list of names
    has = pc.is_valid(pc.map_lookup(frames["parts"], "disparity", "first"))
    assert frames.filter(has)["id"].to_pylist() == train
    foggy = pc.map_lookup(frames["parts"], "leftImg8bit_foggy@beta_0.02", "first")
    assert [p.endswith("_leftImg8bit_foggy_beta_0.02.png") for p in foggy.drop_null().to_pylist()] == [True] * 3
    named = pc.list_value_length(pc.list_slice(frames["part_names"], 0, 10)).to_pylist()
    assert named == [4, 4, 4, 1, 1]
    flat = pc.list_flatten(frames["part_names"])
    parents = pc.list_parent_indices(frames["part_names"])
    with_camera = sorted({parents[i].as_py() for i, v in enumerate(flat.to_pylist()) if v == "camera"})
    assert [frames["id"][i].as_py() for i in with_camera] == train
    # the frames of the instances with a label, by a join on the frame id
    inst = pq.read_table(str(tmp_path / INSTANCES_FILE))
    cars = set(inst.filter(pc.equal(inst["label"], "car"))["frame_id"].to_pylist())
    assert cars == {f.id for f in cio.open(src) if any(i.label.name == "car" for i in f.instances())}
    assert part_name("leftImg8bit_foggy@beta_0.02") == "leftImg8bit_foggy"
    assert part_name("leftImg8bit_sequence.000005@beta_0.02") == "leftImg8bit_sequence"


def test_pandas_reads_the_index(src, tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas is not installed here (pip install pandas)")
    build_index(src, str(tmp_path))
    frames = pd.read_parquet(str(tmp_path / FRAMES_FILE))
    inst = pd.read_parquet(str(tmp_path / INSTANCES_FILE))
    assert len(frames) == 5 and list(frames["split"]) == ["train"] * 3 + ["val"] * 2
    with_disparity = frames[frames.part_names.map(lambda names: "disparity" in list(names))]
    assert list(with_disparity["id"]) == [f.id for f in cio.open(src, split="train")]
    assert dict(frames.iloc[0]["parts"])["disparity"].endswith("_disparity.png")
    assert inst["instance_id"].isna().sum() == int(inst["crowd"].sum())
    first = inst.iloc[0]
    mask = rle.decode({"size": list(first["rle"]["size"]), "counts": first["rle"]["counts"]})
    assert int(mask.sum()) == first["area"]


def test_a_frame_built_in_memory(tmp_path):
    ids = np.zeros((4, 6), np.uint16)
    ids[1:3, 2:5] = 26001
    frame = cio.Frame.from_arrays(id="mem/x_000000_000001", split="train",
                                  instances=[cio.Instance.from_mask(ids == 26001, label_id=26, id=1),
                                             cio.Instance.from_mask(ids == 0, label_id=7, is_crowd=True)])
    report = build_index(cio.Dataset.from_iterable([frame]), str(tmp_path))
    [row] = _read(tmp_path, FRAMES_FILE).to_pylist()
    assert (row["id"], row["height"], row["width"], row["files"], row["parts"], row["part_names"]) == (
        "mem/x_000000_000001", 4, 6, [], [], [])
    inst = _read(tmp_path, INSTANCES_FILE).to_pylist()
    assert [(r["value"], r["label"], r["instance_id"], r["area"], (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]))
            for r in inst] == [(7, "road", None, 18, (0, 0, 6, 4)), (26001, "car", 1, 6, (2, 1, 3, 2))]
    assert report.instances == 2


# -- one pass, in parts, the same bytes ------------------------------------------------------------
def test_workers_and_executors_write_the_same_bytes(src, tmp_path):
    one = tmp_path / "one"
    build_index(src, str(one))
    build_index(src, str(tmp_path / "two"), workers=2)
    with ThreadPoolExecutor(2) as pool:
        build_index(src, str(tmp_path / "threads"), executor=pool)
    for name in (FRAMES_FILE, INSTANCES_FILE):
        assert _bytes(tmp_path / "two", name) == _bytes(one, name), name
        assert _bytes(tmp_path / "threads", name) == _bytes(one, name), name


def test_on_a_dask_cluster_the_same_bytes(src, tmp_path):
    distributed = pytest.importorskip("distributed", reason="pip install distributed")
    build_index(src, str(tmp_path / "one"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  protocol="tcp://", host="127.0.0.1") as cluster:
        from cityscapes_io.dask import executor

        with distributed.Client(cluster) as client, executor(client=client) as on_dask:
            build_index(src, str(tmp_path / "api"), executor=on_dask)
        assert main(["index", "-q", "--scheduler", cluster.scheduler_address, src, str(tmp_path / "cli")]) == 0
    for name in (FRAMES_FILE, INSTANCES_FILE):
        assert _bytes(tmp_path / "api", name) == _bytes(tmp_path / "one", name), name
        assert _bytes(tmp_path / "cli", name) == _bytes(tmp_path / "one", name), name


def test_a_process_pool_executor_writes_the_same_bytes(src, tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    build_index(src, str(tmp_path / "one"))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        report = build_index(src, str(tmp_path / "pool"), executor=pool)
    assert report.frames == 5
    for name in (FRAMES_FILE, INSTANCES_FILE):
        assert _bytes(tmp_path / "pool", name) == _bytes(tmp_path / "one", name), name


def test_row_groups_are_written_as_rows_come(src, tmp_path):
    build_index(src, str(tmp_path / "whole"))
    report = build_index(src, str(tmp_path / "groups"), row_group_rows=2)
    frames = pq.ParquetFile(str(tmp_path / "groups" / FRAMES_FILE))
    inst = pq.ParquetFile(str(tmp_path / "groups" / INSTANCES_FILE))
    assert frames.metadata.num_row_groups == 3 == report.row_groups[0]  # 2 + 2 + 1 frames
    assert inst.metadata.num_row_groups == report.row_groups[1] == 5  # a row group after each frame
    assert max(inst.metadata.row_group(i).num_rows for i in range(5)) >= 2
    for name in (FRAMES_FILE, INSTANCES_FILE):
        assert pq.read_table(str(tmp_path / "groups" / name)).equals(pq.read_table(str(tmp_path / "whole" / name)))


def test_row_groups_by_size(src, tmp_path, monkeypatch):
    import cityscapes_io.index as index

    build_index(src, str(tmp_path / "whole"))
    monkeypatch.setattr(index, "_COMPACT_ROWS", 7)  # Python rows made Arrow batches every 7 rows
    monkeypatch.setattr(index, "ROW_GROUP_BYTES", 1)  # and a row group as soon as a batch is held
    report = build_index(src, str(tmp_path / "small"))
    assert report.row_groups == (1, 5)  # frames: one row a frame, never 7 before the end
    for name in (FRAMES_FILE, INSTANCES_FILE):
        small = pq.ParquetFile(str(tmp_path / "small" / name))
        assert small.metadata.num_row_groups == report.row_groups[name == INSTANCES_FILE]
        assert pq.read_table(str(tmp_path / "small" / name)).equals(pq.read_table(str(tmp_path / "whole" / name)))


def test_metadata_names_the_dataset(src, tmp_path):
    import json

    build_index(src, str(tmp_path))
    meta = json.loads(pq.read_schema(str(tmp_path / FRAMES_FILE)).metadata[b"cityscapes_io"])
    assert meta == {"index_version": 1, "roots": [src], "format": "cityscapes", "labels": "cityscapes",
                    "file": "frames"}


# -- sources and destinations ------------------------------------------------------------------------
def test_from_a_zip(src, tmp_path):
    archive = zip_dir(src, str(tmp_path / "data.zip"))
    build_index(src, str(tmp_path / "folder"))
    build_index(archive, str(tmp_path / "zip"))
    frames = _read(tmp_path / "zip", FRAMES_FILE).to_pylist()
    ds = cio.open(archive)
    for row, frame in zip(frames, ds):
        for kind, url in row["files"]:
            assert url.startswith("zip://") and url.endswith(f"::{archive}"), url
            assert _open_url(url) == frame.read_bytes(kind)
        for key, url in row["parts"]:
            assert url.startswith("zip://") and _open_url(url) == _open_url(dict(
                _read(tmp_path / "folder", FRAMES_FILE).to_pylist()[frames.index(row)]["parts"])[key])
        frame.release()
    assert _read(tmp_path / "zip", INSTANCES_FILE).equals(_read(tmp_path / "folder", INSTANCES_FILE))
    local = _read(tmp_path / "folder", FRAMES_FILE)
    assert _read(tmp_path / "zip", FRAMES_FILE).drop_columns(["files", "parts"]).equals(
        local.drop_columns(["files", "parts"]))


def test_from_one_zip_per_package(src, tmp_path):
    """The release's layout: gtFine, leftImg8bit and each part in an archive of its own."""
    packages = [zip_dir(src, str(tmp_path / f"{top}.zip"), only=top + "/") for top in sorted(os.listdir(src))]
    build_index(src, str(tmp_path / "folder"))
    build_index(packages, str(tmp_path / "zips"))
    local = _read(tmp_path / "folder", FRAMES_FILE).to_pylist()
    rows = _read(tmp_path / "zips", FRAMES_FILE).to_pylist()
    assert len(rows) == len(local) == 5
    for row, here in zip(rows, local):
        assert [k for k, _ in row["files"]] == [k for k, _ in here["files"]]
        assert [k for k, _ in row["parts"]] == [k for k, _ in here["parts"]]
        for (key, url), (_, path) in zip(row["files"] + row["parts"], here["files"] + here["parts"]):
            rel = os.path.relpath(path, src)
            assert url == f"zip://{rel}::{tmp_path / rel.split('/')[0]}.zip", key
            assert _open_url(url) == _open_url(path)
    assert _read(tmp_path / "zips", INSTANCES_FILE).equals(_read(tmp_path / "folder", INSTANCES_FILE))


def test_to_a_memory_filesystem(src, tmp_path):
    build_index(src, str(tmp_path))
    report = build_index(src, "memory://index-test/out")
    fs = fsspec.filesystem("memory")
    try:
        assert report.frames_url == f"memory://index-test/out/{FRAMES_FILE}"
        assert sorted(fs.ls("/index-test/out", detail=False)) == [f"/index-test/out/{FRAMES_FILE}",
                                                                  f"/index-test/out/{INSTANCES_FILE}"]
        for name in (FRAMES_FILE, INSTANCES_FILE):
            assert fs.cat_file(f"/index-test/out/{name}") == _bytes(tmp_path, name)
    finally:
        fs.rm("/index-test", recursive=True)


def test_s3_as_source_and_destination(src, tmp_path, s3):
    fs, opts, bucket = s3
    upload_dir(fs, src, f"{bucket}/src")
    build_index(src, str(tmp_path / "local"))
    report = build_index(f"s3://{bucket}/src", f"s3://{bucket}/index", storage_options=opts,
                         dst_storage_options=opts, workers=2)
    assert report.frames_url == f"s3://{bucket}/index/{FRAMES_FILE}"
    fs.invalidate_cache()
    assert sorted(fs.ls(f"{bucket}/index", detail=False)) == [f"{bucket}/index/{FRAMES_FILE}",
                                                              f"{bucket}/index/{INSTANCES_FILE}"]
    frames = _read(f"s3://{bucket}/index", FRAMES_FILE, **opts)
    local = _read(tmp_path / "local", FRAMES_FILE)
    assert frames.drop_columns(["files", "parts"]).equals(local.drop_columns(["files", "parts"]))
    assert _read(f"s3://{bucket}/index", INSTANCES_FILE, **opts).equals(_read(tmp_path / "local", INSTANCES_FILE))
    for row, here in zip(frames.to_pylist(), local.to_pylist()):
        for (kind, url), (kind2, path) in zip(row["files"] + row["parts"], here["files"] + here["parts"]):
            assert kind == kind2 and url == f"s3://{bucket}/src/{os.path.relpath(path, src)}"
        for _, url in row["files"][:2] + row["parts"][:2]:
            assert _open_url(url, **opts) == _open_url(dict(here["files"] + here["parts"])[
                next(k for k, u in row["files"] + row["parts"] if u == url)])
    # again: refused, then replaced
    with pytest.raises(cio.RefusedError, match="pass overwrite=True"):
        build_index(f"s3://{bucket}/src", f"s3://{bucket}/index", storage_options=opts, dst_storage_options=opts)
    build_index(src, f"s3://{bucket}/index", dst_storage_options=opts, overwrite=True)
    fs.invalidate_cache()
    assert _read(f"s3://{bucket}/index", FRAMES_FILE, **opts).equals(local)


def test_s3_destination_left_as_it_was_on_an_error(src, tmp_path, s3):
    fs, opts, bucket = s3
    bad = str(tmp_path / "bad")
    shutil.copytree(src, bad)
    _corrupt(bad)
    with pytest.raises(cio.InvalidFileError):
        build_index(bad, f"s3://{bucket}/index", dst_storage_options=opts)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/index/{FRAMES_FILE}") and not fs.exists(f"{bucket}/index/{INSTANCES_FILE}")


# -- refusals and errors ---------------------------------------------------------------------------
def _corrupt(root):
    """Cut the second val frame's instanceIds PNG short; returns that frame's id."""
    frame = list(cio.open(root, split="val"))[1]
    path = frame.path("instanceIds")
    with open(path, "r+b") as f:
        f.truncate(40)
    return frame.id


def test_a_bad_frame_raises_or_is_skipped(src, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(src, bad)
    frame_id = _corrupt(bad)
    out = tmp_path / "out"
    with pytest.raises(cio.InvalidFileError, match="instanceIds"):
        build_index(bad, str(out))
    assert not out.exists() or os.listdir(out) == []  # nothing written, no temporary file left
    with pytest.warns(UserWarning, match="skipped"):
        report = build_index(bad, str(out), on_error="skip")
    assert not report.ok and [(s, i) for s, i, _ in report.skipped] == [("val", frame_id)]
    assert "instanceIds" in report.skipped[0][2] and "1 frames skipped" in report.summary()
    ids = _read(out, FRAMES_FILE)["id"].to_pylist()
    assert len(ids) == 4 and frame_id not in ids
    assert frame_id not in set(_read(out, INSTANCES_FILE)["frame_id"].to_pylist())
    seen = []
    report = build_index(bad, str(tmp_path / "two"), on_error=seen.append, workers=2)
    assert [type(e).__name__ for e in seen] == ["InvalidFileError"] and len(report.skipped) == 1
    assert _bytes(tmp_path / "two", FRAMES_FILE) == _bytes(out, FRAMES_FILE)


def test_destinations_refused(src, tmp_path):
    build_index(src, str(tmp_path / "out"))
    with pytest.raises(cio.RefusedError, match="an index is already there"):
        build_index(src, str(tmp_path / "out"))
    before = _bytes(tmp_path / "out", FRAMES_FILE)
    build_index(cio.open(src, split="val"), str(tmp_path / "out"), overwrite=True)
    assert _bytes(tmp_path / "out", FRAMES_FILE) != before and _read(tmp_path / "out", FRAMES_FILE).num_rows == 2
    with pytest.raises(ValueError, match="not an archive"):
        build_index(src, str(tmp_path / "index.zip"))
    with pytest.raises(cio.RefusedError, match="source"):
        build_index(src, src)
    (tmp_path / "file").write_text("x")
    with pytest.raises(cio.RefusedError, match="not a folder"):
        build_index(src, str(tmp_path / "file"))
    with pytest.raises(ValueError, match="row_group_rows"):
        build_index(src, str(tmp_path / "x"), row_group_rows=0)
    with pytest.raises(ValueError, match="on_error"):
        build_index(src, str(tmp_path / "x"), on_error="ignore")


# -- the command line ------------------------------------------------------------------------------
def test_cli(src, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["index", src, out]) == 0
    assert "indexed 5 frames" in capsys.readouterr().out
    build_index(src, str(tmp_path / "api"))
    for name in (FRAMES_FILE, INSTANCES_FILE):
        assert _bytes(out, name) == _bytes(tmp_path / "api", name)
    assert main(["index", src, out]) == EXIT_REFUSED
    assert "an index is already there: pass --overwrite" in capsys.readouterr().err
    assert main(["index", "-q", "--split", "val", "-j", "2", src, out, "--overwrite"]) == 0
    assert capsys.readouterr().out == ""
    assert _read(out, FRAMES_FILE)["split"].to_pylist() == ["val", "val"]
    assert main(["index", src, "-o", str(tmp_path / "o")]) == 0
    assert _read(tmp_path / "o", FRAMES_FILE).num_rows == 5
    assert main(["index", src]) == EXIT_REFUSED
    assert "give SRC and OUT" in capsys.readouterr().err
    assert main(["index", "--scheduler", "tcp://127.0.0.1:1", "-j", "2", src, out]) == EXIT_REFUSED
    assert "no -j" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["index", src, out, "--on-error", "ignore"])
    assert exc.value.code == EXIT_USAGE


def test_cli_skipped_frames(src, tmp_path, capsys):
    bad = str(tmp_path / "bad")
    shutil.copytree(src, bad)
    frame_id = _corrupt(bad)
    assert main(["index", bad, str(tmp_path / "a"), "--on-error", "skip"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "1 frames skipped" in err and frame_id in err
    assert main(["index", bad, str(tmp_path / "b"), "--on-error", "skip", "--allow-skipped", "-q"]) == 0
    assert main(["index", bad, str(tmp_path / "c")]) == EXIT_ERROR
    assert "instanceIds" in capsys.readouterr().err
