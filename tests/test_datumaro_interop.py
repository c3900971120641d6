"""Interoperability with Datumaro itself, run in Datumaro's own environment.

Opt-in: set ``CITYSCAPES_IO_DATUMARO_PYTHON`` to the python of an environment where
``import datumaro`` works (Datumaro 1.13 is what these were written against), e.g.
``CITYSCAPES_IO_DATUMARO_PYTHON=/path/to/venv/bin/python pytest tests/test_datumaro_interop.py``.

Both directions are checked pixel by pixel:

- our VOC, CamVid and Cityscapes output read back by Datumaro (Datumaro maps mask colours back
  to labels and, for VOC, reads only the segments numbered in SegmentationObject: every pixel
  outside the background must come back with its class);
- trees that Datumaro exports from a dataset built at test time (``voc_segmentation`` with its
  default RGB masks and with index masks, ``apply_colormap=False``: Datumaro has no paletted
  option; ``camvid`` likewise; ``cityscapes``) read by this library, with every pixel's class
  compared to the masks the script built;
- a CamVid tree without ``label_colors.txt`` read by both with the same classes, our CamVid
  output with an image-only frame imported by Datumaro, and our ``dataset_meta.json`` of the
  train-id map (ids 0..18 and 255) imported by Datumaro with the right names.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from conftest import write_file, write_frame

import cityscapes_io as cio
from cityscapes_io.png import encode_png

DATUMARO_PYTHON = os.environ.get("CITYSCAPES_IO_DATUMARO_PYTHON")
pytestmark = pytest.mark.skipif(
    not DATUMARO_PYTHON,
    reason="opt-in: set CITYSCAPES_IO_DATUMARO_PYTHON (README, Development)")

#: Imports a tree with Datumaro; saves each item's class index per pixel (-1 where no mask) as
#: ``<dir>/<id with / as __>.npy``; prints ``{"labels": [...], "items": {id: [subset, n_masks]}}``.
READ = r"""
import json, sys, numpy as np, datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], sys.argv[2])
items = {}
for item in ds:
    masks = [a for a in item.annotations if a.type == dm.AnnotationType.mask]
    if masks:
        h, w = masks[0].image.shape
        cls = np.full((h, w), -1, np.int32)
        for m in masks:
            cls[m.image.astype(bool)] = m.label
        np.save(sys.argv[3] + "/" + item.id.replace("/", "__") + ".npy", cls)
    items[item.id] = [item.subset, len(masks)]
labels = [l.name for l in ds.categories()[dm.AnnotationType.label]]
print(json.dumps({"labels": labels, "items": items}))
"""

#: Builds a dataset in Datumaro (five labels; two cars and a person as numbered instances; sky
#: and road as stuff; one item without masks), saves each masked item's class index per pixel
#: as ``<out>/<id with / as __>.npy``, exports it in every format, and prints
#: ``{"labels": [...], "items": {id: [subset, has_masks]}}``.
MAKE = r"""
import json, os, sys, numpy as np, datumaro as dm
from datumaro.components.annotation import AnnotationType, LabelCategories, MaskCategories
out = sys.argv[1]
names = ["background", "road", "sky", "car", "person"]
colors = [(0, 0, 0), (128, 64, 128), (70, 130, 180), (0, 0, 142), (220, 20, 60)]
cats = {AnnotationType.label: LabelCategories.from_iterable(names),
        AnnotationType.mask: MaskCategories(colormap=dict(enumerate(colors)))}
H, W = 20, 30
def layout(shift):
    boxes = [(2, 0, (slice(0, 5), slice(0, W))), (1, 0, (slice(14, 20), slice(0, W))),
             (3, 1, (slice(8, 12), slice(2 + shift, 8 + shift))), (3, 2, (slice(8, 12), slice(12, 18))),
             (4, 1, (slice(6, 13), slice(22, 25 + shift)))]
    cls = np.zeros((H, W), np.int32)
    anns = []
    for label, inst, sl in boxes:
        m = np.zeros((H, W), bool)
        m[sl] = True
        cls[m] = label
        anns.append(dm.Mask(image=m, label=label, id=inst))
    return cls, anns
items, listing = [], {}
for item_id, subset, shift, masked in [("frankfurt/frankfurt_000000_000294", "train", 0, True),
                                       ("lindau/lindau_000001_000019", "val", 3, True),
                                       ("frankfurt/frankfurt_000000_000576", "train", 0, False)]:
    cls, anns = layout(shift)
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 1] = np.arange(W, dtype=np.uint8)[None]
    items.append(dm.DatasetItem(id=item_id, subset=subset, media=dm.Image.from_numpy(img),
                                annotations=anns if masked else []))
    listing[item_id] = [subset, masked]
    if masked:
        np.save(os.path.join(out, item_id.replace("/", "__") + ".npy"), cls)
ds = dm.Dataset.from_iterable(items, categories=cats)
for name, fmt, opts in [("voc", "voc_segmentation", {}), ("voc_index", "voc_segmentation", {"apply_colormap": False}),
                        ("camvid", "camvid", {}), ("camvid_index", "camvid", {"apply_colormap": False}),
                        ("cityscapes", "cityscapes", {})]:
    ds.export(os.path.join(out, name), fmt, save_media=True, **opts)
print(json.dumps({"labels": names, "items": listing}))
"""


def run_datumaro(script, *args):
    run = subprocess.run([DATUMARO_PYTHON, "-c", script, *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def datumaro_read(tmp_path, tree, dm_format):
    arrays = tmp_path / ("arrays-" + os.path.basename(str(tree)))
    arrays.mkdir()
    return run_datumaro(READ, tree, dm_format, arrays), arrays


def npy_name(item_id):
    return item_id.replace("/", "__") + ".npy"


def names_of(ids: np.ndarray, labels) -> np.ndarray:
    """The label name of every pixel of a label-id array."""
    table = {l.id: l.name for l in labels}
    out = np.empty(ids.shape, object)
    for v in np.unique(ids).tolist():
        out[ids == v] = table.get(v, f"<unknown {v}>")
    return out


# -- our output, read by Datumaro ----------------------------------------------------------------
@pytest.mark.parametrize("fmt, dm_fmt", [("voc", "voc_segmentation"), ("camvid", "camvid")])
def test_datumaro_reads_our_output(tmp_path, fmt, dm_fmt):
    out = str(tmp_path / fmt)
    cio.convert(cio.sample_path(), out, format=fmt, save_media=True)
    result, arrays = datumaro_read(tmp_path, out, dm_fmt)
    subsets = {i: s for i, (s, _) in result["items"].items()}
    ours = cio.open(cio.sample_path())
    assert sorted(subsets) == sorted(f.id for f in ours)
    for frame in ours:
        assert subsets[frame.id] == frame.split
        theirs = np.load(arrays / npy_name(frame.id))
        lab = frame.label_ids().astype(np.int32)
        covered = theirs >= 0
        assert np.array_equal(theirs[covered], lab[covered])  # every class read back exactly
        assert set(np.unique(lab[~covered])) <= {0}  # only VOC's background (object 0) is not a mask


def test_datumaro_reads_our_camvid_with_an_image_only_frame(tree, tmp_path):
    out = str(tmp_path / "camvid")
    cio.convert(tree, out, format="camvid", save_media=True)
    result, arrays = datumaro_read(tmp_path, out, "camvid")
    ours = {f.id: f for f in cio.open(tree)}
    assert sorted(result["items"]) == sorted(ours)
    photo_only = "stuttgart_00/stuttgart_00_000000_000001"
    assert result["items"][photo_only] == ["val", 0]
    back = cio.open(out, format="camvid")
    for item_id, (subset, n_masks) in result["items"].items():
        assert subset == ours[item_id].split
        if item_id == photo_only:
            assert not back.frame(item_id).has_annotations
            continue
        assert n_masks > 0
        theirs = np.load(arrays / npy_name(item_id))  # label_colors.txt line = label index, for both
        assert np.array_equal(theirs, ours[item_id].label_ids().astype(np.int32))
        assert np.array_equal(theirs, back.frame(item_id).label_ids().astype(np.int32))


def test_datumaro_reads_our_camvid_ids_with_spaces(tmp_path):
    """Paths with whitespace are double-quoted in <subset>.txt, as Datumaro writes and reads them."""
    src = str(tmp_path / "src")
    ids = ["a/ü 2", "plain_000000_000001"]
    for frame_id in ids:
        write_frame(src, "train", frame_id)
    out = str(tmp_path / "camvid")
    cio.convert(src, out, format="camvid", save_media=True)
    result, arrays = datumaro_read(tmp_path, out, "camvid")
    assert sorted(result["items"]) == sorted(ids)
    for frame_id in ids:
        theirs = np.load(arrays / npy_name(frame_id))
        assert np.array_equal(theirs, cio.open(src).frame(frame_id).label_ids().astype(np.int32))
        assert np.array_equal(theirs, cio.open(out, format="camvid").frame(frame_id).label_ids().astype(np.int32))


def test_datumaro_reads_our_train_id_dataset_meta(tmp_path):
    out = str(tmp_path / "train_ids")
    ds = cio.open(cio.sample_path()).to_train_ids()
    ds.export(out, format="cityscapes", save_dataset_meta=True, save_media=True)  # Datumaro needs the photos
    assert os.path.isfile(os.path.join(out, "dataset_meta.json"))
    train = cio.LabelMap.cityscapes_train()
    result, _ = datumaro_read(tmp_path, out, "cityscapes")
    assert result["labels"] == train.names  # 19 train classes, then "ignore" (255), in id order
    assert sorted(result["items"]) == sorted(f.id for f in ds)
    assert cio.open(out).labels.names == train.names


def test_datumaro_reads_our_train_id_masks(tmp_path):
    """A dataset mapped to train ids is written into ``_labelTrainIds.png`` (never into
    ``_labelIds.png``), which is the file Datumaro reads first: it gets every pixel's train
    class, except two it cannot have by its own rules: index 0 (road) is its background and
    never imported, and 255 (ignore) is no index of its label list."""
    out = str(tmp_path / "train_ids")
    ds = cio.open(cio.sample_path()).to_train_ids()
    ds.export(out, format="cityscapes", save_media=True)
    assert not [n for _, _, fs in os.walk(out) for n in fs if n.endswith("_labelIds.png")]
    result, arrays = datumaro_read(tmp_path, out, "cityscapes")
    ours = cio.open(out)
    assert ours.labels.is_train_ids and result["labels"] == ours.labels.names
    checked = 0
    for frame in ours:
        theirs = np.load(arrays / npy_name(frame.id))
        mine = frame.label_ids().astype(np.int32)
        assert np.array_equal(mine, cio.open(cio.sample_path()).frame(frame.id, frame.split).train_ids())
        kept = (mine != 0) & (mine != 255)
        assert np.array_equal(theirs[kept], mine[kept]), f"{frame.id}: train classes differ"
        assert (theirs[~kept] == -1).all()
        checked += int(kept.sum())
    assert checked > 0


# -- trees Datumaro exports, read by us ----------------------------------------------------------
@pytest.fixture(scope="module")
def datumaro_exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("datumaro-exports")
    return out, run_datumaro(MAKE, out)


@pytest.mark.parametrize("tree, fmt", [("voc", "voc"), ("voc_index", "voc"), ("camvid", "camvid"),
                                       ("camvid_index", "camvid"), ("cityscapes", "cityscapes")])
def test_we_read_datumaro_exports(datumaro_exports, tree, fmt):
    out, made = datumaro_exports
    ds = cio.open(str(out / tree), format=fmt)
    frames = {f.id: f for f in ds}
    dm_labels = [cio.Label(n, i) for i, n in enumerate(made["labels"])]
    for item_id, (subset, masked) in made["items"].items():
        if not masked:
            if item_id in frames:  # listed with its photo only
                assert not frames[item_id].has_annotations and frames[item_id].has_image
            else:
                assert fmt == "cityscapes", f"{tree}: image-only item {item_id} missing"
            continue
        frame = frames[item_id]
        assert frame.split == subset and frame.has_image
        expected = names_of(np.load(out / npy_name(item_id)), dm_labels)
        got = names_of(frame.label_ids().astype(np.int32), ds.labels)
        assert np.array_equal(got, expected), f"{tree}/{item_id}: classes differ"
        if fmt == "voc":  # VOC keeps the objects apart: the two cars and the person are instances
            cars = [i for i in frame.instances() if i.label.name == "car"]
            people = [i for i in frame.instances() if i.label.name == "person"]
            assert len(cars) == 2 and not any(i.is_crowd for i in cars) and len(people) == 1


def test_camvid_without_label_colors_read_by_both(tmp_path):
    """Datumaro's own test asset is such a tree: both read it with the 32-class CamVid map."""
    root = str(tmp_path / "camvid")
    colors = {0: (0, 0, 0), 18: (128, 64, 128), 22: (128, 128, 128), 6: (64, 0, 128), 17: (64, 64, 0)}
    cls = np.zeros((8, 10), np.uint8)
    cls[0:2] = 22  # Sky
    cls[5:] = 18  # Road
    cls[3:5, 1:4] = 6  # Car
    cls[2:5, 7:9] = 17  # Pedestrian
    rgb = np.zeros((8, 10, 3), np.uint8)
    for k, c in colors.items():
        rgb[cls == k] = c
    lines = []
    for split, stem in (("train", "0001TP_006690"), ("test", "0001TP_008550")):
        write_file(root, f"{split}annot/{stem}.png", encode_png(rgb))
        write_file(root, f"{split}/{stem}.png", encode_png(np.zeros((8, 10, 3), np.uint8)))
        write_file(root, f"{split}.txt", f"/{split}/{stem}.png /{split}annot/{stem}.png\n".encode())
        lines.append((split, stem))
    result, arrays = datumaro_read(tmp_path, root, "camvid")
    ours = cio.open(root, format="camvid")
    assert result["labels"] == ours.labels.names and len(ours.labels) == 32
    for split, stem in lines:
        assert result["items"][stem][0] == split
        theirs = names_of(np.load(arrays / npy_name(stem)), [cio.Label(n, i) for i, n in enumerate(result["labels"])])
        mine = names_of(ours.frame(stem, split).label_ids().astype(np.int32), ours.labels)
        assert np.array_equal(theirs, mine)
        assert np.array_equal(mine, names_of(cls.astype(np.int32), ours.labels))
