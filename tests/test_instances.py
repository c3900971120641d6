import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.instances import segment_stats
from cityscapes_io.png import encode_png

from conftest import SEMANTIC, write_file, write_frame


def _frame(root, inst, **open_kw):
    write_frame(root, "train", "aachen/aachen_000000_000001", inst)
    return next(iter(cio.open(root, **open_kw)))


def test_instance_semantics(tmp_path):
    frame = _frame(str(tmp_path), SEMANTIC)
    by_value = {i.value: i for i in frame.instances()}
    assert sorted(by_value) == [0, 7, 26, 24001, 26000, 26003, 26005]
    car0 = by_value[26000]
    assert (car0.label_id, car0.label.name, car0.id, car0.is_crowd) == (26, "car", 0, False)
    assert car0.area == 20 and car0.bbox == (2, 5, 5, 4)
    assert by_value[26003].id == 3 and by_value[26005].id == 5  # gaps are kept
    crowd = by_value[26]
    assert (crowd.label.name, crowd.id, crowd.is_crowd, crowd.area) == ("car", None, True, 12)
    road = by_value[7]
    assert (road.label.name, road.id, road.is_crowd) == ("road", None, True)
    assert by_value[0].label.name == "unlabeled"
    for inst in frame.instances():
        assert inst.mask.shape == SEMANTIC.shape and inst.mask.dtype == bool
        assert np.array_equal(inst.mask, SEMANTIC == inst.value)
        x, y, w, h = inst.bbox
        assert np.array_equal(inst.mask_crop, (SEMANTIC == inst.value)[y:y + h, x:x + w])
    assert sum(i.area for i in frame.instances()) == SEMANTIC.size
    assert np.array_equal(frame.label_ids(), np.where(SEMANTIC >= 1000, SEMANTIC // 1000, SEMANTIC))


def test_segment_stats_matches_brute_force():
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (1, 7), (9, 1), (37, 53), (128, 64)]:
        arr = rng.choice(np.array([0, 7, 26, 26000, 26003, 33999, 65535], np.uint16), size=shape)
        values, areas, x0, y0, x1, y1 = segment_stats(arr)
        assert list(values) == sorted(np.unique(arr))
        for v, a, a0, b0, a1, b1 in zip(values, areas, x0, y0, x1, y1):
            ys, xs = np.nonzero(arr == v)
            assert (a, a0, b0, a1, b1) == (len(xs), xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_unknown_label_raises_naming_file(tmp_path):
    inst = SEMANTIC.copy()
    inst[20:22, 0:2] = 40001  # label 40 is not in the official map
    frame = _frame(str(tmp_path), inst)
    with pytest.raises(cio.UnknownLabelError) as e:
        frame.instances()
    assert "aachen_000000_000001_gtFine_instanceIds.png" in str(e.value) and "40" in e.value.reason


def test_unknown_label_skipped_or_handed_to_callable(tmp_path):
    inst = SEMANTIC.copy()
    inst[20:22, 0:2] = 40001
    frame = _frame(str(tmp_path / "a"), inst, on_error="skip")
    with pytest.warns(UserWarning, match="40001"):
        values = [i.value for i in frame.instances()]
    assert 40001 not in values and 26003 in values
    seen = []
    frame = _frame(str(tmp_path / "b"), inst, on_error=seen.append)
    assert 40001 not in [i.value for i in frame.instances()]
    assert len(seen) == 1 and isinstance(seen[0], cio.UnknownLabelError)


def test_eight_bit_instance_ids_are_plain_class_ids(tmp_path):
    inst = np.full((8, 8), 7, np.uint8)
    inst[2:4, 2:4] = 26
    root = str(tmp_path)
    write_file(root, "gtFine/val/x/x_000000_000000_gtFine_instanceIds.png", encode_png(inst))
    frame = next(iter(cio.open(root)))
    assert frame.instance_ids().dtype == np.uint8
    assert [(i.label.name, i.is_crowd, i.id, i.area) for i in frame.instances()] == [("road", True, None, 60),
                                                                                    ("car", True, None, 4)]


def test_instance_from_mask():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    inst = cio.Instance.from_mask(mask, label_id=26, id=3)
    assert (inst.value, inst.id, inst.is_crowd, inst.area, inst.bbox) == (26003, 3, False, 4, (2, 1, 2, 2))
    assert np.array_equal(inst.mask, mask)
    crowd = cio.Instance.from_mask(mask, label_id=26, is_crowd=True)
    assert (crowd.value, crowd.id, crowd.is_crowd) == (26, None, True)
