"""Writers: a contract every writer passes, and round trips through the readers."""
import os
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

import cityscapes_io as cio
from cityscapes_io.testing import generate

from conftest import SEMANTIC, write_frame

FORMATS = ["cityscapes", "voc", "camvid"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth") / "cs")
    generate(root, splits={"train": 3, "val": 2}, size=(128, 64), seed=3)
    return root


def partition_kept(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the segments of ``a`` and ``b`` are the same sets of pixels."""
    pairs = np.unique(a.astype(np.uint32) * 65536 + b)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


# -- the contract every writer passes ----------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_writer_contract(fmt, synth, tmp_path):
    src = list(cio.open(synth))
    out = str(tmp_path / fmt)
    with cio.writer(out, fmt, save_media=True, labels=cio.open(synth).labels) as w:
        for frame in src:
            w.write(frame)
            frame.release()
            assert w.written == src.index(frame) + 1
    # per-frame files exist once write() returned; index files after close
    back = cio.open(out, format=fmt)
    got = list(back)
    assert [(f.split, f.id) for f in got] == [(f.split, f.id) for f in src]
    for a, b in zip(src, got):
        assert np.array_equal(a.label_ids(), b.label_ids()), (fmt, a.id)  # class of every pixel
        assert np.array_equal(a.image(), b.image())
        assert partition_kept(a.instance_ids(), b.instance_ids())
    # nothing but final files: no temporary names left behind
    for dirpath, _, files in os.walk(out):
        assert not [f for f in files if f.startswith(".cityscapes-io-tmp-")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_writer_holds_no_pixels_after_write(fmt, synth, tmp_path):
    with cio.writer(str(tmp_path / fmt), fmt, save_media=True) as w:
        for frame in cio.open(synth):
            w.write(frame)
            frame.release()
            arrays = [v for v in vars(w).values() if isinstance(v, np.ndarray) and v.size > 65536 * 3]
            assert not arrays


def test_cityscapes_roundtrip_is_identical(synth, tmp_path):
    out = str(tmp_path / "cs")
    report = cio.convert(synth, out, format="cityscapes", save_media=True)
    assert (report.read, report.written, report.skipped) == (5, 5, [])
    for a, b in zip(cio.open(synth), cio.open(out)):
        assert np.array_equal(a.instance_ids(), b.instance_ids())
        assert np.array_equal(a.label_ids(), b.label_ids())
        assert a.image_bytes() == b.image_bytes()  # copied, not re-encoded
    assert os.path.exists(os.path.join(out, "label_colors.txt"))


def test_voc_and_camvid_back_to_cityscapes(synth, tmp_path):
    src = list(cio.open(synth))
    for fmt in ("voc", "camvid"):
        mid, out = str(tmp_path / fmt), str(tmp_path / f"{fmt}-cs")
        cio.convert(synth, mid, format=fmt, save_media=True)
        cio.convert(mid, out, src_format=fmt, format="cityscapes", save_media=True)
        back = list(cio.open(out))
        assert [f.id for f in back] == [f.id for f in src]
        for a, b in zip(src, back):
            assert np.array_equal(a.label_ids(), b.label_ids())
            assert partition_kept(a.instance_ids(), b.instance_ids())
            if fmt == "camvid":  # the instances travel beside the masks: nothing lost
                assert np.array_equal(a.instance_ids(), b.instance_ids())
            if fmt == "voc":
                official = cio.LabelMap.cityscapes()
                things = [i for i in b.instances() if official.find(i.label.name).has_instances]
                assert things and all(i.value >= 1000 for i in things)
                stuff = [i for i in b.instances() if i.label.name in ("road", "sky")]
                assert stuff and all(i.is_crowd and i.id is None for i in stuff)


def test_voc_masks_are_paletted_with_distinct_colours(synth, tmp_path):
    out = str(tmp_path / "voc")
    cio.convert(synth, out, format="voc")
    lines = open(os.path.join(out, "labelmap.txt")).read().splitlines()
    assert lines[0] == "# label:color_rgb:parts:actions"
    colors = [l.split(":")[1] for l in lines[1:]]
    assert len(set(colors)) == len(colors) == 35  # Cityscapes' shared colours made distinct
    assert lines[1] == "unlabeled:0,0,0::" and lines[27] == "car:0,0,142::"
    frame = next(iter(cio.open(synth)))
    cls = Image.open(os.path.join(out, "SegmentationClass", frame.id + ".png"))
    obj = Image.open(os.path.join(out, "SegmentationObject", frame.id + ".png"))
    assert cls.mode == obj.mode == "P"
    # Readers taking palette indices get the class ids; readers mapping colours get them too.
    assert np.array_equal(np.asarray(cls), frame.label_ids())
    rgb = np.asarray(cls.convert("RGB"))
    by_color = {tuple(map(int, c.split(","))): i for i, c in enumerate(colors)}
    ids = np.vectorize(lambda r, g, b: by_color[(r, g, b)])(rgb[..., 0], rgb[..., 1], rgb[..., 2])
    assert np.array_equal(ids, frame.label_ids())
    # Every segment is numbered, stuff and crowd included; only the background stays 0.
    objs = np.asarray(obj)
    assert (objs[frame.label_ids() != 0] > 0).all() and (objs[frame.label_ids() == 0] == 0).all()
    assert open(os.path.join(out, "ImageSets/Segmentation/train.txt")).read().splitlines() == \
        [f.id for f in cio.open(synth, split="train")]


def test_camvid_layout(synth, tmp_path):
    out = str(tmp_path / "camvid")
    cio.convert(synth, out, format="camvid", save_media=True)
    first = next(iter(cio.open(synth)))
    line = open(os.path.join(out, "train.txt")).read().splitlines()[0]
    assert line == f"/train/{first.id}.png /trainannot/{first.id}.png"
    mask = Image.open(os.path.join(out, "trainannot", first.id + ".png"))
    lines = [l.split() for l in open(os.path.join(out, "label_colors.txt")) if not l.startswith("#")]
    names = [l[3] for l in lines]
    assert "ego_vehicle" in names and "license_plate" in names and all(len(l) == 4 for l in lines)  # one word each
    colors = [tuple(map(int, l[:3])) for l in lines]
    assert len(set(colors)) == len(colors)
    # Paletted: readers that expand the palette see the label colours, index readers the label ids.
    assert mask.mode == "P"
    assert np.array_equal(np.asarray(mask), first.label_ids())
    rgb = np.asarray(mask.convert("RGB"))
    expect = np.array(colors, np.uint8)[first.label_ids()]
    assert np.array_equal(rgb, expect)


# -- options -----------------------------------------------------------------------------------
def test_format_page_example_2(tmp_path):
    labels = cio.LabelMap.from_colors({"background": (0, 0, 0), "label_1": (1, 2, 3), "label_2": (3, 2, 1)})
    frames = [cio.Frame.from_arrays(id="1", split="default", image=np.ones((1, 5, 3), np.uint8), instances=[
        cio.Instance.from_mask(np.array([[1, 0, 0, 1, 1]]), label_id=1),
        cio.Instance.from_mask(np.array([[0, 1, 1, 0, 0]]), label_id=2, id=2, is_crowd=False),
    ])]
    ds = cio.Dataset.from_iterable(frames, labels=labels)
    ds.export(str(tmp_path), "cityscapes", save_media=True)
    back = cio.open(str(tmp_path))
    assert back.labels.names == ["background", "label_1", "label_2"]
    assert [l.color for l in back.labels] == [(0, 0, 0), (1, 2, 3), (3, 2, 1)]
    frame = back.frame("1")
    got = [(i.label.name, i.id, i.is_crowd, i.mask.astype(int).tolist()) for i in frame.instances()]
    assert got == [("label_1", 0, False, [[1, 0, 0, 1, 1]]), ("label_2", 2, False, [[0, 1, 1, 0, 0]])]
    assert np.array_equal(frame.image(), np.ones((1, 5, 3), np.uint8))


def test_label_map_cityscapes_from_a_smaller_source(tmp_path):
    labels = cio.LabelMap.from_colors({"background": (0, 0, 0), "car": (9, 9, 9), "elephant": (1, 2, 3)})
    mask_car = np.array([[1, 1, 0, 0]], bool)
    mask_el = np.array([[0, 0, 1, 1]], bool)
    ds = cio.Dataset.from_iterable([cio.Frame.from_arrays(id="x/x_000000_000001", split="train", instances=[
        cio.Instance.from_mask(mask_car, label_id=1, id=5), cio.Instance.from_mask(mask_el, label_id=2, id=1)])],
        labels=labels)
    with pytest.warns(UserWarning, match="elephant"):
        ds.export(str(tmp_path), "cityscapes", label_map="cityscapes")
    back = cio.open(str(tmp_path))
    assert len(back.labels) == 35
    ids = next(iter(back)).instance_ids()
    assert ids.tolist() == [[26005, 26005, 0, 0]]  # car keeps its official id; elephant -> background


def test_custom_label_map_file_and_dataset_meta(synth, tmp_path):
    lm = tmp_path / "mycolormap.txt"
    lm.write_text("0 0 0 background\n0 0 255 sky\n255 0 0 person\n")
    out = str(tmp_path / "custom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cio.convert(synth, out, format="cityscapes", label_map=str(lm), save_dataset_meta=True)
    assert os.path.exists(os.path.join(out, "dataset_meta.json"))
    assert not os.path.exists(os.path.join(out, "label_colors.txt"))
    back = cio.open(out)
    assert back.labels.names == ["background", "sky", "person"]
    for a, b in zip(cio.open(synth), back):
        la, lb = a.label_ids(), b.label_ids()
        assert np.array_equal(lb == 1, la == 23) and np.array_equal(lb == 2, la == 24)
        assert set(np.unique(lb)) <= {0, 1, 2}


@pytest.mark.parametrize("ext", [".jpg", ".bmp"])
def test_image_extensions(tmp_path, ext):
    root = str(tmp_path / "src")
    write_frame(root, "train", "a/a_000000_000001", image_ext=ext)
    out = str(tmp_path / "out")
    cio.convert(root, out, format="cityscapes", save_media=True)
    frame = next(iter(cio.open(out)))
    assert frame.path("image").endswith("_leftImg8bit" + ext)
    assert frame.image_bytes() == next(iter(cio.open(root))).image_bytes()
    out_png = str(tmp_path / "png")
    cio.convert(root, out_png, format="voc", save_media=True, image_ext="png")
    img = Image.open(os.path.join(out_png, "JPEGImages/a/a_000000_000001.png"))
    assert img.format == "PNG" and img.size == (32, 24)


def test_nested_and_unicode_ids(tmp_path):
    root = str(tmp_path / "src")
    for fid in ["a/b/1", "ü x/2", "3"]:
        write_frame(root, "train", fid)
    for fmt in FORMATS:
        out = str(tmp_path / fmt)
        cio.convert(root, out, format=fmt, save_media=True)
        back = cio.open(out, format=fmt)
        assert sorted(f.id for f in back) == ["3", "a/b/1", "ü x/2"]
        assert all(np.array_equal(f.label_ids(), np.where(SEMANTIC >= 1000, SEMANTIC // 1000, SEMANTIC))
                   for f in back)


def test_ids_cannot_escape_the_destination(tmp_path):
    frame = cio.Frame.from_arrays(id="../../evil", split="train", image=np.zeros((2, 2, 3), np.uint8))
    out = tmp_path / "out"
    for fmt in FORMATS:
        with pytest.raises(cio.InvalidFileError, match="outside the destination"):
            with cio.writer(str(out / fmt), fmt, save_media=True) as w:
                w.write(frame)
    assert not (tmp_path / "evil_leftImg8bit.png").exists()
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*"))


def test_frames_without_masks_keep_their_photo(tree, tmp_path):
    out = str(tmp_path / "out")
    cio.convert(tree, out, format="cityscapes", save_media=True, split="val")
    photo_only = cio.open(out).frame("stuttgart_00/stuttgart_00_000000_000001")
    assert photo_only.image() is not None and not photo_only.has_annotations


def test_skip_reports_every_frame(tmp_path):
    root = str(tmp_path / "src")
    write_frame(root, "train", "a/a_000000_000001")
    bad = SEMANTIC.copy()
    bad[0, 0] = 40001  # label 40 is not in the map
    write_frame(root, "train", "a/a_000000_000002", bad)
    with pytest.raises(cio.UnknownLabelError):
        cio.convert(root, str(tmp_path / "raise"), format="voc")
    report = cio.convert(root, str(tmp_path / "skip"), format="voc", on_error="skip")
    assert (report.read, report.written) == (2, 1)
    assert report.skipped[0][:2] == ("train", "a/a_000000_000002") and "40001" in report.skipped[0][2]
    assert not os.path.exists(tmp_path / "skip/SegmentationClass/a/a_000000_000002.png")


def test_zip_destination_streams_an_archive(synth, tmp_path):
    out = str(tmp_path / "out.zip")
    cio.convert(synth, out, format="voc", save_media=True)
    with zipfile.ZipFile(out) as zf:
        assert "labelmap.txt" in zf.namelist()
    back = list(cio.open(out, format="voc"))
    assert len(back) == 5 and back[0].image() is not None


def test_s3_destination(synth, s3):
    fs, opts, bucket = s3
    dst = f"s3://{bucket}/out/voc"
    report = cio.convert(synth, dst, format="voc", save_media=True, dst_storage_options=opts)
    assert report.written == 5
    fs.invalidate_cache()
    back = list(cio.open(dst, format="voc", storage_options=opts))
    for a, b in zip(cio.open(synth), back):
        assert np.array_equal(a.label_ids(), b.label_ids())


def test_label_map_as_a_dict(tmp_path):
    labels = cio.LabelMap.from_colors({"background": (0, 0, 0), "cat": (1, 1, 1), "dog": (2, 2, 2)})
    ds = cio.Dataset.from_iterable([cio.Frame.from_arrays(id="1", instances=[
        cio.Instance.from_mask(np.array([[1, 1, 0]], bool), label_id=2, id=7),
        cio.Instance.from_mask(np.array([[0, 0, 1]], bool), label_id=1, is_crowd=True)])], labels=labels)
    with pytest.warns(UserWarning, match="cat"):
        ds.export(str(tmp_path), "cityscapes", label_map={"background": (0, 0, 0), "dog": (9, 9, 9)})
    back = cio.open(str(tmp_path))
    assert back.labels.names == ["background", "dog"] and back.labels["dog"].color == (9, 9, 9)
    assert back.frame("1").instance_ids().tolist() == [[1007, 1007, 0]]


def test_camvid_without_instances_and_edited_masks(synth, tmp_path):
    src = list(cio.open(synth))
    plain = str(tmp_path / "plain")
    cio.convert(synth, plain, format="camvid", save_instances=False)
    assert not any("annot_instances" in d for d, _, _ in os.walk(plain))
    for a, b in zip(src, cio.open(plain, format="camvid")):
        assert np.array_equal(a.label_ids(), b.label_ids())
        assert all(i.is_crowd for i in b.instances())  # classes only
    # A mask edited by another tool wins over a stale instances file.
    out = str(tmp_path / "edited")
    cio.convert(synth, out, format="camvid")
    first = src[0]
    mask_path = os.path.join(out, "trainannot", first.id + ".png")
    img = Image.open(mask_path)
    idx = np.asarray(img).copy()
    idx[0, :] = 23  # paint the top row as sky
    edited = Image.frombytes("P", img.size, idx.tobytes())
    edited.putpalette(img.getpalette())
    edited.save(mask_path)
    frame = cio.open(out, format="camvid").frame(first.id)
    with pytest.warns(UserWarning, match="does not match its colour mask"):
        lab = frame.label_ids()
    assert (lab[0] == 23).all()
