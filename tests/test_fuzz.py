"""Bad input tried as a routine (issue 17): a seeded, bounded fuzz run over every input kind.

Each kind starts from a valid dataset written by the library and mutates it (see
``tests/fuzzkit.py``). The contract for every example: a result (no frame given twice), or a
``CityscapesIOError`` naming a file with a reason in words; no file beside the root opened, also
through a symbolic link; peak memory under ``fuzzkit.MEMORY_BOUND``. A kind runs in a forked
child so that a crash below Python fails its test instead of the whole suite. Failures are not
shrunk (each is reported as found, with its input); ``benchmarks/fuzz.py`` keeps the shortest.
``benchmarks/fuzz.py --examples N`` runs the same mutations longer and counts the outcomes.
"""
import os

import pytest

import fuzzkit

#: Examples per kind (instance predictions evaluate, the slowest run).
EXAMPLES = {"instance_txt": 30}
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
