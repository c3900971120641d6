"""cityscapes_io.show: the annotated picture of a frame."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import cityscapes_io
from cityscapes_io import Frame, Instance, LabelMap, show
from cityscapes_io.testing import generate

from conftest import SEMANTIC, write_frame

CAR = (0, 0, 142)
LABELS = LabelMap.cityscapes()


def _erode(mask: np.ndarray, n: int) -> np.ndarray:
    m = mask.copy()
    for _ in range(n):
        e = m.copy()
        e[1:] &= m[:-1]
        e[:-1] &= m[1:]
        e[:, 1:] &= m[:, :-1]
        e[:, :-1] &= m[:, 1:]
        e[0] = e[-1] = False
        e[:, 0] = e[:, -1] = False
        m = e
    return m


def _dist(pixels: np.ndarray, color) -> np.ndarray:
    return np.linalg.norm(pixels.astype(np.float64) - np.asarray(color, np.float64), axis=-1)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("show") / "ds")
    generate(root, splits={"train": 1}, size=(256, 128))
    return root


@pytest.fixture
def frame(synthetic_root):
    return next(iter(cityscapes_io.open(synthetic_root)))


def _cars(frame):
    return [i for i in frame.instances() if i.label.name == "car" and not i.is_crowd]


def test_shape_has_legend_beside_the_photo(frame):
    photo = frame.image()
    out = show.render(frame)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[1] > photo.shape[1]  # the legend panel
    assert out.shape[0] > photo.shape[0]  # the title line
    bare = show.render(frame, legend=False)
    assert bare.shape == photo.shape


def test_car_pixels_are_tinted_toward_the_car_colour(frame):
    photo = frame.image()
    out = show.render(frame, legend=False)
    cars = _cars(frame)
    assert cars, "the synthetic frame should have cars"
    for inst in cars:
        inner = _erode(inst.mask, 2)  # away from the outline
        if not inner.any():
            continue
        before = _dist(photo[inner], CAR).mean()
        after = _dist(out[inner], CAR).mean()
        assert after < before, (inst.value, before, after)
        # Every pixel moved, not only the mean.
        assert (np.abs(out[inner].astype(int) - photo[inner]).sum(axis=1) > 0).mean() > 0.95


def test_outline_pixels_differ_from_the_fill(frame):
    out = show.render(frame, legend=False)
    for inst in _cars(frame):
        mask = inst.mask
        boundary = mask & ~_erode(mask, 1)
        inner = _erode(mask, 2)
        fill, edge = show.instance_colors(CAR, inst.id)
        assert fill != edge
        # Outlines are drawn opaque in the instance's outline colour.
        assert (out[boundary] == edge).all(), inst.value
        if inner.any():
            assert _dist(out[inner], edge).min() > 20
    no_outline = show.render(frame, legend=False, outline=False)
    car = max(_cars(frame), key=lambda i: i.area)
    boundary = car.mask & ~_erode(car.mask, 1)
    assert not (no_outline[boundary] == show.instance_colors(CAR, car.id)[1]).all(axis=1).all()


def test_instances_of_one_class_get_different_shades():
    fills = {show.instance_colors(CAR, n)[0] for n in range(8)}
    assert len(fills) == 8
    assert show.instance_colors(CAR, 0)[0] == CAR  # instance 0 keeps the label colour
    assert show.instance_colors(CAR, None)[0] == CAR


def test_legend_shows_the_colours_of_the_labels_present(frame):
    photo_w = frame.image().shape[1]
    out = show.render(frame)
    panel = out[:, photo_w:].reshape(-1, 3)
    present = {tuple(i.label.color) for i in frame.instances() if i.label.color not in (None, (0, 0, 0))}
    assert len(present) >= 5
    colours = {tuple(c) for c in np.unique(panel, axis=0)}
    assert present <= colours, present - colours


def test_legend_counts_instances_and_crowds(tmp_path):
    write_frame(str(tmp_path), "train", "aachen/aachen_000000_000019")  # conftest.SEMANTIC
    frame = next(iter(cityscapes_io.open(str(tmp_path))))
    rows, things = show._rows(frame.instances())
    by_name = {r.name: r for r in rows}
    assert by_name["car"].counts() == "x3 + 1 crowd"
    assert by_name["person"].counts() == "x1"
    assert by_name["road"].counts() == "" and not things[7]
    assert by_name["unlabeled"].counts() == "not drawn"
    assert rows[-1].name == "unlabeled"  # void labels last
    out = show.render(frame)
    assert out.shape[1] > SEMANTIC.shape[1]


def test_frame_without_photo_renders_on_gray(tmp_path):
    root = str(tmp_path / "gt")
    generate(root, splits={"train": 1}, size=(256, 128), photos=False)
    frame = next(iter(cityscapes_io.open(root)))
    assert frame.image() is None
    out = show.render(frame, legend=False)
    assert out.shape == (128, 256, 3)
    void = frame.label_ids() <= 4  # unlabeled, ego vehicle, borders: not filled
    assert void.any()
    assert (out[void] == show.NO_PHOTO_GRAY).all()
    full = show.render(frame)
    assert full.shape[0] > 128 and full.shape[1] > 256


def test_save_writes_a_png(frame, tmp_path):
    path = tmp_path / "frame.png"
    show.save(frame, path, max_width=400)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        arr = np.asarray(img)
    assert arr.shape[1] <= 400
    assert np.array_equal(arr, show.render(frame, max_width=400))


@pytest.mark.parametrize("legend", [True, False])
def test_max_width(frame, legend):
    out = show.render(frame, legend=legend, max_width=128)
    assert out.shape[1] <= 128
    assert show.render(frame, legend=legend, max_width=100_000).shape == show.render(frame, legend=legend).shape
    if not legend:
        assert out.shape == (64, 128, 3)


def _memory_frame(labels=LABELS):
    h, w = 40, 60
    photo = np.full((h, w, 3), 100, np.uint8)
    car_a = np.zeros((h, w), bool)
    car_a[5:20, 5:25] = True
    car_b = np.zeros((h, w), bool)
    car_b[5:20, 25:45] = True  # touches car_a
    crowd = np.zeros((h, w), bool)
    crowd[22:38, 5:45] = True
    void = np.zeros((h, w), bool)
    void[:, 50:] = True
    insts = [
        Instance.from_mask(car_a, label_id=26, id=1),
        Instance.from_mask(car_b, label_id=26, id=2),
        Instance.from_mask(crowd, label_id=26, is_crowd=True),
        Instance.from_mask(void, label_id=0, is_crowd=True),
    ]
    frame = Frame.from_arrays(id="a/a_000000_000001", split="val", image=photo, instances=insts, labels=labels)
    return frame, photo, (car_a, car_b, crowd, void)


def test_touching_instances_hatched_crowds_and_void():
    frame, photo, (car_a, car_b, crowd, void) = _memory_frame()
    out = show.render(frame, legend=False)
    # Two touching cars: different fills, and an outline between them.
    a = out[_erode(car_a, 2)]
    b = out[_erode(car_b, 2)]
    assert len(np.unique(a, axis=0)) == 1 and len(np.unique(b, axis=0)) == 1
    assert not np.array_equal(a[0], b[0])
    seam = out[10, 24:26]  # last column of car_a, first of car_b: both outlined
    assert not (seam == a[0]).all(axis=1).any() and not (seam == b[0]).all(axis=1).any()
    # The crowd is hatched: at least two shades inside, all tinted toward the car colour.
    inner = out[_erode(crowd, 2)]
    assert len(np.unique(inner, axis=0)) >= 2
    assert _dist(inner, CAR).max() < _dist(photo[0, 0], CAR)
    # The void label is left as the photo.
    assert (out[void] == photo[void]).all()


def test_labels_without_colours_are_not_filled():
    plain = LabelMap.from_colors({"background": None, "thing": None})
    h, w = 20, 30
    photo = np.full((h, w, 3), 90, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[4:12, 4:20] = True
    frame = Frame.from_arrays(id="x/x_000000_000001", image=photo,
                              instances=[Instance.from_mask(mask, label_id=1, id=0)], labels=plain)
    assert np.array_equal(show.render(frame, legend=False), photo)
    assert show.render(frame).shape[1] > w


def test_frame_without_annotations_renders(tmp_path):
    write_frame(str(tmp_path), "val", "ulm/ulm_000000_000019", gt=False)
    frame = next(iter(cityscapes_io.open(str(tmp_path))))
    out = show.render(frame)
    assert out.shape[1] > SEMANTIC.shape[1]
    assert np.array_equal(show.render(frame, legend=False), frame.image())


def test_no_full_frame_masks(frame, monkeypatch):
    def refuse(self):
        raise AssertionError("render must work on mask_crop")

    monkeypatch.setattr(Instance, "mask", property(refuse))
    show.render(frame)


def test_bad_arguments(frame):
    with pytest.raises(ValueError):
        show.render(frame, alpha=1.5)
    with pytest.raises(ValueError):
        show.render(frame, max_width=0)
