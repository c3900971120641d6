"""Polygons files: parsing (with the errors a bad file gets) and rasterising by the official
rules. The official scripts themselves are the oracle in tests/test_official_scripts.py; here
each rule is checked on rectangles whose pixels are known."""
from __future__ import annotations

import json

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.polygons import MAX_PIXELS, parse_polygons, rasterize, rename_polygons

W, H = 40, 20


def rect(x0, y0, x1, y1):
    """A rectangle covering pixels x0..x1, y0..y1 inclusive (Pillow fills the outline too)."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def doc(*objects, w=W, h=H):
    return json.dumps({"imgWidth": w, "imgHeight": h, "objects": list(objects)}).encode()


def obj(label, poly, **kw):
    return {"label": label, "polygon": poly, **kw}


def test_parse_keeps_file_order_names_and_groups():
    p = parse_polygons(doc(obj("road", rect(0, 0, 39, 19)), obj("cargroup", rect(1, 1, 5, 5)),
                           obj("polegroup", rect(6, 6, 8, 8)), obj("car", rect(2, 2, 3, 3), deleted=1)), "f.json")
    assert (p.width, p.height, len(p)) == (W, H, 4)
    assert [o.label for o in p] == ["road", "cargroup", "polegroup", "car"]
    assert [(o.resolved.name, o.is_group) for o in p] == [("road", False), ("car", True), ("polegroup", False),
                                                          ("car", False)]
    assert [o.deleted for o in p] == [False, False, False, True]
    assert p.objects[0].points.shape == (4, 2) and p.objects[0].points.dtype == np.int64


def test_painters_order_deleted_plate_and_background():
    p = parse_polygons(doc(
        obj("road", rect(0, 10, 39, 19)),
        obj("car", rect(5, 5, 20, 15)),            # over the road
        obj("license plate", rect(10, 12, 14, 14)),  # negative id: not drawn, the car stays
        obj("sky", rect(30, 0, 39, 4), deleted=1),   # deleted: not drawn
        obj("person", rect(18, 0, 25, 8)),           # over the car's top right
    ))
    ids = rasterize(p, "ids")
    assert ids.dtype == np.uint8 and ids.shape == (H, W)
    assert ids[0, 0] == 0 and ids[19, 0] == 7          # unlabeled background, road
    assert ids[12, 12] == 26                           # car under the plate
    assert ids[2, 35] == 0                             # the deleted sky
    assert ids[6, 19] == 24 and ids[14, 19] == 26      # the person over the car, the car below it
    train = rasterize(p, "trainIds")
    assert train[0, 0] == 255 and train[19, 0] == 0 and train[12, 12] == 13 and train[6, 19] == 11
    color = rasterize(p, "color")
    assert color.shape == (H, W, 4) and tuple(color[12, 12]) == (0, 0, 142, 255)
    assert tuple(color[0, 0]) == (0, 0, 0, 255)


def test_instance_numbers_per_class_in_file_order():
    p = parse_polygons(doc(
        obj("car", rect(0, 0, 9, 9)),          # 26000, later painted over entirely
        obj("car", rect(0, 0, 9, 9)),          # 26001
        obj("person", rect(12, 0, 15, 5)),     # 24000
        obj("cargroup", rect(20, 0, 25, 5)),   # a group: plain 26, takes no number
        obj("car", rect(30, 0, 35, 5)),        # 26002
        obj("car", rect(0, 12, 3, 15), deleted=1),  # deleted: takes no number
        obj("caravan", rect(30, 10, 35, 15)),  # 29000; train id 255: plain 255
        obj("car", rect(10, 12, 15, 15)),      # 26003
        obj("building", rect(20, 12, 25, 15)),  # stuff: 11
    ))
    inst = rasterize(p, "instanceIds")
    assert inst.dtype == np.uint16
    assert inst[5, 5] == 26001 and inst[2, 13] == 24000 and inst[2, 22] == 26 and inst[2, 32] == 26002
    assert inst[12, 32] == 29000 and inst[13, 12] == 26003 and inst[13, 22] == 11 and inst[13, 1] == 0
    assert 26000 not in np.unique(inst)  # painted over, but it took its number
    tinst = rasterize(p, "instanceTrainIds")
    assert tinst[5, 5] == 13001 and tinst[2, 13] == 11000 and tinst[2, 22] == 13 and tinst[2, 32] == 13002
    assert tinst[12, 32] == 255 and tinst[13, 12] == 13003 and tinst[13, 22] == 2 and tinst[13, 1] == 255


def test_many_instances_fit_uint16():
    objects = [obj("car", rect(i % 40, (i // 40) % 20, i % 40, (i // 40) % 20)) for i in range(400)]
    inst = rasterize(parse_polygons(doc(*objects)), "instanceIds")
    assert inst.max() == 26000 + 399 and inst.dtype == np.uint16


@pytest.mark.parametrize("data, reason", [
    (b"{not json", "not valid JSON"),
    (b"[]", "top level is not a JSON object"),
    (json.dumps({"imgHeight": 20, "objects": []}).encode(), "imgWidth is None"),
    (json.dumps({"imgWidth": -4, "imgHeight": 20, "objects": []}).encode(), "imgWidth is -4"),
    (json.dumps({"imgWidth": 200000, "imgHeight": 100000, "objects": []}).encode(), "larger than"),
    (json.dumps({"imgWidth": 4, "imgHeight": 4, "objects": {}}).encode(), "'objects' is not a list"),
    (doc(obj("car", [[0, 0], [1, 1], [2]])), "object 0: ('car') point 2"),
    (doc(obj("road", rect(0, 0, 3, 3)), obj("car", [[0, 0], [1, float("nan")], [2, 2]])),
     "not valid JSON: NaN is not a JSON number"),
    (doc(obj("car", [[0, 0], [1, float("inf")], [2, 2]])), "not valid JSON: Infinity is not a JSON number"),
    (doc(obj("car", [[0, 0], [1, 2]])).replace(b"2]]", b"1e400]]"), "not valid JSON: number 1e400 is out of range"),
    # Already parsed documents (no JSON parser on the way) are checked point by point.
    ({"imgWidth": 4, "imgHeight": 4, "objects": [obj("road", rect(0, 0, 3, 3)),
                                                  obj("car", [[0, 0], [1, float("nan")], [2, 2]])]},
     "object 1: ('car') point 1"),
    ({"imgWidth": 4, "imgHeight": 4, "objects": [obj("car", [[0, 0], [1, float("inf")], [2, 2]])]},
     "coordinates must be finite"),
    (doc({"polygon": rect(0, 0, 1, 1)}), "object 0: label is None"),
    (doc(obj("car", "0,0 1,1")), "object 0: ('car') has no 'polygon' list"),
])
def test_bad_files_name_file_object_and_reason(data, reason):
    with pytest.raises(InvalidFileError) as info:
        parse_polygons(data, "gtFine/train/x/x_000000_000000_gtFine_polygons.json")
    assert info.value.path == "gtFine/train/x/x_000000_000000_gtFine_polygons.json"
    assert reason in info.value.reason
    assert MAX_PIXELS < 200000 * 100000


@pytest.mark.parametrize("objects, reason", [
    ([obj("road", rect(0, 0, 3, 3)), obj("flying saucer", rect(0, 0, 3, 3))], "object 1: unknown label 'flying saucer'"),
    ([obj("car", [[0, 0], [5, 5]])], "object 0: polygon has 2 point(s)"),
])
def test_undrawable_objects_raise_when_drawn(objects, reason):
    p = parse_polygons(doc(*objects), "p.json")  # parsing keeps them, so they can be inspected
    assert p.problems() and reason.split(": ", 1)[1] in p.problems()[0][1]
    with pytest.raises(InvalidFileError) as info:
        rasterize(p, "ids")
    assert info.value.path == "p.json" and reason in info.value.reason


def test_undrawable_but_deleted_objects_are_fine():
    p = parse_polygons(doc(obj("flying saucer", [[0, 0]], deleted=1), obj("road", rect(0, 0, 39, 19))))
    assert p.problems() == [] and (rasterize(p, "ids") == 7).all()


def test_rename_polygons_renames_groups_and_refuses_unknown_names():
    data = doc(obj("car", rect(0, 0, 1, 1)), obj("cargroup", rect(0, 0, 1, 1)), obj("road", rect(0, 0, 1, 1)))
    out = json.loads(rename_polygons(data, {"car": "vehicle", "road": "road"}))
    assert [o["label"] for o in out["objects"]] == ["vehicle", "vehiclegroup", "road"]
    with pytest.raises(KeyError):
        rename_polygons(data, {"car": "vehicle"})


def test_public_names():
    assert cio.rasterize is rasterize and cio.parse_polygons is parse_polygons
    with pytest.raises(ValueError, match="unknown encoding"):
        rasterize(parse_polygons(doc()), "labelIds")


def test_parsing_allocates_nothing_frame_sized():
    import tracemalloc

    data = doc(*[obj("car", rect(i, i, i + 50, i + 30)) for i in range(200)], w=8000, h=8000)
    tracemalloc.start()
    try:
        p = parse_polygons(data, "big.json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (p.width, p.height) == (8000, 8000)
    assert peak < 2_000_000  # a frame of this size would be 64 MB as labelIds


def test_train_id_table_and_train_maps():
    from cityscapes_io.labels import LabelMap

    table = LabelMap.cityscapes().train_id_table()
    assert table[7] == 0 and table[26] == 13 and table[29] == 255 and table[0] == 255 and table[33] == 18
    assert LabelMap.cityscapes_train().is_train_ids and not LabelMap.cityscapes().is_train_ids
    read_back = LabelMap.parse_dataset_meta(LabelMap.cityscapes_train().to_dataset_meta())
    assert read_back.is_train_ids and read_back.train_id_table()[13] == 13
    assert not LabelMap.from_colors({"background": (0, 0, 0), "car": (0, 0, 142)}).is_train_ids
