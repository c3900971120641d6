"""Bad input tried as a routine (issue 17): a seeded, bounded fuzz run over every input kind.

Each kind starts from a valid dataset written by the library and mutates it (see
``tests/fuzzkit.py``). The contract for every example: a result (no frame given twice), or a
``CityscapesIOError`` naming a file with a reason in words; no file beside the root opened, also
through a symbolic link; peak memory under ``fuzzkit.MEMORY_BOUND``. A kind runs in a forked
child so that a crash below Python fails its test instead of the whole suite. Failures are not
shrunk (each is reported as found, with its input); ``benchmarks/fuzz.py`` keeps the shortest.
``benchmarks/fuzz.py --examples N`` runs the same mutations longer and counts the outcomes.

The PNG kinds (16- and 8-bit gray, RGBA, RGB, paletted) mutate inside the image data too (filter
bytes, data bytes, the inflated stream cut or extended, several IDAT chunks), and run twice: on
the fast path (issue 20's C unfilter), where every decode is also held to Pillow's, and on the
pure path (``<kind>_pure``, Pillow only).
"""
import io
import os
import zlib

import numpy as np
import pytest
from PIL import Image

import fuzzkit
from cityscapes_io import png

#: Examples per kind (instance predictions evaluate, the slowest run; the PNG kinds on the fast
#: path decode every file twice, and are where the C unfilter meets bad input).
EXAMPLES = {"instance_txt": 30, **{name: 100 for name, *_ in fuzzkit.PNG_KINDS}}
DEFAULT_EXAMPLES = 60


def _report(results, death):
    lines = []
    if death is not None:
        lines.append(f"the child was {death.how} while running: {death.case}")
    seen = set()
    for case, outcome in results:
        for violation in outcome.violations:
            key = (outcome.label, outcome.origin, violation.split(":")[0])
            if key not in seen:
                seen.add(key)
                lines.append(f"{violation}\n    input: {case}")
    return lines


@pytest.mark.parametrize("kind", sorted(fuzzkit.KINDS))
def test_mutated_inputs_keep_the_contract(tmp_path, kind):
    results, death = fuzzkit.explore_forked(kind, str(tmp_path), EXAMPLES.get(kind, DEFAULT_EXAMPLES))
    assert death is not None or len(results) >= 10, f"only {len(results)} examples ran"
    problems = _report(results, death)
    assert not problems, f"{len(problems)} distinct contract violations:\n" + "\n".join(problems)


@pytest.mark.parametrize("kind", sorted(fuzzkit.KINDS))
def test_valid_inputs_read_cleanly(tmp_path, kind):
    """The starting point of every mutation is valid: the unmutated files read without error."""
    bench = fuzzkit.Bench(fuzzkit.KINDS[kind], str(tmp_path / "w"))
    outcome = fuzzkit.run_case(bench, ())
    assert outcome.label == "ok" and not outcome.violations, outcome


def test_the_harness_sees_reads_outside_the_root(tmp_path):
    """The canary check works: a run that opens the file beside the root is a violation."""
    def peek(root, gt):
        with open(os.path.join(root, "..", fuzzkit.CANARY), "rb") as f:
            return f.read(8)

    kind = fuzzkit.Kind("peek", fuzzkit.KINDS["png"].make, {"x.png": "png"}, peek)
    outcome = fuzzkit.run_case(fuzzkit.Bench(kind, str(tmp_path / "w")), ())
    assert outcome.outside == (str(tmp_path / "w" / fuzzkit.CANARY),)
    assert "read outside the root" in outcome.violations[0]


def test_the_harness_counts_crashes_and_memory(tmp_path):
    """Another exception type is a crash; an allocation past the bound is a violation."""
    def allocate(root, gt):
        block = bytearray(fuzzkit.MEMORY_BOUND + (1 << 20))
        raise KeyError(len(block))

    kind = fuzzkit.Kind("allocate", fuzzkit.KINDS["png"].make, {"x.png": "png"}, allocate)
    outcome = fuzzkit.run_case(fuzzkit.Bench(kind, str(tmp_path / "w")), ())
    assert outcome.label == "CRASH KeyError"
    assert any("peak memory" in v for v in outcome.violations)


def test_mutations_are_applied(tmp_path):
    """A mutation reaches the file the library reads, and the file is restored after the run."""
    bench = fuzzkit.Bench(fuzzkit.KINDS["wds_index"], str(tmp_path / "w"))
    case = (("shards.json", ("set", ("splits", "val", 0, "file"), "'../canary.png'")),)
    assert b'"file": "../canary.png"' in bench.mutated(case)["shards.json"]
    outcome = fuzzkit.run_case(bench, case)
    assert outcome.label == "UnsafePathError" and "shards.json" in outcome.message
    assert open(os.path.join(bench.root, "shards.json"), "rb").read() == bench.originals["shards.json"]


def _filters(data):
    """The filter type of each row of a PNG (its IDAT chunks inflated)."""
    chunks = fuzzkit.png_chunks(data)
    height, stride, _ = fuzzkit.png_geometry(chunks[0][1])
    raw = zlib.decompress(b"".join(payload for kind, payload, _, _ in chunks if kind == b"IDAT"))
    return [raw[r * (stride + 1)] for r in range(height)]


@pytest.mark.parametrize("kind", [name for name, *_ in fuzzkit.PNG_KINDS])
def test_png_data_mutations_reach_the_rows(tmp_path, kind):
    """The image-data mutations leave a well-formed PNG whose rows are changed: re-filtering
    (every filter type, over several IDAT chunks, stored or compressed) decodes to the same
    pixels; a filter byte of 9 is refused by both paths, each in its own words."""
    bench = fuzzkit.Bench(fuzzkit.KINDS[kind], str(tmp_path / "w"))
    original = bench.originals["x.png"]
    assert {1, 2, 4} <= set(_filters(original)) or kind == "png_paletted"  # Pillow's filters (not the sample's)
    pixels = np.asarray(Image.open(io.BytesIO(original)))
    for f in range(5):
        data = fuzzkit.mutate_png(original, [("refilter", 0, 1000, f), ("split", 3), ("zlevel", 0 if f else 9)])
        assert set(_filters(data)) == {f}
        assert [kind for kind, *_ in fuzzkit.png_chunks(data)].count(b"IDAT") == 3
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    cut = fuzzkit.mutate_png(original, [("cut", 5)])
    geometry = fuzzkit.png_geometry(fuzzkit.png_chunks(original)[0][1])
    idat = b"".join(p for k, p, _, _ in fuzzkit.png_chunks(cut) if k == b"IDAT")
    assert len(zlib.decompress(idat)) == geometry[0] * (geometry[1] + 1) - 5
    case = (("x.png", ("filter", 3, 9)),)
    fast, pure = fuzzkit.run_case(bench, case), fuzzkit.run_case(fuzzkit.Bench(fuzzkit.KINDS[kind + "_pure"],
                                                                               str(tmp_path / "p")), case)
    assert fast.label == pure.label == "InvalidFileError"
    if png.fast_path_active():
        assert "row 3 has filter type 9" in fast.message
    assert "row 3 has filter type 9" not in pure.message  # Pillow's words: the pure run did not use C


class _Skewed:
    """The real C unfilter, with one output byte changed afterwards: a wrong decode the
    differential check must catch."""

    def __init__(self, real):
        self.real = real

    def unfilter(self, src, dst, height, stride, bpp, swap16):
        self.real.unfilter(src, dst, height, stride, bpp, swap16)
        dst[5] ^= 1

    def drop_bytes(self, *args):
        self.real.drop_bytes(*args)


def test_the_harness_compares_the_fast_path_with_pillow(tmp_path, monkeypatch):
    """A fast-path decode that differs from Pillow's is a wrong result (a violation)."""
    if not png.fast_path_active():
        pytest.skip("the C extension is not built: nothing to compare")
    bench = fuzzkit.Bench(fuzzkit.KINDS["png_rgba"], str(tmp_path / "w"))
    assert fuzzkit.run_case(bench, ()).label == "ok"
    monkeypatch.setattr(png, "_UNFILTER", _Skewed(png._UNFILTER))
    outcome = fuzzkit.run_case(bench, ())
    assert outcome.label == "WRONG RESULT" and "decode_rgb" in outcome.message, outcome
    assert outcome.violations
    # On the pure path the skewed module is not used at all, and is restored after the run.
    assert fuzzkit.run_case(fuzzkit.Bench(fuzzkit.KINDS["png_rgba_pure"], str(tmp_path / "p")), ()).label == "ok"
    assert isinstance(png._UNFILTER, _Skewed)


def test_unfilter_reference_matches_pillow():
    """The harness's reference unfiltering (held against the C one by benchmarks/sanitize.sh)
    decodes a Pillow-written file (Sub, Up and Paeth rows) as Pillow does."""
    im = Image.open(os.path.join(fuzzkit.cio.sample_path(), "gtFine", "val", "aachen",
                                 "aachen_000002_000042_gtFine_color.png"))
    with io.BytesIO() as buf:
        im.save(buf, format="PNG")
        data = fuzzkit.mutate_png(buf.getvalue(), [("refilter", 3, 2, 3)])  # two Average rows too
    chunks = fuzzkit.png_chunks(data)
    height, stride, bpp = fuzzkit.png_geometry(chunks[0][1])
    raw = zlib.decompress(b"".join(p for k, p, _, _ in chunks if k == b"IDAT"))
    assert fuzzkit.unfilter_reference(raw, height, stride, bpp) == np.asarray(im).tobytes()
