import json
import os

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io import png
from cityscapes_io.testing import synthetic
from cityscapes_io.validate import Problem, summarize, validate

from conftest import SEMANTIC, label_ids_of, write_file, write_frame

FID = "aachen/aachen_000000_000019"
GT = f"gtFine/train/{FID}_gtFine_"
PHOTO = f"leftImg8bit/train/{FID}_leftImg8bit.png"


def run(root, **kw):
    return list(validate(root, **kw))


def only(problems, code):
    """The single problem with ``code``; fails listing all problems otherwise."""
    hits = [p for p in problems if p.code == code]
    assert len(hits) == 1, [str(p) for p in problems]
    return hits[0]


def codes(problems):
    return sorted(p.code for p in problems)


def good_photo(h=24, w=32):
    return png.encode_png(np.zeros((h, w, 3), np.uint8))


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "ds")


# -- clean data -------------------------------------------------------------------------------------

def test_clean_synthetic_dataset_has_no_problems(tmp_path):
    synthetic.generate(str(tmp_path), splits={"train": 2}, size=(64, 32))
    assert run(str(tmp_path)) == []


def test_clean_synthetic_dataset_on_memory_filesystem():
    url = "memory://validate-clean"
    synthetic.generate(url, splits={"train": 1, "val": 1}, size=(64, 32))
    assert run(url) == []


def test_shipped_sample_has_no_problems():
    assert run(cio.sample_path()) == []


def test_handmade_frame_with_every_encoding_rule_is_clean(root):
    write_frame(root, "train", FID)
    assert run(root) == []


def test_label_train_ids_only_frame_is_clean(root):
    train = np.zeros((24, 32), np.uint8)
    train[:, 10:] = 13
    train[0, :] = 255
    write_file(root, GT + "labelTrainIds.png", png.encode_png(train))
    write_file(root, PHOTO, good_photo())
    assert run(root) == []


# -- errors -----------------------------------------------------------------------------------------

def test_truncated_instance_ids(root):
    write_frame(root, "train", FID)
    data = png.encode_png(SEMANTIC)
    write_file(root, GT + "instanceIds.png", data[: len(data) // 2])
    p = only(run(root), "corrupt-png")
    assert p.severity == "error"
    assert p.path.endswith(GT + "instanceIds.png")
    assert "labelids-mismatch" not in codes(run(root))


def test_truncated_photo(root):
    write_frame(root, "train", FID)
    path = os.path.join(root, PHOTO)
    data = open(path, "rb").read()
    write_file(root, PHOTO, data[: len(data) // 2])
    problems = run(root)
    p = only(problems, "corrupt-png")
    assert (p.severity, p.path.endswith(PHOTO)) == ("error", True)
    assert len(problems) == 1


def test_not_a_png_label_ids(root):
    write_frame(root, "train", FID)
    write_file(root, GT + "labelIds.png", b"this is not a PNG file at all")
    problems = run(root)
    p = only(problems, "corrupt-png")
    assert p.severity == "error" and p.path.endswith(GT + "labelIds.png")
    assert "not a PNG" in p.reason
    assert len(problems) == 1


def test_corrupt_color_and_label_train_ids_are_decoded_too(root):
    write_frame(root, "train", FID)
    write_file(root, GT + "color.png", b"\x89PNG\r\n\x1a\n garbage")
    write_file(root, GT + "labelTrainIds.png", b"")
    problems = run(root)
    assert codes(problems) == ["corrupt-png", "corrupt-png"]
    assert sorted(os.path.basename(p.path) for p in problems) == [
        "aachen_000000_000019_gtFine_color.png", "aachen_000000_000019_gtFine_labelTrainIds.png"]
    assert all(p.severity == "error" for p in problems)


def test_rgb_file_where_gray_instance_ids_expected(root):
    write_frame(root, "train", FID)
    write_file(root, GT + "instanceIds.png", png.encode_png(np.zeros((24, 32, 3), np.uint8)))
    p = only(run(root), "corrupt-png")
    assert p.severity == "error" and p.path.endswith(GT + "instanceIds.png")
    assert "single-channel" in p.reason and "RGB" in p.reason


def test_photo_and_ground_truth_sizes_differ(root):
    write_frame(root, "train", FID)
    write_file(root, PHOTO, good_photo(48, 64))
    problems = run(root)
    assert codes(problems) == ["size-mismatch", "size-mismatch"]
    by_file = {os.path.basename(p.path): p for p in problems}
    p = by_file["aachen_000000_000019_gtFine_instanceIds.png"]
    assert p.severity == "error"
    assert p.reason == "photo is 64x48 but instanceIds is 32x24"
    assert "aachen_000000_000019_gtFine_labelIds.png" in by_file


def test_label_ids_size_differs_from_instance_ids(root):
    write_frame(root, "train", FID, photo=False)
    write_file(root, GT + "labelIds.png", png.encode_png(np.zeros((12, 16), np.uint8)))
    problems = [p for p in run(root) if p.severity == "error"]
    p = only(problems, "size-mismatch")
    assert p.path.endswith(GT + "labelIds.png")
    assert p.reason == "instanceIds is 32x24 but labelIds is 16x12"
    assert "labelids-mismatch" not in codes(problems)  # not compared when sizes differ


def test_color_size_differs(root):
    write_frame(root, "train", FID)
    write_file(root, GT + "color.png", png.encode_png(np.zeros((24, 31, 4), np.uint8)))
    p = only(run(root), "size-mismatch")
    assert p.path.endswith(GT + "color.png") and "color is 31x24" in p.reason


def test_unknown_labels_every_value_reported(root):
    inst = SEMANTIC.copy()
    inst[0, 0] = 40001  # label 40: not in the official map
    inst[0, 1:3] = 40002
    inst[1, 0] = 41000
    inst[2, 0] = 250  # a plain class id not in the map
    write_frame(root, "train", FID, inst)
    problems = run(root)
    assert codes(problems) == ["unknown-label", "unknown-label"]
    by_file = {os.path.basename(p.path): p for p in problems}
    p = by_file["aachen_000000_000019_gtFine_instanceIds.png"]
    assert p.severity == "error"
    for text in ("40001 (label 40, 1 px)", "40002 (label 40, 2 px)", "41000 (label 41, 1 px)", "250 (1 px)",
                 "cityscapes"):
        assert text in p.reason, p.reason
    assert p.reason.startswith("4 pixel value(s)")
    q = by_file["aachen_000000_000019_gtFine_labelIds.png"]
    assert "40 (3 px)" in q.reason and "41 (1 px)" in q.reason and "250 (1 px)" in q.reason


def test_unknown_label_in_label_ids_only(root):
    write_frame(root, "train", FID, gt=False)
    lab = label_ids_of(SEMANTIC)
    lab[5, 5] = 99
    write_file(root, GT + "labelIds.png", png.encode_png(lab))
    p = only(run(root), "unknown-label")
    assert p.path.endswith(GT + "labelIds.png") and "99 (1 px)" in p.reason


def test_unknown_label_against_custom_label_colors(root):
    write_frame(root, "train", FID)  # uses ids up to 26
    write_file(root, "label_colors.txt", b"0 0 0 background\n128 64 128 road\n0 0 142 car\n")
    problems = run(root)
    p = only([q for q in problems if q.path.endswith("instanceIds.png")], "unknown-label")
    assert "label_colors.txt" in p.reason and "3 labels" in p.reason
    assert "26000 (label 26" in p.reason and "24001 (label 24" in p.reason


def test_label_ids_disagree_with_instance_ids(root):
    write_frame(root, "train", FID)
    lab = label_ids_of(SEMANTIC)
    lab[5:6, 2:7] = 24  # five pixels of car 26000 say person
    write_file(root, GT + "labelIds.png", png.encode_png(lab))
    problems = run(root)
    p = only(problems, "labelids-mismatch")
    assert p.severity == "error" and p.path.endswith(GT + "labelIds.png")
    assert p.reason.startswith(f"5 of {SEMANTIC.size} pixels disagree")
    assert "x=2, y=5" in p.reason and "26000 -> class 26" in p.reason
    assert len(problems) == 1


def test_bad_label_colors_file(root):
    write_frame(root, "train", FID)
    write_file(root, "label_colors.txt", b"0 0 0 background\n12 34 car\n")
    problems = run(root)
    assert len(problems) == 1
    p = problems[0]
    assert (p.severity, p.code) == ("error", "label-file")
    assert p.path.endswith("label_colors.txt") and "line 2" in p.reason


def test_bad_dataset_meta(root):
    write_frame(root, "train", FID)
    write_file(root, "dataset_meta.json", b"{not json")
    [p] = run(root)
    assert (p.severity, p.code) == ("error", "label-file") and p.path.endswith("dataset_meta.json")


def test_missing_root(tmp_path):
    [p] = run(str(tmp_path / "nowhere"))
    assert (p.severity, p.code) == ("error", "not-found")
    assert "nowhere" in p.path


def test_not_a_dataset(tmp_path):
    os.makedirs(tmp_path / "x" / "something")
    [p] = run(str(tmp_path / "x"))
    assert (p.severity, p.code) == ("error", "not-found")


def test_missing_split(root):
    write_frame(root, "train", FID)
    [p] = run(root, split="val")
    assert (p.severity, p.code) == ("error", "not-found") and "'val'" in p.reason


# -- warnings ---------------------------------------------------------------------------------------

def test_photo_without_gt_and_gt_without_photo(tree):
    problems = run(tree)
    assert all(p.severity == "warning" for p in problems)
    gt = only(problems, "missing-gt")
    assert gt.path.endswith("leftImg8bit/val/stuttgart_00/stuttgart_00_000000_000001_leftImg8bit.png")
    photo = only(problems, "missing-photo")
    assert photo.path.endswith("gtFine/train/aachen/aachen_000002_000007_gtFine_instanceIds.png")
    assert len(problems) == 2


def test_id_outside_grammar(root):
    write_frame(root, "train", "a/b/1")
    problems = run(root)
    p = only(problems, "bad-name")
    assert p.severity == "warning" and "'a/b/1'" in p.reason
    assert p.path.endswith("gtFine/train/a/b/1_gtFine_instanceIds.png")
    assert len(problems) == 1


def test_eight_bit_instance_ids(root):
    lab = label_ids_of(SEMANTIC)  # uint8: plain class ids
    write_frame(root, "train", FID, gt=False)
    write_file(root, GT + "instanceIds.png", png.encode_png(lab))
    write_file(root, GT + "labelIds.png", png.encode_png(lab))
    problems = run(root)
    p = only(problems, "8bit-instanceids")
    assert p.severity == "warning" and p.path.endswith(GT + "instanceIds.png")
    assert len(problems) == 1


def test_unknown_file_under_city_folder(root):
    write_frame(root, "train", FID)
    write_file(root, "gtFine/train/aachen/README.txt", b"hello")
    write_file(root, "leftImg8bit/train/aachen/notes.png", good_photo())
    problems = run(root)
    assert codes(problems) == ["unknown-file", "unknown-file"]
    assert all(p.severity == "warning" for p in problems)
    assert sorted(p.path.replace(os.sep, "/").split("/ds/")[1] for p in problems) == [
        "gtFine/train/aachen/README.txt", "leftImg8bit/train/aachen/notes.png"]


def test_empty_split(root):
    write_frame(root, "train", FID)
    os.makedirs(os.path.join(root, "gtFine", "val"))
    problems = run(root)
    p = only(problems, "empty-split")
    assert p.severity == "warning" and p.path.endswith("gtFine/val") and "'val'" in p.reason
    assert len(problems) == 1


def test_empty_dataset(root):
    os.makedirs(os.path.join(root, "gtFine", "train", "aachen"))
    problems = run(root)
    assert codes(problems) == ["empty-dataset", "empty-split"]
    assert all(p.severity == "warning" for p in problems)
    assert only(problems, "empty-split").path.endswith("gtFine/train")
    assert only(problems, "empty-dataset").path == root


# -- behaviour --------------------------------------------------------------------------------------

def test_problem_str_dict_and_summary():
    p = Problem("error", "/x/a.png", "cannot decode image", "corrupt-png")
    assert str(p) == "error: /x/a.png: cannot decode image"
    assert p.as_dict() == {"severity": "error", "path": "/x/a.png", "reason": "cannot decode image",
                           "code": "corrupt-png"}
    json.dumps(p.as_dict())
    with pytest.raises(Exception):
        p.code = "other"  # frozen
    problems = [p, Problem("warning", "b", "r", "bad-name"), Problem("warning", "c", "r", "bad-name")]
    assert summarize(iter(problems)) == {"total": 3, "error": 1, "warning": 2,
                                         "by_code": {"bad-name": 2, "corrupt-png": 1}}
    assert summarize([]) == {"total": 0, "error": 0, "warning": 0, "by_code": {}}


def test_many_problems_in_one_dataset_and_filters(tree):
    write_file(tree, "gtFine/train/aachen/aachen_000010_000019_gtFine_instanceIds.png", b"junk")
    write_frame(tree, "train", "bad-honnef/bad-honnef_000001_000042", SEMANTIC + 14000)  # label 40, 33
    problems = run(tree)
    s = summarize(problems)
    assert s["error"] == 3 and s["warning"] == 2
    assert s["by_code"] == {"corrupt-png": 1, "missing-gt": 1, "missing-photo": 1, "unknown-label": 2}
    # Restricting to a split or a city checks only that.
    assert codes(run(tree, split="val")) == ["missing-gt"]
    assert codes(run(tree, cities=["aachen"])) == ["corrupt-png", "missing-photo"]  # no empty-split for val
    [p] = run(tree, cities="nowhere")  # an unknown city is an error, as an unknown split is
    assert (p.code, p.severity) == ("not-found", "error") and "'nowhere'" in p.reason


def test_is_lazy_generator(tmp_path):
    gen = validate(str(tmp_path / "nowhere"))
    assert iter(gen) is gen  # nothing runs before iteration
    assert next(gen).code == "not-found"


def test_each_file_decoded_once_and_frames_released(tree, monkeypatch):
    from cityscapes_io.frame import Frame

    decoded = []
    released = []
    gray, rgb, release = png.decode_gray, png.decode_rgb, Frame.release
    monkeypatch.setattr(png, "decode_gray", lambda data, path: decoded.append(path) or gray(data, path))
    monkeypatch.setattr(png, "decode_rgb", lambda data, path: decoded.append(path) or rgb(data, path))

    def counting_release(self):
        released.append(self.id)
        return release(self)

    monkeypatch.setattr(Frame, "release", counting_release)
    write_file(tree, "gtFine/train/aachen/aachen_000010_000019_gtFine_color.png",
               png.encode_png(np.zeros((24, 32, 4), np.uint8)))
    run(tree)
    assert len(decoded) == len(set(decoded))
    n_files = sum(len(files) for _, _, files in os.walk(tree))
    assert len(decoded) == n_files
    assert len(released) == len(set(released)) == 6


def test_two_zip_archives(tmp_path):
    from conftest import zip_dir

    src = str(tmp_path / "src")
    write_frame(src, "train", FID)
    write_frame(src, "train", "aachen/aachen_000001_000019", photo=False)
    data = png.encode_png(SEMANTIC)
    write_file(src, GT + "instanceIds.png", data[: len(data) // 2])
    gt = zip_dir(src, str(tmp_path / "gtFine.zip"), only="gtFine/")
    photos = zip_dir(src, str(tmp_path / "leftImg8bit.zip"), only="leftImg8bit/")
    problems = run([gt, photos])
    assert codes(problems) == ["corrupt-png", "missing-photo"]
    # Paths name the archive and the member.
    assert only(problems, "corrupt-png").path == f"{gt}/{GT}instanceIds.png"
    second = "gtFine/train/aachen/aachen_000001_000019_gtFine_instanceIds.png"
    assert only(problems, "missing-photo").path == f"{gt}/{second}"
    assert codes(run(photos)) == ["missing-gt"]
    assert codes(run(gt)) == ["corrupt-png", "missing-photo", "missing-photo"]


def test_s3_with_prefetch(s3):
    from conftest import upload_dir

    fs, opts, bucket = s3
    import tempfile

    with tempfile.TemporaryDirectory() as local:
        synthetic.generate(local, splits={"train": 3}, size=(64, 32))
        write_file(local, "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png", b"broken")
        write_file(local, "gtFine/train/aachen/README.txt", b"hi")
        upload_dir(fs, local, f"{bucket}/ds")
    problems = run(f"s3://{bucket}/ds", storage_options=opts)
    p = only(problems, "corrupt-png")
    assert p.path == f"s3://{bucket}/ds/gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png"
    assert only(problems, "unknown-file").path == f"s3://{bucket}/ds/gtFine/train/aachen/README.txt"
    assert len(problems) == 2


# -- polygons files ---------------------------------------------------------------------------------

POLY_SIZE = (64, 32)  # width, height of the synthetic frame


def polygons_json(objects=None, width=POLY_SIZE[0], height=POLY_SIZE[1]):
    if objects is None:
        objects = [
            {"label": "road", "polygon": [[0, 16], [63, 16], [63, 31], [0, 31]]},
            {"label": "car", "polygon": [[10, 10], [30, 10], [30, 25], [10, 25]]},
            {"label": "cargroup", "polygon": [[40, 10], [50, 10], [45, 20]]},
            {"label": "no-such-label", "polygon": [[1, 1]], "deleted": 1},  # deleted: never drawn
        ]
    return json.dumps({"imgHeight": height, "imgWidth": width, "objects": objects}).encode()


@pytest.fixture
def poly_tree(tmp_path):
    """A one-frame synthetic tree and the path of the frame's polygons file (written here, over
    whatever ``generate`` wrote), for the test to fill."""
    root = str(tmp_path / "ds")
    [fid] = synthetic.generate(root, splits={"train": 1}, size=POLY_SIZE)
    rel = f"gtFine/train/{fid}_gtFine_polygons.json"
    write_file(root, rel, polygons_json())
    # The PNGs drawn from these polygons, as the official scripts draw them (else they disagree:
    # polygons-mismatch).
    polygons = cio.parse_polygons(polygons_json(), rel)
    for kind, encoding in (("instanceIds", "instanceIds"), ("labelIds", "ids"), ("color", "color")):
        write_file(root, f"gtFine/train/{fid}_gtFine_{kind}.png", png.encode_png(cio.rasterize(polygons, encoding)))
    return root, os.path.join(root, rel)


def write_polygons(path, data: bytes):
    with open(path, "wb") as f:
        f.write(data)


def test_polygons_clean_tree_has_no_problems(poly_tree):
    root, _ = poly_tree
    assert run(root) == []


def test_polygons_bad_json(poly_tree):
    root, path = poly_tree
    write_polygons(path, b'{"imgWidth": 64, "imgHeight": 32, "objects": [')
    p = only(run(root), "corrupt-polygons")
    assert (p.severity, p.path) == ("error", path)
    assert "not valid JSON" in p.reason
    assert len(run(root)) == 1  # nothing else: no size compared


def test_polygons_missing_img_width(poly_tree):
    root, path = poly_tree
    write_polygons(path, json.dumps({"imgHeight": 32, "objects": []}).encode())
    p = only(run(root), "corrupt-polygons")
    assert p.path == path and p.reason.startswith("imgWidth is None")


def test_polygons_huge_size_refused(poly_tree):
    root, path = poly_tree
    write_polygons(path, polygons_json(width=100_000, height=100_000))
    problems = run(root)
    p = only(problems, "corrupt-polygons")
    assert p.path == path and "100000x100000" in p.reason and "larger than" in p.reason
    assert codes(problems) == ["corrupt-polygons"]  # not also a size mismatch


def test_polygons_unknown_labels_each_reported_with_index(poly_tree):
    root, path = poly_tree
    objects = [
        {"label": "road", "polygon": [[0, 0], [5, 0], [5, 5]]},
        {"label": "flying-saucer", "polygon": [[0, 0], [5, 0], [5, 5]]},
        {"label": "car", "polygon": [[0, 0], [5, 0], [5, 5]]},
        {"label": "UFO", "polygon": [[0, 0], [5, 0], [5, 5]]},
    ]
    write_polygons(path, polygons_json(objects))
    problems = run(root)
    assert codes(problems) == ["bad-polygon", "bad-polygon"]
    first, second = problems
    assert (first.severity, first.path) == ("error", path)
    assert first.reason.startswith("object 1: unknown label 'flying-saucer'")
    assert second.reason.startswith("object 3: unknown label 'UFO'")


def test_polygons_two_point_polygon(poly_tree):
    root, path = poly_tree
    objects = [{"label": "road", "polygon": [[0, 0], [5, 0], [5, 5]]},
               {"label": "sky", "polygon": [[0, 0], [63, 0]]}]
    write_polygons(path, polygons_json(objects))
    p = only(run(root), "bad-polygon")
    assert p.path == path
    assert p.reason.startswith("object 1: polygon has 2 point(s)") and "at least 3" in p.reason


def test_polygons_nan_coordinate(poly_tree):
    root, path = poly_tree
    text = ('{"imgHeight": 32, "imgWidth": 64, "objects": ['
            '{"label": "road", "polygon": [[0, 0], [5, 0], [5, 5]]}, '
            '{"label": "car", "polygon": [[0, 0], [NaN, 3], [5, 5]]}]}')
    write_polygons(path, text.encode())
    p = only(run(root), "corrupt-polygons")
    assert p.path == path
    # NaN is not JSON (Python's parser accepts it; ours refuses the file as a whole).
    assert p.reason == "not valid JSON: NaN is not a JSON number"


def test_polygons_size_differs_from_pngs(poly_tree):
    root, path = poly_tree
    write_polygons(path, polygons_json(width=32, height=16))
    p = only(run(root), "size-mismatch")
    assert (p.severity, p.path) == ("error", path)
    assert p.reason == "photo is 64x32 but polygons is 32x16"


def test_polygons_size_checked_against_ground_truth_without_photo(tmp_path):
    root = str(tmp_path / "ds")
    [fid] = synthetic.generate(root, splits={"train": 1}, size=POLY_SIZE, photos=False)
    write_file(root, f"gtFine/train/{fid}_gtFine_polygons.json", polygons_json(width=64, height=33))
    p = only(run(root), "size-mismatch")
    assert p.path.endswith("_gtFine_polygons.json")
    assert p.reason == "instanceIds is 64x32 but polygons is 64x33"


def test_polygons_problems_printed_by_cli(poly_tree, capsys):
    from cityscapes_io.cli import main

    root, path = poly_tree
    write_polygons(path, polygons_json([{"label": "sky", "polygon": [[0, 0], [1, 1]]}], width=10, height=10))
    assert main(["validate", root, "-q"]) != 0
    out = capsys.readouterr().out
    assert f"error: {path}: object 0: polygon has 2 point(s)" in out
    assert f"error: {path}: photo is 64x32 but polygons is 10x10" in out
    assert "2 errors, 0 warnings" in out
    assert main(["validate", root, "-q", "--json"]) != 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["by_code"] == {"bad-polygon": 1, "size-mismatch": 1}


def test_train_id_trees_and_stale_train_id_files(tmp_path):
    """A tree mapped to train ids validates clean (its instanceTrainIds hold instances); a
    prepared tree too; a labelTrainIds file that is not the train ids of its labelIds is a
    warning naming it and the first differing pixel."""
    import cityscapes_io as cio
    from cityscapes_io.testing import generate

    src = str(tmp_path / "cs")
    generate(src, splits={"train": 2}, size=(64, 32), seed=4)
    train = str(tmp_path / "train")
    cio.open(src).to_train_ids().export(train, "cityscapes", save_media=True)
    assert [p for p in validate(train)] == []
    cio.prepare(src)
    assert [p for p in validate(src)] == []
    frame = next(iter(cio.open(src)))
    stale = frame.train_ids().copy()
    stale[0, 0:3] = 7
    write_file(src, os.path.relpath(frame.path("labelTrainIds"), src), png.encode_png(stale))
    problems = [p for p in validate(src)]
    assert [p.code for p in problems] == ["trainids-mismatch"] and problems[0].severity == "warning"
    assert problems[0].path == frame.path("labelTrainIds") and "first at x=0, y=0" in problems[0].reason
