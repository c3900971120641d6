"""Fuzz the readers for longer than the test suite does, and count what happened (issue 17).

    python benchmarks/fuzz.py --examples 500 [--kinds 'png*',coco_instances] [--seed 1] [--work DIR]

Each kind (see ``tests/fuzzkit.py``: PNG headers, chunks and image data of 16- and 8-bit gray, RGB,
RGBA and paletted files, on the fast path checked against Pillow, and each again on the pure
path (``<kind>_pure``), COCO instances and panoptic JSON,
polygons, tar shards' index and headers, VOC and CamVid lists, instance predictions,
``dataset_meta.json``, ``label_colors.txt``, zip member names) starts from a valid dataset
written by the library and runs ``--examples`` mutations of it in a forked child. Printed per
kind: the inputs tried, the outcomes by error type, and every distinct contract violation with
the shortest input that shows it: another exception type than ``CityscapesIOError`` (a crash),
an error that names no file or gives no reason a person can act on, a wrong result (a frame
given twice), a file opened outside the root (also through a symbolic link), a peak past the
memory bound (traced, or RSS growth), a child killed by a signal, a fast-path decode that differs
from Pillow's (a wrong result). Notes that break no rule are counted too: a file the fast path
decodes and Pillow refuses, or the reverse, with the shortest input of each. The exit status
is 1 when anything broke the contract.
"""
from __future__ import annotations

import argparse
import collections
import fnmatch
import os
import re
import sys
import tempfile
import time
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import fuzzkit  # noqa: E402  (lives beside the tests that use it too)


def _parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="mutations per kind (default 200)")
    parser.add_argument("--kinds", default=",".join(fuzzkit.KINDS),
                        help=f"comma-separated kinds or patterns such as 'png*' (default all: {', '.join(fuzzkit.KINDS)})")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomized)")
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    kinds: List[str] = []
    for pattern in args.kinds.split(","):
        found = [k for k in fuzzkit.KINDS if fnmatch.fnmatchcase(k, pattern)]
        if not found:
            parser.error(f"unknown kinds: {pattern}")
        kinds += [k for k in found if k not in kinds]
    args.kinds = ",".join(kinds)
    return args


def _notes(results: List[Tuple[str, fuzzkit.Outcome]]) -> Dict[str, Tuple[int, str]]:
    """Each kind of note (its text with numbers left out) with its count and the shortest input."""
    found: Dict[str, Tuple[int, str]] = {}
    for case, outcome in results:
        for note in outcome.notes:
            key = re.sub(r"[0-9]+", "#", note)[:90]
            count, text = found.get(key, (0, ""))
            shown = f"{note}\n      input: {case}"
            found[key] = (count + 1, shown if not text or len(shown) < len(text) else text)
    return found


def _violations(results: List[Tuple[str, fuzzkit.Outcome]]) -> Dict[str, str]:
    """Each distinct violation (its kind, the exception type and where it came from) with the
    shortest input that shows it."""
    found: Dict[str, str] = {}
    for case, outcome in results:
        for violation in outcome.violations:
            key = violation if violation.startswith("read outside") else f"{outcome.label} at {outcome.origin}"
            if "peak memory" in violation:
                key = f"memory bound ({outcome.label} at {outcome.origin})"
            text = f"{violation}\n      input: {case}"
            if key not in found or len(text) < len(found[key]):
                found[key] = text
    return found


def main(argv: List[str]) -> int:
    args = _parse(argv)
    work = args.work or tempfile.mkdtemp(prefix="cityscapes-io-fuzz-")
    totals: collections.Counter = collections.Counter()
    crashes = unnamed = wrong = outside = memory = 0
    print(f"fuzz: {args.examples} examples per kind, seed {args.seed if args.seed is not None else 'derandomized'},"
          f" memory bound {fuzzkit.MEMORY_BOUND >> 20} MiB, work folder {work}")
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        results, death = fuzzkit.explore_forked(kind, os.path.join(work, kind), args.examples, args.seed)
        outcomes = collections.Counter(outcome.label for _, outcome in results)
        totals.update(outcomes)
        crashes += sum(n for label, n in outcomes.items() if label.startswith("CRASH"))
        unnamed += sum(n for label, n in outcomes.items() if label.startswith(("NO FILE", "UNCLEAR")))
        wrong += outcomes["WRONG RESULT"]
        outside += sum(1 for _, outcome in results if outcome.outside)
        memory += sum(1 for _, outcome in results if outcome.peak > fuzzkit.MEMORY_BOUND)
        print(f"\n== {kind}: {len(results)} inputs in {time.perf_counter() - start:.1f} s")
        for label, n in outcomes.most_common():
            print(f"   {n:6d}  {label}")
        if death is not None:
            crashes += 1
            print(f"   CRASH: the child was {death.how}\n      input: {death.case}")
        for text in _violations(results).values():
            print(f"   VIOLATION {text}")
        for count, text in _notes(results).values():
            print(f"   NOTE ({count}x) {text}")
    print("\n== all kinds: " + ", ".join(f"{label} {n}" for label, n in totals.most_common()))
    print(f"errors naming no file or with a reason no one can act on {unnamed}")
    print(f"wrong results {wrong}")
    print(f"reads outside the root {outside}")
    print(f"memory bound breaches {memory}")
    print(f"crashes {crashes}")
    return 1 if crashes or unnamed or wrong or outside or memory else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
