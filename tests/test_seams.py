"""Regression tests for issue 9's bugs in the core: frames built every way agree across writers,
the reader contract, map-style access, error policies across processes, label remaps, the
destination rules (refuse / overwrite / resume) and the zip sink on an object store."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import Dataset, Frame, Instance, LabelMap
from cityscapes_io.labels import normalize_name
from cityscapes_io.stats import compute_stats
from cityscapes_io.testing import generate
from conftest import SEMANTIC, TREE_ORDER, write_frame

WRITERS = ("cityscapes", "voc", "camvid")


def _example_2():
    """The format page's example 2, as the README gives it."""
    labels = LabelMap.from_colors({"background": (0, 0, 0), "label_1": (1, 2, 3), "label_2": (3, 2, 1)})
    frame = Frame.from_arrays(id="1", image=np.ones((1, 5, 3), np.uint8), instances=[
        Instance.from_mask(np.array([[1, 0, 0, 1, 1]]), label_id=1),
        Instance.from_mask(np.array([[0, 1, 1, 0, 0]]), label_id=2, id=2, is_crowd=False),
    ])
    return Dataset.from_iterable([frame], labels=labels)


def _read_back(out: str, fmt: str):
    return {(f.split, f.id): f.label_ids().astype(int) for f in cio.open(out, format=fmt)}


def _painted(frame: Frame) -> np.ndarray:
    """The class image painted from ``frame.instances()`` alone."""
    out = np.full(frame.instance_ids().shape, -1)
    for inst in frame.instances():
        x, y, w, h = inst.bbox
        out[y:y + h, x:x + w][inst.mask_crop] = inst.label_id
    return out


def test_example_2_writes_label_1_everywhere(tmp_path):
    ds = _example_2()
    [frame] = list(ds)
    assert frame.label_ids().tolist() == [[1, 2, 2, 1, 1]]
    assert frame.instance_ids().tolist() == [[1000, 2002, 2002, 1000, 1000]]
    assert [(i.value, i.label.name, i.id, i.is_crowd) for i in frame.instances()] == [
        (1000, "label_1", 0, False), (2002, "label_2", 2, False)]
    for fmt in WRITERS:
        out = str(tmp_path / fmt)
        ds.export(out, fmt, save_media=True)
        back = _read_back(out, fmt)
        assert list(back) == [("default", "1")] and back[("default", "1")].tolist() == [[1, 2, 2, 1, 1]], fmt
    got = cio.open(str(tmp_path / "cityscapes"))
    [back] = list(got)
    assert back.instance_ids().tolist() == [[1000, 2002, 2002, 1000, 1000]]


def _frames_every_way(root: str):
    """The same frames, read from files, built from arrays, derived by an operation, merged."""
    files = cio.open(root)
    arrays = Dataset.from_iterable(
        [Frame.from_arrays(id=f.id, split=f.split, image=f.image(), labels=f.labels,
                           instances=[Instance.from_mask(i.mask, label_id=i.label_id, id=i.id, is_crowd=i.is_crowd)
                                      for i in f.instances()]) for f in files], labels=files.labels)
    derived = files.remap_labels({"car": "vehicle", "truck": "vehicle"})
    merged = cio.merge(files.filter(split="train"), cio.open(root, split="val"))
    return {"files": files, "arrays": arrays, "derived": derived, "merged": merged}


@pytest.mark.parametrize("way", ["files", "arrays", "derived", "merged"])
def test_every_writer_agrees_with_instances_however_the_frame_was_built(tmp_path, way):
    root = str(tmp_path / "src")
    generate(root, splits={"train": 3, "val": 1}, size=(96, 48), seed=3)
    ds = _frames_every_way(root)[way]
    expected = {}
    for f in ds:
        ids = f.label_ids()
        assert np.array_equal(_painted(f), ids.astype(int)), f.id  # instances cover every pixel, same classes
        expected[(f.split, f.id)] = ids.astype(int)
    for fmt in WRITERS:
        out = str(tmp_path / f"{way}-{fmt}")
        report = ds.export(out, fmt, save_media=True)
        assert report.ok and report.written == len(expected)
        back = cio.open(out, format=fmt)
        names = {l.id: normalize_name(l.name) for l in back.labels}  # label_colors.txt writes spaces as _
        ours = {l.id: normalize_name(l.name) for l in ds.labels}
        for f in back:
            got = f.label_ids().astype(int)
            want = expected[(f.split, f.id)]
            # Class names agree pixel by pixel.
            assert np.array_equal(np.vectorize(names.get)(got), np.vectorize(ours.get)(want)), (fmt, f.id)
        if fmt == "cityscapes":  # instanceIds survive exactly
            for f in back:
                src = next(g for g in ds.frames(f.split) if g.id == f.id)
                assert np.array_equal(f.instance_ids(), src.instance_ids())


def test_frames_by_split_and_city_on_every_reader(tmp_path):
    root = str(tmp_path / "src")
    generate(root, splits={"train": 4}, size=(64, 32), seed=1)
    ds = cio.open(root)
    city = ds.cities("train")[0]
    want = [f.id for f in ds.frames("train", city)]
    assert want
    cio.convert(root, str(tmp_path / "voc"), format="voc")
    cio.convert(root, str(tmp_path / "camvid"), format="camvid")
    for other in (cio.open(str(tmp_path / "voc"), format="voc"), cio.open(str(tmp_path / "camvid"), format="camvid"),
                  cio.merge(ds, cio.open(str(tmp_path / "voc"), format="voc"), on_duplicate="first")):
        assert other.cities("train") == ds.cities("train")
        assert [f.id for f in other.frames("train", city)] == want
        assert [f.id for f in other.filter(cities=[city])] == want
        assert other.frame(want[0]).id == want[0]


def test_len_and_getitem_list_without_decoding(tree):
    ds = cio.open(tree)
    assert len(ds) == len(TREE_ORDER) == ds.count()
    assert [(ds[i].split, ds[i].id) for i in range(len(ds))] == TREE_ORDER
    assert ds[-1].id == TREE_ORDER[-1][1]
    assert ds["aachen/aachen_000010_000019"].id == "aachen/aachen_000010_000019"
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(TypeError):
        ds[1.5]
    first = ds[0]
    assert np.array_equal(first.instance_ids(), SEMANTIC)
    assert ds[0] is not first and ds[0].instance_ids() is not first.instance_ids()  # the index holds no pixels
    assert ds.filter(split="val")[0].id == TREE_ORDER[4][1]


def _record_error(exc):  # module level: picklable by reference
    _record_error.seen.append(str(exc))


_record_error.seen = []


def test_callable_on_error_survives_pickling_and_workers(tmp_path):
    root = str(tmp_path / "src")
    bad = SEMANTIC.copy()
    bad[0, 0] = 40001  # label 40: not in the official map
    for k in range(3):
        write_frame(root, "train", f"a/a_000000_00000{k}", bad if k == 1 else SEMANTIC)
    ds = cio.open(root, on_error=_record_error)
    frame = ds[1]
    again = pickle.loads(pickle.dumps(frame))
    assert again.on_error is _record_error
    _record_error.seen.clear()
    assert 40001 not in [i.value for i in again.instances()]
    assert _record_error.seen and "40001" in _record_error.seen[0]
    report = ds.export(str(tmp_path / "out"), "voc", workers=2)  # the callable applies in the workers too
    assert report.written == 3 and report.ok


def test_remap_keeps_negative_ids_and_crowds(tmp_path):
    root = str(tmp_path / "src")
    write_frame(root, "train", "a/a_000000_000001", SEMANTIC)
    ds = cio.open(root)
    remapped = ds.remap_labels({"car": "vehicle", "truck": "vehicle"})
    assert remapped.labels["license plate"].id == -1
    assert remapped.labels["vehicle"].has_instances is True
    before = compute_stats(ds)["splits"]["train"]["labels"]
    after = compute_stats(remapped)["splits"]["train"]["labels"]
    assert before["car"]["crowd_regions"] == after["vehicle"]["crowd_regions"] == 1
    assert before["car"]["instances"] == after["vehicle"]["instances"] == 3
    kept = compute_stats(ds.remap_labels({"person": "person"}))["splits"]["train"]["labels"]
    assert kept["car"]["crowd_regions"] == 1


def test_writing_into_a_dataset_is_refused_unless_overwrite_or_resume(tree, tmp_path):
    out = str(tmp_path / "out")
    cio.convert(tree, out, format="voc", split="train")
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.convert(tree, out, format="voc", split="val")
    assert "not empty" in str(info.value) and "ImageSets" in str(info.value) and "overwrite" in str(info.value)
    assert cio.open(out, format="voc").splits() == ["train"]  # nothing merged into it
    cio.convert(tree, out, format="voc", split="val", overwrite=True)
    assert cio.open(out, format="voc").splits() == ["val"]  # replaced
    report = cio.convert(tree, out, format="voc", split="val", resume=True)
    assert report.resumed == report.written
    with pytest.raises(cio.CityscapesIOError):
        cio.convert(tree, out + ".zip", format="voc")
        cio.convert(tree, out + ".zip", format="voc")
    cio.convert(tree, out + ".zip", format="voc", overwrite=True)
    with pytest.raises(cio.CityscapesIOError, match="holds the source"):
        cio.convert(tree, str(tmp_path), format="voc", overwrite=True)  # would delete the source
    assert os.path.isdir(tree)


def test_dataset_takes_only_a_reader():
    with pytest.raises(TypeError, match="Reader"):
        Dataset(object())  # type: ignore[arg-type]


def test_zip_destination_on_s3_writes_only_into_the_archive(tree, s3):
    fs, opts, bucket = s3
    for name in ("train", "val", "leftImg8bit"):  # buckets a loose upload of a frame's files would hit
        if not fs.exists(name):
            fs.mkdir(name)
    before = {name: sorted(fs.find(name)) for name in ("train", "val", "leftImg8bit")}
    url = f"s3://{bucket}/out.zip"
    report = cio.convert(tree, url, format="camvid", save_media=True, dst_storage_options=opts)
    assert report.ok and report.written == len(TREE_ORDER)
    fs.invalidate_cache()
    assert {name: sorted(fs.find(name)) for name in ("train", "val", "leftImg8bit")} == before
    assert fs.find(bucket) == [f"{bucket}/out.zip"]
    with fs.open(f"{bucket}/out.zip", "rb") as f:
        names = set(zipfile.ZipFile(f).namelist())
    assert "train/aachen/aachen_000010_000019.png" in names and "train.txt" in names
    back = cio.open(f"zip::s3://{bucket}/out.zip", format="camvid", storage_options=opts)
    assert back.count() == len(TREE_ORDER)


def test_unreachable_s3_destination_is_a_storage_error(tree):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = {"key": "x", "secret": "y", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}
    with pytest.raises(cio.StorageError) as info:
        cio.convert(tree, "s3://nowhere/out", format="voc", dst_storage_options=opts)
    assert "s3://nowhere/out" in str(info.value)


#: The package's modules, lower layers first (the README's "Layout").
LAYERS = ["errors", "_png", "_count", "decoder", "jsonfile", "names", "labels", "instances", "polygons", "png", "counting", "parts", "boxes3d", "rle", "storage", "progress", "release",
          "sources", "frame", "parallel", "panoptic", "mapping", "formats", "ops", "writing", "dataset", "sampling", "convert",
          "prepare", "evaluation", "metrics", "dask", "torch", "ray", "testing", "project", "stats", "index", "validate", "show", "cli",
          "__main__"]


def test_modules_import_only_lower_layers():
    """No import cycles: every module imports only modules listed before it in LAYERS (a
    module of a package, such as a format module, counts as part of its package)."""
    import ast
    import pathlib

    pkg = pathlib.Path(cio.__file__).parent
    rank = {name: i for i, name in enumerate(LAYERS)}
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).with_suffix("")
        module = rel.parts[0]  # a package's modules are one layer
        if module == "__init__":
            continue
        assert module in rank, f"{rel} is not in LAYERS"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = (node.module or "").split(".")[0] or None
                targets = [base] if base else [a.name for a in node.names]
                if len(rel.parts) > 1 and node.level == 1:
                    continue  # one module of a package using another of the same package
                for target in targets:
                    if target in ("__init__", None) or target == module:
                        continue
                    if target == "__version__" or (not base and target == "__version__"):
                        continue
                    assert rank[target] < rank[module], f"{rel} imports {target}, a higher layer"


class _BuggySource(cio.frame.Source):
    """A source whose decoding has a bug (not a bad file)."""

    def has_annotations(self) -> bool:
        return True

    def instance_ids(self):
        raise ZeroDivisionError("a bug, not a corrupt PNG")


def test_validate_does_not_report_a_bug_as_a_corrupt_file():
    from cityscapes_io.validate import validate

    frame = Frame("a/a_000000_000001", "train", LabelMap.cityscapes(), _BuggySource())
    ds = Dataset.from_iterable([frame])
    with pytest.raises(ZeroDivisionError):
        list(validate(ds))


def test_readme_example_2_runs_as_written(tmp_path, monkeypatch):
    """The README's "Frames built in memory" block, executed as it stands."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "Frame.from_arrays" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    back = list(cio.open(str(tmp_path / "dataset")))
    assert [f.label_ids().tolist() for f in back] == [[[1, 2, 2, 1, 1]]]


def test_validate_checks_frames_made_in_memory():
    from cityscapes_io.validate import validate

    mask = np.zeros((4, 6), bool)
    mask[1:3, 1:4] = True
    frame = Frame.from_arrays(id="p/p_000000_000001", instances=[Instance.from_mask(mask, label_id=40, id=1)])
    problems = list(validate(Dataset.from_iterable([frame])))
    assert [p.code for p in problems if p.severity == "error"] == ["unknown-label"]
    assert "40" in problems[0].reason or any("40" in p.reason for p in problems)


# -- found in review ---------------------------------------------------------------------------------
def test_overwrite_never_deletes_a_source(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 2}, size=(64, 32))
    n_files = sum(len(f) for _, _, f in os.walk(root))
    for dst in (root + "/gtFine", root, str(tmp_path), "file://" + root):
        with pytest.raises(cio.CityscapesIOError, match="source"):
            cio.convert(root, dst, format="voc", overwrite=True)
    with pytest.raises(cio.CityscapesIOError, match="is the source"):
        cio.convert(root, "file://" + root, format="cityscapes", resume=True)
    assert sum(len(f) for _, _, f in os.walk(root)) == n_files
    # The same on a filesystem other than local disk: a prefix holding the source.
    import fsspec

    mem = fsspec.filesystem("memory")
    generate("memory://seams/data/cs", splits={"train": 2}, size=(64, 32))
    before = sorted(mem.find("/seams/data/cs"))
    with pytest.raises(cio.CityscapesIOError, match="holds the source"):
        cio.convert("memory://seams/data/cs", "memory://seams/data", format="voc", overwrite=True)
    assert sorted(mem.find("/seams/data/cs")) == before
    mem.rm("/seams", recursive=True)


def test_voc_objects_of_classes_above_65_stay_their_class(tmp_path):
    from cityscapes_io.png import encode_png

    root = tmp_path / "voc"
    cls = np.zeros((4, 6), np.uint8)
    cls[1:3, 1:4] = 70
    obj = np.zeros((4, 6), np.uint8)
    obj[1:3, 1:4] = 1
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "SegmentationObject").mkdir()
    (root / "SegmentationClass" / "a.png").write_bytes(encode_png(cls))
    (root / "SegmentationObject" / "a.png").write_bytes(encode_png(obj))
    (root / "labelmap.txt").write_text("".join(f"l{i}:{i},{i},{i}::\n" for i in range(80)))
    [frame] = list(cio.open(str(root), format="voc"))
    assert frame.label_ids().max() == 70  # no wrap onto another label
    assert {i.label_id for i in frame.instances()} == {0, 70}


def test_colour_file_follows_the_output_colours(tmp_path):
    root = str(tmp_path / "cs")
    write_frame(root, "train", "a/a_000000_000001", SEMANTIC)
    colors = {l.name: l.color for l in LabelMap.cityscapes() if l.id >= 0}
    colors["road"] = (1, 2, 3)
    out = str(tmp_path / "out")
    cio.convert(root, out, format="cityscapes", label_map=colors)
    from cityscapes_io.png import decode_rgb

    path = os.path.join(out, "gtFine/train/a/a_000000_000001_gtFine_color.png")
    rgb = decode_rgb(open(path, "rb").read(), path)
    road = cio.open(out)[0].label_ids() == cio.open(out).labels["road"].id
    assert road.any() and (rgb[road] == (1, 2, 3)).all()


def test_the_index_of_a_label_filter_holds_no_pixels(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 3}, size=(64, 32))
    ds = cio.open(root).filter(labels=["car"])
    n = len(ds)
    assert n >= 1
    held = [(f._cache, f.source._bytes) for f in ds._index]  # what the index keeps of each frame
    assert held == [({}, {})] * n


def test_an_abandoned_archive_never_replaces_the_old_one(tmp_path):
    import io as _io

    import fsspec

    root = str(tmp_path / "cs")
    generate(root, splits={"train": 3}, size=(64, 32))
    cio.convert(root, "memory://seams-zip/out.zip", format="voc")
    mem = fsspec.filesystem("memory")
    good = mem.cat("/seams-zip/out.zip")
    bad = SEMANTIC.copy()
    bad[0, 0] = 50  # an unknown label in the last frame
    write_frame(root, "train", "zz/zz_000000_000001", bad)
    with pytest.raises(cio.UnknownLabelError):
        cio.convert(root, "memory://seams-zip/out.zip", format="voc", overwrite=True)
    assert mem.cat("/seams-zip/out.zip") == good
    assert len(zipfile.ZipFile(_io.BytesIO(good)).namelist()) > 3
    assert mem.find("/seams-zip") == ["/seams-zip/out.zip"]  # no temporary left
    mem.rm("/seams-zip", recursive=True)


def test_a_lambda_on_error_works_with_workers_and_runs_in_the_caller(tmp_path):
    root = str(tmp_path / "src")
    bad = SEMANTIC.copy()
    bad[0, 0] = 40001
    for k in range(3):
        write_frame(root, "train", f"a/a_000000_00000{k}", bad if k == 1 else SEMANTIC)
    seen = []
    ds = cio.open(root, on_error=lambda e: seen.append(str(e)))
    report = ds.export(str(tmp_path / "out"), "voc", workers=2)
    assert report.written == 3 and len(seen) == 1 and "40001" in seen[0]
    derived = cio.open(root, on_error=lambda e: seen.append(str(e))).remap_labels({"car": "vehicle"})
    seen.clear()
    assert derived.export(str(tmp_path / "out2"), "voc", workers=2).written == 3 and len(seen) == 1


def test_a_bug_in_a_writer_is_not_a_storage_error(tmp_path):
    from cityscapes_io.storage.sinks import open_sink

    for url in (str(tmp_path / "o"), str(tmp_path / "o.zip")):
        sink = open_sink(url)
        with pytest.raises(TypeError):
            sink.put("a.png", None)  # type: ignore[arg-type]
        sink.abort()


def test_no_module_uses_another_module_s_underscore_names():
    """A module's underscore names are its own: no other module of the package imports them or
    reaches them through the module (``ops._View``). Third-party privates are not counted."""
    import ast
    import pathlib

    pkg = pathlib.Path(cio.__file__).parent
    found = []
    for path in sorted(pkg.rglob("*.py")):
        tree = ast.parse(path.read_text())
        ours = set()  # names bound to our modules in this file
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("cityscapes_io")):
                for alias in node.names:
                    if node.module is None and (pkg / f"{alias.name}.pyi").exists():
                        continue  # a private compiled module of the package, imported by its wrapper
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(pkg)}:{node.lineno}: imports {alias.name}")
                    ours.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in ours):
                found.append(f"{path.relative_to(pkg)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, found
