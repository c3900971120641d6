"""The release's parts as views of a frame: photos by key, disparity, camera, depth, vehicle,
timestamp, sequences, CityPersons; on local disk, in one zip per package and on the S3 server."""
from __future__ import annotations

import json
import os
import pickle
import struct
import zlib

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import png
from cityscapes_io.errors import DatasetNotFoundError, InvalidFileError
from cityscapes_io.testing import generate

from conftest import upload_dir, write_file, zip_dir

SIZE = (64, 32)
FX, BASELINE = 2262.52 * 64 / 2048, 0.209313
FOGGY_BETAS = ("0.005", "0.01", "0.02")
RAIN = "alpha_0.01_beta_0.005_dropsize_0.01_pattern_1"


def camera_json(fx=FX, baseline=BASELINE) -> bytes:
    return json.dumps({"extrinsic": {"baseline": baseline, "pitch": 0.038, "roll": 0.0, "x": 1.7, "y": 0.026,
                                     "yaw": -0.0195, "z": 1.212},
                       "intrinsic": {"fx": fx, "fy": fx * 1.001, "u0": 32.1, "v0": 16.2}}).encode()


def photo(value: int) -> np.ndarray:
    out = np.zeros(SIZE[::-1] + (3,), np.uint8)
    out[..., 0] = value
    out[..., 1] = np.arange(SIZE[0], dtype=np.uint8)[None, :]
    return out


def disparity_png(h=SIZE[1], w=SIZE[0]) -> bytes:
    p = np.full((h, w), 257, np.uint16)  # (257 - 1) / 256 = 1 pixel
    p[0, :] = 0  # invalid
    p[1, :] = 1  # 0 pixels: at infinity
    p[2, :] = 2 * 256 + 1  # 2 pixels
    return png.encode_png(p)


def add_parts(root: str, frame_id: str, split: str = "train", *, sequence: bool = True) -> None:
    """Every part of the release for one frame, written by hand."""
    city, base = frame_id.split("/")
    d = f"{split}/{city}/{base}"
    write_file(root, f"rightImg8bit/{d}_rightImg8bit.png", png.encode_png(photo(200)))
    write_file(root, f"disparity/{d}_disparity.png", disparity_png())
    write_file(root, f"camera/{d}_camera.json", camera_json())
    write_file(root, f"vehicle/{d}_vehicle.json", json.dumps(
        {"gpsHeading": 180.5, "gpsLatitude": 50.78, "gpsLongitude": 6.08, "gpsAltitude": 210.1, "speed": 7.5,
         "outsideTemperature": 12.5, "yawRate": 0.01}).encode())
    write_file(root, f"timestamp/{d}_timestamp.txt", b"1428577543563849\n")
    for beta in FOGGY_BETAS:
        write_file(root, f"leftImg8bit_foggy/{d}_leftImg8bit_foggy_beta_{beta}.png",
                   png.encode_png(photo(int(float(beta) * 1000))))
    write_file(root, f"leftImg8bit_rain/{d}_leftImg8bit_rain_{RAIN}.png", png.encode_png(photo(77)))
    write_file(root, f"gtBboxCityPersons/{d}_gtBboxCityPersons.json", json.dumps(
        {"imgHeight": SIZE[1], "imgWidth": SIZE[0], "objects": [
            {"instanceId": 24000, "label": "pedestrian", "bbox": [10, 5, 8, 20], "bboxVis": [10, 5, 8, 12]},
            {"instanceId": 0, "label": "ignore", "bbox": [40, 2, 6, 6], "bboxVis": [40, 2, 6, 6]}]}).encode())
    if sequence:
        stem = base[: -6]
        number = int(base[-6:])
        for n in range(max(0, number - 19), number + 11):
            if n == number + 3:
                continue  # a frame missing from the package
            write_file(root, f"leftImg8bit_sequence/{split}/{city}/{stem}{n:06d}_leftImg8bit.png",
                       png.encode_png(photo(n)))
            write_file(root, f"timestamp_sequence/{split}/{city}/{stem}{n:06d}_timestamp.txt",
                       str(1000 + n * 58823).encode())


@pytest.fixture
def release(tmp_path):
    """A generated tree (train: 3 frames, numbers 19, 19, 42) with every part for its first
    frame, and for the second all but the foggy photos."""
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 3}, size=SIZE)
    frames = [f.id for f in cio.open(root)]
    add_parts(root, frames[0])
    add_parts(root, frames[1], sequence=False)
    for beta in FOGGY_BETAS:
        os.remove(os.path.join(root, "leftImg8bit_foggy/train", f"{frames[1]}_leftImg8bit_foggy_beta_{beta}.png"))
    return root, frames


def test_every_part_is_a_view_of_its_frame(release):
    root, ids = release
    frame = cio.open(root)[ids[0]]
    assert frame.image_keys() == ["leftImg8bit", "leftImg8bit_foggy@beta_0.005", "leftImg8bit_foggy@beta_0.01",
                                  "leftImg8bit_foggy@beta_0.02", f"leftImg8bit_rain@{RAIN}", "rightImg8bit"]
    assert (frame.image("rightImg8bit") == photo(200)).all()
    assert (frame.image("leftImg8bit_foggy@beta_0.02") == photo(20)).all()
    assert frame.image("leftImg8bit_foggy@beta_0.5") is None
    assert frame.image("leftImg8bit").shape == (32, 64, 3)  # its own
    disp = frame.disparity()
    assert disp.dtype == np.float32 and np.isnan(disp[0]).all()
    assert (disp[1] == 0).all() and (disp[2] == 2).all() and (disp[3:] == 1).all()
    cam = frame.camera()
    assert (cam.fx, cam.baseline, cam.u0, cam.yaw) == (FX, BASELINE, 32.1, -0.0195)
    assert cam.intrinsics()[0, 0] == FX and cam.intrinsics()[1, 2] == 16.2
    depth = frame.depth()
    assert depth.dtype == np.float32 and np.isnan(depth[:2]).all()  # invalid, and at infinity
    assert depth[2, 0] == pytest.approx(BASELINE * FX / 2, rel=1e-6)
    assert depth[5, 7] == pytest.approx(BASELINE * FX, rel=1e-6)
    assert frame.vehicle()["speed"] == 7.5 and frame.timestamp() == 1428577543563849
    persons = frame.persons()
    assert [(p.label, p.bbox, p.bbox_vis, p.instance_id) for p in persons] == [
        ("pedestrian", (10, 5, 8, 20), (10, 5, 8, 12), 24000), ("ignore", (40, 2, 6, 6), (40, 2, 6, 6), 0)]
    assert frame.has_part("disparity") and frame.has_part("leftImg8bit_foggy") and not frame.has_part("gtBbox3d")
    assert frame.boxes3d() is None
    # The third frame has none of them: None, not an error.
    bare = cio.open(root)[ids[2]]
    assert bare.image_keys() == ["leftImg8bit"]
    assert (bare.disparity(), bare.camera(), bare.depth(), bare.vehicle(), bare.timestamp(), bare.persons()) == (
        None,) * 6
    assert bare.snippet() == [] and bare.image("rightImg8bit") is None


def test_snippet_numbering_around_the_annotated_frame(release):
    root, ids = release
    frame = cio.open(root)[ids[0]]
    assert frame.frame == 19
    snippet = frame.snippet()
    assert [s.number for s in snippet] == [n for n in range(30) if n != 22]  # 22 is missing: left out
    assert snippet[0].id == ids[0].split("/")[1][:-6] + "000000"
    assert (snippet[19].image() == photo(19)).all() and snippet[19].timestamp() == 1000 + 19 * 58823
    assert snippet[0].vehicle() is None and snippet[5].image("rightImg8bit") is None
    assert [s.number for s in frame.snippet(before=2, after=2)] == [17, 18, 19, 20, 21]
    assert [s.number for s in frame.snippet(before=6, after=6, step=3)] == [13, 16, 19, 25]  # 22 missing
    assert [s.number for s in frame.snippet(before=0, after=0)] == [19]
    with pytest.raises(ValueError, match="step must be a positive integer"):
        frame.snippet(step=0)


def test_a_snippet_is_clipped_at_frame_zero(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 1}, size=SIZE)
    (fid,) = [f.id for f in cio.open(root)]
    city, base = fid.split("/")
    os.rename(os.path.join(root, "gtFine/train", city), os.path.join(root, "gtFine/train", "x"))
    os.makedirs(os.path.join(root, "gtFine/train", city))
    for name in os.listdir(os.path.join(root, "gtFine/train/x")):
        os.rename(os.path.join(root, "gtFine/train/x", name),
                  os.path.join(root, "gtFine/train", city, name.replace(base, base[:-6] + "000007")))
    os.rmdir(os.path.join(root, "gtFine/train/x"))
    add_parts(root, f"{city}/{base[:-6]}000007", sequence=True)
    frame = next(f for f in cio.open(root) if f.frame == 7)
    assert [s.number for s in frame.snippet()] == [n for n in range(18) if n != 10]


def test_open_chooses_the_photo_by_key(release):
    root, ids = release
    ds = cio.open(root, image="leftImg8bit_foggy@beta_0.01")
    frames = list(ds)
    assert [f.id for f in frames] == ids
    assert [f.has_image for f in frames] == [True, False, False]
    assert (frames[0].image() == photo(10)).all() and frames[0].image_key == "leftImg8bit_foggy@beta_0.01"
    assert frames[1].image() is None
    assert frames[0].image_bytes() == png.encode_png(photo(10))
    # The other photos stay readable by key, the default one too.
    assert "leftImg8bit" in frames[0].image_keys() and frames[0].image("leftImg8bit").shape == (32, 64, 3)
    right = list(cio.open(root, image="rightImg8bit"))
    assert [f.has_image for f in right] == [True, True, False]
    with pytest.raises(DatasetNotFoundError, match=r"no leftImg16bit/ folder for photo key 'leftImg16bit'"):
        cio.open(root, image="leftImg16bit")
    with pytest.raises(ValueError, match="not a photo key"):
        cio.open(root, image="../leftImg8bit")
    with pytest.raises(ValueError, match="image= is a Cityscapes option"):
        cio.open(root, image="rightImg8bit", format="voc")


def test_parts_are_listed_only_when_asked_for(release):
    root, ids = release
    ds = cio.open(root)
    frames = list(ds)
    index = ds.reader.part_folders
    assert set(index.names()) >= {"disparity", "camera", "leftImg8bit_foggy", "leftImg8bit_sequence"}
    assert not index._listings  # opening and iterating listed none of them
    frames[0].disparity()
    assert list(index._listings) == [("disparity", "train", ids[0].split("/")[0])]
    frames[0].camera()
    frames[1].camera()  # the same city folder: listed once
    assert len(index._listings) == 2


def test_a_frame_pickles_with_its_parts(release):
    root, ids = release
    frame = cio.open(root)[ids[0]]
    frame.disparity()
    copy = pickle.loads(pickle.dumps(frame))
    assert copy.camera() == frame.camera() and len(copy.snippet()) == 29
    assert not copy.parts.folders._listings or copy.parts.folders is not frame.parts.folders


def test_renamed_and_derived_frames_keep_their_parts(release):
    root, ids = release
    ds = cio.open(root).rename_splits({"train": "training"}).to_train_ids()
    frame = ds[ids[0]] if False else next(iter(ds))
    assert frame.split == "training" and frame.camera().fx == FX
    files = dict(frame.part_files(["camera", "disparity"]))
    assert sorted(files) == [f"camera/training/{ids[0]}_camera.json", f"disparity/training/{ids[0]}_disparity.png"]
    assert files[f"disparity/training/{ids[0]}_disparity.png"] == disparity_png()


def test_part_files_selects_parts_and_leaves_the_own_photo_out(release):
    root, ids = release
    frame = cio.open(root, image="leftImg8bit_foggy@beta_0.02")[ids[0]]
    names = [p for p, _ in frame.part_files(["leftImg8bit_foggy"])]
    assert names == [f"leftImg8bit_foggy/train/{ids[0]}_leftImg8bit_foggy_beta_{b}.png" for b in ("0.005", "0.01")]
    every = [p for p, _ in frame.part_files(["all"])]
    assert f"leftImg8bit/train/{ids[0]}_leftImg8bit.png" in every  # (not the own photo here)
    assert sum(p.startswith("leftImg8bit_sequence/") for p in every) == 29
    assert len(every) == len(set(every))
    with pytest.raises(ValueError, match="not a part"):
        frame.part_files(["nonsense"])


def test_bad_part_files_name_the_file(release):
    root, ids = release
    city_file = f"train/{ids[0]}"
    write_file(root, f"camera/{city_file}_camera.json", b'{"extrinsic": {}, "intrinsic": {"fx": 1}}')
    write_file(root, f"disparity/{city_file}_disparity.png", png.encode_png(np.zeros((4, 4), np.uint8)))
    write_file(root, f"timestamp/{city_file}_timestamp.txt", b"12a")
    frame = cio.open(root)[ids[0]]
    with pytest.raises(InvalidFileError, match=rf"camera/{city_file}_camera.json: camera JSON: intrinsic.fy"):
        frame.camera()
    with pytest.raises(InvalidFileError, match=rf"disparity/{city_file}_disparity.png: a disparity PNG is 16-bit"):
        frame.disparity()
    with pytest.raises(InvalidFileError, match="timestamp file holds one non-negative integer"):
        frame.timestamp()


# -- one zip per package, and the S3 server -------------------------------------------------------------
def _packages(root: str, out: str):
    """The tree split into the official packages: one zip per top folder."""
    os.makedirs(out, exist_ok=True)
    zips = []
    for top in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, top)):
            zips.append(zip_dir(root, os.path.join(out, f"{top}_trainvaltest.zip"), only=top))
    return zips


def _check_parts(ds, ids):
    frame = ds[ids[0]]
    assert "rightImg8bit" in frame.image_keys() and "leftImg8bit_foggy@beta_0.01" in frame.image_keys()
    assert frame.camera().fx == FX and frame.disparity()[2, 0] == 2
    assert len(frame.snippet()) == 29 and frame.snippet()[19].timestamp() == 1000 + 19 * 58823
    assert (frame.image("leftImg8bit_foggy@beta_0.02") == photo(20)).all()


def test_one_zip_per_package(release, tmp_path):
    root, ids = release
    zips = _packages(root, str(tmp_path / "zips"))
    assert len(zips) >= 9
    _check_parts(cio.open(zips), ids)
    foggy = cio.open(zips, image="leftImg8bit_foggy@beta_0.02")
    assert [f.has_image for f in foggy] == [True, False, False]


def test_parts_on_the_s3_server(release, s3):
    fs, options, bucket = s3
    root, ids = release
    upload_dir(fs, root, f"{bucket}/cs")
    _check_parts(cio.open(f"s3://{bucket}/cs", storage_options=options), ids)


# -- 16-bit photos ---------------------------------------------------------------------------------------
def _png16(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG with every filter type (rows cycle through 0..4), encoded here."""
    h, w, _ = rgb.shape
    raw = rgb.astype(">u2").tobytes()
    stride, bpp = w * 6, 6
    rows = [np.frombuffer(raw[y * stride:(y + 1) * stride], np.uint8).astype(np.int64) for y in range(h)]
    out = bytearray()
    for y, row in enumerate(rows):
        prev = rows[y - 1] if y else np.zeros(stride, np.int64)
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        kind = y % 5
        if kind == 0:
            f = row
        elif kind == 1:
            f = row - left
        elif kind == 2:
            f = row - prev
        elif kind == 3:
            f = row - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            f = row - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        out += bytes([kind]) + (f % 256).astype(np.uint8).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("path", ["fast", "pure"])
def test_16bit_photos_keep_their_16_bits(release, monkeypatch, path):
    if path == "fast" and not png.fast_path_active():
        pytest.skip("the fast path is not active (the C extension is not built, or CITYSCAPES_IO_PURE_PYTHON=1)")
    if path == "pure":
        monkeypatch.setattr(png, "_UNFILTER", None)
    root, ids = release
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 65536, (SIZE[1], SIZE[0], 3)).astype(np.uint16)
    rgb[8:20] = rgb[8:9]  # flat runs too
    write_file(root, f"leftImg16bit/train/{ids[0]}_leftImg16bit.png", _png16(rgb))
    frame = cio.open(root)[ids[0]]
    got = frame.image("leftImg16bit")
    assert got.dtype == np.uint16 and (got == rgb).all()
    own = cio.open(root, image="leftImg16bit")[ids[0]].image()
    assert own.dtype == np.uint16 and (own == rgb).all()


# -- stats, info, validate, eval --image -----------------------------------------------------------------
def test_stats_and_info_count_the_parts(release, capsys):
    root, ids = release
    from cityscapes_io.stats import compute_stats

    stats = compute_stats(cio.open(root))
    train = stats["splits"]["train"]
    assert train["parts"]["disparity"] == 2 and train["parts"]["leftImg8bit_foggy"] == 1
    assert train["parts"]["leftImg8bit_sequence"] == 1 and train["parts"]["leftImg8bit"] == 3
    assert train["image_keys"]["leftImg8bit"] == 3 and train["image_keys"]["rightImg8bit"] == 2
    assert train["image_keys"]["leftImg8bit_foggy@beta_0.02"] == 1
    from cityscapes_io.cli import main

    assert main(["info", root, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "disparity" in info["part_folders"] and info["image_key"] == "leftImg8bit"
    assert info["splits"]["train"]["image_keys"]["leftImg8bit_foggy@beta_0.01"] == 1
    assert main(["info", root]) == 0
    assert "photos (--image KEY): leftImg8bit 3" in capsys.readouterr().out
    assert main(["stats", root]) == 0
    assert "rightImg8bit 2" in capsys.readouterr().out


def test_validate_reports_missing_and_bad_parts(release):
    from cityscapes_io.validate import validate

    root, ids = release
    city_file = f"train/{ids[1]}"
    write_file(root, f"camera/{city_file}_camera.json", b'{"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": 1}}')
    write_file(root, f"disparity/{city_file}_disparity.png", png.encode_png(np.zeros((4, 4), np.uint16)))
    problems = list(validate(root))
    by_code = {}
    for p in problems:
        by_code.setdefault(p.code, []).append(p)
    assert [p.path for p in by_code["bad-part"]] == [os.path.join(root, f"camera/{city_file}_camera.json")]
    assert "intrinsic.fy must be a finite number" in by_code["bad-part"][0].reason
    (size,) = by_code["size-mismatch"]
    assert size.path.endswith(f"disparity/{city_file}_disparity.png") and "its disparity is 4x4" in size.reason
    missing = sorted((p.path.rsplit("/", 1)[-1], p.reason.split(" (")[0]) for p in by_code["missing-part"])
    base2 = ids[2].split("/")[1]
    assert (f"{base2}_gtFine_instanceIds.png", "no disparity") in missing
    assert (f"{base2}_gtFine_instanceIds.png", "no camera") in missing
    assert (f"{ids[1].split('/')[1]}_gtFine_instanceIds.png", "no leftImg8bit_foggy") in missing
    assert not any("leftImg8bit_rain" in r for _, r in missing)  # a subset by design
    assert set(by_code) == {"bad-part", "size-mismatch", "missing-part"}


def test_validate_counts_the_pixels_where_polygons_and_pngs_disagree(release):
    from cityscapes_io.validate import validate

    root, ids = release
    path = os.path.join(root, f"gtFine/train/{ids[0]}_gtFine_labelIds.png")
    labels = png.decode_gray(open(path, "rb").read(), path).copy()
    inst_path = path.replace("labelIds", "instanceIds")
    inst = png.decode_gray(open(inst_path, "rb").read(), inst_path).copy()
    labels[:2, :5] = 0  # "unlabeled": 10 pixels the polygons give another label
    inst[:2, :5] = 0
    write_file(root, f"gtFine/train/{ids[0]}_gtFine_labelIds.png", png.encode_png(labels))
    write_file(root, f"gtFine/train/{ids[0]}_gtFine_instanceIds.png", png.encode_png(inst))
    (p,) = [p for p in validate(root) if p.code == "polygons-mismatch"]
    assert p.severity == "warning" and p.path.endswith("_gtFine_polygons.json")
    assert "give 10 of 2048 pixels (0.488%) another label than labelIds" in p.reason


def test_eval_picks_the_predictions_of_one_photo(tmp_path, capsys):
    root = str(tmp_path / "cs")
    generate(root, splits={"val": 2}, size=SIZE)
    preds = str(tmp_path / "pred")
    for frame in cio.open(root):
        base = frame.id.split("/")[1]
        for beta in FOGGY_BETAS:
            good = frame.label_ids() if beta == "0.02" else np.zeros_like(frame.label_ids())
            write_file(preds, f"{base}_leftImg8bit_foggy_beta_{beta}.png", png.encode_png(good))
    with pytest.raises(cio.CityscapesIOError, match="several photos of the frame: give the photo key"):
        cio.evaluate(root, preds)
    result = cio.evaluate(root, preds, image="leftImg8bit_foggy@beta_0.02")
    assert result.to_dict()["averageScoreClasses"] == 1.0
    low = cio.evaluate(root, preds, image="leftImg8bit_foggy@beta_0.01")
    assert low.to_dict()["averageScoreClasses"] < 0.5
    with pytest.raises(cio.CityscapesIOError, match="no prediction for frame"):
        cio.evaluate(root, preds, image="leftImg8bit")
    from cityscapes_io.cli import main

    assert main(["eval", root, preds, "--image", "leftImg8bit_foggy@beta_0.02", "-q"]) == 0
    assert main(["eval", root, preds, "--check-only", "-q"]) == 1
    assert "--image KEY" in capsys.readouterr().out


def test_demo_video_reads_as_its_own_split(tmp_path):
    root = str(tmp_path / "cs")
    generate(root, splits={"val": 1}, size=SIZE)
    for n in (1, 2, 3):
        write_file(root, f"leftImg8bit/demoVideo/stuttgart_00/stuttgart_00_000000_{n:06d}_leftImg8bit.png",
                   png.encode_png(photo(n)))
    ds = cio.open(root)
    assert ds.splits() == ["demoVideo", "val"]
    frames = list(ds.frames("demoVideo"))
    assert [(f.city, f.seq, f.frame, f.has_image, f.has_annotations) for f in frames] == [
        ("stuttgart_00", 0, n, True, False) for n in (1, 2, 3)]
    assert (frames[2].image() == photo(3)).all()


def test_a_root_with_only_a_part_folder_is_a_root(release, tmp_path):
    """``disparity_trainvaltest.zip`` holds a README, a license and ``disparity/``: not a
    wrapping folder to descend into."""
    root, ids = release
    write_file(root, "license.txt", b"terms")
    package = zip_dir(root, str(tmp_path / "disparity_trainvaltest.zip"), only="disparity")
    import zipfile

    with zipfile.ZipFile(package, "a") as z:
        z.writestr("README", "the disparity package")
    gt = zip_dir(root, str(tmp_path / "gtFine_trainvaltest.zip"), only="gtFine")
    frame = cio.open([gt, package])[ids[0]]
    assert frame.disparity()[2, 0] == 2 and frame.camera() is None


# -- every part the generator writes, from one zip per package and from the S3 server ---------------------
def _read_every_part(ds):
    """Every part of every annotated frame, read through the frames; returns a digest to compare."""
    out = []
    for frame in ds:
        if not frame.has_annotations:
            continue
        boxes = frame.boxes3d()
        out.append((frame.id, tuple(frame.image_keys()), float(np.nansum(frame.depth())), frame.camera(),
                    frame.timestamp(), tuple(frame.persons()), boxes.objects, boxes.sensor,
                    tuple((s.number, s.timestamp()) for s in frame.snippet(before=2, after=2)),
                    int(frame.image("leftImg16bit").max()), frame.vehicle()["speed"]))
    return out


def test_every_generated_part_reads_the_same_from_zips_and_s3(tmp_path, s3):
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 2, "val": 1}, size=SIZE, parts="all")
    local = _read_every_part(cio.open(root))
    assert len(local) == 3 and sorted(len(row[1]) for row in local) == [17, 17, 23]  # Rain: a subset
    assert any(row[6] for row in local) and any(row[5] for row in local)  # 3D boxes and persons
    zips = _packages(root, str(tmp_path / "zips"))
    assert _read_every_part(cio.open(zips)) == local
    fs, options, bucket = s3
    upload_dir(fs, root, f"{bucket}/cs")
    assert _read_every_part(cio.open(f"s3://{bucket}/cs", storage_options=options)) == local
    # Depth from the generator's disparity and camera is the scene's (positive, finite where valid).
    frame = next(f for f in cio.open(root) if f.has_annotations)
    d, depth = frame.disparity(), frame.depth()
    assert np.array_equal(np.isnan(depth), ~(d > 0))
    assert np.allclose(depth[d > 0], frame.camera().baseline * frame.camera().fx / d[d > 0])


def test_part_files_are_fetched_ahead_on_the_s3_server(tmp_path, s3):
    """On an object store the prefetcher learns the part kinds the loop reads (as it does the
    frames' own files) and fetches them for the next frames while one is decoded."""
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 6}, size=SIZE, parts=["disparity", "camera"], demo_frames=0)
    fs, options, bucket = s3
    upload_dir(fs, root, f"{bucket}/cs")
    ds = cio.open(f"s3://{bucket}/cs", storage_options=options)
    assert ds.prefetch > 0
    ahead = []
    expected = {f.id: (f.disparity(), f.camera()) for f in cio.open(root)}
    for k, frame in enumerate(ds):
        ahead.append(sorted(frame.parts._pending) + sorted(frame.parts._bytes))
        disparity, camera = frame.disparity(), frame.camera()
        assert np.array_equal(disparity, expected[frame.id][0], equal_nan=True) and camera == expected[frame.id][1]
        frame.release()
        assert not frame.parts._bytes and not frame.parts._pending
    assert ahead[0] == []  # nothing is known before the first read
    city, base = frame.id.split("/")
    assert ahead[-1] == sorted([f"camera/train/{city}/{base}_camera.json",
                                f"disparity/train/{city}/{base}_disparity.png"])
    copy = pickle.loads(pickle.dumps(frame))
    assert copy.parts._bytes == {} and copy.camera() == frame.camera()


def test_the_refined_foggy_sets_keep_the_plain_sets_file_names(tmp_path):
    """Foggy Cityscapes-DBF: leftImg8bit_foggyDBF/…/<id>_leftImg8bit_foggy_beta_0.01.png."""
    root = str(tmp_path / "cs")
    generate(root, splits={"train": 1}, size=SIZE, demo_frames=0)
    (fid,) = [f.id for f in cio.open(root)]
    write_file(root, f"leftImg8bit_foggyDBF/train/{fid}_leftImg8bit_foggy_beta_0.01.png", png.encode_png(photo(1)))
    write_file(root, f"leftImg8bit_foggy/train/{fid}_leftImg8bit_foggy_beta_0.01.png", png.encode_png(photo(2)))
    frame = cio.open(root)[fid]
    assert frame.image_keys() == ["leftImg8bit", "leftImg8bit_foggy@beta_0.01", "leftImg8bit_foggyDBF@beta_0.01"]
    assert (frame.image("leftImg8bit_foggyDBF@beta_0.01") == photo(1)).all()
    refined = cio.open(root, image="leftImg8bit_foggyDBF@beta_0.01")[fid]
    assert (refined.image() == photo(1)).all()
    assert refined.part_files(["leftImg8bit_foggy"])[0][0] == f"leftImg8bit_foggy/train/{fid}_leftImg8bit_foggy_beta_0.01.png"
