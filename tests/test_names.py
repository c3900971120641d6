import pytest

from cityscapes_io.names import gt_path, image_path, parse_frame_id, safe_relpath, sort_key, split_suffix


@pytest.mark.parametrize("frame_id, city, seq, frame", [
    ("aachen/aachen_000000_000019", "aachen", 0, 19),
    ("bad-honnef/bad-honnef_000123_000456", "bad-honnef", 123, 456),
    ("muhlheim-ruhr/muhlheim-ruhr_000000_000001", "muhlheim-ruhr", 0, 1),
    ("stuttgart_00/stuttgart_00_000000_000001", "stuttgart_00", 0, 1),
    ("1", None, None, None),
    ("a/b/1", "a", None, None),
    ("2007_000032", None, None, None),
    ("frankfurt_000000_000294", "frankfurt", 0, 294),
])
def test_parse_frame_id(frame_id, city, seq, frame):
    n = parse_frame_id(frame_id)
    assert (n.city, n.seq, n.frame) == (city, seq, frame)


def test_split_suffix_is_inverse_of_paths():
    fid = "stuttgart_00/stuttgart_00_000000_000001"
    for kind in ("instanceIds", "labelIds", "labelTrainIds", "color"):
        rel = gt_path("val", fid, kind)[len("gtFine/val/"):]
        assert split_suffix(rel, "gtFine") == (fid, kind)
    rel = image_path("val", "a/b/ü 1", ".jpg")[len("leftImg8bit/val/"):]
    assert split_suffix(rel, "leftImg8bit") == ("a/b/ü 1", "image")
    assert split_suffix("aachen/README.txt", "gtFine") is None
    assert split_suffix("aachen/x_leftImg8bit", "leftImg8bit") is None


def test_sort_key_orders_by_city_seq_frame():
    ids = ["b/b_000001_000000", "a/a_000010_000001", "a/a_000002_000100", "a/a_000002_000007"]
    assert sorted(ids, key=sort_key) == ["a/a_000002_000007", "a/a_000002_000100", "a/a_000010_000001",
                                         "b/b_000001_000000"]


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "C:/x", "./a"])
def test_safe_relpath_refuses_escapes(bad):
    with pytest.raises(ValueError):
        safe_relpath(bad)
