"""Pixel-for-pixel agreement with the official cityscapesScripts 2.3.0, run in their own environment.

Opt-in: set ``CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON`` to the python of an environment with the
official scripts, e.g.::

    python3 -m venv /tmp/csvenv && /tmp/csvenv/bin/pip install cityscapesscripts==2.3.0 numpy==1.26.4 'pillow<11.3'
    CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON=/tmp/csvenv/bin/python pytest tests/test_official_scripts.py

(Pillow < 11.3: later versions can no longer save mode ``I``, so the official instance scripts fail.)

- :func:`cityscapes_io.rasterize` in all five encodings against ``createLabelImage`` (ids, trainIds,
  color) and ``createInstanceImage`` (ids, trainIds), on crafted polygons files that stress the
  rules (painter's order, deleted objects, license plates, group names, ``polegroup``, caravan and
  trailer, objects painted over, float coordinates, polygons outside the image, self-intersecting
  polygons, hundreds of instances of one class), on seeded random ones and on the polygons files
  of :func:`cityscapes_io.testing.generate`;
- :func:`cityscapes_io.prepare` ``source="polygons"`` (API and command line) against the official
  ``createTrainIdLabelImgs`` / ``createTrainIdInstanceImgs`` run on a copy of the same tree (gtFine
  and gtCoarse).

The last test, ``prepare`` from the shipped PNGs against a plain lookup of the official label
table, needs no oracle and always runs.
"""
import inspect
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import CITYSCAPESSCRIPTS, needs_cityscapesscripts, write_frame
from PIL import Image

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.testing import generate

# prepare() into a destination without the photos says so (a warning); these trees are the
# ground truth alone on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*no photos written")

ORACLE = CITYSCAPESSCRIPTS
needs_oracle = needs_cityscapesscripts

ENCODINGS = ("ids", "trainIds", "color", "instanceIds", "instanceTrainIds")

#: The official label table (cityscapesscripts/helpers/labels.py): (name, id, trainId, hasInstances).
OFFICIAL_LABELS = [
    ("unlabeled", 0, 255, False), ("ego vehicle", 1, 255, False), ("rectification border", 2, 255, False),
    ("out of roi", 3, 255, False), ("static", 4, 255, False), ("dynamic", 5, 255, False),
    ("ground", 6, 255, False), ("road", 7, 0, False), ("sidewalk", 8, 1, False), ("parking", 9, 255, False),
    ("rail track", 10, 255, False), ("building", 11, 2, False), ("wall", 12, 3, False), ("fence", 13, 4, False),
    ("guard rail", 14, 255, False), ("bridge", 15, 255, False), ("tunnel", 16, 255, False),
    ("pole", 17, 5, False), ("polegroup", 18, 255, False), ("traffic light", 19, 6, False),
    ("traffic sign", 20, 7, False), ("vegetation", 21, 8, False), ("terrain", 22, 9, False),
    ("sky", 23, 10, False), ("person", 24, 11, True), ("rider", 25, 12, True), ("car", 26, 13, True),
    ("truck", 27, 14, True), ("bus", 28, 15, True), ("caravan", 29, 255, True), ("trailer", 30, 255, True),
    ("train", 31, 16, True), ("motorcycle", 32, 17, True), ("bicycle", 33, 18, True),
    ("license plate", -1, -1, False),
]
TRAIN_ID_LUT = np.full(256, 255, np.uint8)
for _name, _id, _train, _ in OFFICIAL_LABELS:
    if _id >= 0:
        TRAIN_ID_LUT[_id] = _train
THINGS = [name for name, _, _, inst in OFFICIAL_LABELS if inst]

#: Loads each polygons file given with the official Annotation class, draws it with the official
#: createLabelImage / createInstanceImage in every encoding, and saves the arrays as
#: ``<index>_<encoding>`` in the .npz named first.
OFFICIAL_RASTERIZE = r"""
import sys, numpy as np
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage

out = {}
for i, path in enumerate(sys.argv[2:]):
    annotation = Annotation()
    annotation.fromJsonFile(path)
    for enc in ("ids", "trainIds", "color"):
        out["%d_%s" % (i, enc)] = np.asarray(createLabelImage(annotation, enc))
    out["%d_instanceIds" % i] = np.asarray(createInstanceImage(annotation, "ids"))
    out["%d_instanceTrainIds" % i] = np.asarray(createInstanceImage(annotation, "trainIds"))
np.savez(sys.argv[1], **out)
"""


def run_oracle(args, env=None):
    run = subprocess.run([ORACLE, *map(str, args)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **(env or {})})
    assert run.returncode == 0, f"the official scripts failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    return run


def official_drawings(paths, workdir):
    """``{path: {encoding: array}}`` drawn by the official functions."""
    out = Path(workdir) / "official.npz"
    run_oracle(["-c", OFFICIAL_RASTERIZE, out, *paths])
    with np.load(out) as z:
        return {str(p): {enc: z[f"{i}_{enc}"] for enc in ENCODINGS} for i, p in enumerate(paths)}


def differing(ours, theirs, what):
    """An empty string when identical, else what differs (with the count of differing pixels)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape:
        return f"{what}: shape {ours.shape}, official {theirs.shape}"
    if np.array_equal(ours, theirs):
        return ""
    diff = ours != theirs
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    ys, xs = np.nonzero(diff)
    y, x = int(ys[0]), int(xs[0])
    return (f"{what}: {int(diff.sum())} of {diff.size} pixels differ (first at x={x}, y={y}: "
            f"ours {ours[y, x].tolist()}, official {theirs[y, x].tolist()})")


def assert_all_same(problems):
    problems = [p for p in problems if p]
    assert not problems, f"{len(problems)} mismatch(es):\n" + "\n".join(problems[:20])


def read_png(path):
    return np.asarray(Image.open(path))


# -- crafted polygons files ----------------------------------------------------------------------
def o(label, polygon, **extra):
    return {"label": label, "polygon": [list(p) for p in polygon], **extra}


def box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def doc(objects, width=64, height=48):
    return {"imgHeight": height, "imgWidth": width, "objects": objects}


W, H = 64, 48
GROUND = o("road", box(0, 24, W - 1, H - 1))
SKY = o("sky", box(0, 0, W - 1, 23))

CRAFTED = {
    "painters_order": doc([
        SKY, GROUND, o("sidewalk", box(0, 40, W - 1, H - 1)), o("building", box(2, 2, 30, 30)),
        o("car", box(5, 20, 30, 35)), o("car", box(20, 25, 45, 40)), o("person", box(25, 10, 32, 44)),
        o("car", box(28, 30, 60, 46)), o("road", box(40, 0, 44, 47)), o("truck", box(10, 15, 15, 45))]),
    "deleted": doc([
        GROUND, o("car", box(2, 2, 20, 20)), o("car", box(10, 10, 30, 30), deleted=1),
        o("person", box(15, 5, 25, 40), deleted=1), o("car", box(35, 5, 50, 20)), o("bus", box(0, 0, 63, 47), deleted=1),
        o("person", box(40, 25, 45, 45)), o("person", box(50, 25, 55, 45), deleted=0), o("sky", box(0, 0, 63, 4), deleted=1)]),
    "license_plate": doc([
        GROUND, o("car", box(4, 10, 30, 30)), o("license plate", box(12, 24, 20, 28)),
        o("car", box(34, 10, 60, 30)), o("license plate", box(28, 26, 40, 34)),  # over a car, the road and a car
        o("license plate", box(0, 0, 63, 47)), o("car", box(40, 35, 50, 45))]),
    "groups": doc([
        SKY, GROUND, o("cargroup", box(0, 20, 30, 35)), o("car", box(5, 25, 15, 33)),
        o("persongroup", box(20, 5, 40, 45)), o("person", box(22, 8, 26, 40)), o("bicyclegroup", box(35, 30, 63, 47)),
        o("bicycle", box(40, 32, 50, 44)), o("ridergroup", box(45, 2, 60, 20)), o("rider", box(50, 5, 55, 18)),
        o("motorcyclegroup", box(0, 0, 8, 8)), o("truckgroup", box(8, 0, 16, 8)), o("busgroup", box(16, 0, 24, 8)),
        o("traingroup", box(24, 0, 32, 8)), o("caravangroup", box(32, 0, 40, 8)), o("trailergroup", box(40, 0, 48, 8)),
        o("buildinggroup", box(48, 0, 56, 8)), o("license plategroup", box(56, 0, 63, 8)),
        o("car", box(10, 40, 20, 47))]),
    "polegroup": doc([
        SKY, o("building", box(0, 0, 30, 40)), GROUND, o("polegroup", box(10, 0, 20, 47)), o("pole", box(12, 0, 14, 40)),
        o("polegroup", box(30, 5, 40, 40)), o("traffic sign", box(28, 5, 42, 12)), o("traffic light", box(45, 2, 50, 15)),
        o("pole", box(47, 15, 48, 47))]),
    "caravan_trailer": doc([
        GROUND, o("caravan", box(0, 10, 20, 30)), o("trailer", box(15, 15, 35, 35)), o("caravan", box(30, 5, 50, 25)),
        o("car", box(5, 30, 25, 45)), o("trailer", box(40, 20, 63, 40)), o("caravangroup", box(0, 0, 10, 8)),
        o("car", box(45, 38, 60, 47))]),
    "painted_over": doc([
        GROUND, o("car", box(10, 10, 20, 20)), o("truck", box(5, 5, 30, 30)), o("car", box(35, 5, 45, 15)),
        o("person", box(40, 30, 44, 40)), o("person", box(38, 28, 46, 42)), o("car", box(0, 0, 63, 8)),
        o("car", box(1, 1, 3, 3)), o("bicycle", box(50, 40, 55, 45)), o("vegetation", box(48, 38, 57, 47))]),
    "coordinates": doc([
        o("road", [(0.5, 24.5), (63.4, 24.49), (63.5, 47.5), (0.0, 47.51)]),
        o("car", [(3.25, 3.75), (20.5, 4.5), (19.49999, 18.5), (2.50001, 17.5)]),
        o("car", [(25, 3.5), (40.75, 3), (41, 19.25), (24.5, 20)]),  # ints and floats mixed
        o("person", [(45.1, 2.9), (55.9, 2.1), (56.5, 22.5), (44.5, 22.5)]),
        o("bicycle", [(10.333, 30.666), (30.999, 29.001), (20.5, 45.5)]),
        o("sky", [(50.5, 30.5), (51.5, 30.5), (51.5, 31.5)]),  # smaller than a pixel
        o("pole", [(33.5, 25), (33.5, 46), (34.5, 46), (34.5, 25)]),  # one pixel wide, on half pixels
        o("wall", [(36, 25), (36, 46), (36, 46), (37, 30)])]),
    "outside": doc([
        o("sky", box(-100, -100, 200, 23)), o("road", [(-50, 24), (120, 24), (120, 90), (-50, 90)]),
        o("car", [(-10, 10), (15, 10), (15, 30), (-10, 30)]), o("car", [(50, -5), (80, -5), (80, 20), (50, 20)]),
        o("person", [(-20, -20), (-5, -20), (-5, -5)]),  # entirely outside: still takes a number
        o("person", [(30, 40), (35, 60), (25, 70)]), o("bus", [(70, 70), (90, 70), (90, 90)]),
        o("person", [(20, 20), (30, 20), (30, 30)]), o("truck", [(-1e4, 46), (1e4, 46), (1e4, 1e4), (-1e4, 1e4)])]),
    "self_intersecting": doc([
        GROUND, o("car", [(5, 5), (30, 30), (30, 5), (5, 30)]),  # bow tie
        o("person", [(45, 2), (52, 22), (35, 10), (55, 10), (38, 22)]),  # pentagram
        o("truck", [(5, 35), (20, 35), (5, 45), (20, 45), (12, 32)]),
        o("bus", [(30, 30), (40, 40), (50, 30), (40, 40), (30, 47)]),  # touching itself
        o("bicycle", [(25, 5), (25, 5), (35, 15), (35, 15), (25, 15)]),  # repeated vertices
        o("rider", [(40, 25), (50, 35), (60, 45)]),  # collinear: no area
        o("train", [(55, 25), (63, 25), (55, 47), (63, 47), (55, 25), (63, 25)])]),
    "many_instances": doc(
        [o("road", box(0, 0, 199, 99))]
        + [o("car", box(2 + 13 * (k % 15), 2 + 10 * (k // 15), 11 + 13 * (k % 15), 9 + 10 * (k // 15)))
           for k in range(150)]
        + [o("person", [(3 + 13 * (k % 15), 3 + 10 * (k // 15)), (8 + 13 * (k % 15), 5 + 10 * (k // 15)),
                        (5 + 13 * (k % 15), 8 + 10 * (k // 15))]) for k in range(120)]
        + [o("bicycle", box(k, 95, k + 1, 99)) for k in range(0, 200, 2)], width=200, height=100),
    "empty": doc([], width=17, height=9),
    "only_deleted_and_plates": doc([o("car", box(0, 0, 10, 10), deleted=1), o("license plate", box(2, 2, 8, 8))],
                                   width=13, height=11),
    "wide_odd_size": doc([
        o("sky", box(0, 0, 640, 10)), o("road", [(0, 37), (320, 12), (640, 37)]),
        o("car", [(100 + 0.5 * k, 15 + (k % 7)) for k in range(0, 200, 3)] + [(160, 36), (100, 36)]),
        o("person", [(300 + 20 * np.cos(a), 25 + 11 * np.sin(a)) for a in np.linspace(0, 6.2, 40)])],
        width=641, height=37),
}


def random_polygons(rng, index):
    """A random polygons file: any official name or a group of a class with instances, deleted
    objects, license plates, int or float vertices partly outside the image."""
    width, height = int(rng.integers(8, 160)), int(rng.integers(8, 120))
    names = [name for name, *_ in OFFICIAL_LABELS] + [n + "group" for n in THINGS]
    objects = []
    for _ in range(int(rng.integers(0, 60))):
        n = int(rng.integers(3, 12))
        cx, cy = rng.uniform(-0.2, 1.2) * width, rng.uniform(-0.2, 1.2) * height
        r = rng.uniform(0.5, 0.6 * max(width, height))
        pts = np.stack([cx + r * rng.uniform(-1, 1, n), cy + r * rng.uniform(-1, 1, n)], axis=1)
        if rng.random() < 0.5:
            polygon = [[int(round(x)), int(round(y))] for x, y in pts]
        else:
            polygon = [[round(float(x), int(rng.integers(0, 4))), round(float(y), int(rng.integers(0, 4)))]
                       for x, y in pts]
        obj = {"label": names[int(rng.integers(len(names)))], "polygon": polygon}
        if rng.random() < 0.15:
            obj["deleted"] = int(rng.random() < 0.7)
        objects.append(obj)
    return {"imgHeight": height, "imgWidth": width, "objects": objects}


RANDOM = {f"random_{k:02d}": random_polygons(np.random.default_rng([20240, k]), k) for k in range(16)}
CASES = {**CRAFTED, **RANDOM}


def write_json(path, document):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=4))
    return path


def ours_vs_official(path, official, what):
    polygons = cio.parse_polygons(Path(path).read_bytes(), str(path))
    return [differing(cio.rasterize(polygons, enc), official[enc], f"{what} {enc}") for enc in ENCODINGS]


# -- rasterize against createLabelImage / createInstanceImage ----------------------------------
@pytest.fixture(scope="module")
def crafted_official(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted")
    paths = {name: write_json(folder / f"{name}.json", d) for name, d in CASES.items()}
    drawn = official_drawings(list(paths.values()), folder)
    return {name: (p, drawn[str(p)]) for name, p in paths.items()}


@needs_oracle
@pytest.mark.parametrize("case", list(CASES))
def test_rasterize_matches_the_official_functions(crafted_official, case):
    path, official = crafted_official[case]
    assert_all_same(ours_vs_official(path, official, case))


@needs_oracle
def test_the_crafted_files_exercise_the_rules(crafted_official):
    """The oracle's own output shows that the crafted files hit what they are meant to."""
    groups = crafted_official["groups"][1]["instanceIds"]
    assert {26, 24, 33, 25, 32, 27, 28, 31, 29, 30, 11} <= set(np.unique(groups).tolist())
    painted = crafted_official["painted_over"][1]["instanceIds"]
    assert 26000 not in painted and {26001, 26002, 26003, 24001} <= set(np.unique(painted).tolist())
    assert 24000 not in painted
    many = crafted_official["many_instances"][1]
    assert int(many["instanceIds"].max()) == 33099 and 26149 in many["instanceIds"] and 24119 in many["instanceIds"]
    caravans = crafted_official["caravan_trailer"][1]
    assert {29000, 29001, 30000, 30001} <= set(np.unique(caravans["instanceIds"]).tolist())
    assert {255, 13000, 13001} == set(np.unique(caravans["instanceTrainIds"]).tolist()) - {0}
    assert 18 in crafted_official["polegroup"][1]["ids"]


def synthetic_polygons(root):
    return sorted(Path(root).glob("gt*/*/*/*_polygons.json"))


def has_coarse():
    return "coarse" in inspect.signature(generate).parameters


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 2048x1024 synthetic tree (with gtCoarse when the generator makes it)."""
    root = tmp_path_factory.mktemp("synthetic") / "cityscapes"
    options = {"coarse": {"train": 1, "train_extra": 1}} if has_coarse() else {}
    generate(str(root), splits={"train": 2, "val": 1}, size=(2048, 1024), photos=False, seed=11, **options)
    return root


@needs_oracle
def test_rasterize_matches_the_official_functions_on_synthetic_polygons(synthetic, tmp_path):
    paths = synthetic_polygons(synthetic)
    if not paths:
        pytest.skip("cityscapes_io.testing.generate writes no *_gtFine_polygons.json (yet): nothing to compare")
    official = official_drawings(paths, tmp_path)
    problems = []
    for path in paths:
        rel = path.relative_to(synthetic)
        problems += ours_vs_official(path, official[str(path)], str(rel))
        # the PNGs the generator wrote beside the polygons are the official drawings too
        stem = str(path)[: -len("polygons.json")]
        for kind, enc in (("labelIds", "ids"), ("instanceIds", "instanceIds"), ("color", "color")):
            if os.path.exists(stem + kind + ".png"):
                problems.append(differing(read_png(stem + kind + ".png"), official[str(path)][enc], f"{rel} {kind}.png"))
    assert_all_same(problems)


# -- prepare against createTrainIdLabelImgs / createTrainIdInstanceImgs ------------------------
@pytest.fixture(scope="module")
def prepare_tree(synthetic, tmp_path_factory):
    """The synthetic tree plus polygons-only frames (the crafted and random files) in gtFine and
    gtCoarse; and a copy of it on which the official preparation scripts have run."""
    base = tmp_path_factory.mktemp("prepare")
    root = base / "src"
    if synthetic_polygons(synthetic):
        shutil.copytree(synthetic, root)
    # else: a generator without polygons files: its frames cannot be drawn, the crafted ones only
    for k, (name, d) in enumerate(CASES.items()):
        split = ("train", "val", "test")[k % 3]
        write_json(root / f"gtFine/{split}/crafted/crafted_{k:06d}_000019_gtFine_polygons.json", d)
    coarse = list(root.glob("gtCoarse/*/*/*_polygons.json"))
    if not coarse:  # a generator without coarse annotations: hand-made ones
        for k, name in enumerate(("painters_order", "groups", "random_03")):
            write_json(root / f"gtCoarse/train_extra/crafted/crafted_{900 + k:06d}_000019_gtCoarse_polygons.json",
                       CASES[name])
    official = base / "official"
    shutil.copytree(root, official)
    if ORACLE:
        for script in ("createTrainIdLabelImgs", "createTrainIdInstanceImgs"):
            run_oracle(["-m", f"cityscapesscripts.preparation.{script}"], env={"CITYSCAPES_DATASET": str(official)})
    return root, official


def compare_prepared(official, ours, kinds=("labelTrainIds", "instanceTrainIds")):
    problems = []
    for kind in kinds:
        theirs = sorted(p.relative_to(official) for p in official.glob(f"gt*/*/*/*_{kind}.png"))
        mine = sorted(p.relative_to(ours) for p in ours.glob(f"gt*/*/*/*_{kind}.png"))
        assert theirs, f"the official scripts wrote no {kind} files"
        assert mine == theirs, f"{kind}: files differ: only ours {sorted(set(mine) - set(theirs))[:5]}, " \
                               f"only official {sorted(set(theirs) - set(mine))[:5]}"
        for rel in theirs:
            a, b = Image.open(ours / rel), Image.open(official / rel)
            if a.mode != b.mode:
                problems.append(f"{rel}: PNG mode {a.mode}, official {b.mode}")
            problems.append(differing(np.asarray(a), np.asarray(b), str(rel)))
    assert_all_same(problems)
    return len(theirs)


@needs_oracle
def test_prepare_from_polygons_matches_the_official_scripts(prepare_tree, tmp_path):
    root, official = prepare_tree
    report = cio.prepare(str(root), source="polygons", dst=str(tmp_path / "api"))
    assert report.ok
    n = compare_prepared(official, tmp_path / "api")
    assert n == len(list(official.glob("gt*/*/*/*_polygons.json")))
    assert list(official.glob("gtCoarse/*/*/*_labelTrainIds.png")), "no gtCoarse frames compared"


@needs_oracle
def test_prepare_cli_from_polygons_matches_the_official_scripts(prepare_tree, tmp_path):
    root, official = prepare_tree
    assert main(["prepare", str(root), "--from", "polygons", "-o", str(tmp_path / "cli"), "-q"]) == 0
    compare_prepared(official, tmp_path / "cli")


@needs_oracle
def test_prepare_in_place_from_polygons_matches_the_official_scripts(prepare_tree, tmp_path):
    """Next to the polygons files, as the official scripts write them; two workers."""
    root, official = prepare_tree
    copy = tmp_path / "inplace"
    shutil.copytree(root, copy)
    assert cio.prepare(str(copy), source="polygons", workers=2).ok
    compare_prepared(official, copy)


@needs_oracle
def test_prepare_from_pngs_equals_the_official_scripts_where_pngs_are_the_polygons(prepare_tree, tmp_path):
    """The synthetic PNGs are drawn from their polygons, as the released ones were: there the
    lookup of the PNGs (the default source) gives the official scripts' files exactly."""
    root, official = prepare_tree
    out = tmp_path / "png"
    report = cio.prepare(str(root), dst=str(out))  # frames with PNGs only (the crafted ones have none)
    assert report.ok and report.written > 0
    problems = []
    for kind in ("labelTrainIds", "instanceTrainIds"):
        mine = sorted(p.relative_to(out) for p in out.glob(f"gt*/*/*/*_{kind}.png"))
        assert len(mine) == report.written
        for rel in mine:
            problems.append(differing(np.asarray(Image.open(out / rel)), np.asarray(Image.open(official / rel)),
                                      str(rel)))
    assert_all_same(problems)


# -- prepare from the shipped PNGs: a lookup of the official table (no oracle needed) ----------
def official_train_ids(label_ids):
    return TRAIN_ID_LUT[label_ids]


def official_instance_train_ids(instance_ids):
    v = instance_ids.astype(np.int64)
    cls = np.where(v >= 1000, v // 1000, v)
    train = TRAIN_ID_LUT[cls].astype(np.int64)
    numbered = (v >= 1000) & (train != 255)
    return np.where(numbered, train * 1000 + v % 1000, train)


def test_prepare_from_pngs_is_a_lookup_of_the_official_table(synthetic, tmp_path):
    hand = tmp_path / "hand"
    inst = np.full((24, 32), 7, np.uint16)
    inst[0:3] = 0
    inst[4:8, 2:8] = 26000
    inst[4:8, 9:12] = 26007
    inst[10:14, 2:8] = 29000  # caravan: train id 255
    inst[10:14, 9:12] = 30001  # trailer
    inst[15:20, 2:6] = 24
    inst[15:20, 7:10] = 33002
    inst[20:24, 0:32] = 18  # polegroup
    write_frame(str(hand), "train", "aachen/aachen_000000_000019", inst, photo=False)
    write_frame(str(hand), "val", "lindau/lindau_000000_000019", photo=False)
    compared = 0
    for src in (synthetic, hand, Path(cio.sample_path())):
        out = tmp_path / ("out-" + src.name)
        assert cio.prepare(str(src), dst=str(out)).ok
        label_pngs = sorted(src.glob("gt*/*/*/*_labelIds.png"))
        assert label_pngs
        for path in label_pngs:
            rel = path.relative_to(src)
            stem = str(rel)[: -len("labelIds.png")]
            problems = [differing(read_png(out / (stem + "labelTrainIds.png")), official_train_ids(read_png(path)),
                                  f"{rel} labelTrainIds")]
            instance_png = src / (stem + "instanceIds.png")
            if instance_png.exists():
                problems.append(differing(read_png(out / (stem + "instanceTrainIds.png")),
                                          official_instance_train_ids(read_png(instance_png)), f"{rel} instanceTrainIds"))
            assert_all_same(problems)
            compared += 1
    if has_coarse():
        assert list((tmp_path / "out-cityscapes").glob("gtCoarse/*/*/*_labelTrainIds.png"))
    assert compared >= 9


# -- COCO panoptic: csCreatePanopticImgs ------------------------------------------------------------
@needs_oracle
@pytest.mark.parametrize("train_ids", [False, True])
def test_panoptic_matches_csCreatePanopticImgs(tmp_path, train_ids):
    """The JSON byte for byte (so equal when parsed: images, annotations with segments_info,
    categories, in the same order) and every PNG pixel, on synthetic frames with every rule's
    case (crowds, ignored classes, caravans, stuff) plus one hand-made frame of odd values."""
    from conftest import write_frame

    root = tmp_path / "src"
    generate(str(root), splits={"train": 3, "val": 2}, size=(256, 128), seed=11, photos=False)
    inst = np.full((20, 30), 7, np.uint16)
    inst[0:2] = 0
    inst[5:9, 2:7] = 26000
    inst[10:12, 1:5] = 26
    inst[12:16, 20:25] = 29000
    inst[16:18, 20:25] = 24
    inst[18:20, 0:3] = 3
    write_frame(str(root), "val", "zurich/zurich_000000_000019", inst, photo=False)
    official = tmp_path / "official"
    shutil.copytree(root, official)
    flag = ["--use-train-id"] if train_ids else []
    run_oracle(["-m", "cityscapesscripts.preparation.createPanopticImgs", "--set-names", "val", "train", *flag],
               env={"CITYSCAPES_DATASET": str(official)})
    report = cio.prepare(str(root), kinds="panoptic", train_ids=train_ids, workers=2)
    assert report.ok and report.written == 6
    suffix = "_trainId" if train_ids else ""
    problems = []
    for split in ("val", "train"):
        name = f"cityscapes_panoptic_{split}{suffix}"
        theirs = (official / "gtFine" / f"{name}.json").read_bytes()
        mine = (root / "gtFine" / f"{name}.json").read_bytes()
        assert json.loads(mine) == json.loads(theirs)
        assert mine == theirs
        pngs = sorted(p.name for p in (official / "gtFine" / name).glob("*.png"))
        assert pngs == sorted(p.name for p in (root / "gtFine" / name).glob("*.png")) and pngs
        for png_name in pngs:
            problems.append(differing(read_png(root / "gtFine" / name / png_name),
                                      read_png(official / "gtFine" / name / png_name), png_name))
    assert_all_same(problems)
