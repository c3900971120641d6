"""The synthetic generator's other parts of the release (issue 21): ``generate(..., parts=...)``.

Every part's files are checked by name, decoded and parsed with :mod:`cityscapes_io.parts`,
and checked against the scene: the depth from the disparity and the camera is the flat-ground
world's (the road at its row's depth, people at the depth of their feet), the fog follows it,
the snippets are numbered around the annotated frame (clipped below 0), the 16-bit photos are
16-bit, the CityPersons and 3D boxes are those of the frame's instances. The other files are
byte for byte what they are without parts (the shipped sample).

Opt-in, against the official cityscapesScripts 2.3.0 (set ``CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON``
to its python, see tests/test_official_scripts.py): the ``_gtBbox3d.json`` and
``_gtBboxCityPersons.json`` files load with the official ``Annotation``, the official
``Box3dImageTransform`` projects the 3D boxes onto their ``2d.amodal`` boxes, and the official
``evalObjectDetection3d`` scores the ground truth given as predictions at mAP 1.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CITYSCAPESSCRIPTS, needs_cityscapesscripts
from PIL import Image

from cityscapes_io import parts
from cityscapes_io.cli import main
from cityscapes_io.labels import LabelMap
from cityscapes_io.polygons import resolve_polygon_label
from cityscapes_io.testing import PART_FOLDERS, generate
from cityscapes_io.testing.synthetic import DEMO_CITIES, FOG_BETAS, RAIN_PATTERNS, RAIN_SETTINGS

LABELS = LabelMap.cityscapes()
SIZE = (128, 64)
CALL = dict(splits={"train": 3, "val": 1}, coarse={"train_extra": 1}, cities=("aachen", "bad-honnef"), size=SIZE,
            seed=3, parts="all", demo_frames=2)
# What generate(**CALL) writes: (split, frame id, content index in its split).
FRAMES = [("train", "aachen/aachen_000000_000019", 0), ("train", "bad-honnef/bad-honnef_000000_000019", 1),
          ("train", "aachen/aachen_000001_000019", 2), ("val", "aachen/aachen_000002_000042", 0),
          ("train_extra", "aachen/aachen_000003_000019", 0)]
FINE = [f for f in FRAMES if f[0] != "train_extra"]
VEHICLE_KEYS = {"gpsHeading", "gpsLatitude", "gpsLongitude", "gpsAltitude", "speed", "outsideTemperature", "yawRate"}
SAMPLE = Path(__file__).resolve().parent.parent / "cityscapes_io" / "data" / "sample"
SAMPLE_CALL = dict(splits={"train": 4, "val": 2}, cities=("aachen", "bad-honnef"), size=(256, 128), seed=0,
                   photos=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts") / "ds"
    ids = generate(str(root), **CALL)
    assert ids == [fid for _, fid, _ in FRAMES]
    return root


def read(root: Path, rel: str) -> bytes:
    return (root / rel).read_bytes()


def part(root: Path, folder: str, split: str, frame_id: str, suffix: str) -> bytes:
    return read(root, f"{folder}/{split}/{frame_id}{suffix}")


def gray(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def rgb(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.mode == "RGB"
    return np.asarray(img)


def camera_of(root, split, frame_id) -> parts.Camera:
    return parts.parse_camera(part(root, "camera", split, frame_id, "_camera.json"), "camera")


def depth_of(root, split, frame_id) -> np.ndarray:
    disparity = parts.decode_disparity(part(root, "disparity", split, frame_id, "_disparity.png"), "disparity")
    return parts.depth(disparity, camera_of(root, split, frame_id))


def ground_depth(cam: parts.Camera, rows) -> np.ndarray:
    """The flat ground's depth at image rows ``rows`` as the camera sees it (roll 0; inf at and
    above the horizon)."""
    dv = np.asarray(rows, dtype=np.float64) - (cam.v0 - cam.fy * math.tan(cam.pitch))
    return np.where(dv > 0, cam.z * cam.fy / (math.cos(cam.pitch) * np.maximum(dv, 1e-9)), np.inf)


def instance_objects(doc):
    """``(instanceIds value, polygon object)`` of the objects drawn as instances, by the official rule."""
    counters = {}
    for obj in doc["objects"]:
        label, group = resolve_polygon_label(obj["label"])
        if obj["deleted"] or label is None or label.id < 0 or group or not label.has_instances:
            continue
        n = counters.get(label.name, 0)
        counters[label.name] = n + 1
        yield label.id * 1000 + n, obj


def mask_box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def png16_rgb(data: bytes) -> np.ndarray:
    """A 16-bit RGB PNG decoded here (Pillow reduces it to 8 bits): chunks and CRCs checked,
    every filter type undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + payload)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + n
    w, h, depth, color, _, _, interlace = header
    assert (depth, color, interlace) == (16, 2, 0)
    stride, bpp = w * 6, 6
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.int64)
    prev = np.zeros(stride, np.int64)
    for y in range(h):
        kind, line = int(raw[y, 0]), raw[y, 1:].astype(np.int64)
        if kind in (0, 2):
            cur = line if kind == 0 else (line + prev) % 256
        else:
            cur = np.zeros(stride, np.int64)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                c = prev[i - bpp] if i >= bpp else 0
                b = prev[i]
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (line[i] + pred) % 256
        out[y], prev = cur, cur
    return out.astype(np.uint8).view(">u2").reshape(h, w, 3).astype(np.uint16)


# -- names ----------------------------------------------------------------------------------------------
def test_every_part_is_written_under_its_name(tree):
    folders = {p.name for p in tree.iterdir()}
    assert folders == {"gtFine", "gtCoarse", "leftImg8bit", *PART_FOLDERS} - {"leftImg8bit_demoVideo"}
    for split, fid, _ in FRAMES:
        for folder, suffix in [("rightImg8bit", "_rightImg8bit.png"), ("leftImg16bit", "_leftImg16bit.png"),
                               ("rightImg16bit", "_rightImg16bit.png"),
                               ("leftImg8bit_blurred", "_leftImg8bit_blurred.png"), ("disparity", "_disparity.png"),
                               ("camera", "_camera.json"), ("vehicle", "_vehicle.json"),
                               ("timestamp", "_timestamp.txt")]:
            assert (tree / folder / split / f"{fid}{suffix}").is_file(), (folder, fid)
        for folder in ("leftImg8bit_foggy", "leftImg8bit_foggyDBF"):
            names = sorted(p.name for p in (tree / folder / split).glob(f"{fid}_*"))
            assert names == sorted(f"{fid.split('/')[1]}_leftImg8bit_foggy_beta_{b}.png" for b in FOG_BETAS)
        for folder in ("leftImg8bit_transmittance", "leftImg8bit_transmittanceDBF"):
            names = sorted(p.name for p in (tree / folder / split).glob(f"{fid}_*"))
            assert names == sorted(f"{fid.split('/')[1]}_leftImg8bit_transmittance_beta_{b}.png" for b in FOG_BETAS)
        fine = split != "train_extra"  # no fine annotation, no boxes
        assert (tree / "gtBboxCityPersons" / split / f"{fid}_gtBboxCityPersons.json").is_file() == fine
        assert (tree / "gtBbox3d" / split / f"{fid}_gtBbox3d.json").is_file() == fine
    # the exact spellings of one frame
    assert (tree / "leftImg8bit_foggy/train/aachen/aachen_000000_000019_leftImg8bit_foggy_beta_0.005.png").is_file()
    assert (tree / "leftImg8bit_rain/train/aachen/aachen_000000_000019"
                   "_leftImg8bit_rain_alpha_0.01_beta_0.005_dropsize_0.01_pattern_1.png").is_file()
    assert (tree / "gtBboxCityPersons/val/aachen/aachen_000002_000042_gtBboxCityPersons.json").is_file()


def test_rain_covers_every_other_train_frame(tree):
    expected = sorted(f"_rain_alpha_{a}_beta_{b}_dropsize_{d}_pattern_{p}.png"
                      for a, b, d in RAIN_SETTINGS for p in RAIN_PATTERNS)
    assert len(expected) == 6
    for split, fid, k in FRAMES:
        found = sorted(p.name.split("_leftImg8bit")[1] for p in (tree / "leftImg8bit_rain" / split).glob(f"{fid}_*")) \
            if (tree / "leftImg8bit_rain" / split).is_dir() else []
        assert found == (expected if split == "train" and k % 2 == 0 else []), fid
    photo = rgb(part(tree, "leftImg8bit", "train", FRAMES[0][1], "_leftImg8bit.png"))
    rainy = rgb(part(tree, "leftImg8bit_rain", "train", FRAMES[0][1],
                     "_leftImg8bit_rain_alpha_0.03_beta_0.015_dropsize_0.002_pattern_2.png"))
    assert rainy.shape == photo.shape and not np.array_equal(rainy, photo)


def test_demo_video_is_a_photo_only_split(tree):
    found = sorted(str(p.relative_to(tree)) for p in (tree / "leftImg8bit" / "demoVideo").rglob("*") if p.is_file())
    assert found == [f"leftImg8bit/demoVideo/{c}/{c}_000000_{n:06d}_leftImg8bit.png" for c in DEMO_CITIES
                     for n in (1, 2)]
    first, second = (rgb(read(tree, f)) for f in found[:2])
    assert first.shape == (SIZE[1], SIZE[0], 3) and not np.array_equal(first, second)
    assert not (tree / "gtFine" / "demoVideo").exists()


def test_unknown_part_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown part 'nope'.*rightImg8bit.*gtBbox3d"):
        generate(str(tmp_path / "x"), frames=1, size=(64, 32), parts=["disparity", "nope"])
    assert not (tmp_path / "x").exists()
    generate(str(tmp_path / "y"), frames=1, size=(64, 32), parts="camera,vehicle")
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == ["camera", "gtFine", "leftImg8bit", "vehicle"]


# -- disparity, camera, depth -----------------------------------------------------------------------------
def test_camera_is_a_release_camera_scaled(tree):
    seen = set()
    for split, fid, _ in FRAMES:
        doc = json.loads(part(tree, "camera", split, fid, "_camera.json"))
        assert set(doc) == {"extrinsic", "intrinsic"}
        assert set(doc["extrinsic"]) == {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}
        assert set(doc["intrinsic"]) == {"fx", "fy", "u0", "v0"}
        cam = camera_of(tree, split, fid)
        assert cam.fx == pytest.approx(2262.52 * SIZE[0] / 2048, rel=0.005)
        assert cam.fy == pytest.approx(2265.30 * SIZE[1] / 1024, rel=0.005)
        assert 0.2 < cam.baseline < 0.22 and 1.15 < cam.z < 1.3 and 1.6 < cam.x < 1.8
        assert abs(cam.pitch) < 0.06 and abs(cam.yaw) < 0.03 and cam.roll == 0.0
        assert 0.45 * SIZE[0] < cam.u0 < 0.6 * SIZE[0] and 0.45 * SIZE[1] < cam.v0 < 0.55 * SIZE[1]
        seen.add((cam.fx, cam.baseline))
        if split != "train_extra":  # the camera sees the horizon where the road's apex is drawn
            polygons = json.loads(part(tree, "gtFine", split, fid, "_gtFine_polygons.json"))
            apex = min(p[1] for o in polygons["objects"] if o["label"] == "road" for p in o["polygon"])
            assert abs(apex - (cam.v0 - cam.fy * math.tan(cam.pitch))) <= 1.0
    assert len(seen) == len(FRAMES)  # each frame its own calibration


def test_depth_from_disparity_and_camera_is_the_scene_depth(tree):
    for split, fid, _ in FINE:
        raw = gray(part(tree, "disparity", split, fid, "_disparity.png"))
        assert raw.dtype == np.uint16 and raw.shape == (SIZE[1], SIZE[0])
        labels = gray(part(tree, "gtFine", split, fid, "_gtFine_labelIds.png"))
        cam = camera_of(tree, split, fid)
        depth = depth_of(tree, split, fid)
        valid = raw > 0
        assert np.array_equal(valid, np.isfinite(depth))
        assert 0.2 < valid.mean() < 0.9
        for name in ("sky", "ego vehicle", "rectification border", "out of roi"):
            assert not valid[labels == LABELS[name].id].any(), name
        assert not valid[:, 0].any()  # the left band
        # The road: the flat ground's depth at its row (to the disparity's 1/256 pixel).
        rows = np.broadcast_to(np.arange(SIZE[1])[:, None], labels.shape)
        road = (labels == LABELS["road"].id) & valid
        assert road.sum() > 200
        model = ground_depth(cam, rows[road])
        disparity = (raw[road].astype(np.float64) - 1) / 256
        assert np.all(np.abs(disparity - cam.baseline * cam.fx / model) <= 1 / 512 + 1e-6)
        assert np.allclose(depth[road], model, rtol=0.05)
        by_row = [float(np.mean(depth[y][road[y]])) for y in range(SIZE[1]) if road[y].any()]
        assert all(a > b for a, b in zip(by_row, by_row[1:]))  # farther towards the horizon
        assert 3 < min(by_row) < 15 and max(by_row) > 1.3 * min(by_row)
        # Standing objects: one depth each, the ground's at their feet.
        inst = gray(part(tree, "gtFine", split, fid, "_gtFine_instanceIds.png"))
        doc = json.loads(part(tree, "gtFine", split, fid, "_gtFine_polygons.json"))
        checked = 0
        for value, obj in instance_objects(doc):
            seen = (inst == value) & valid
            if not seen.any():
                continue
            d = depth[seen]
            assert d.max() / d.min() < 1.03, (fid, value)
            if value // 1000 in (LABELS["person"].id, LABELS["rider"].id):
                foot = max(p[1] for p in obj["polygon"])  # the feet's row, rounded
                if foot < SIZE[1] - 1:  # (not cut by the image)
                    near, far = ground_depth(cam, [foot + 0.5, foot - 0.5])
                    assert near * 0.98 <= float(np.median(d)) <= far * 1.02, (fid, value)
                    checked += 1
        assert checked or not any(v // 1000 == LABELS["person"].id for v, _ in instance_objects(doc))


def test_fog_follows_the_depth(tree):
    split, fid, _ = FRAMES[0]
    photo = rgb(part(tree, "leftImg8bit", split, fid, "_leftImg8bit.png")).astype(np.float64)
    depth = depth_of(tree, split, fid)
    labels = gray(part(tree, "gtFine", split, fid, "_gtFine_labelIds.png"))
    sky = labels == LABELS["sky"].id
    valid = np.isfinite(depth)
    for beta in FOG_BETAS:
        t = gray(part(tree, "leftImg8bit_transmittance", split, fid, f"_leftImg8bit_transmittance_beta_{beta}.png"))
        assert t.dtype == np.uint8 and t.shape == depth.shape
        assert np.all(np.abs(t[valid] / 255 - np.exp(-beta * depth[valid])) <= 2.5 / 255)
        assert np.all(t[sky] == 0)
        foggy = rgb(part(tree, "leftImg8bit_foggy", split, fid, f"_leftImg8bit_foggy_beta_{beta}.png"))
        assert np.all(foggy[sky] == 204)  # the atmospheric light, 0.8 gray
        tt = (t / 255)[..., None]
        assert np.all(np.abs(foggy - (photo * tt + 204 * (1 - tt))) <= 2.0)
        dbf = rgb(part(tree, "leftImg8bit_foggyDBF", split, fid, f"_leftImg8bit_foggy_beta_{beta}.png"))
        t_dbf = gray(part(tree, "leftImg8bit_transmittanceDBF", split, fid,
                          f"_leftImg8bit_transmittance_beta_{beta}.png"))
        assert dbf.shape == foggy.shape and not np.array_equal(t_dbf, t)
    thick = rgb(part(tree, "leftImg8bit_foggy", split, fid, "_leftImg8bit_foggy_beta_0.02.png")).astype(float)
    thin = rgb(part(tree, "leftImg8bit_foggy", split, fid, "_leftImg8bit_foggy_beta_0.005.png")).astype(float)
    assert np.abs(thick - 204).mean() < np.abs(thin - 204).mean()  # thicker fog: nearer the fog's gray


# -- photos ---------------------------------------------------------------------------------------------
def test_right_photo_is_the_left_moved_by_the_disparity(tree):
    for split, fid, _ in FRAMES[:2]:
        left = rgb(part(tree, "leftImg8bit", split, fid, "_leftImg8bit.png"))
        right = rgb(part(tree, "rightImg8bit", split, fid, "_rightImg8bit.png"))
        raw = gray(part(tree, "disparity", split, fid, "_disparity.png"))
        ys, xs = np.nonzero(raw > 0)
        src = np.clip(xs + np.rint((raw[ys, xs] - 1) / 256).astype(int), 0, SIZE[0] - 1)
        assert np.mean(np.all(right[ys, xs] == left[ys, src], axis=1)) > 0.98
        assert not np.array_equal(left, right)


def test_sixteen_bit_photos_are_sixteen_bit(tree):
    for split, fid, _ in FRAMES[:2]:
        for side in ("left", "right"):
            data = part(tree, f"{side}Img16bit", split, fid, f"_{side}Img16bit.png")
            assert (data[24], data[25]) == (16, 2)  # IHDR: 16-bit RGB
            eight = rgb(part(tree, f"{side}Img8bit", split, fid, f"_{side}Img8bit.png"))
            deep = png16_rgb(data)
            assert np.array_equal(deep >> 8, eight)
            low = (deep & 0xFF).astype(int)
            assert np.all(np.abs(low - eight) <= 3)
            assert np.count_nonzero(low != eight) > deep.size // 2  # the low byte carries more
            assert np.array_equal(rgb(data), eight)  # what Pillow makes of it: the high byte


def test_blurred_photo_differs_only_where_people_and_plates_are(tree):
    changed_any = False
    for split, fid, _ in FINE:
        photo = rgb(part(tree, "leftImg8bit", split, fid, "_leftImg8bit.png"))
        blurred = rgb(part(tree, "leftImg8bit_blurred", split, fid, "_leftImg8bit_blurred.png"))
        inst = gray(part(tree, "gtFine", split, fid, "_gtFine_instanceIds.png"))
        doc = json.loads(part(tree, "gtFine", split, fid, "_gtFine_polygons.json"))
        allowed = np.zeros(inst.shape, bool)
        for obj in doc["objects"]:
            if obj["label"] in ("person", "rider", "license plate") and not obj["deleted"]:
                pts = np.array(obj["polygon"])
                allowed[pts[:, 1].min():pts[:, 1].max() + 1, pts[:, 0].min():pts[:, 0].max() + 1] = True
        changed = np.any(photo != blurred, axis=2)
        assert not (changed & ~allowed).any()
        changed_any |= bool(changed.any())
    assert changed_any


# -- vehicle, time, snippets ----------------------------------------------------------------------------------
def test_vehicle_and_timestamp(tree):
    for split, fid, _ in FRAMES:
        vehicle = parts.parse_vehicle(part(tree, "vehicle", split, fid, "_vehicle.json"), "vehicle")
        assert set(vehicle) == VEHICLE_KEYS
        assert 0 <= vehicle["gpsHeading"] < 360 and 47 < vehicle["gpsLatitude"] < 55
        assert 5 < vehicle["gpsLongitude"] < 15 and 0 <= vehicle["speed"] < 20
        stamp = parts.parse_timestamp(part(tree, "timestamp", split, fid, "_timestamp.txt"), "timestamp")
        assert 1.4e18 < stamp < 1.5e18


@pytest.mark.parametrize("split, fid, numbers", [("train", "aachen/aachen_000000_000019", range(0, 30)),
                                                  ("val", "aachen/aachen_000002_000042", range(23, 53))])
def test_snippet_of_thirty_frames_around_the_annotated_one(tree, split, fid, numbers):
    city, base = fid.split("/")
    stem = base[:-6]
    frame = int(base[-6:])
    for folder, suffix in [("leftImg8bit_sequence", "_leftImg8bit.png"), ("rightImg8bit_sequence", "_rightImg8bit.png"),
                           ("disparity_sequence", "_disparity.png"), ("vehicle_sequence", "_vehicle.json"),
                           ("timestamp_sequence", "_timestamp.txt")]:
        found = sorted(p.name for p in (tree / folder / split / city).glob(f"{stem}*"))
        assert found == [f"{stem}{n:06d}{suffix}" for n in numbers], folder
        # the annotated frame, the 20th, is the frame's own file
        own = {"leftImg8bit_sequence": "leftImg8bit", "rightImg8bit_sequence": "rightImg8bit",
               "disparity_sequence": "disparity", "vehicle_sequence": "vehicle",
               "timestamp_sequence": "timestamp"}[folder]
        assert found[19] == f"{base}{suffix}"
        assert read(tree, f"{folder}/{split}/{city}/{found[19]}") == part(tree, own, split, fid, suffix)
    photos = [rgb(read(tree, f"leftImg8bit_sequence/{split}/{city}/{stem}{n:06d}_leftImg8bit.png")) for n in numbers]
    assert all(p.shape == (SIZE[1], SIZE[0], 3) for p in photos)
    assert all(not np.array_equal(a, b) for a, b in zip(photos, photos[1:]))
    raw = gray(read(tree, f"disparity_sequence/{split}/{city}/{stem}{numbers[0]:06d}_disparity.png"))
    assert raw.dtype == np.uint16 and (raw > 0).any()
    stamps = [parts.parse_timestamp(read(tree, f"timestamp_sequence/{split}/{city}/{stem}{n:06d}_timestamp.txt"), "t")
              for n in numbers]
    steps = np.diff(stamps)
    assert np.all(np.abs(steps / (1e9 / 17) - 1) < 0.01)  # about 17 Hz, increasing
    readings = [parts.parse_vehicle(read(tree, f"vehicle_sequence/{split}/{city}/{stem}{n:06d}_vehicle.json"), "v")
                for n in numbers]
    assert all(set(r) == VEHICLE_KEYS for r in readings)
    assert frame in numbers


def test_snippet_of_frame_7_is_clipped(tmp_path):
    ids = generate(str(tmp_path / "ds"), splits={"train": 9}, cities=("aachen",), size=(64, 32),
                   parts=["leftImg8bit_sequence", "timestamp_sequence"])
    assert ids[8] == "aachen/aachen_000008_000007"
    found = sorted(p.name for p in (tmp_path / "ds/leftImg8bit_sequence/train/aachen").glob("aachen_000008_*"))
    assert found == [f"aachen_000008_{n:06d}_leftImg8bit.png" for n in range(0, 18)]  # 7 - 19 < 0: from 0
    assert (tmp_path / "ds/leftImg8bit_sequence/train/aachen/aachen_000008_000007_leftImg8bit.png").read_bytes() == \
        (tmp_path / "ds/leftImg8bit/train/aachen/aachen_000008_000007_leftImg8bit.png").read_bytes()
    stamps = sorted((tmp_path / "ds/timestamp_sequence/train/aachen").glob("aachen_000008_*"))
    assert len(stamps) == 18
    assert len(list((tmp_path / "ds/leftImg8bit_sequence/train/aachen").glob("aachen_000000_*"))) == 30


def test_distinct_contents_keep_their_parts_and_each_frame_its_snippet(tmp_path):
    ids = generate(str(tmp_path / "ds"), splits={"train": 9}, cities=("aachen",), size=(64, 32), distinct=2,
                   parts=["camera", "leftImg8bit_sequence"])
    root = tmp_path / "ds"
    cams = [part(root, "camera", "train", fid, "_camera.json") for fid in ids]
    assert cams[0] == cams[2] == cams[8] and cams[1] == cams[3] and cams[0] != cams[1]
    assert len(list((root / "leftImg8bit_sequence/train/aachen").glob("aachen_000008_*"))) == 18
    assert len(list((root / "leftImg8bit_sequence/train/aachen").glob("aachen_000002_*"))) == 30  # frame 42
    assert (root / "leftImg8bit_sequence/train/aachen/aachen_000002_000042_leftImg8bit.png").read_bytes() == \
        (root / "leftImg8bit/train/aachen/aachen_000002_000042_leftImg8bit.png").read_bytes()


# -- annotations ------------------------------------------------------------------------------------------------
def test_citypersons_are_the_frames_people(tree):
    people = 0
    for split, fid, _ in FINE:
        data = part(tree, "gtBboxCityPersons", split, fid, "_gtBboxCityPersons.json")
        doc = json.loads(data)
        assert list(doc) == ["imgHeight", "imgWidth", "objects"] and (doc["imgWidth"], doc["imgHeight"]) == SIZE
        persons = parts.parse_persons(data, "persons")
        inst = gray(part(tree, "gtFine", split, fid, "_gtFine_instanceIds.png"))
        values = {int(v) for v in np.unique(inst) if v >= 1000 and v // 1000 in (24, 25)}
        by_id = {p.instance_id: p for p in persons if p.instance_id}
        assert set(by_id) == values and len(by_id) == len([p for p in persons if p.instance_id])
        for value, p in by_id.items():
            assert p.label == ("pedestrian" if value // 1000 == 24 else "rider")
            assert list(p.bbox_vis) == mask_box(inst == value)
            x, y, w, h = p.bbox
            vx, vy, vw, vh = p.bbox_vis
            assert x <= vx and y <= vy and x + w >= vx + vw and y + h >= vy + vh  # the full box holds the visible
            assert w >= 0.41 * h - 1 or x == 0 or x + w == SIZE[0]
            assert 0 < p.visibility <= 1
        crowds = [p for p in persons if p.instance_id == 0]
        for c in crowds:
            assert c.label in ("person group", "ignore") and c.bbox == c.bbox_vis
        assert bool(crowds) == bool(np.isin(inst, [24, 25]).any())
        people += len(by_id)
    assert people > 0


def project(sensor, points):
    """Pixels of vehicle points (ISO 8855) through ``sensor``: its 3x4 ``sensor_T_ISO_8855``
    into the sensor's axes (x forward, y left, z up), then the pinhole camera."""
    m = np.array(sensor["sensor_T_ISO_8855"])
    c = points @ m[:, :3].T + m[:, 3]
    return np.column_stack([sensor["fx"] * -c[:, 1] / c[:, 0] + sensor["u0"],
                            sensor["fy"] * -c[:, 2] / c[:, 0] + sensor["v0"]]), c[:, 0]


def rotation(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_3d_boxes_are_the_frames_vehicles(tree):
    boxes = 0
    for split, fid, _ in FINE:
        doc = json.loads(part(tree, "gtBbox3d", split, fid, "_gtBbox3d.json"))
        assert list(doc) == ["imgWidth", "imgHeight", "sensor", "objects", "ignore"]
        cam = camera_of(tree, split, fid)
        sensor = doc["sensor"]
        assert (sensor["fx"], sensor["fy"], sensor["u0"], sensor["v0"], sensor["baseline"]) == \
            (cam.fx, cam.fy, cam.u0, cam.v0, cam.baseline)
        m = np.array(sensor["sensor_T_ISO_8855"])
        assert m.shape == (3, 4) and np.allclose(m[:, :3] @ m[:, :3].T, np.eye(3))
        assert np.allclose(-m[:, :3].T @ m[:, 3], [cam.x, cam.y, cam.z])  # the camera where camera.json has it
        inst = gray(part(tree, "gtFine", split, fid, "_gtFine_instanceIds.png"))
        vehicles = {int(v) for v in np.unique(inst) if v >= 1000 and LABELS[int(v) // 1000].name in
                    ("car", "truck", "bus", "train", "motorcycle", "bicycle")}
        ids = [o["instanceId"] for o in doc["objects"]]
        ids += [o["instanceId"] for o in doc["ignore"] if o["instanceId"] >= 1000]
        assert sorted(ids) == sorted(vehicles)
        for o in doc["ignore"]:
            assert set(o) == {"2d", "label", "instanceId"} and len(o["2d"]) == 4
        for o in doc["objects"]:
            assert set(o) == {"2d", "3d", "occlusion", "truncation", "instanceId", "label", "score"}
            assert o["score"] == 1.0 and LABELS[o["instanceId"] // 1000].name == o["label"]
            assert 0 <= o["occlusion"] <= 1 and 0 <= o["truncation"] <= 1
            assert o["2d"]["modal"] == mask_box(inst == o["instanceId"])
            q = np.array(o["3d"]["rotation"])
            assert q.shape == (4,) and abs(np.linalg.norm(q) - 1) < 1e-9
            length, width, height = o["3d"]["dimensions"]
            assert 1 < length < 35 and 0.3 < width < 5 and 0.4 < height < 5
            center = np.array(o["3d"]["center"])
            assert center[0] > 0 and center[2] == pytest.approx(height / 2, abs=0.01)  # on the ground, ahead
            corners = np.array([(sx * length / 2, sy * width / 2, sz * height / 2)
                                for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) @ rotation(q).T + center
            uv, forward = project(sensor, corners)
            assert forward.min() > 0
            lo = np.clip(uv.min(axis=0), 0, [SIZE[0] - 1, SIZE[1] - 1])
            hi = np.clip(uv.max(axis=0), 0, [SIZE[0] - 1, SIZE[1] - 1])
            x, y, w, h = o["2d"]["amodal"]
            assert np.allclose([x, y, x + w, y + h], [*lo, *hi], atol=1.0)
            boxes += 1
    assert boxes > 0


# -- the other files unchanged, determinism -------------------------------------------------------------------
def test_frames_are_the_same_with_parts(tmp_path):
    """The sample's recipe with parts: the frames' files the same bytes as without parts, and the
    shipped sample's documents and pixels (its PNGs may come from another zlib)."""
    with_parts, without = tmp_path / "with", tmp_path / "without"
    generate(str(with_parts), **SAMPLE_CALL, parts=["camera", "disparity", "gtBbox3d", "leftImg8bit_foggy"])
    generate(str(without), **SAMPLE_CALL)
    plain = sorted(p.relative_to(without) for p in without.rglob("*") if p.is_file())
    # (the sample's own files: gtFine and leftImg8bit; its parts of the release are checked in
    # test_synthetic.py)
    shipped = sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*")
                     if p.is_file() and p.relative_to(SAMPLE).parts[0] in ("gtFine", "leftImg8bit"))
    assert plain == shipped and len(shipped) == 6 * 5
    for rel in shipped:
        data = (with_parts / rel).read_bytes()
        assert data == (without / rel).read_bytes(), rel
        if rel.suffix == ".json":
            assert json.loads(data) == json.loads((SAMPLE / rel).read_bytes()), rel
        else:
            assert np.array_equal(gray(data), gray((SAMPLE / rel).read_bytes())), rel
    assert (with_parts / "disparity/train/aachen/aachen_000000_000019_disparity.png").is_file()


def test_same_arguments_same_bytes_and_parts_independent_of_each_other(tmp_path):
    call = dict(splits={"train": 2}, size=(64, 32), seed=5)
    a, b, c, d = (tmp_path / n for n in "abcd")
    generate(str(a), **call, parts="all", demo_frames=1)
    generate(str(b), **call, parts="all", demo_frames=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) > 200 and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    generate(str(c), **call, parts=["gtBbox3d", "disparity", "rightImg16bit"])
    for f in (p.relative_to(c) for p in c.rglob("*") if p.is_file()):
        assert (c / f).read_bytes() == (a / f).read_bytes(), f
    generate(str(d), **{**call, "seed": 6}, parts=["camera"])
    rel = "camera/train/aachen/aachen_000000_000019_camera.json"
    assert (d / rel).read_bytes() != (a / rel).read_bytes()


def test_command_line_parts_all(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["synthetic", str(out), "--frames", "1", "--size", "64x32", "--parts", "all", "--demo-frames", "1",
                 "-q"]) == 0
    assert {p.name for p in out.iterdir()} == {"gtFine", "leftImg8bit", *PART_FOLDERS} - {"leftImg8bit_demoVideo"}
    assert (out / "leftImg8bit/demoVideo/stuttgart_01/stuttgart_01_000000_000001_leftImg8bit.png").is_file()
    assert (out / "gtBbox3d/train/aachen/aachen_000000_000019_gtBbox3d.json").is_file()
    capsys.readouterr()
    assert main(["synthetic", str(tmp_path / "bad"), "--size", "64x32", "--parts", "disparity,foggy"]) == 2
    err = capsys.readouterr().err
    assert "unknown part 'foggy'" in err and "leftImg8bit_foggy" in err
    assert not (tmp_path / "bad").exists()


# -- the official scripts (opt-in) ----------------------------------------------------------------------------
OFFICIAL_LOAD = r"""
import json, sys
from cityscapesscripts.helpers.annotation import Annotation, CsObjectType, CsBbox3d, CsIgnore2d
from cityscapesscripts.helpers.box3dImageTransform import Box3dImageTransform, CRS_V
out = {}
for path in sys.argv[1:]:
    if path.endswith("_gtBbox3d.json"):
        a = Annotation(CsObjectType.BBOX3D)
        a.fromJsonFile(path)
        a.camera.imgWidth, a.camera.imgHeight = a.imgWidth, a.imgHeight
        transform = Box3dImageTransform(a.camera)
        rows = []
        for o in a.objects:
            if isinstance(o, CsBbox3d):
                transform.initialize_box_from_annotation(o, coordinate_system=CRS_V)
                bottom = min(float(p[2]) for p in transform.get_vertices(CRS_V).values())
                rows.append(["3d", o.label, o.instanceId, o.score, o.bbox_2d.bbox_amodal,
                             [float(v) for v in transform.get_amodal_box_2d()], o.bbox_2d.bbox_modal_xywh, bottom])
            else:
                assert isinstance(o, CsIgnore2d)
                rows.append(["ignore", o.label, o.instanceId, o.bbox])
    else:
        a = Annotation(CsObjectType.BBOX2D)
        a.fromJsonFile(path)
        rows = [[o.label, o.instanceId, o.bbox_amodal_xywh, o.bbox_modal_xywh] for o in a.objects]
    out[path] = [a.imgWidth, a.imgHeight, rows]
print(json.dumps(out))
"""

OFFICIAL_EVAL3D = r"""
import json, logging, sys
logging.disable(logging.CRITICAL)
from cityscapesscripts.evaluation.evalObjectDetection3d import evaluate3dObjectDetection
from cityscapesscripts.evaluation.objectDetectionHelpers import EvaluationParameters
labels = ["car", "truck", "bus", "train", "motorcycle", "bicycle"]
evaluate3dObjectDetection(sys.argv[1], sys.argv[2], sys.argv[3], EvaluationParameters(labels), plot=False)
"""


def oracle(args):
    # (in a folder of its own: evalObjectDetection3d writes eval.log into its working folder)
    with tempfile.TemporaryDirectory() as cwd:
        run = subprocess.run([CITYSCAPESSCRIPTS, *map(str, args)], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "MPLBACKEND": "Agg"}, cwd=cwd)
    assert run.returncode == 0, f"the official scripts failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    return run.stdout


@needs_cityscapesscripts
def test_official_annotation_reads_the_boxes(tree):
    paths = [str(tree / "gtBbox3d" / s / f"{fid}_gtBbox3d.json") for s, fid, _ in FINE]
    paths += [str(tree / "gtBboxCityPersons" / s / f"{fid}_gtBboxCityPersons.json") for s, fid, _ in FINE]
    loaded = json.loads(oracle(["-c", OFFICIAL_LOAD, *paths]))
    boxes = 0
    for path, (width, height, rows) in loaded.items():
        doc = json.loads(Path(path).read_bytes())
        assert (width, height) == SIZE
        if path.endswith("_gtBbox3d.json"):
            assert len(rows) == len(doc["objects"]) + len(doc["ignore"])
            for row, obj in zip(rows, doc["objects"]):
                kind, label, iid, score, amodal, official, modal, bottom = row
                assert (kind, label, iid, score) == ("3d", obj["label"], obj["instanceId"], 1.0)
                assert np.allclose(amodal, official, atol=1.0), (path, iid)  # the official projection
                assert modal == obj["2d"]["modal"] and abs(bottom) < 0.3  # standing on the ground
                boxes += 1
            for row, obj in zip(rows[len(doc["objects"]):], doc["ignore"]):
                x, y, w, h = obj["2d"]
                assert row == ["ignore", obj["label"], obj["instanceId"], [x, y, x + w, y + h]]
        else:
            assert rows == [[o["label"], o["instanceId"], o["bbox"], o["bboxVis"]] for o in doc["objects"]]
    assert boxes > 0


@needs_cityscapesscripts
def test_official_3d_evaluation_scores_the_ground_truth_at_map_1(tmp_path):
    root = tmp_path / "ds"
    generate(str(root), splits={"val": 2}, size=(2048, 1024), photos=False, seed=1, parts=["gtBbox3d"])
    pred = tmp_path / "pred"
    pred.mkdir()
    for p in (root / "gtBbox3d" / "val").rglob("*.json"):
        (pred / p.name).write_bytes(p.read_bytes())  # the ground truth as predictions (score 1)
    results = tmp_path / "results"
    results.mkdir()
    oracle(["-c", OFFICIAL_EVAL3D, root / "gtBbox3d" / "val", pred, results])
    r = json.loads((results / "results.json").read_text())
    evaluated = [label for label, n in r["GT_stats"].items() if n]
    assert "car" in evaluated and r["mAP"] == 1.0
    for label in evaluated:
        assert r["AP"][label]["auc"] == 1.0
        for metric in ("Center_Dist", "Size_Similarity", "OS_Yaw", "OS_Pitch_Roll"):
            assert set(r[metric][label]["data"].values()) == {1.0}, (label, metric)
