"""Tests of the synthetic dataset generator (cityscapes_io.synthetic) and the bundled sample."""
from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from cityscapes_io import names
from cityscapes_io.labels import LabelMap
from cityscapes_io.synthetic import generate, make_frame

LABELS = LabelMap.cityscapes()
OFFICIAL_IDS = {lab.id for lab in LABELS if lab.id >= 0}
THING_IDS = {lab.id for lab in LABELS if lab.has_instances}
COLORS = LABELS.color_table(256)
SMALL = (256, 128)
SAMPLE = Path(__file__).resolve().parent.parent / "cityscapes_io" / "data" / "sample"
SAMPLE_CALL = dict(splits={"train": 4, "val": 2}, cities=("aachen", "bad-honnef"), size=(256, 128),
                   seed=0, photos=True)


def png_header(data: bytes):
    """(bit depth, colour type) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def decode(data: bytes):
    img = Image.open(io.BytesIO(data))
    return img.mode, np.asarray(img)


def tree_bytes(root: Path):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def split_of(frame_ids, splits):
    """Map the ids returned by generate() back to their splits (they come split by split)."""
    out, i = [], 0
    for split, n in splits.items():
        out += [(split, fid) for fid in frame_ids[i:i + n]]
        i += n
    return out


def check_frame(files, size=SMALL, photo=True):
    """Assert the contract of one frame given its {kind: bytes}; return the instanceIds array."""
    w, h = size
    assert png_header(files["instanceIds"]) == (16, 0)  # 16-bit gray
    assert png_header(files["labelIds"]) == (8, 0)  # 8-bit gray
    assert png_header(files["color"]) == (8, 6)  # RGBA 8-bit
    mode, inst = decode(files["instanceIds"])
    assert mode in ("I;16", "I")
    inst = inst.astype(np.int64)
    assert inst.shape == (h, w)
    mode, label = decode(files["labelIds"])
    assert mode == "L" and label.dtype == np.uint8 and label.shape == (h, w)
    mode, color = decode(files["color"])
    assert mode == "RGBA" and color.shape == (h, w, 4)
    if photo:
        assert png_header(files["image"]) == (8, 2)  # RGB 8-bit
        mode, rgb = decode(files["image"])
        assert mode == "RGB" and rgb.shape == (h, w, 3)
        assert rgb.std() > 10  # not a flat picture
    # Consistency of the three ground-truth files.
    assert np.array_equal(label, np.where(inst >= 1000, inst // 1000, inst))
    assert np.array_equal(color[..., :3], COLORS[label])
    assert (color[..., 3] == 255).all()
    # Official ids only; instances and crowds only of classes with instances.
    values = np.unique(inst)
    assert set(np.unique(label).tolist()) <= OFFICIAL_IDS
    instances = values[values >= 1000]
    assert set((instances // 1000).tolist()) <= THING_IDS
    assert 5 <= len(instances) <= 30
    crowds = [v for v in values if v < 1000 and v in THING_IDS]
    assert crowds, "no crowd region"
    # A realistic background: road, sky or buildings, and some void.
    assert {7, 11}.issubset(values.tolist()) or {7, 23}.issubset(values.tolist())
    assert set(values.tolist()) & {0, 1, 2, 3, 4}
    return inst


def read_frame(fs, root, split, frame_id, photo=True):
    files = {k: fs.cat_file(f"{root}/{names.gt_path(split, frame_id, k)}") for k in ("instanceIds", "labelIds", "color")}
    if photo:
        files["image"] = fs.cat_file(f"{root}/{names.image_path(split, frame_id, '.png')}")
    return files


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    splits = {"train": 6, "val": 3}
    ids = generate(str(root), splits=splits, size=SMALL, seed=3)
    return root, splits, ids


def test_names_and_layout(dataset):
    root, splits, ids = dataset
    assert len(ids) == 9 and len(set(ids)) == 9
    pairs = split_of(ids, splits)
    for j, (split, fid) in enumerate(pairs[:6]):
        assert fid.split("/")[0] == ("aachen", "bad-honnef")[j % 2]  # round-robin
    for split, fid in pairs:
        n = names.parse_frame_id(fid)
        assert n.city in ("aachen", "bad-honnef") and n.seq is not None and n.frame is not None
        assert fid == f"{n.city}/{n.city}_{n.seq:06d}_{n.frame:06d}"
        for kind in ("instanceIds", "labelIds", "color"):
            assert (root / names.gt_path(split, fid, kind)).is_file()
        assert (root / names.image_path(split, fid, ".png")).is_file()
    frames = {names.parse_frame_id(fid).frame for fid in ids}
    assert len(frames) > 1 and 19 in frames  # not all the same frame number
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 9 * 4


def test_frame_contract(dataset):
    root, splits, ids = dataset
    fs = fsspec.filesystem("file")
    for split, fid in split_of(ids, splits):
        check_frame(read_frame(fs, str(root), split, fid))


def test_realistic_instance_numbers(dataset):
    root, splits, ids = dataset
    fs = fsspec.filesystem("file")
    zero = gaps = False
    for split, fid in split_of(ids, splits):
        _, inst = decode(read_frame(fs, str(root), split, fid, photo=False)["instanceIds"])
        inst = inst.astype(np.int64)
        values = np.unique(inst[inst >= 1000])
        zero |= bool((values % 1000 == 0).any())  # e.g. 26000, a first instance numbered 0
        for cls in np.unique(values // 1000):
            numbers = np.sort(values[values // 1000 == cls] % 1000)
            gaps |= bool(len(numbers) > 1 and (np.diff(numbers) > 1).any())  # e.g. 26003, 26005
    assert zero and gaps


@pytest.mark.parametrize("size", [(32, 16), (64, 32), (200, 100)])
def test_many_frames_arrays(size):
    for seed in range(15):
        a = make_frame(size, seed, photos=False)
        assert a["instanceIds"].dtype == np.uint16 and a["labelIds"].dtype == np.uint8
        files = {k: Image.fromarray(v) for k, v in a.items()}
        encoded = {}
        for k, img in files.items():
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            encoded[k] = buf.getvalue()
        check_frame(encoded, size=size, photo=False)


def test_deterministic(tmp_path):
    kwargs = dict(splits={"train": 2, "val": 1}, size=SMALL, seed=11)
    ids_a = generate(str(tmp_path / "a"), **kwargs)
    ids_b = generate(str(tmp_path / "b"), **kwargs)
    assert ids_a == ids_b
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a == b and len(a) == 12
    generate(str(tmp_path / "c"), **{**kwargs, "seed": 12})
    c = tree_bytes(tmp_path / "c")
    assert c.keys() == a.keys()
    assert all(a[k] != c[k] for k in a)


def test_photos_off_keeps_ground_truth(tmp_path):
    generate(str(tmp_path / "a"), frames=2, size=SMALL, seed=5)
    generate(str(tmp_path / "b"), frames=2, size=SMALL, seed=5, photos=False)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert not any(k.startswith("leftImg8bit/") for k in b)
    assert b == {k: v for k, v in a.items() if k.startswith("gtFine/")}


def test_distinct_reuses_bytes(tmp_path):
    ids = generate(str(tmp_path / "d"), splits={"train": 5, "val": 3}, size=SMALL, seed=2, distinct=2)
    full = generate(str(tmp_path / "f"), splits={"train": 2, "val": 2}, size=SMALL, seed=2)
    fs = fsspec.filesystem("file")
    pairs = split_of(ids, {"train": 5, "val": 3})
    frames = [read_frame(fs, str(tmp_path / "d"), s, fid) for s, fid in pairs]
    train, val = frames[:5], frames[5:]
    assert train[0] != train[1] and val[0] != val[1] and train[0] != val[0]
    for j in range(2, 5):
        assert train[j] == train[j % 2]
    assert val[2] == val[0]
    # The distinct contents are the frames a run without `distinct` writes at those positions.
    full_frames = [read_frame(fs, str(tmp_path / "f"), s, fid)
                   for s, fid in split_of(full, {"train": 2, "val": 2})]
    assert full_frames == [train[0], train[1], val[0], val[1]]
    assert len(set(ids)) == 8


def test_memory_filesystem():
    url = f"memory://synthetic-{uuid.uuid4().hex}"
    fs, root = fsspec.core.url_to_fs(url)
    try:
        ids = generate(url, frames=2, size=SMALL, seed=1)
        assert len(ids) == 2
        for fid in ids:
            check_frame(read_frame(fs, root, "train", fid))
        assert len(fs.find(root)) == 8
    finally:
        if fs.exists(root):
            fs.rm(root, recursive=True)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(str(tmp_path), size=(8, 8))
    with pytest.raises(ValueError):
        generate(str(tmp_path), distinct=0)
    with pytest.raises(ValueError):
        generate(str(tmp_path), cities=())
    with pytest.raises(ValueError):
        generate(str(tmp_path), cities=("../evil",), size=SMALL)


def test_bundled_sample_matches_recipe(tmp_path):
    """The shipped sample is what the call in the module docstring makes (pixels compared, so
    that a different zlib does not matter), and it is small."""
    assert SAMPLE.is_dir()
    shipped = tree_bytes(SAMPLE)
    assert sum(len(v) for v in shipped.values()) < 1_000_000
    generate(str(tmp_path), **SAMPLE_CALL)
    fresh = tree_bytes(tmp_path)
    assert shipped.keys() == fresh.keys() and len(shipped) == 6 * 4
    for key in shipped:
        mode_a, a = decode(shipped[key])
        mode_b, b = decode(fresh[key])
        assert mode_a == mode_b and np.array_equal(a, b), key
    fs = fsspec.filesystem("file")
    for split, n in SAMPLE_CALL["splits"].items():
        for key in shipped:
            if key.startswith(f"gtFine/{split}/") and key.endswith("_gtFine_instanceIds.png"):
                fid = key[len(f"gtFine/{split}/"):-len("_gtFine_instanceIds.png")]
                check_frame(read_frame(fs, str(SAMPLE), split, fid))


@pytest.mark.skipif(os.environ.get("CITYSCAPES_IO_SLOW") != "1", reason="set CITYSCAPES_IO_SLOW=1")
def test_full_size_photo_is_about_2mb(tmp_path):
    ids = generate(str(tmp_path), frames=2, seed=0)
    for fid in ids:
        files = read_frame(fsspec.filesystem("file"), str(tmp_path), "train", fid)
        assert 1_500_000 <= len(files["image"]) <= 2_500_000
        check_frame(files, size=(2048, 1024))
