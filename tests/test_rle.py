"""COCO RLE and polygons (cityscapes_io.rle) against pycocotools on real arrays: the same
``counts`` strings, areas and boxes; pycocotools' RLEs (compressed and list counts) decoded to
the same masks; polygons drawn as ``annToMask`` draws them; masks turned into polygons that draw
back to the same masks; bad input refused with a clear reason.

pycocotools is in the ``test`` extra; without it the comparisons are skipped and the round
trips through our own rasteriser still run."""
from __future__ import annotations

import numpy as np
import pytest

from cityscapes_io import rle
from cityscapes_io.errors import InvalidFileError
from cityscapes_io.instances import segment_stats
from cityscapes_io.testing import make_frame

# pycocotools 2.0.x's decode passes copy=False to numpy 2's __array__ protocol.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(scope="module")
def coco():
    return pytest.importorskip("pycocotools.mask")


def _coco_encode(coco, mask):
    return coco.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))


def _ann_to_mask(coco, polygons, h, w):
    """What ``COCO.annToMask`` draws for a polygon segmentation."""
    if not polygons:
        return np.zeros((h, w), dtype=bool)
    rles = coco.frPyObjects([[float(v) for v in p] for p in polygons], h, w)
    return coco.decode(coco.merge(rles)).astype(bool)


def _blob(rng, h, w, cell=8, holes=True):
    """A smooth random blob (an upsampled noise field cut at a level), with pepper holes."""
    gh, gw = -(-h // cell) + 1, -(-w // cell) + 1
    grid = rng.random((gh, gw))
    yy = np.linspace(0, gh - 1.001, h)
    xx = np.linspace(0, gw - 1.001, w)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[:, None], (xx - x0)[None, :]
    g = (grid[y0][:, x0] * (1 - fy) * (1 - fx) + grid[y0 + 1][:, x0] * fy * (1 - fx)
         + grid[y0][:, x0 + 1] * (1 - fy) * fx + grid[y0 + 1][:, x0 + 1] * fy * fx)
    mask = g > rng.uniform(0.3, 0.7)
    if holes:
        mask &= rng.random((h, w)) > 0.02
    return mask


def _masks():
    """Masks of every kind: random densities, empty, full, single pixels (corners and
    inside), touching the borders, stripes, checkerboards, one row or column, blobs."""
    rng = np.random.default_rng(11)
    out = []
    for h, w in [(1, 1), (1, 7), (9, 1), (2, 2), (37, 53), (128, 64), (64, 200)]:
        out += [np.zeros((h, w), bool), np.ones((h, w), bool)]
        for p in (0.02, 0.5, 0.98):
            out.append(rng.random((h, w)) < p)
        for y, x in [(0, 0), (h - 1, w - 1), (0, w - 1), (h - 1, 0), (h // 2, w // 2)]:
            m = np.zeros((h, w), bool)
            m[y, x] = True
            out += [m, ~m]
        checker = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
        out += [checker, ~checker]
    m = np.zeros((40, 30), bool)
    m[:, 0] = m[0, :] = m[:, -1] = m[-1, :] = True  # a frame on the borders, its inside a hole
    out.append(m)
    m = np.zeros((40, 30), bool)
    m[::3] = True  # horizontal stripes: runs that cross from one column into the next
    out += [m, m.T.copy()]
    m = np.zeros((50, 50), bool)
    m[5:45, 5:45] = True
    m[10:40, 10:40] = False
    m[15:35, 15:35] = True  # a ring with an island
    m[20:30, 20:30] = False
    out.append(m)
    for _ in range(6):
        out.append(_blob(rng, int(rng.integers(20, 150)), int(rng.integers(20, 150))))
    return out


MASKS = _masks()


# ------------------------------------------------------------------------------- RLE vs pycocotools


def test_encode_area_bbox_decode_match_pycocotools(coco):
    for m in MASKS:
        ref = _coco_encode(coco, m)
        ours = rle.encode(m)
        assert ours == {"size": [int(v) for v in ref["size"]], "counts": ref["counts"].decode("ascii")}, m.shape
        assert isinstance(ours["counts"], str)
        assert rle.area(ours) == int(coco.area(ref)) == int(m.sum())
        assert rle.bbox(ours) == [float(v) for v in coco.toBbox(ref)]
        assert all(isinstance(v, float) for v in rle.bbox(ours))
        for counts in (ref["counts"], ref["counts"].decode("ascii")):  # bytes and str
            got = rle.decode({"size": ref["size"], "counts": counts})
            assert got.dtype == bool and got.shape == m.shape and np.array_equal(got, m)
        assert np.array_equal(coco.decode(dict(ours, counts=ours["counts"].encode())).astype(bool), m)


def test_encode_accepts_non_bool_and_zero_size(coco):
    m = (np.random.default_rng(3).random((20, 30)) < 0.4)
    assert rle.encode(m.astype(np.uint8) * 7) == rle.encode(m)
    for shape in [(0, 4), (3, 0)]:
        z = np.zeros(shape, dtype=np.uint8)
        ref = coco.encode(np.asfortranarray(z))
        assert rle.encode(z)["counts"] == ref["counts"].decode()
        assert rle.decode(rle.encode(z)).shape == shape
    with pytest.raises(ValueError):
        rle.encode(np.zeros((2, 3, 4), bool))


def test_large_counts_match_pycocotools(coco):
    """Runs of millions of pixels and differences of either sign taking many characters."""
    rng = np.random.default_rng(5)
    for m in [np.zeros((3000, 2000), bool), rng.random((3000, 2000)) < 0.9999, rng.random((3000, 2000)) < 0.0001]:
        m[0, 0] = m[-1, -1] = True
        ref = _coco_encode(coco, m)
        ours = rle.encode(m)
        assert ours["counts"] == ref["counts"].decode()
        assert rle.area(ours) == int(coco.area(ref)) and rle.bbox(ours) == list(coco.toBbox(ref))
        assert np.array_equal(rle.decode(ref), m)


def test_uncompressed_list_counts_match_pycocotools(coco):
    """``iscrowd`` annotations: counts as a list of integers (zero-length runs included)."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        n = h * w
        cuts = np.sort(rng.integers(0, n + 1, int(rng.integers(0, 12))))
        counts = np.diff(np.r_[0, cuts, n]).tolist()
        doc = {"size": [h, w], "counts": counts}
        ref = coco.frPyObjects(doc, h, w)
        mask = coco.decode(ref).astype(bool)
        assert np.array_equal(rle.decode(doc), mask)
        assert rle.area(doc) == int(coco.area(ref))
        assert rle.bbox(doc) == [float(v) for v in coco.toBbox(ref)]
        assert np.array_equal(rle.decode(rle.encode(mask)), mask)
    doc = {"size": [2, 3], "counts": np.array([1, 2, 3], dtype=np.uint32)}  # numpy counts
    assert rle.decode(doc).T.ravel().tolist() == [0, 1, 1, 0, 0, 0]


def test_encode_segments_equals_encode_each(coco):
    rng = np.random.default_rng(13)
    arrays = [rng.integers(0, 4, (h, w)).astype(np.uint16) for h, w in [(1, 1), (1, 9), (9, 1), (31, 47)]]
    arrays.append(make_frame((256, 128), seed=3, photos=False)["instanceIds"])
    arrays.append(np.full((5, 6), 26001, dtype=np.uint16))
    for ids in arrays:
        values = np.unique(ids)
        segs = rle.encode_segments(ids)
        assert len(segs) == len(values)
        for v, seg in zip(values, segs):
            assert seg == rle.encode(ids == v)
            assert seg["counts"] == _coco_encode(coco, ids == v)["counts"].decode()
        # Values asked for in any order, absent ones give an empty mask.
        asked = [int(values[-1]), 65535 if values[-1] != 65535 else 1, int(values[0])]
        got = rle.encode_segments(ids, asked)
        assert got == [rle.encode(ids == v) for v in asked]
        assert rle.area(got[1]) == 0
    assert rle.encode_segments(arrays[0], []) == []
    assert rle.encode_segments(np.zeros((0, 3), np.uint16), [1]) == [{"size": [0, 3], "counts": "0"}]


def test_synthetic_frame_instances_match_pycocotools(coco):
    """A full-size synthetic frame: every segment's counts, area and box equal pycocotools'
    (and the areas and boxes of instances.segment_stats)."""
    ids = make_frame((2048, 1024), seed=2, photos=False)["instanceIds"]
    values, areas, x0, y0, x1, y1 = segment_stats(ids)
    segs = rle.encode_segments(ids)
    for v, a, bx0, by0, bx1, by1, seg in zip(values, areas, x0, y0, x1, y1, segs):
        ref = _coco_encode(coco, ids == v)
        assert seg["counts"] == ref["counts"].decode()
        assert rle.area(seg) == int(coco.area(ref)) == int(a)
        assert rle.bbox(seg) == [float(t) for t in coco.toBbox(ref)] == [float(bx0), float(by0),
                                                                          float(bx1 - bx0), float(by1 - by0)]
        assert np.array_equal(rle.decode(seg), ids == v)


# ------------------------------------------------------------------------------- polygons -> mask


def _random_polygons(rng, h, w, mode):
    k = int(rng.integers(3, 16))
    big = max(h, w)
    if mode == 0:
        p = rng.uniform(-10, big + 10, 2 * k)  # anywhere, partly outside
    elif mode == 1:
        p = rng.integers(-5, big + 5, 2 * k).astype(float)  # integer vertices
    elif mode == 2:
        p = np.round(rng.uniform(0, big, 2 * k) * 2) / 2  # on pixel centres and corners
    elif mode == 3:
        p = rng.uniform(0, 3, 2 * k) + rng.uniform(0, big)  # tiny
    else:
        p = rng.uniform(0, big, 2 * k)
        p[2:4] = p[0:2]  # a repeated vertex (a zero-length edge)
    return p.tolist()


def test_polygons_to_mask_matches_ann_to_mask(coco):
    rng = np.random.default_rng(17)
    differ = 0
    for i in range(1500):
        h, w = int(rng.integers(1, 100)), int(rng.integers(1, 100))
        polys = [_random_polygons(rng, h, w, i % 5) for _ in range(int(rng.integers(1, 4)))]
        ours = rle.polygons_to_mask(polys, h, w)
        assert ours.shape == (h, w) and ours.dtype == bool
        differ += int((ours != _ann_to_mask(coco, polys, h, w)).sum())
    assert differ == 0


def test_polygons_to_mask_large_polygons(coco):
    """Polygons of hundreds of vertices on a full-size frame, and the synthetic frame's own
    Cityscapes polygons."""
    rng = np.random.default_rng(19)
    h, w = 1024, 2048
    for _ in range(5):
        n = int(rng.integers(50, 400))
        angle = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(100, 500, n)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        poly = np.column_stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)]).ravel().tolist()
        assert np.array_equal(rle.polygons_to_mask([poly], h, w), _ann_to_mask(coco, [poly], h, w))
    doc = make_frame((2048, 1024), seed=1, photos=False)["polygons"]
    for obj in doc["objects"]:
        poly = np.asarray(obj["polygon"], dtype=float).ravel().tolist()
        if len(poly) >= 6:
            assert np.array_equal(rle.polygons_to_mask([poly], h, w), _ann_to_mask(coco, [poly], h, w)), obj["label"]


def test_polygons_to_mask_pixel_convention():
    """Pixel (x, y) spans [x, x+1] x [y, y+1]: a square of corners covers exactly its pixels."""
    m = rle.polygons_to_mask([[1, 1, 3, 1, 3, 4, 1, 4]], 6, 5)
    expected = np.zeros((6, 5), bool)
    expected[1:4, 1:3] = True
    assert np.array_equal(m, expected)
    assert not rle.polygons_to_mask([], 3, 3).any()


# ------------------------------------------------------------------------------- mask -> polygons


def _round_trip_masks():
    rng = np.random.default_rng(23)
    out = list(MASKS)
    for _ in range(300):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        out.append(rng.random((h, w)) < rng.random())
    for _ in range(20):
        out.append(_blob(rng, int(rng.integers(50, 300)), int(rng.integers(50, 300)), cell=int(rng.integers(4, 30))))
    return out


def _check_polygons(polys, h, w):
    for p in polys:
        assert len(p) >= 8 and len(p) % 2 == 0 and all(type(v) is int for v in p)
        xs, ys = p[0::2], p[1::2]
        assert 0 <= min(xs) and max(xs) <= w and 0 <= min(ys) and max(ys) <= h


def test_mask_to_polygons_round_trips_exactly(coco):
    for m in _round_trip_masks():
        h, w = m.shape
        polys = rle.mask_to_polygons(m)
        _check_polygons(polys, h, w)
        assert np.array_equal(rle.polygons_to_mask(polys, h, w), m)
        assert np.array_equal(_ann_to_mask(coco, polys, h, w), m)


def test_mask_to_polygons_round_trips_without_pycocotools():
    for m in _round_trip_masks()[:120]:
        polys = rle.mask_to_polygons(m)
        assert np.array_equal(rle.polygons_to_mask(polys, *m.shape), m)


def test_mask_to_polygons_synthetic_frame(coco):
    ids = make_frame((2048, 1024), seed=0, photos=False)["instanceIds"]
    for v in np.unique(ids):
        m = ids == v
        polys = rle.mask_to_polygons(m)
        _check_polygons(polys, *m.shape)
        assert np.array_equal(_ann_to_mask(coco, polys, *m.shape), m), v


def test_mask_to_polygons_shapes():
    one = np.zeros((7, 6), bool)
    one[5, 3] = True
    assert rle.mask_to_polygons(one) == [[3, 5, 3, 6, 4, 6, 4, 5]]
    assert rle.mask_to_polygons(np.zeros((4, 4), bool)) == []
    assert rle.mask_to_polygons(np.ones((2, 3), bool)) == [[0, 0, 0, 2, 3, 2, 3, 0]]
    # A hole: one polygon, its hole cut in with a bridge (drawn alone, the outer ring would
    # fill the hole).
    square = np.ones((5, 5), bool)
    square[2, 2] = False
    [poly] = rle.mask_to_polygons(square)
    assert poly == [0, 0, 0, 5, 5, 5, 5, 0, 2, 0, 2, 2, 3, 2, 3, 3, 2, 3, 2, 0]
    # Corner-touching pixels are one component (8-connectivity); separate ones are not.
    diagonal = np.eye(3, dtype=bool)
    assert len(rle.mask_to_polygons(diagonal)) == 1
    apart = np.zeros((3, 5), bool)
    apart[1, 0] = apart[1, 2] = apart[1, 4] = True
    assert len(rle.mask_to_polygons(apart)) == 3
    # An island inside a hole is a polygon of its own, after the one around it.
    nested = np.zeros((9, 9), bool)
    nested[1:8, 1:8] = True
    nested[2:7, 2:7] = False
    nested[4, 4] = True
    polys = rle.mask_to_polygons(nested)
    assert len(polys) == 2 and polys[1] == [4, 4, 4, 5, 5, 5, 5, 4]
    assert np.array_equal(rle.polygons_to_mask(polys, 9, 9), nested)
    with pytest.raises(ValueError):
        rle.mask_to_polygons(np.zeros(5, bool))


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("doc, reason", [
    ({"size": [2, 3], "counts": [1, 2]}, "sum to 3 pixels, but its size 2x3 has 6"),
    ({"size": [2, 3], "counts": [1, 2, 4]}, "sum to 7 pixels"),
    ({"size": [2, 3], "counts": [4, -1, 3]}, "count 1 is negative"),
    ({"size": [2, 3], "counts": "2"}, "sum to 2 pixels"),
    ({"size": [2, 3], "counts": "1a"}, "cut off"),
    ({"size": [2, 3], "counts": "1 5"}, "character ' ' at offset 1"),
    ({"size": [2, 3], "counts": "1\u00e95"}, "not ASCII"),
    ({"size": [2, 3], "counts": "0" + "o" * 10 + "0"}, "more than any count"),
    ({"size": [2, 3], "counts": "04O"}, "count 2 is negative"),
    ({"size": [2, 3], "counts": [1.5, 4.5]}, "integers only"),
    ({"size": [2, 3], "counts": [True, 5]}, "integers only"),
    ({"size": [2, 3], "counts": 6}, "compressed string or a list"),
    ({"size": [2, 3]}, "compressed string or a list"),
    ({"size": [2], "counts": [6]}, "[height, width]"),
    ({"size": [2, -3], "counts": [6]}, "[height, width]"),
    ({"size": "2x3", "counts": [6]}, "[height, width]"),
    ({"counts": [6]}, "[height, width]"),
    ([6], "not list"),
])
def test_bad_rle_is_refused(doc, reason):
    for call in (rle.decode, rle.area, rle.bbox):
        with pytest.raises(InvalidFileError) as info:
            call(doc, path="ann.json: annotation 4")
        assert reason in info.value.reason and str(info.value).startswith("ann.json: annotation 4: ")


def test_rle_of_another_size_is_refused():
    doc = rle.encode(np.ones((4, 5), bool))
    assert rle.decode(doc, shape=(4, 5)).all()
    with pytest.raises(InvalidFileError, match=r"RLE size is 4x5 \(height x width\), but the image is 5x4"):
        rle.decode(doc, shape=(5, 4), path="x.json")


@pytest.mark.parametrize("polys, reason", [
    ([[0, 0, 1, 0, 1]], "odd number of coordinates (5)"),
    ([[0, 0, 1, 1]], "2 point(s): a polygon needs at least 3"),
    ([[0, 0, 1, 0, float("nan"), 1]], "not finite"),
    ([[0, 0, 1, 0, "a", 1]], "not a flat list of numbers"),
    ([[[0, 0], [1, 0], [1, 1]]], "not a flat list of numbers"),
    ([[0, 0, 1, 0, 1, 1], [0, True, 1, 0, 1, 1]], "polygon 1 is not a flat list"),
    ([[0, 0, 1e12, 0, 1, 1]], "point (1e+12, 0), more than 104 pixels outside the 4x4 image (refused)"),
    ("0 0 1 0 1 1", "must be a list"),
    ({"counts": [1]}, "must be a list"),
])
def test_bad_polygons_are_refused(polys, reason):
    with pytest.raises(InvalidFileError) as info:
        rle.polygons_to_mask(polys, 4, 4, path="ann.json")
    assert reason in info.value.reason and info.value.path == "ann.json"
