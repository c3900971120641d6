import json

import pytest

from cityscapes_io import Label, LabelMap, LabelMapError


def test_official_map():
    lm = LabelMap.cityscapes()
    assert len(lm) == 35
    assert lm[26] == Label("car", 26, (0, 0, 142), 13, "vehicle", True, False)
    assert lm["road"].train_id == 0 and lm["road"].id == 7
    assert lm["license plate"].id == -1
    assert lm.find("trafficlight").id == 19 and lm.find("Traffic_Light").id == 19
    assert [l.name for l in lm if l.train_id is not None and 0 <= l.train_id < 255][:2] == ["road", "sidewalk"]


def test_train_map_keeps_road_at_zero():
    tm = LabelMap.cityscapes_train()
    assert tm[0].name == "road" and tm[18].name == "bicycle" and tm[255].ignore_in_eval
    assert len(tm) == 20


def test_from_colors_background_rule():
    lm = LabelMap.from_colors({"background": (0, 0, 0), "label_1": (1, 2, 3), "label_2": (3, 2, 1)})
    assert lm.names == ["background", "label_1", "label_2"] and lm["label_2"].id == 2
    # No black label: background inserted at index 0.
    lm = LabelMap.from_colors({"a": (1, 2, 3), "b": (4, 5, 6)})
    assert lm.names == ["background", "a", "b"] and lm["background"].color == (0, 0, 0)
    # A black label elsewhere stays where it is (it is the background).
    lm = LabelMap.from_colors({"a": (1, 2, 3), "void": (0, 0, 0)})
    assert lm.names == ["a", "void"]
    # Without colours, background has none either.
    assert LabelMap.from_colors({"a": None})["background"].color is None


def test_label_colors_parse_and_write_roundtrip():
    text = "# label_colors [color_rgb name]\n0 0 0 background\n0 124 134 elephant\n0 0 142 license plate\nzebra\n\n"
    lm = LabelMap.parse_label_colors(text)
    assert lm.names == ["background", "elephant", "license plate", "zebra"]
    assert lm["elephant"].color == (0, 124, 134) and lm["zebra"].color is None and lm[2].name == "license plate"
    assert LabelMap.parse_label_colors(lm.to_label_colors(keep_spaces=True)) == lm
    official = LabelMap.cityscapes()
    back = LabelMap.parse_label_colors(official.to_label_colors(keep_spaces=True))
    assert [l.name for l in back] == [l.name for l in official] and back["license plate"].id == 34
    # By default names are written one word each, as other tools split these lines.
    back = LabelMap.parse_label_colors(official.to_label_colors())
    assert back[1].name == "ego_vehicle" and back.find("ego vehicle").id == 1 and back["license_plate"].id == 34


@pytest.mark.parametrize("text, reason", [
    ("0 124 elephant\n", "expected 'R G B name'"),
    ("0 x 1 elephant\n", "expected 'R G B name'"),
    ("1 2 3 a\n4 5 6 a\n", "duplicate label name"),
    ("1 2 300 a\n", "0..255"),
])
def test_label_colors_errors_name_file_and_reason(text, reason):
    with pytest.raises(LabelMapError) as e:
        LabelMap.parse_label_colors(text, source="/data/label_colors.txt")
    assert reason in str(e.value) and str(e.value).startswith("/data/label_colors.txt: ")
    assert isinstance(e.value, ValueError)


def test_dataset_meta_roundtrip_and_errors():
    lm = LabelMap.from_colors({"background": (0, 0, 0), "car": (0, 0, 142)})
    meta = json.loads(lm.to_dataset_meta())
    assert meta["label_map"] == {"0": "background", "1": "car"} and meta["background_label"] == "0"
    assert LabelMap.parse_dataset_meta(lm.to_dataset_meta()) == lm
    assert LabelMap.parse_dataset_meta({"labels": ["a", "b"]}).names == ["a", "b"]
    with pytest.raises(LabelMapError, match="not valid JSON"):
        LabelMap.parse_dataset_meta("{nope", source="m.json")
    with pytest.raises(LabelMapError, match="missing key 'label_map'"):
        LabelMap.parse_dataset_meta("{}", source="m.json")
    with pytest.raises(LabelMapError, match="segmentation_colors"):
        LabelMap.parse_dataset_meta({"label_map": {"0": "a", "1": "b"}, "segmentation_colors": [[0, 0, 0]]})
