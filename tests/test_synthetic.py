"""Tests of the synthetic dataset generator (cityscapes_io.testing) and the bundled sample."""
from __future__ import annotations

import copy
import io
import json
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

import cityscapes_io as cio
from cityscapes_io import names
from cityscapes_io.labels import LabelMap
from cityscapes_io.polygons import parse_polygons, rasterize, resolve_polygon_label
from cityscapes_io.testing import generate, make_frame

LABELS = LabelMap.cityscapes()
OFFICIAL_IDS = {lab.id for lab in LABELS if lab.id >= 0}
THING_IDS = {lab.id for lab in LABELS if lab.has_instances}
COLORS = LABELS.color_table(256)
SMALL = (256, 128)
SAMPLE = Path(__file__).resolve().parent.parent / "cityscapes_io" / "data" / "sample"
SAMPLE_CALL = dict(splits={"train": 4, "val": 2}, cities=("aachen", "bad-honnef"), size=(256, 128),
                   seed=0, photos=True)
GT_KINDS = ("polygons", "instanceIds", "labelIds", "color")
# The PNG each rasterize() encoding must reproduce.
ENCODING_OF = {"instanceIds": "instanceIds", "labelIds": "ids", "color": "color"}


def png_header(data: bytes):
    """(bit depth, colour type) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def decode(data: bytes):
    img = Image.open(io.BytesIO(data))
    return img.mode, np.asarray(img)


def check_polygons(files, size=SMALL):
    """Assert that the polygons file is well formed, like the release, and that the PNGs are
    exactly what the official rules draw from it; return the parsed document."""
    w, h = size
    doc = json.loads(files["polygons"])
    assert list(doc) == ["imgHeight", "imgWidth", "objects"]
    assert (doc["imgWidth"], doc["imgHeight"]) == (w, h)
    assert doc["objects"]
    for obj in doc["objects"]:
        assert set(obj) == {"label", "polygon", "deleted"} and obj["deleted"] in (0, 1)
        label, _ = resolve_polygon_label(obj["label"])
        assert label is not None, obj["label"]
        pts = obj["polygon"]
        assert len(pts) >= 3
        for p in pts:
            assert len(p) == 2 and all(type(c) is int for c in p)  # integers, as in the release
            assert 0 <= p[0] < w and 0 <= p[1] < h
    polygons = parse_polygons(files["polygons"])
    assert len(polygons) == len(doc["objects"]) and not polygons.problems()
    for kind, encoding in ENCODING_OF.items():
        _, written = decode(files[kind])
        drawn = rasterize(polygons, encoding)
        assert written.shape == drawn.shape and np.array_equal(written.astype(np.int64), drawn.astype(np.int64)), kind
    return doc


def official_values(doc):
    """The instanceIds value of each object by the official rule (None: not drawn)."""
    counters, out = {}, []
    for obj in doc["objects"]:
        label, group = resolve_polygon_label(obj["label"])
        if obj["deleted"] or label.id < 0:
            out.append(None)
        elif label.has_instances and not group:
            n = counters.get(label.name, 0)
            counters[label.name] = n + 1
            out.append(label.id * 1000 + n)
        else:
            out.append(label.id)
    return out


def without(doc, drop):
    """A copy of the polygons document without the objects for which ``drop(obj)`` is true."""
    out = copy.deepcopy(doc)
    out["objects"] = [o for o in out["objects"] if not drop(o)]
    return out


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
    if "polygons" in files:
        check_polygons(files, size)
    return inst


def read_frame(fs, root, split, frame_id, photo=True, annotations="gtFine"):
    files = {k: fs.cat_file(f"{root}/{names.gt_path(split, frame_id, k, annotations)}") for k in GT_KINDS}
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
        for kind in GT_KINDS:
            assert (root / names.gt_path(split, fid, kind)).is_file()
        assert (root / names.image_path(split, fid, ".png")).is_file()
    frames = {names.parse_frame_id(fid).frame for fid in ids}
    assert len(frames) > 1 and 19 in frames  # not all the same frame number
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 9 * 5
    assert not (root / "gtCoarse").exists()


def test_frame_contract(dataset):
    root, splits, ids = dataset
    fs = fsspec.filesystem("file")
    for split, fid in split_of(ids, splits):
        check_frame(read_frame(fs, str(root), split, fid))


def test_instance_numbers_follow_file_order(dataset):
    """The official numbering: per class in file order from 0; an object painted over entirely
    keeps its number, so numbers have gaps (26003 and 26005 without 26004)."""
    root, splits, ids = dataset
    fs = fsspec.filesystem("file")
    zero = gaps = False
    for split, fid in split_of(ids, splits):
        files = read_frame(fs, str(root), split, fid, photo=False)
        doc = json.loads(files["polygons"])
        _, inst = decode(files["instanceIds"])
        inst = inst.astype(np.int64)
        expected = official_values(doc)
        instances = {v for v in expected if v is not None and v >= 1000}
        visible = set(np.unique(inst[inst >= 1000]).tolist())
        assert visible <= instances
        for cls in {v // 1000 for v in instances}:
            numbers = sorted(v % 1000 for v in instances if v // 1000 == cls)
            assert numbers == list(range(len(numbers)))  # 0, 1, 2, ... in file order
            # The n-th object of the class in the file is the one numbered n.
            order = [v for v in expected if v is not None and v // 1000 == cls and v >= 1000]
            assert order == sorted(order)
            seen = sorted(v % 1000 for v in visible if v // 1000 == cls)
            gaps |= bool(len(seen) > 1 and (np.diff(seen) > 1).any())
        zero |= any(v % 1000 == 0 for v in visible)  # e.g. 26000, a first car numbered 0
    assert zero and gaps


def test_groups_are_crowds(dataset):
    """Crowds are ``<label>group`` objects, drawn with the plain class id (v < 1000)."""
    root, splits, ids = dataset
    fs = fsspec.filesystem("file")
    groups = set()
    for split, fid in split_of(ids, splits):
        files = read_frame(fs, str(root), split, fid, photo=False)
        doc = json.loads(files["polygons"])
        _, inst = decode(files["instanceIds"])
        for obj, value in zip(doc["objects"], official_values(doc)):
            label, group = resolve_polygon_label(obj["label"])
            if not group or obj["deleted"]:
                continue
            groups.add(obj["label"])
            assert label.has_instances and value == label.id < 1000
            alone = rasterize(parse_polygons({**doc, "objects": [obj]}), "instanceIds")
            assert set(np.unique(alone).tolist()) == {0, label.id}
        crowds = {v for v in np.unique(inst).tolist() if v < 1000 and v in THING_IDS}
        assert crowds and crowds <= {resolve_polygon_label(o["label"])[0].id for o in doc["objects"]
                                     if resolve_polygon_label(o["label"])[1]}
    assert {"cargroup", "persongroup"} <= groups


def test_deleted_objects_and_license_plates_are_not_drawn(tmp_path):
    """Both are in the polygons files (as in the release) and change no pixel: deleted objects
    are skipped, and a licence plate's id is negative, so the car under it stays car."""
    splits = {"train": 8}
    ids = generate(str(tmp_path), splits=splits, size=SMALL, seed=1, photos=False)
    fs = fsspec.filesystem("file")
    deleted = plates = 0
    for split, fid in split_of(ids, splits):
        files = read_frame(fs, str(tmp_path), split, fid, photo=False)
        doc = check_polygons(files)
        dels = [o for o in doc["objects"] if o["deleted"]]
        plate_objs = [o for o in doc["objects"] if o["label"] == "license plate"]
        deleted += len(dels)
        plates += len(plate_objs)
        if not (dels or plate_objs):
            continue
        bare = parse_polygons(without(doc, lambda o: o["deleted"] or o["label"] == "license plate"))
        for kind, encoding in ENCODING_OF.items():
            assert np.array_equal(decode(files[kind])[1].astype(np.int64), rasterize(bare, encoding).astype(np.int64))
        for plate in plate_objs:
            i = doc["objects"].index(plate)
            car = doc["objects"][i - 1]
            assert car["label"] == "car"  # right after its car, and on it
            where = rasterize(parse_polygons({**doc, "objects": [{**plate, "label": "car"}]}), "ids") > 0
            pair = rasterize(parse_polygons({**doc, "objects": [car, plate]}), "instanceIds")
            assert where.any() and (pair[where] == 26000).mean() > 0.9  # the car stays car under it
        for obj in dels:
            assert resolve_polygon_label(obj["label"])[0].has_instances
    assert deleted >= 1 and plates >= 1


@pytest.mark.parametrize("size", [(32, 16), (64, 32), (200, 100)])
def test_many_frames_arrays(size):
    for seed in range(15):
        a = make_frame(size, seed, photos=False)
        assert a["instanceIds"].dtype == np.uint16 and a["labelIds"].dtype == np.uint8
        assert set(a) == {"instanceIds", "labelIds", "color", "polygons"}
        encoded = {"polygons": json.dumps(a.pop("polygons")).encode()}
        for k, v in a.items():
            buf = io.BytesIO()
            Image.fromarray(v).save(buf, format="PNG")
            encoded[k] = buf.getvalue()
        check_frame(encoded, size=size, photo=False)


def test_deterministic(tmp_path):
    kwargs = dict(splits={"train": 2, "val": 1}, size=SMALL, seed=11)
    ids_a = generate(str(tmp_path / "a"), **kwargs)
    ids_b = generate(str(tmp_path / "b"), **kwargs)
    assert ids_a == ids_b
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a == b and len(a) == 15
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
        assert len(fs.find(root)) == 10
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


def sample_and_fresh(tmp_path, photos: bool):
    """The shipped sample and a fresh run of its recipe, ``{path: bytes}``: the photos only, or
    all but the photos."""
    assert SAMPLE.is_dir()
    generate(str(tmp_path), **SAMPLE_CALL)
    trees = [tree_bytes(SAMPLE), tree_bytes(tmp_path)]
    top = "leftImg8bit/" if photos else "gtFine/"
    return [{k: v for k, v in t.items() if k.startswith(top)} for t in trees]


def assert_same_pixels(shipped, fresh):
    """Same files, the same JSON documents and the same pixels (so that a different zlib does
    not matter)."""
    assert shipped.keys() == fresh.keys()
    for key in shipped:
        if key.endswith(".json"):
            assert json.loads(shipped[key]) == json.loads(fresh[key]), key
            continue
        if not key.endswith(".png"):
            assert shipped[key] == fresh[key], key
            continue
        mode_a, a = decode(shipped[key])
        mode_b, b = decode(fresh[key])
        assert mode_a == mode_b and np.array_equal(a, b), key


def test_bundled_sample_matches_recipe(tmp_path):
    """The shipped sample's ground truth is what the call in the module docstring makes, it is
    small, and it meets the frame contract."""
    shipped, fresh = sample_and_fresh(tmp_path, photos=False)
    assert sum(len(v) for v in tree_bytes(SAMPLE).values()) < 1_000_000
    assert len(shipped) == 6 * 4
    assert_same_pixels(shipped, fresh)
    fs = fsspec.filesystem("file")
    for split, n in SAMPLE_CALL["splits"].items():
        for key in shipped:
            if key.startswith(f"gtFine/{split}/") and key.endswith("_gtFine_instanceIds.png"):
                fid = key[len(f"gtFine/{split}/"):-len("_gtFine_instanceIds.png")]
                check_frame(read_frame(fs, str(SAMPLE), split, fid))


#: The parts of the release the sample has (the docstring's call), and its Foggy photos' density.
SAMPLE_PARTS = ["rightImg8bit", "disparity", "camera", "vehicle", "timestamp", "gtBboxCityPersons", "gtBbox3d",
                "leftImg8bit_foggy"]


def test_bundled_sample_parts_match_recipe(tmp_path):
    """The sample's parts of the release are a run of the recipe with those parts (the Foggy
    photos of one density), of its scenes."""
    generate(str(tmp_path), **SAMPLE_CALL, parts=SAMPLE_PARTS, demo_frames=0)
    fresh = {k: v for k, v in tree_bytes(tmp_path).items() if k.split("/")[0] in SAMPLE_PARTS
             and ("_foggy_" not in k or k.endswith("_beta_0.02.png"))}
    shipped = {k: v for k, v in tree_bytes(SAMPLE).items() if k.split("/")[0] in SAMPLE_PARTS}
    assert len(shipped) == 6 * len(SAMPLE_PARTS)
    assert_same_pixels(shipped, fresh)
    frame = cio.open(str(SAMPLE))["aachen/aachen_000000_000019"]
    assert frame.image_keys() == ["leftImg8bit", "leftImg8bit_foggy@beta_0.02", "rightImg8bit"]
    assert frame.depth() is not None and frame.boxes3d() is not None and frame.persons() is not None


def test_bundled_sample_photos_match_recipe(tmp_path):
    shipped, fresh = sample_and_fresh(tmp_path, photos=True)
    assert len(shipped) == 6
    assert_same_pixels(shipped, fresh)


def test_full_size_photo_is_about_2mb(tmp_path):
    """At 2048x1024 a photo is about 2 MB, like a real one, and the frame meets the contract."""
    ids = generate(str(tmp_path), frames=2, seed=0)
    for fid in ids:
        files = read_frame(fsspec.filesystem("file"), str(tmp_path), "train", fid)
        assert 1_500_000 <= len(files["image"]) <= 2_500_000
        check_frame(files, size=(2048, 1024))


# --------------------------------------------------------------------------------------------
# Speed (issue 18): what made generation fast keeps the outputs valid
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(2048, 1024), (101, 51)])
def test_label_images_are_the_polygons_drawn(tmp_path, size):
    """The PNGs written, fine and coarse, are what the official rules draw from the polygons
    written, at the full size and at an odd one (the photo's last row has no pair)."""
    ids = generate(str(tmp_path), splits={"train": 1}, coarse={"train": 1}, size=size, seed=8)
    fs = fsspec.filesystem("file")
    check_frame(read_frame(fs, str(tmp_path), "train", ids[0]), size=size)
    check_polygons(read_frame(fs, str(tmp_path), "train", ids[0], photo=False, annotations="gtCoarse"), size)


def test_same_seed_same_bytes(tmp_path):
    """Same arguments, byte-identical trees (fine, coarse, photos, reused contents, an odd
    height); make_frame gives the arrays written; another seed changes every file."""
    kwargs = dict(splits={"train": 3, "val": 1}, coarse={"train": 2, "train_extra": 2}, size=(97, 49), seed=21,
                  distinct=2)
    ids = generate(str(tmp_path / "a"), **kwargs)
    assert generate(str(tmp_path / "b"), **kwargs) == ids
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a == b and len(a) == 4 * 5 + 2 * 4 + 2 * 5
    arrays = make_frame((97, 49), 21, split="val", index=0)
    assert np.array_equal(decode(a[names.image_path("val", ids[3], ".png")])[1], arrays["image"])
    assert json.loads(a[names.gt_path("val", ids[3], "polygons")]) == arrays["polygons"]
    generate(str(tmp_path / "c"), **{**kwargs, "seed": 22})
    c = tree_bytes(tmp_path / "c")
    assert c.keys() == a.keys() and all(a[k] != c[k] for k in a)


def test_progress_called_after_each_frame_written(tmp_path):
    """``progress(n)`` after each frame, n = 1, 2, ... over every split (gtFine ones, then the
    splits only gtCoarse has), each time with the files of frames 1..n written (and those of
    frame n + 1 at most besides: it is written meanwhile)."""
    root = tmp_path / "p"
    seen = []

    def progress(n):
        seen.append((n, sum(p.is_file() for p in root.rglob("*"))))

    ids = generate(str(root), splits={"train": 3, "val": 2}, coarse={"train_extra": 2}, size=(64, 32), seed=2,
                   distinct=2, progress=progress)
    assert len(ids) == 7 and [n for n, _ in seen] == list(range(1, 8))
    # 5 files a frame: 4 gtFine + the photo, or 4 gtCoarse + the photo (train_extra).
    assert all(5 * n <= files <= 5 * (n + 1) for n, files in seen) and seen[-1] == (7, 35)


def test_progress_error_stops_generation(tmp_path):
    """An exception raised by the callback ends generate() with it; no frame is started after it."""
    root = tmp_path / "p"

    def progress(n):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(str(root), frames=6, size=(64, 32), progress=progress)
    photos = list((root / "leftImg8bit").rglob("*.png"))
    assert 2 <= len(photos) <= 3  # the two reported, and at most the one being written meanwhile


def test_photo_rows_come_in_pairs():
    """Rows 2r and 2r + 1 of a photo are equal wherever the same region covers both (that is
    what makes the photo cheap to encode); they differ where a boundary passes between them,
    and the picture varies along every row."""
    a = make_frame((256, 129), 5, index=2)
    img, inst = a["image"], a["instanceIds"]
    same = inst[1::2] == inst[0:-1:2]
    assert np.array_equal(img[1::2][same], img[0:-1:2][same])
    assert not same.all() and not np.array_equal(img[1::2][~same], img[0:-1:2][~same])
    assert (img[0::2, 1:] != img[0::2, :-1]).any(axis=2).mean() > 0.5


# --------------------------------------------------------------------------------------------
# Coarse annotations
# --------------------------------------------------------------------------------------------
COARSE_SPLITS = {"train": 3, "val": 2}
COARSE = {"train": 2, "val": 1, "train_extra": 3}


@pytest.fixture(scope="module")
def coarse_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("coarse")
    ids = generate(str(root), splits=COARSE_SPLITS, coarse=COARSE, size=SMALL, seed=4)
    return root, ids


def coarse_ids(root: Path, split: str):
    folder = root / "gtCoarse" / split
    return sorted(p.relative_to(folder).as_posix()[:-len("_gtCoarse_polygons.json")]
                  for p in folder.rglob("*_gtCoarse_polygons.json"))


def test_coarse_tree_names(coarse_dataset):
    root, ids = coarse_dataset
    assert len(ids) == 5 + 3 and len(set(ids)) == 8  # the gtFine ids, then train_extra's
    fine = split_of(ids[:5], COARSE_SPLITS)
    extra = ids[5:]
    for split, n in COARSE.items():
        got = coarse_ids(root, split)
        assert len(got) == n
        if split in COARSE_SPLITS:  # the first gtFine frames of the split, same ids
            assert got == sorted([fid for s, fid in fine if s == split][:n])
        else:
            assert got == sorted(extra)
        for fid in got:
            n_ = names.parse_frame_id(fid)
            assert fid == f"{n_.city}/{n_.city}_{n_.seq:06d}_{n_.frame:06d}"  # the Cityscapes grammar
            for kind in GT_KINDS:
                path = root / names.gt_path(split, fid, kind, annotations="gtCoarse")
                assert path.is_file() and path.name.startswith(fid.split("/")[1] + "_gtCoarse_")
            assert (root / names.image_path(split, fid, ".png")).is_file()
    # train_extra has photos and coarse annotations only; no gtFine tree for it.
    assert not (root / "gtFine" / "train_extra").exists()
    photos = sorted(p.name for p in (root / "leftImg8bit" / "train_extra").rglob("*.png"))
    assert photos == sorted(fid.split("/")[1] + "_leftImg8bit.png" for fid in extra)
    total = {"gtFine": 5 * 4, "gtCoarse": 6 * 4, "leftImg8bit": 8}
    for tree, n in total.items():
        assert len([p for p in (root / tree).rglob("*") if p.is_file()]) == n, tree


def test_coarse_frames(coarse_dataset):
    """Coarse annotations: PNGs drawn from their polygons, fewer polygons than the fine ones,
    much of the frame unlabeled, and what is labelled mostly agrees with the fine annotation."""
    root, ids = coarse_dataset
    fs = fsspec.filesystem("file")
    for split in COARSE:
        for fid in coarse_ids(root, split):
            files = read_frame(fs, str(root), split, fid, photo=False, annotations="gtCoarse")
            doc = check_polygons(files)
            _, inst = decode(files["instanceIds"])
            _, label = decode(files["labelIds"])
            assert np.array_equal(label, np.where(inst >= 1000, inst // 1000, inst))
            unlabeled = (label == 0).mean()
            assert 0.15 <= unlabeled <= 0.85, unlabeled
            assert {7, 11, 23} & set(np.unique(label).tolist())  # road, building or sky
            assert all(len(o["polygon"]) <= 40 for o in doc["objects"])  # rough outlines
            if split == "train_extra":
                continue
            fine = read_frame(fs, str(root), split, fid, photo=False)
            fine_doc = json.loads(fine["polygons"])
            assert len(doc["objects"]) < len(fine_doc["objects"])
            _, fine_label = decode(fine["labelIds"])
            agree = (fine_label == label)[label > 0].mean()
            assert agree > 0.75, agree


def test_coarse_make_frame_matches_files(coarse_dataset):
    root, ids = coarse_dataset
    fs = fsspec.filesystem("file")
    fid = coarse_ids(root, "train_extra")[0]
    index = ids[5:].index(fid)  # its position in train_extra
    a = make_frame(SMALL, 4, split="train_extra", index=index, coarse=True)
    files = read_frame(fs, str(root), "train_extra", fid, annotations="gtCoarse")
    assert json.loads(files["polygons"]) == a["polygons"]
    for kind in ("instanceIds", "labelIds", "color"):
        assert np.array_equal(decode(files[kind])[1], a[kind])
    assert np.array_equal(decode(files["image"])[1], a["image"])
    # The photo of a train frame is the one of its gtFine scene.
    fine = make_frame(SMALL, 4, split="train", index=0, photos=True)
    coarse = make_frame(SMALL, 4, split="train", index=0, photos=True, coarse=True)
    assert np.array_equal(fine["image"], coarse["image"])
    assert not np.array_equal(fine["labelIds"], coarse["labelIds"])


def test_coarse_deterministic_and_distinct(tmp_path):
    kwargs = dict(splits={"train": 3}, coarse={"train": 3, "train_extra": 3}, size=(64, 32), seed=7,
                  photos=False, distinct=2)
    ids = generate(str(tmp_path / "a"), **kwargs)
    assert ids == generate(str(tmp_path / "b"), **kwargs)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a == b and len(a) == 3 * 4 + 6 * 4
    for split, frames in (("train", ids[:3]), ("train_extra", ids[3:])):
        files = [{k: a[names.gt_path(split, fid, k, "gtCoarse")] for k in GT_KINDS} for fid in frames]
        assert files[0] != files[1] and files[2] == files[0]  # distinct=2: the third is the first again
    # The coarse train frames are coarse versions of the fine ones, not train_extra's.
    assert a[names.gt_path("train", ids[0], "polygons", "gtCoarse")] != \
        a[names.gt_path("train_extra", ids[3], "polygons", "gtCoarse")]


def test_coarse_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(str(tmp_path), splits={"train": 2}, coarse={"train": 3}, size=SMALL)
    with pytest.raises(ValueError):
        generate(str(tmp_path), splits={"train": 2}, coarse={"train_extra": -1}, size=SMALL)
    with pytest.raises(ValueError):
        generate(str(tmp_path), splits={"train": 2}, coarse={"../x": 1}, size=SMALL)
