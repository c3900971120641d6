import pickle

import fsspec
import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

import cityscapes_io as cio
from cityscapes_io.png import encode_png

from conftest import SEMANTIC, TREE_ORDER, label_ids_of, write_file, write_frame


def test_walks_split_city_frame_in_sorted_order(tree):
    ds = cio.open(tree)
    assert ds.splits() == ["train", "val"]
    assert ds.cities("train") == ["aachen", "bad-honnef"]
    assert ds.cities("val") == ["muhlheim-ruhr", "stuttgart_00"]
    got = [(f.split, f.id) for f in ds]
    assert got == TREE_ORDER  # split, city, sequence, frame number
    assert ds.count() == 6
    f = ds.frame("bad-honnef/bad-honnef_000001_000042")
    assert (f.split, f.city, f.seq, f.frame) == ("train", "bad-honnef", 1, 42)
    assert ds.labels.source == "cityscapes"


def test_frames_missing_a_side(tree):
    ds = cio.open(tree)
    gt_only = ds.frame("aachen/aachen_000002_000007", split="train")
    assert gt_only.image() is None and gt_only.image_bytes() is None
    assert len(gt_only.instances()) == 7
    photo_only = ds.frame("stuttgart_00/stuttgart_00_000000_000001")
    assert photo_only.instances() == [] and photo_only.label_ids() is None
    img = photo_only.image()
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8 and img[0, 5, 0] == 5
    assert photo_only.image_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_and_city_filters(tree):
    assert [f.id for f in cio.open(tree, split="val", cities=["stuttgart_00"])] == [
        "stuttgart_00/stuttgart_00_000000_000001"]
    assert cio.open(tree, split=["train"]).count() == 4
    with pytest.raises(cio.DatasetNotFoundError, match="no split 'test'"):
        cio.open(tree, split="test")


def test_not_a_dataset(tmp_path):
    with pytest.raises(cio.DatasetNotFoundError, match="not a Cityscapes dataset"):
        cio.open(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        cio.open(str(tmp_path / "missing"))


def test_ids_outside_the_grammar_read_back(tmp_path):
    root = str(tmp_path)
    for fid in ["1", "a/b/1", "a/ü 2", "2007_000032"]:
        write_frame(root, "train", fid)
    frames = list(cio.open(root))
    assert sorted(f.id for f in frames) == ["1", "2007_000032", "a/b/1", "a/ü 2"]
    nested = next(f for f in frames if f.id == "a/b/1")
    assert (nested.city, nested.seq, nested.frame) == ("a", None, None)
    assert nested.image().shape == (24, 32, 3) and len(nested.instances()) == 7


def test_label_file_precedence(tmp_path):
    root = str(tmp_path)
    inst = np.array([[0, 1, 2, 1002]], np.uint16)
    write_frame(root, "train", "x/x_000000_000000", inst, photo=False)
    write_file(root, "label_colors.txt", b"0 0 0 background\n1 2 3 elephant\n4 5 6 zebra big\n")
    ds = cio.open(root)
    assert ds.labels.names == ["background", "elephant", "zebra big"]
    assert ds.labels.source.endswith("label_colors.txt")
    names = [(i.label.name, i.id) for i in next(iter(ds)).instances()]
    assert names == [("background", None), ("elephant", None), ("zebra big", None), ("elephant", 2)]
    write_file(root, "dataset_meta.json", b'{"label_map": {"0": "bg", "1": "cat", "2": "dog"}}')
    ds = cio.open(root)
    assert ds.labels.names == ["bg", "cat", "dog"] and ds.labels.source.endswith("dataset_meta.json")


def test_bad_label_file_is_a_clear_error(tmp_path):
    root = str(tmp_path)
    write_frame(root, "train", "x/x_000000_000000")
    write_file(root, "label_colors.txt", b"0 124 elephant\n")
    with pytest.raises(cio.LabelMapError, match=r"label_colors.txt: line 1"):
        cio.open(root)


def test_label_train_ids_split_keeps_road(tmp_path):
    root = str(tmp_path)
    train_ids = np.array([[0, 0, 13, 255], [1, 18, 13, 0]], np.uint8)
    write_file(root, "gtFine/train/x/x_000000_000000_gtFine_labelTrainIds.png", encode_png(train_ids))
    frame = next(iter(cio.open(root)))
    assert frame.labels.source == "cityscapes-train"
    got = {i.label.name: i.area for i in frame.instances()}
    assert got == {"road": 3, "sidewalk": 1, "car": 2, "bicycle": 1, "ignore": 1}
    assert np.array_equal(frame.label_ids(), train_ids)


def test_frame_pickles_without_pixels_and_decodes_once(tree):
    frame = cio.open(tree).frame("aachen/aachen_000010_000019")
    first = frame.instance_ids()
    assert frame.instance_ids() is first and frame.instances() is frame.instances()
    state = pickle.dumps(frame)
    assert len(state) < 4096  # file references, no pixels
    clone = pickle.loads(state)
    assert np.array_equal(clone.instance_ids(), SEMANTIC)
    assert np.array_equal(clone.label_ids(), label_ids_of(SEMANTIC))
    frame.release()
    assert frame._cache == {}


class CountingFileSystem(LocalFileSystem):
    """The real local filesystem, counting the calls the reader makes."""

    protocol = "countingfile"
    calls: list = []

    def ls(self, path, detail=True, **kw):
        self.calls.append(("ls", path))
        return super().ls(path, detail=detail, **kw)

    def find(self, path, *a, **kw):
        self.calls.append(("find", path))
        return super().find(path, *a, **kw)

    def cat_file(self, path, *a, **kw):
        self.calls.append(("cat_file", path))
        return super().cat_file(path, *a, **kw)


def test_first_frame_lists_one_city_and_decodes_one_file(tmp_path, monkeypatch):
    root = str(tmp_path)
    inst = SEMANTIC
    data = encode_png(inst)
    for c in range(30):
        for n in range(10):
            write_file(root, f"gtFine/train/city{c:02d}/city{c:02d}_000000_{n:06d}_gtFine_instanceIds.png", data)
    fsspec.register_implementation("countingfile", CountingFileSystem, clobber=True)
    CountingFileSystem.calls = []
    decoded = []
    import cityscapes_io.png as png

    real = png.decode_gray
    monkeypatch.setattr(png, "decode_gray", lambda d, p: decoded.append(p) or real(d, p))
    ds = cio.open("countingfile://" + root)
    frame = next(iter(ds))
    assert len(frame.instances()) == 7
    finds = [p for op, p in CountingFileSystem.calls if op == "find"]
    cats = [p for op, p in CountingFileSystem.calls if op == "cat_file" and "/gtFine/" in p]
    assert len(finds) == 1 and finds[0].endswith("gtFine/train/city00")
    assert len(cats) == 1 and cats[0].endswith("city00_000000_000000_gtFine_instanceIds.png")
    assert len(decoded) == 1
    listed = {p.rsplit("/", 1)[-1] for op, p in CountingFileSystem.calls if op in ("ls", "find") and "/city" in p}
    assert listed == {"city00"}  # the other 29 cities are not listed
