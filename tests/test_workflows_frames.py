"""Issue 18, frames built in memory as users build them: train-id predictions written with a
train-id writer, label ids taken from numpy arrays, integer frame ids."""
import warnings

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import Frame, Instance, LabelMap
from cityscapes_io.errors import LabelMapError

H, W = 24, 380  # every band of 19 or 20 classes is 19 or 20 pixels wide


def train_id_array(seed: int, ignore: bool = True) -> np.ndarray:
    """A prediction in train ids: every class 0..18 and 255 (ignore, unless not ``ignore``),
    in bands."""
    rng = np.random.default_rng(seed)
    values = np.array(list(range(19)) + [255] * ignore, dtype=np.uint8)
    rng.shuffle(values)
    cols = np.repeat(values, W // len(values))
    return np.tile(cols, (H, 1))


def frame_of(arr: np.ndarray, frame_id: str, **kwargs) -> Frame:
    instances = [Instance.from_mask(arr == v, label_id=v, is_crowd=True) for v in np.unique(arr)]
    return Frame.from_arrays(id=frame_id, split="val", instances=instances, **kwargs)


def frames(n: int = 2, ignore: bool = True, **kwargs):
    ids = [f"aachen/aachen_00000{k}_000019" for k in range(n)]
    arrays = [train_id_array(k, ignore) for k in range(n)]
    return ids, arrays, [frame_of(a, i, **kwargs) for i, a in zip(ids, arrays)]


# -- 1. a frame without labels takes the writer's -------------------------------------------------
@pytest.mark.parametrize("ignore", [True, False])
@pytest.mark.parametrize("fmt", ["cityscapes", "voc"])
def test_frames_without_labels_take_the_writers_train_ids(tmp_path, fmt, ignore):
    """Without 255 the frames used to be read as official label ids and written with one
    warning (15% of pixels right); with it, refused as unknown labels."""
    train = LabelMap.cityscapes_train()
    ids, arrays, made = frames(ignore=ignore)
    out = str(tmp_path / fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with cio.writer(out, fmt, labels=train) as w:
            for frame in made:
                w.write(frame)
    back = {f.id: f for f in cio.open(out, format=fmt)}
    assert sorted(back) == sorted(ids)
    for frame_id, arr in zip(ids, arrays):
        got = back[frame_id]
        names = np.array([got.labels[int(v)].name for v in got.label_ids().ravel()]).reshape(arr.shape)
        want = np.array([train[int(v)].name for v in arr.ravel()]).reshape(arr.shape)
        # VOC keeps 255 as its void (the reader gives it the map's background): compare the classes.
        kept = arr != 255 if fmt == "voc" else np.ones(arr.shape, dtype=bool)
        assert (names[kept] == want[kept]).all()
        assert names[arr == 0].tolist() and set(names[arr == 0].ravel()) == {"road"}


def test_frames_without_labels_take_the_writers_in_convert(tmp_path):
    """The same frames in a Dataset made with the train-id map, through convert."""
    train = LabelMap.cityscapes_train()
    ids, arrays, made = frames()
    ds = cio.Dataset.from_iterable(made, labels=train)
    out = str(tmp_path / "cs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.export(out, "cityscapes")
    back = {f.id: f for f in cio.open(out)}
    for frame_id, arr in zip(ids, arrays):
        got = back[frame_id]
        names = np.array([got.labels[int(v)].name for v in got.label_ids().ravel()]).reshape(arr.shape)
        want = np.array([train[int(v)].name for v in arr.ravel()]).reshape(arr.shape)
        assert (names == want).all()


def test_frames_without_labels_take_the_writers_output_labels(tmp_path):
    """With no ``labels=`` but an output ``label_map``, frames without labels take that."""
    train = LabelMap.cityscapes_train()
    ids, arrays, made = frames(ignore=False)
    out = str(tmp_path / "cs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with cio.writer(out, "cityscapes", label_map=train) as w:
            for frame in made:
                w.write(frame)
    back = {f.id: f for f in cio.open(out)}
    for frame_id, arr in zip(ids, arrays):
        got = back[frame_id]
        assert [got.labels[int(v)].name for v in got.label_ids()[0]] == [train[int(v)].name for v in arr[0]]


def test_frame_without_labels_keeps_them_unset():
    _, _, made = frames(1)
    assert not made[0].labels_given
    _, _, given = frames(1, labels=LabelMap.cityscapes_train())
    assert given[0].labels_given


@pytest.mark.parametrize("fmt", ["cityscapes", "coco_panoptic", "wds"])
def test_explicit_conflicting_labels_raise_naming_the_frame(tmp_path, fmt):
    """Train-id pixels (no 255) claimed as official ids by the frame, as train ids by the
    writer: which is meant cannot be told, and the frame is refused (it used to be mapped by
    name, silently wrong)."""
    ids, _, made = frames(1, ignore=False, labels=LabelMap.cityscapes())
    with pytest.raises(LabelMapError, match="aachen_000000_000019") as info:
        with cio.writer(str(tmp_path / fmt), fmt, labels=LabelMap.cityscapes_train()) as w:
            w.write(made[0])
    assert "writer's" in str(info.value)


def test_explicit_same_labels_are_no_conflict(tmp_path):
    train = LabelMap.cityscapes_train()
    ids, arrays, made = frames(1, labels=LabelMap.cityscapes_train())
    out = str(tmp_path / "cs")
    with cio.writer(out, "cityscapes", labels=train) as w:
        w.write(made[0])
    got = next(iter(cio.open(out)))
    assert got.labels[int(got.label_ids()[0, 0])].name == train[int(arrays[0][0, 0])].name


def test_writer_without_labels_still_maps_frames_by_name(tmp_path):
    """Without the writer's ``labels=``, frames with their own labels are mapped onto the
    output map by name, as before (``label_map`` is a conversion, not a conflict)."""
    official = LabelMap.cityscapes()
    road = np.zeros((H, W), dtype=bool)
    road[:, : W // 2] = True
    inst = [Instance.from_mask(road, label_id=official["road"].id, is_crowd=True),
            Instance.from_mask(~road, label_id=official["sky"].id, is_crowd=True)]
    frame = Frame.from_arrays(id="aachen/aachen_000000_000019", split="val", instances=inst, labels=official)
    out = str(tmp_path / "cs")
    train = LabelMap.cityscapes_train()
    with cio.writer(out, "cityscapes", label_map=train) as w:
        w.write(frame)
    got = next(iter(cio.open(out)))
    lab = got.label_ids()
    assert got.labels[int(lab[0, 0])].name == "road" and got.labels[int(lab[0, -1])].name == "sky"


# -- 2. numpy label ids, integer frame ids --------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.int64])
def test_from_mask_numpy_label_id(dtype):
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 2:4] = True
    k = dtype(26)  # car
    inst = Instance.from_mask(mask, label_id=k, id=3)
    assert inst.value == 26003 and type(inst.value) is int and type(inst.label_id) is int
    assert inst.id == 3
    crowd = Instance.from_mask(mask, label_id=k, is_crowd=True)
    assert crowd.value == 26
    numbered = Instance.from_mask(mask, label_id=np.uint8(26), id=np.uint16(999))
    assert numbered.value == 26999 and type(numbered.id) is int


def test_from_mask_label_from_unique_is_written(tmp_path):
    pred = np.full((H, W), 7, dtype=np.uint8)  # road
    pred[:, W // 2:] = 26  # car
    insts = [Instance.from_mask(pred == k, label_id=k, id=0) if k == 26 else
             Instance.from_mask(pred == k, label_id=k, is_crowd=True) for k in np.unique(pred)]
    frame = Frame.from_arrays(id="aachen/aachen_000000_000019", instances=insts)
    ids = frame.instance_ids()
    assert ids[0, 0] == 7 and ids[0, -1] == 26000


def test_from_mask_bad_label_id_is_a_value_error():
    mask = np.ones((2, 2), dtype=bool)
    with pytest.raises(ValueError):
        Instance.from_mask(mask, label_id=np.uint8(66), id=0)
    with pytest.raises(ValueError):
        Instance.from_mask(mask, label_id=-1)
    with pytest.raises((ValueError, TypeError)):
        Instance.from_mask(mask, label_id=np.float32(2.5))


def test_from_arrays_int_id():
    frame = Frame.from_arrays(id=1, image=np.zeros((4, 4, 3), np.uint8))
    assert frame.id == "1" and isinstance(frame.id, str)
    frame = Frame.from_arrays(id=np.int64(12), image=np.zeros((4, 4, 3), np.uint8))
    assert frame.id == "12"


def test_from_arrays_int_id_written(tmp_path):
    mask = np.ones((4, 4), dtype=bool)
    frame = Frame.from_arrays(id=1, image=np.zeros((4, 4, 3), np.uint8),
                              instances=[Instance.from_mask(mask, label_id=np.uint8(7), is_crowd=True)])
    out = str(tmp_path / "voc")
    with cio.writer(out, "voc", save_media=True) as w:
        w.write(frame)
    back = list(cio.open(out, format="voc"))
    assert [f.id for f in back] == ["1"]
    assert back[0].labels[int(back[0].label_ids()[0, 0])].name == "road"


@pytest.mark.parametrize("bad", [1.5, None, b"a", ["a"], True])
def test_from_arrays_bad_id_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="frame id"):
        Frame.from_arrays(id=bad, image=np.zeros((4, 4, 3), np.uint8))
