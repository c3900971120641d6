#!/usr/bin/env bash
# The C extensions (cityscapes_io/_png.c, the unfilter; cityscapes_io/_count.c, the counters of
# evaluation) under AddressSanitizer and UndefinedBehaviorSanitizer (issue 20): both are built with
# -fsanitize=address,undefined into a temporary folder (never the source tree), loaded in place of
# the ordinary builds before the library is imported (their __file__ printed), and given
#   1. its own check of the Paeth predictor (_png.check_paeth(): all 2^24 inputs),
#   2. direct calls of _png.unfilter and _png.drop_bytes with random geometries (1x1, widths that
#      are not a multiple of 8, every bpp 1, 2, 3, 4, 6, 8, swap16), random and flat rows, in
#      place and out of place, each result held to the specification's unfiltering
#      (tests/fuzzkit.py: unfilter_reference); the buffers are exact: Python objects allocated
#      by malloc (PYTHONMALLOC=malloc, so ASan sees their bounds) and buffers that end or start
#      at a page with no access (an overread faults even where ASan would not look); bad
#      geometries must be refused with ValueError,
#   3. the fuzz corpus of the PNG kinds (benchmarks/fuzz.py --kinds 'png*': chunk, byte and
#      image-data mutations of 16/8-bit gray, RGB, RGBA and paletted files, the fast path
#      checked against Pillow),
#   4. _count.count_pairs, count_segments and apply_lut on random cases (the helpers at the end of
#      tests/test_png_fast.py, with big=True: item sizes 1/2/4, RGB pixels, a_min, keys empty, one,
#      many, ids not listed, id 0 or not, indices past the table, lengths too small; images with
#      runs (the 8-pixel memcmp blocks) and without, of 0, 1, 7, 8, 9, 15, 16, 17 or random pixels in
#      odd shapes), every buffer (inputs and outputs) copied to end at a page without access (or
#      start right after one, or on the malloc heap): the raw C results and the wrapper's C path are
#      held to the helpers' reference; the wrapper's numpy path (counting._C = None) is held to it too;
#      bad arguments (misaligned views, mismatched lengths, unsorted keys, wrong sizes) must raise
#      ValueError or TypeError.
# The exit status is non-zero on any sanitizer report, wrong result or fuzz contract violation.
#
#   benchmarks/sanitize.sh [EXAMPLES_PER_KIND (default 300)] [DIRECT_CASES (default 3000)]
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/tmp/venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
EXAMPLES=${1:-300}
CASES=${2:-3000}
CC=${CC:-gcc}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cityscapes-io-sanitize-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"

echo "== build: $FLAGS into $WORK"
if ! CC="$CC" CFLAGS="$FLAGS" LDFLAGS="-fsanitize=address,undefined" \
    "$PYTHON" setup.py -q build_ext --build-lib "$WORK/lib" --build-temp "$WORK/tmp" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"; echo "sanitize: the build failed"; exit 2
fi
SO=$(find "$WORK/lib" -name '_png*.so' | head -n 1)
COUNT_SO=$(find "$WORK/lib" -name '_count*.so' | head -n 1)
if [ -z "$SO" ] || [ -z "$COUNT_SO" ]; then
    cat "$WORK/build.log"; echo "sanitize: no extension was built (it is optional: see the log above)"; exit 2
fi
ASAN_LIB=$("$CC" -print-file-name=libasan.so)
UBSAN_LIB=$("$CC" -print-file-name=libubsan.so)
echo "   built $SO"
echo "   built $COUNT_SO"
echo "   preloading $ASAN_LIB $UBSAN_LIB"

cat >"$WORK/driver.py" <<'EOF'
"""Load the sanitized extensions as cityscapes_io._png and ._count, then run the checks (see sanitize.sh)."""
import ctypes
import importlib.util
import mmap
import os
import random
import sys
import time

so, count_so, examples, cases = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # taken by cityscapes_io.decoder's `from . import ...`
    spec.loader.exec_module(module)
    return module


sanitized = load("cityscapes_io._png", so)
sanitized_count = load("cityscapes_io._count", count_so)

from cityscapes_io import _count, _png, counting, png  # noqa: E402

print(f"   cityscapes_io._png is {_png.__file__}")
print(f"   cityscapes_io._count is {_count.__file__}")
if _png is not sanitized or png._UNFILTER is not sanitized or not png.fast_path_active():
    sys.exit(f"sanitize: the library does not use the sanitized build (png._UNFILTER = {png._UNFILTER!r})")
if _count is not sanitized_count or counting._C is not sanitized_count:
    sys.exit(f"sanitize: counting does not use the sanitized build (counting._C = {counting._C!r})")
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
import fuzzkit  # noqa: E402

failures = []
start = time.perf_counter()
wrong = _png.check_paeth()
print(f"== check_paeth: {wrong} of 2^24 predictions differ from the specification's "
      f"({time.perf_counter() - start:.1f} s)")
if wrong:
    failures.append(f"check_paeth: {wrong}")

# -- direct calls ---------------------------------------------------------------------------------------
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PAGE = mmap.PAGESIZE
_keep = []


def guarded(data: bytes, at_end: bool) -> memoryview:
    """A writable copy of ``data`` that ends (or starts) at a page without access."""
    n = len(data)
    pages = (n + PAGE - 1) // PAGE + 2
    mm = mmap.mmap(-1, pages * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    assert libc.mprotect(base, PAGE, 0) == 0 and libc.mprotect(base + (pages - 1) * PAGE, PAGE, 0) == 0
    first = PAGE + ((pages - 2) * PAGE - n if at_end else 0)
    view = memoryview(mm)[first:first + n]
    view[:] = data
    _keep.append((mm, view))
    return view


def row_bytes(rng: random.Random, n: int, bpp: int) -> bytes:
    """Random, zero, flat (one pixel repeated) or sparse bytes: the flat-run paths need zeros."""
    how = rng.randrange(5)
    if how == 0:
        return bytes(n)
    if how == 1:
        pixel = bytes(rng.randrange(256) for _ in range(bpp))
        return (pixel * (n // bpp + 1))[:n]
    if how == 2:
        return bytes(rng.randrange(256) if rng.random() < 0.05 else 0 for _ in range(n))
    return rng.randbytes(n)


def image_data(rng: random.Random, height: int, stride: int, bpp: int, bad: bool) -> bytes:
    rows = []
    for _ in range(height):
        f = rng.randrange(5) if not bad or rng.random() < 0.8 else rng.randrange(5, 256)
        rows.append(bytes([f]) + row_bytes(rng, stride, bpp))
    return b"".join(rows)


rng = random.Random(20)
start = time.perf_counter()
done = refused = 0
for i in range(cases):
    bpp = rng.choice((1, 2, 3, 4, 6, 8))
    width = rng.choice((1, 1, 2, 3, 5, 7, 8, 9, 11, 13, 16, 17, 31, 33, 64, rng.randrange(1, 200)))
    height = rng.choice((1, 1, 2, 3, rng.randrange(1, 12)))
    if i < 12:  # the smallest images first: 1x1 of every bpp, then 2x1
        width, height = 1 + i // 6, 1
    stride = width * bpp
    swap16 = bpp % 2 == 0 and rng.random() < 0.5
    raw = image_data(rng, height, stride, bpp, bad=rng.random() < 0.1)
    try:
        expected = fuzzkit.unfilter_reference(raw, height, stride, bpp)
    except ValueError:
        expected = None
    if expected is not None and swap16:
        expected = b"".join(expected[j + 1:j + 2] + expected[j:j + 1] for j in range(0, len(expected), 2))
    results = {}
    for how in ("out of place", "in place", "guarded end", "guarded start", "guarded in place"):
        if how == "out of place":
            src, dst = bytes(raw), bytearray(height * stride)
        elif how == "in place":
            src = dst = bytearray(raw)
        elif how == "guarded in place":
            src = dst = guarded(raw, at_end=rng.random() < 0.5)
        else:
            src, dst = guarded(raw, how == "guarded end"), guarded(bytes(height * stride), how == "guarded end")
        try:
            _png.unfilter(src, dst, height, stride, bpp, swap16)
            results[how] = bytes(dst[:height * stride])
        except ValueError as exc:
            results[how] = exc
    for how, got in results.items():
        if expected is None:
            if not isinstance(got, ValueError):
                failures.append(f"unfilter accepted a bad filter type ({how}): {height}x{width} bpp {bpp}")
        elif got != expected:
            failures.append(f"unfilter {how}: {height}x{width} bpp {bpp} swap16 {swap16}: "
                            f"{'raised ' + str(got) if isinstance(got, ValueError) else 'wrong bytes'}"
                            f" (seed 20, case {i})")
    done += 1
    refused += expected is None
print(f"== unfilter: {done} random geometries x 5 buffer layouts ({refused} with a bad filter type), "
      f"{time.perf_counter() - start:.1f} s")

start = time.perf_counter()
for i in range(cases):
    bpp = rng.choice((1, 2, 3, 4, 6, 8))
    keep = rng.randrange(1, bpp + 1) if rng.random() < 0.6 else min(bpp, 3)
    pixels = rng.choice((0, 1, 2, 3, 7, 8, 9, rng.randrange(0, 300)))
    data = rng.randbytes(pixels * bpp + rng.choice((0, 0, 1, 5)))
    expected = b"".join(data[p * bpp:p * bpp + keep] for p in range(pixels))
    for buf in (bytearray(data), guarded(data, True), guarded(data, False)):
        _png.drop_bytes(buf, pixels, bpp, keep)
        if bytes(buf[:pixels * keep]) != expected:
            failures.append(f"drop_bytes: {pixels} pixels of {bpp} keep {keep}: wrong bytes")
print(f"== drop_bytes: {cases} random geometries x 3 buffer layouts, {time.perf_counter() - start:.1f} s")

# Geometries the functions must refuse (ValueError), never touching memory.
buf = bytearray(64)
bad_calls = [
    ("unfilter", (bytes(10), bytearray(100), 2, 8, 1, False)),      # src shorter than the rows
    ("unfilter", (bytes(100), bytearray(10), 2, 8, 1, False)),      # dst smaller than the rows
    ("unfilter", (bytes(100), bytearray(100), 1, 7, 2, False)),     # stride not a multiple of bpp
    ("unfilter", (bytes(100), bytearray(100), 1, 3, 3, True)),      # swap16 with an odd bpp
    ("unfilter", (bytes(100), bytearray(100), 1, 0, 1, False)),     # stride 0
    ("unfilter", (bytes(100), bytearray(100), -1, 4, 1, False)),    # negative height
    ("unfilter", (bytes(100), bytearray(100), 1, 9, 9, False)),     # bpp 9
    ("unfilter", (bytes(100), bytearray(100), 1, 4, 0, False)),     # bpp 0
    ("unfilter", (bytes(100), bytearray(100), 2 ** 62, 2 ** 62, 1, False)),  # overflowing product
    ("unfilter", (memoryview(buf)[:40], memoryview(buf)[8:48], 4, 8, 1, False)),  # partial overlap
    ("drop_bytes", (bytearray(10), 3, 4, 3)),                         # buffer too small
    ("drop_bytes", (bytearray(10), -1, 4, 3)),
    ("drop_bytes", (bytearray(10), 1, 4, 5)),                         # keep > bpp
    ("drop_bytes", (bytearray(10), 1, 0, 0)),
]
for name, call in bad_calls:
    try:
        getattr(_png, name)(*call)
        failures.append(f"{name}{tuple(type(a).__name__ if not isinstance(a, int) else a for a in call)} "
                        f"was not refused")
    except ValueError:
        pass
print(f"== bad geometries: {len(bad_calls)} calls, each refused with ValueError: "
      f"{'yes' if not any('not refused' in f for f in failures) else 'NO'}")

# -- _count: random cases against a reference, every buffer at a page without access -----------------
import numpy as np  # noqa: E402
import test_png_fast  # noqa: E402 (tests/: the helpers of its section "_count under random inputs")

placing = random.Random(21)


def guarded_array(arr):
    """A writable copy of ``arr`` that ends at a page without access (half the time), starts right
    after one (a quarter) or lies on the malloc heap (ASan's bounds)."""
    how = placing.random()
    if how < 0.25:
        return arr.copy()
    mm_view = guarded_nokeep(np.ascontiguousarray(arr).tobytes(), at_end=how < 0.75)
    return np.frombuffer(mm_view, arr.dtype).reshape(arr.shape)


def guarded_nokeep(data: bytes, at_end: bool) -> memoryview:
    """As guarded(), the mapping freed with the last array on it (thousands of cases)."""
    view = guarded(data, at_end)
    _keep.pop()
    return view


start = time.perf_counter()
c_failures, np_failures, ran = test_png_fast.count_differential(_count, cases, seed=20, big=True,
                                                                place=guarded_array)
print(f"== _count: {', '.join(f'{k} {v}' for k, v in ran.items())} random cases, each raw (C) and through "
      f"counting on the C and the numpy path, {time.perf_counter() - start:.1f} s: {len(c_failures)} C failures, "
      f"{len(np_failures)} numpy-path differences")
failures += [f"_count {f}" for f in c_failures]
failures += [f"counting's numpy path: {f}" for f in np_failures]  # (its bugs of the first run are fixed)
bad = test_png_fast.count_bad_call_failures(_count)
print(f"== _count bad arguments: {len(test_png_fast.count_bad_calls(_count))} calls, "
      f"{len(bad)} not refused with ValueError/TypeError")
failures += [f"_count bad arguments: {f}" for f in bad]

# -- the fuzz corpus --------------------------------------------------------------------------------------
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
import fuzz  # noqa: E402

print(f"== fuzz corpus: benchmarks/fuzz.py --examples {examples} --kinds 'png*'", flush=True)
status = fuzz.main(["--examples", str(examples), "--kinds", "png*", "--seed", "20"])
if status:
    failures.append(f"fuzz.py exit status {status}")
for failure in failures:
    print(f"FAILURE {failure}")
sys.exit(1 if failures else 0)
EOF

echo "== run (ASAN_OPTIONS and UBSAN_OPTIONS below; PYTHONMALLOC=malloc)"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
echo "   ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS"
LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" PYTHONMALLOC=malloc \
    "$PYTHON" "$WORK/driver.py" "$SO" "$COUNT_SO" "$EXAMPLES" "$CASES" 2>&1 | tee "$WORK/run.log"
STATUS=${PIPESTATUS[0]}

REPORTS=$(grep -c -E "ERROR: AddressSanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer" "$WORK/run.log")
echo "== sanitizer reports: $REPORTS; driver exit status: $STATUS"
if [ "$REPORTS" != 0 ] || [ "$STATUS" != 0 ]; then
    echo "sanitize: FAILED"
    exit 1
fi
echo "sanitize: clean"
