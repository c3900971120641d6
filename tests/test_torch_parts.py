"""cityscapes_io.torch's targets from the release's other parts (right photo, disparity, depth,
camera, CityPersons, sequence snippets) through a real DataLoader with workers, checked against
the files written here; missing parts; the photo key chosen at open; crops and resizes that keep
the camera, disparity and boxes consistent with the pixels."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import cityscapes_io as cio  # noqa: E402
from cityscapes_io import png  # noqa: E402
from cityscapes_io.errors import DatasetNotFoundError  # noqa: E402
from cityscapes_io.testing import generate  # noqa: E402
from cityscapes_io.torch import (CityscapesDataset, CityscapesIterable, collate, crop_sample,  # noqa: E402
                                 resize_sample, sample)
from conftest import write_file  # noqa: E402
from test_release import BASELINE, FX, SIZE, add_parts, camera_json, photo  # noqa: E402

W, H = SIZE
PARTS = ("right_image", "disparity", "depth", "camera", "persons", "snippet")
SNIP = {"before": 2, "after": 2}


def _persons(k: int):
    """Frame k's CityPersons objects: a pedestrian, an ignore region and a person group."""
    return [{"instanceId": 24000 + k, "label": "pedestrian", "bbox": [10 + k, 5, 8, 20], "bboxVis": [10 + k, 5, 8, 12]},
            {"instanceId": 0, "label": "ignore", "bbox": [40, 2, 6, 6 + k], "bboxVis": [40, 2, 6, 6 + k]},
            {"instanceId": 0, "label": "person group", "bbox": [1.5, 3, 20, 10], "bboxVis": [2, 3, 18, 9]}]


def _camera(k: int):
    return {"fx": FX * (1 + k / 10), "fy": FX * (1 + k / 10) * 1.001, "u0": 32.1, "v0": 16.2,
            "baseline": BASELINE + k / 100}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Six train frames (numbers 19, 19, 42, 19, 19, 42); every part for the first five, with a
    disparity, camera and CityPersons file of their own; nothing for the last. The sequences
    lack frame number n + 3 (22 or 45)."""
    root = str(tmp_path_factory.mktemp("parts") / "cs")
    generate(root, splits={"train": 6}, size=SIZE)
    ids = [f.id for f in cio.open(root)]
    rng = np.random.default_rng(21)
    raw, cameras = {}, {}
    for k, fid in enumerate(ids[:5]):
        add_parts(root, fid)
        p = rng.integers(0, 60000, size=(H, W), dtype=np.uint16)
        p[rng.random((H, W)) < 0.2] = 0
        p[0, :3] = (0, 1, 257)  # invalid, 0 pixels, 1 pixel
        raw[fid] = p
        write_file(root, f"disparity/train/{fid}_disparity.png", png.encode_png(p))
        cam = _camera(k)
        cameras[fid] = cam
        doc = json.loads(camera_json(cam["fx"], cam["baseline"]))
        doc["intrinsic"]["fy"] = cam["fy"]
        write_file(root, f"camera/train/{fid}_camera.json", json.dumps(doc).encode())
        write_file(root, f"gtBboxCityPersons/train/{fid}_gtBboxCityPersons.json",
                   json.dumps({"imgHeight": H, "imgWidth": W, "objects": _persons(k)}).encode())
    return root, ids, raw, cameras


def _disparity_from_file(root, fid):
    """The disparity as the file says, read with Pillow (not this library's decoder)."""
    p = np.array(Image.open(f"{root}/disparity/train/{fid}_disparity.png")).astype(np.int64)
    out = (p - 1) / 256.0
    out[p == 0] = np.nan
    return out


def _loader(ds, **kw):
    kw.setdefault("batch_size", 2)
    return DataLoader(ds, num_workers=2, multiprocessing_context="fork", collate_fn=collate, **kw)


# -- the targets, through workers ------------------------------------------------------------------------
def test_part_targets_match_the_files_through_workers(tree):
    root, ids, raw, cameras = tree
    ds = CityscapesDataset(cio.open(root).filter(ids=ids[:5]), targets=("image",) + PARTS, snippet=SNIP)
    seen = []
    for batch in _loader(ds):
        n = len(batch["id"])
        assert batch["right_image"].shape == (n, H, W, 3) and batch["right_image"].dtype == torch.uint8
        assert batch["disparity"].dtype == torch.float32 and batch["depth"].dtype == torch.float32
        assert batch["snippet"].shape == (n, 5, H, W, 3) and batch["snippet"].dtype == torch.uint8
        assert batch["camera"]["intrinsics"].shape == (n, 3, 3) and batch["camera"]["baseline"].shape == (n,)
        assert isinstance(batch["persons"], list) and len(batch["persons"]) == n
        for b, fid in enumerate(batch["id"]):
            seen.append(fid)
            k = ids.index(fid)
            cam = cameras[fid]
            assert np.array_equal(batch["right_image"][b].numpy(), photo(200))
            # disparity: (p - 1) / 256, NaN where p == 0
            want = _disparity_from_file(root, fid)
            got = batch["disparity"][b].numpy()
            assert np.array_equal(np.isnan(got), raw[fid] == 0) and np.isnan(got).sum() > 50
            assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-6)
            assert got[0, 1] == 0 and got[0, 2] == 1
            # depth: baseline * fx / d, NaN where d is invalid or 0
            depth = batch["depth"][b].numpy()
            ok = raw[fid] > 1
            assert np.array_equal(~np.isnan(depth), ok)
            assert np.allclose(depth[ok], cam["baseline"] * cam["fx"] / want[ok], rtol=1e-5)
            # camera
            K = batch["camera"]["intrinsics"][b]
            assert K.dtype == torch.float32
            assert np.allclose(K.numpy(), [[cam["fx"], 0, 32.1], [0, cam["fy"], 16.2], [0, 0, 1]], rtol=1e-6)
            assert batch["camera"]["baseline"][b].item() == pytest.approx(cam["baseline"], rel=1e-6)
            assert batch["camera"]["extrinsic"][b].tolist() == pytest.approx([1.7, 0.026, 1.212, -0.0195, 0.038, 0],
                                                                              rel=1e-6)
            # persons: x, y, w, h -> x1, y1, x2, y2; every object kept, ignore flags the non-persons
            persons = batch["persons"][b]
            objs = _persons(k)
            assert persons["boxes"].dtype == torch.float32 and persons["labels"].dtype == torch.int64
            assert persons["boxes"].tolist() == [[x, y, x + w, y + h] for x, y, w, h in (o["bbox"] for o in objs)]
            assert persons["boxes_vis"].tolist() == [[x, y, x + w, y + h]
                                                     for x, y, w, h in (o["bboxVis"] for o in objs)]
            assert persons["labels"].tolist() == [1, 0, 5]
            assert persons["ignore"].tolist() == [False, True, True]
            assert persons["instance_ids"].tolist() == [24000 + k, 0, 0]
            # snippet: numbers n-2 .. n+2 in order (add_parts paints frame number n into channel 0)
            number = int(fid[-6:])
            clip = batch["snippet"][b].numpy()
            assert [int(clip[t, 0, 0, 0]) for t in range(5)] == [number - 2 + t for t in range(5)]
            assert np.array_equal(clip[2], photo(number))
    assert seen == ids[:5]
    # The middle frame of the clip is the annotated frame's own sequence photo.
    frame = cio.open(root)[ids[0]]
    middle = next(s for s in frame.snippet(2, 2) if s.number == frame.frame)
    assert np.array_equal(ds[0]["snippet"][2].numpy(), middle.image())


def test_channels_first_and_snippet_options(tree):
    root, ids, _, _ = tree
    ds = CityscapesDataset(root, split="train", targets=("right_image", "snippet"), channels_first=True,
                           snippet={"before": 4, "after": 2, "step": 2})
    s = ds[2]  # frame number 42
    assert s["right_image"].shape == (3, H, W) and s["snippet"].shape == (4, 3, H, W)
    assert s["snippet"][:, 0, 0, 0].tolist() == [38, 40, 42, 44]
    assert ds.snippet == {"before": 4, "after": 2, "step": 2, "key": "leftImg8bit"}
    # before not a multiple of step: counted from the annotated frame
    s = sample(cio.open(root)[ids[0]], ("snippet",), snippet={"before": 5, "after": 0, "step": 3})
    assert s["snippet"][:, 0, 0, 0].tolist() == [16, 19]
    with pytest.raises(ValueError, match="unknown snippet option"):
        CityscapesDataset(root, targets=("snippet",), snippet={"length": 3})
    with pytest.raises(ValueError, match="step must be an integer >= 1"):
        CityscapesDataset(root, targets=("snippet",), snippet={"step": 0})
    with pytest.raises(ValueError, match="'snippet' is not among the targets"):
        CityscapesDataset(root, targets=("image",), snippet=SNIP)
    with pytest.raises(ValueError, match="'snippet' is not among the targets"):
        sample(cio.open(root)[ids[0]], ("image",), snippet=SNIP)
    with pytest.raises(ValueError, match="unknown target"):
        CityscapesDataset(root, targets=("normals",))


def test_iterable_shards_frames_with_parts_exactly(tree):
    root, ids, _, _ = tree
    got = []
    for rank in range(2):
        with pytest.warns(UserWarning, match="shares differ by one frame"):
            ds = CityscapesIterable(cio.open(root).filter(ids=ids[:5]), targets=("disparity", "camera", "snippet"),
                                    snippet=SNIP, shuffle=2, seed=3, rank=rank, world_size=2)
        assert len(ds) == 3 - rank
        for batch in _loader(ds):
            got += batch["id"]
            assert batch["snippet"].shape[1] == 5
    assert sorted(got) == ids[:5]


# -- missing parts -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, file", [
    ("right_image", "rightImg8bit/train/{id}_rightImg8bit.* in"),
    ("disparity", "disparity/train/{id}_disparity.png"),
    ("depth", "disparity/train/{id}_disparity.png"),
    ("camera", "camera/train/{id}_camera.json"),
    ("persons", "gtBboxCityPersons/train/{id}_gtBboxCityPersons.json"),
    ("snippet", "lacks frame number"),
])
def test_a_frame_without_the_part_is_an_error_naming_frame_and_file(tree, target, file):
    root, ids, _, _ = tree
    bare = ids[5]
    ds = CityscapesDataset(root, targets=(target,))
    with pytest.raises(DatasetNotFoundError) as err:
        ds[5]
    assert f"frame train/{bare}" in str(err.value) and file.format(id=bare) in str(err.value)


def test_missing_parts_keep_their_error_through_workers(tree):
    root, ids, _, _ = tree
    ds = CityscapesDataset(root, targets=("camera",))
    with pytest.raises(DatasetNotFoundError, match=f"frame train/{ids[5]} has no camera"):
        for _ in _loader(ds):
            pass


def test_depth_without_camera_names_the_camera(tree):
    root, ids, _, _ = tree
    frame = cio.open(root)[ids[0]]
    frame.parts.folders.folders.pop("camera")  # as if the camera package were not there
    with pytest.raises(DatasetNotFoundError, match=r"has no depth \(no camera\): no camera/train/"):
        sample(frame, ("depth",))


def test_a_clip_with_a_frame_missing_is_refused(tree):
    root, ids, _, _ = tree
    frame = cio.open(root)[ids[0]]  # number 19; 22 is not in the package
    with pytest.raises(DatasetNotFoundError, match=r"lacks frame number\(s\) 22 in leftImg8bit_sequence/"):
        sample(frame, ("snippet",), snippet={"before": 0, "after": 4})
    with pytest.raises(DatasetNotFoundError, match=r"lacks frame number\(s\) -2, -1 in leftImg8bit_sequence/"):
        sample(frame, ("snippet",), snippet={"before": 21, "after": 0})
    with pytest.raises(DatasetNotFoundError, match=r"rightImg8bit_sequence/"):
        sample(frame, ("snippet",), snippet={"before": 1, "after": 1, "key": "rightImg8bit"})
    assert sample(frame, ("snippet",), snippet={"before": 19, "after": 2})["snippet"].shape == (22, H, W, 3)


# -- the photo key chosen at open --------------------------------------------------------------------------
def test_image_target_is_the_photo_the_dataset_was_opened_with(tree):
    root, ids, _, _ = tree
    foggy = CityscapesDataset(root, targets=("image", "right_image"), image="leftImg8bit_foggy@beta_0.02")
    from_dataset = CityscapesDataset(cio.open(root, image="leftImg8bit_foggy@beta_0.02").filter(ids=ids[:5]),
                                     targets=("image",))
    for ds in (foggy, from_dataset):
        images = [b["image"] for b in _loader(ds, batch_size=1, sampler=range(5))]
        assert len(images) == 5 and all(np.array_equal(i[0].numpy(), photo(20)) for i in images)
    assert np.array_equal(foggy[0]["right_image"].numpy(), photo(200))
    plain = CityscapesDataset(root, targets=("image",))[0]["image"].numpy()
    assert not np.array_equal(plain, photo(20)) and np.array_equal(plain, cio.open(root)[ids[0]].image())
    right = CityscapesDataset(root, targets=("image", "right_image"), image="rightImg8bit")[1]
    assert torch.equal(right["image"], right["right_image"])
    with pytest.raises(DatasetNotFoundError, match="has no photo"):
        foggy[5]


# -- crops and resizes ---------------------------------------------------------------------------------------
def _geometry(s, *, channels_first=False):
    return resize_sample(crop_sample(s, 4, 8, 24, 48, channels_first=channels_first), (12, 16),
                         channels_first=channels_first)


def test_crop_moves_the_principal_point_and_boxes(tree):
    root, ids, raw, cameras = tree
    targets = ("image", "semantic") + PARTS
    s = CityscapesDataset(root, targets=targets, snippet=SNIP)[1]
    c = crop_sample(s, 4, 8, 24, 48)
    cam = cameras[ids[1]]
    assert c["image"].shape == (24, 48, 3) and c["snippet"].shape == (5, 24, 48, 3)
    assert torch.equal(c["semantic"], s["semantic"][4:28, 8:56])
    assert torch.equal(c["right_image"], s["right_image"][4:28, 8:56])
    assert torch.equal(c["snippet"], s["snippet"][:, 4:28, 8:56])
    assert torch.allclose(c["disparity"], s["disparity"][4:28, 8:56], equal_nan=True)
    assert torch.allclose(c["depth"], s["depth"][4:28, 8:56], equal_nan=True)
    K = c["camera"]["intrinsics"].double()
    assert K[0, 2].item() == pytest.approx(32.1 - 8, abs=1e-5) and K[1, 2].item() == pytest.approx(16.2 - 4, abs=1e-5)
    assert K[0, 0].item() == pytest.approx(cam["fx"], rel=1e-6) and torch.equal(c["camera"]["baseline"],
                                                                                   s["camera"]["baseline"])
    assert c["persons"]["boxes"][0].tolist() == [11 - 8, 5 - 4, 19 - 8, 25 - 4]
    assert c["persons"]["boxes"][2].tolist() == [1.5 - 8, 3 - 4, 21.5 - 8, 13 - 4]  # neither clipped nor dropped
    assert torch.equal(s["camera"]["intrinsics"][0, 2], torch.tensor(32.1, dtype=torch.float32))  # not in place
    with pytest.raises(ValueError, match="outside the 32×64 frame"):
        crop_sample(s, 10, 0, 24, 10)


def test_resize_scales_intrinsics_disparity_and_boxes(tree):
    root, ids, raw, cameras = tree
    cam = cameras[ids[3]]
    s = CityscapesDataset(root, targets=("image", "instance_ids") + PARTS, snippet=SNIP)[3]
    r = resize_sample(s, (16, 24))  # sx = 24 / 64 = 0.375, sy = 0.5
    sx, sy = 24 / W, 16 / H
    K = r["camera"]["intrinsics"].double()
    assert K[0, 0].item() == pytest.approx(cam["fx"] * sx, rel=1e-6)
    assert K[1, 1].item() == pytest.approx(cam["fy"] * sy, rel=1e-6)
    assert K[0, 2].item() == pytest.approx((32.1 + 0.5) * sx - 0.5, abs=1e-5)
    assert K[1, 2].item() == pytest.approx((16.2 + 0.5) * sy - 0.5, abs=1e-5)
    # Nearest source pixels, centres aligned: column j samples floor((j + 0.5) / sx).
    rows = [int((i + 0.5) / sy) for i in range(16)]
    cols = [int((j + 0.5) / sx) for j in range(24)]
    want = _disparity_from_file(root, ids[3])[np.ix_(rows, cols)] * sx
    got = r["disparity"].numpy()
    assert got.shape == (16, 24) and np.array_equal(np.isnan(got), np.isnan(want))
    assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-5)
    # Depth does not change, and stays baseline * fx' / d' with the resized camera and disparity.
    assert torch.allclose(r["depth"], s["depth"][rows][:, cols], equal_nan=True)
    ok = ~torch.isnan(r["depth"])
    again = r["camera"]["baseline"] * r["camera"]["intrinsics"][0, 0] / r["disparity"][ok]
    assert torch.allclose(again, r["depth"][ok], rtol=1e-5)
    assert r["instance_ids"].dtype == torch.uint16
    assert np.array_equal(r["instance_ids"].numpy(), s["instance_ids"].numpy()[np.ix_(rows, cols)])
    assert r["persons"]["boxes"][0].tolist() == pytest.approx([13 * sx, 5 * sy, 21 * sx, 25 * sy])
    assert r["image"].shape == (16, 24, 3) and r["image"].dtype == torch.uint8
    assert r["snippet"].shape == (5, 16, 24, 3) and (r["snippet"][:, :, :, 0] == torch.tensor(
        [17, 18, 19, 20, 21], dtype=torch.uint8)[:, None, None]).all()  # a flat channel stays flat
    assert (r["right_image"][..., 0] == 200).all()
    up = resize_sample(s, (48, 96))
    assert up["camera"]["intrinsics"][0, 2].item() == pytest.approx((32.1 + 0.5) * 1.5 - 0.5, abs=1e-5)
    with pytest.raises(ValueError, match="does not move the instances"):
        resize_sample(CityscapesDataset(root, targets=("image", "instances"))[0], (16, 32))


def test_geometry_as_a_transform_in_workers_channels_first(tree):
    root, ids, _, cameras = tree
    ds = CityscapesDataset(cio.open(root).filter(ids=ids[:5]), targets=("image", "disparity", "camera", "snippet"),
                           snippet=SNIP, channels_first=True,
                           transform=functools.partial(_geometry, channels_first=True))
    seen = []
    for batch in _loader(ds):
        n = len(batch["id"])
        seen += batch["id"]
        assert batch["image"].shape == (n, 3, 12, 16) and batch["snippet"].shape == (n, 5, 3, 12, 16)
        assert batch["disparity"].shape == (n, 12, 16)
        for b, fid in enumerate(batch["id"]):
            K = batch["camera"]["intrinsics"][b].double()
            assert K[0, 0].item() == pytest.approx(cameras[fid]["fx"] / 3, rel=1e-6)
            assert K[0, 2].item() == pytest.approx((32.1 - 8 + 0.5) / 3 - 0.5, abs=1e-5)
            assert K[1, 2].item() == pytest.approx((16.2 - 4 + 0.5) / 2 - 0.5, abs=1e-5)
    assert seen == ids[:5]
