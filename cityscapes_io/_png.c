/*
 * cityscapes_io._png: PNG row unfiltering in C, the hot loop of decoding a PNG.
 *
 * Everything else about a PNG stays in Python (cityscapes_io/png.py): chunk parsing, CRC and
 * header checks, the pixel-count limit, and inflating the image data (libdeflate through the
 * `deflate` package, or zlib). This module gets the inflated bytes, the geometry and nothing
 * else, checks every length against that geometry before touching memory, and releases the
 * GIL while it works.
 *
 * Inflated PNG data is `height` rows of (1 filter byte + `stride` bytes). unfilter() writes the
 * `height * stride` pixel bytes to `dst`, which may be the very buffer of `src` (in place: each
 * row is moved down over the filter bytes of the rows before it, then unfiltered where it
 * lands; a row never overwrites bytes not yet read). All five filter types of the PNG
 * specification are supported. 16-bit samples (big-endian in PNG) are byte-swapped to the
 * host's order when `swap16` is true, one row behind the unfiltering (the filters of a row
 * read the row above in PNG order).
 *
 * Built by setuptools as an optional extension: without it the library decodes with Pillow.
 * It uses the buffer protocol only (no numpy headers).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define INLINE static inline __attribute__((always_inline))
#define RESTRICT __restrict__
#elif defined(_MSC_VER)
#define INLINE static __forceinline
#define RESTRICT __restrict
#else
#define INLINE static inline
#define RESTRICT
#endif

enum { F_NONE = 0, F_SUB = 1, F_UP = 2, F_AVG = 3, F_PAETH = 4 };

/* The Paeth predictor as the PNG specification defines it: of a (left), b (above) and c (above
 * left), the one closest to a + b - c, preferring a, then b, on ties. */
INLINE int paeth_reference(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc)
        return a;
    return pb <= pc ? b : c;
}

/* The same predictor split into what depends on the row above only (b and c, known ahead)
 * and the short part that depends on a, the byte just decoded: the chain from one byte to the
 * next is a few comparisons and a selection instead of three absolute values. With
 * e = b - c and d = a - c, the rule "a unless |e| > |d| or |e| > |d + e|" becomes "a when
 * d <= min(e, -2e) or d >= max(e, -2e)"; otherwise b or c by the sign of 2d + e, on the side
 * given by the sign of e (ties to b). The test suite checks it against paeth_reference for all
 * 2^24 inputs (tests/test_png_fast.py). */
typedef struct {
    int lo, hi, t, when_ge, when_lt;
} paeth_plan;

INLINE paeth_plan paeth_prepare(int b, int c)
{
    paeth_plan q;
    int e = b - c;
    q.lo = c + (e > 0 ? -2 * e : e);
    q.hi = c + (e > 0 ? e : -2 * e);
    q.t = 3 * c - b + (e > 0 ? 0 : 1);
    q.when_ge = e > 0 ? b : c;
    q.when_lt = e > 0 ? c : b;
    return q;
}

INLINE int paeth_finish(int a, paeth_plan q)
{
    /* (masks, not branches: on photos the choices are unpredictable) */
    int ge = -(2 * a >= q.t), keep = -((a <= q.lo) | (a >= q.hi));
    int other = q.when_lt ^ ((q.when_lt ^ q.when_ge) & ge);
    return other ^ ((other ^ a) & keep);
}

INLINE int paeth(int a, int b, int c)
{
    return paeth_finish(a, paeth_prepare(b, c));
}

/* The 8 bytes that continue a run repeating the `k` bytes before `p` (k divides 8), so that
 * one 8-byte store writes the next 8 bytes of a flat region and the phase is kept. */
INLINE void repeat8(uint8_t *out, const uint8_t *p, int k)
{
    int i;
    for (i = 0; i < 8; i++)
        out[i] = p[i % k - k];
}

INLINE uint64_t load8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The loops below keep the pixel to the left (a) and the one above it (c) in registers, one
 * variable per channel (k is a constant in each specialisation): reading them back from the
 * row just written would put a store-to-load round trip into every byte's dependency chain. */

/* Sub: x += a. In a run of zero filtered bytes the row repeats its last pixel. */
INLINE void unsub(uint8_t *RESTRICT cur, Py_ssize_t n, const int k)
{
    Py_ssize_t j = k;
    uint8_t pat[8];
    int ch, a[8];
    for (ch = 0; ch < k; ch++)
        a[ch] = cur[ch];
    while (j < n) {
        if ((8 % k) == 0 && j + 8 <= n && load8(cur + j) == 0) {
            repeat8(pat, cur + j, k);
            do {
                memcpy(cur + j, pat, 8);
                j += 8;
            } while (j + 8 <= n && load8(cur + j) == 0);
            continue;
        }
        {
            Py_ssize_t end = j + 8 < n ? j + 8 : n;
            for (; j < end; j += k)
                for (ch = 0; ch < k; ch++)
                    cur[j + ch] = (uint8_t)(a[ch] = (cur[j + ch] + a[ch]) & 0xff);
        }
    }
}

/* Up: x += b, a plain vectorisable add (the rows never overlap). */
INLINE void unup(uint8_t *RESTRICT cur, const uint8_t *RESTRICT prev, Py_ssize_t n)
{
    Py_ssize_t j;
    for (j = 0; j < n; j++)
        cur[j] = (uint8_t)(cur[j] + prev[j]);
}

/* Average: x += (a + b) / 2; the first row has b = 0. */
INLINE void unavg(uint8_t *RESTRICT cur, const uint8_t *RESTRICT prev, Py_ssize_t n, const int k)
{
    Py_ssize_t j;
    int ch, a[8];
    for (ch = 0; ch < k; ch++)
        a[ch] = cur[ch] = (uint8_t)(cur[ch] + (prev ? prev[ch] >> 1 : 0));
    if (prev == NULL) {
        for (j = k; j < n; j += k)
            for (ch = 0; ch < k; ch++)
                cur[j + ch] = (uint8_t)(a[ch] = (cur[j + ch] + (a[ch] >> 1)) & 0xff);
        return;
    }
    for (j = k; j < n; j += k)
        for (ch = 0; ch < k; ch++)
            cur[j + ch] = (uint8_t)(a[ch] = (cur[j + ch] + ((a[ch] + prev[j + ch]) >> 1)) & 0xff);
}

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define HAVE_SSE2 1

/* Paeth for 3 or 4 bytes per pixel with SSE2: the channels of a pixel side by side in 16-bit
 * lanes, the same split as paeth_prepare/paeth_finish (the plan from the row above, then a
 * short chain from the pixel to the left). The last pixel of a 3-byte row is left to the
 * scalar loop (a 4-byte load there would read past the row). */
INLINE __m128i load_px(const uint8_t *p, const int k)
{
    int32_t v = 0;
    memcpy(&v, p, (size_t)(k == 4 ? 4 : 4));
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128(v), _mm_setzero_si128());
}

/* Decodes the pixels from byte j to byte `end` (both multiples of k, j >= k; for k = 3,
 * `end` stops before the row's last pixel) and returns `end`. */
INLINE Py_ssize_t unpaeth_sse2(uint8_t *RESTRICT cur, const uint8_t *RESTRICT prev, Py_ssize_t j, Py_ssize_t end,
                               const int k)
{
    const __m128i zero = _mm_setzero_si128(), one = _mm_set1_epi16(1), low = _mm_set1_epi16(0xff);
    __m128i a = load_px(cur + j - k, k), c = load_px(prev + j - k, k);
    for (; j < end; j += k) {
        __m128i b = load_px(prev + j, k), x = load_px(cur + j, k);
        __m128i e = _mm_sub_epi16(b, c), e2 = _mm_add_epi16(e, e), pos = _mm_cmpgt_epi16(e, zero);
        __m128i neg2e = _mm_sub_epi16(zero, e2);
        __m128i lo = _mm_add_epi16(c, _mm_or_si128(_mm_and_si128(pos, neg2e), _mm_andnot_si128(pos, e)));
        __m128i hi = _mm_add_epi16(c, _mm_or_si128(_mm_and_si128(pos, e), _mm_andnot_si128(pos, neg2e)));
        __m128i t = _mm_add_epi16(_mm_sub_epi16(_mm_add_epi16(_mm_add_epi16(c, c), c), b), _mm_andnot_si128(pos, one));
        __m128i wge = _mm_or_si128(_mm_and_si128(pos, b), _mm_andnot_si128(pos, c));
        __m128i wlt = _mm_or_si128(_mm_and_si128(pos, c), _mm_andnot_si128(pos, b));
        __m128i lt = _mm_cmpgt_epi16(t, _mm_add_epi16(a, a));
        __m128i other = _mm_or_si128(_mm_and_si128(lt, wlt), _mm_andnot_si128(lt, wge));
        __m128i inside = _mm_and_si128(_mm_cmpgt_epi16(a, lo), _mm_cmpgt_epi16(hi, a));
        __m128i pred = _mm_or_si128(_mm_and_si128(inside, other), _mm_andnot_si128(inside, a));
        int32_t out;
        a = _mm_and_si128(_mm_add_epi16(x, pred), low);
        out = _mm_cvtsi128_si32(_mm_packus_epi16(a, a));
        memcpy(cur + j, &out, (size_t)k);
        c = b;
    }
    return j;
}
#endif

/* Paeth. Where the row above is flat (b == c for every byte of a block) the predictor is a,
 * so a block of zero filtered bytes over a flat row above repeats the last pixel: label
 * images are mostly such blocks, written 8 bytes at a time. */
INLINE void unpaeth(uint8_t *RESTRICT cur, const uint8_t *RESTRICT prev, Py_ssize_t n, const int k)
{
    Py_ssize_t j;
    uint8_t pat[8];
    int ch, a[8], c[8];
    for (ch = 0; ch < k; ch++) {
        a[ch] = cur[ch] = (uint8_t)(cur[ch] + prev[ch]);
        c[ch] = prev[ch];
    }
    j = k;
#ifdef HAVE_SSE2
    if (k == 3 && n > k) {  /* (photos: no flat runs to look for) */
        j = unpaeth_sse2(cur, prev, j, n - k, k);
        for (ch = 0; ch < k; ch++) {
            a[ch] = cur[j - k + ch];
            c[ch] = prev[j - k + ch];
        }
    }
#endif
    while (j < n) {
        if ((8 % k) == 0 && j + 8 <= n && load8(cur + j) == 0 && load8(prev + j) == load8(prev + j - k)) {
            repeat8(pat, cur + j, k);
            do {
                memcpy(cur + j, pat, 8);
                j += 8;
            } while (j + 8 <= n && load8(cur + j) == 0 && load8(prev + j) == load8(prev + j - k));
            for (ch = 0; ch < k; ch++) {
                a[ch] = cur[j - k + ch];
                c[ch] = prev[j - k + ch];
            }
            continue;
        }
#ifdef HAVE_SSE2
        if (k == 4 && j + 32 <= n) {  /* 8 pixels, then look for a flat run again */
            j = unpaeth_sse2(cur, prev, j, j + 32, k);
            for (ch = 0; ch < k; ch++) {
                a[ch] = cur[j - k + ch];
                c[ch] = prev[j - k + ch];
            }
            continue;
        }
#endif
        {
            Py_ssize_t end = j + 8 < n ? j + 8 : n;
            for (; j < end; j += k)
                for (ch = 0; ch < k; ch++) {
                    int b = prev[j + ch];
                    cur[j + ch] = (uint8_t)(a[ch] = (cur[j + ch] + paeth(a[ch], b, c[ch])) & 0xff);
                    c[ch] = b;
                }
        }
    }
}

/* One row, with the bytes per pixel `k` a constant in each specialisation. `prev` is NULL for
 * the first row (the row above is taken as zeros: Up adds nothing, Paeth predicts a). */
INLINE void unfilter_row(uint8_t *cur, const uint8_t *prev, Py_ssize_t n, int filter, const int k)
{
    switch (filter) {
    case F_SUB:
        unsub(cur, n, k);
        break;
    case F_UP:
        if (prev != NULL)
            unup(cur, prev, n);
        break;
    case F_AVG:
        unavg(cur, prev, n, k);
        break;
    case F_PAETH:
        if (prev != NULL)
            unpaeth(cur, prev, n, k);
        else
            unsub(cur, n, k);
        break;
    default:
        break;
    }
}

INLINE void swap_row16(uint8_t *row, Py_ssize_t n)
{
    Py_ssize_t j;
    for (j = 0; j + 1 < n; j += 2) {
        uint8_t t = row[j];
        row[j] = row[j + 1];
        row[j + 1] = t;
    }
}

/* Returns -1 when all rows are done, else the index of the row with a bad filter byte. */
INLINE Py_ssize_t unfilter_all(const uint8_t *src, uint8_t *dst, Py_ssize_t height, Py_ssize_t stride,
                               int swap16, const int k)
{
    Py_ssize_t r;
    for (r = 0; r < height; r++) {
        const uint8_t *in = src + r * (stride + 1);
        uint8_t *cur = dst + r * stride;
        int filter = in[0];
        if (filter > F_PAETH)
            return r;
        /* In place, `in + 1` lies r + 1 bytes after `cur`: memmove. */
        memmove(cur, in + 1, (size_t)stride);
        unfilter_row(cur, r ? cur - stride : NULL, stride, filter, k);
        if (swap16 && r)
            swap_row16(cur - stride, stride);
    }
    if (swap16 && height)
        swap_row16(dst + (height - 1) * stride, stride);
    return -1;
}

static Py_ssize_t dispatch(const uint8_t *src, uint8_t *dst, Py_ssize_t height, Py_ssize_t stride, int swap16,
                           int bpp)
{
    switch (bpp) {
    case 1: return unfilter_all(src, dst, height, stride, swap16, 1);
    case 2: return unfilter_all(src, dst, height, stride, swap16, 2);
    case 3: return unfilter_all(src, dst, height, stride, swap16, 3);
    case 4: return unfilter_all(src, dst, height, stride, swap16, 4);
    case 6: return unfilter_all(src, dst, height, stride, swap16, 6);
    case 8: return unfilter_all(src, dst, height, stride, swap16, 8);
    default: return unfilter_all(src, dst, height, stride, swap16, bpp);
    }
}

PyDoc_STRVAR(unfilter_doc,
"unfilter(src, dst, height, stride, bpp, swap16)\n"
"--\n\n"
"Undo the PNG row filters of `src` (inflated image data: `height` rows of a filter byte and\n"
"`stride` bytes) into `dst` (writable, at least height * stride bytes; it may be `src`\n"
"itself, then the work is done in place). `bpp`: bytes per complete pixel (1 to 8); `swap16`:\n"
"byte-swap 16-bit samples to the host's order. Raises ValueError on a bad filter type or on\n"
"buffers too small for the geometry. Releases the GIL.");

static PyObject *unfilter(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    Py_ssize_t height, stride, bad;
    int bpp, swap16;
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*w*nnip:unfilter", &src, &dst, &height, &stride, &bpp, &swap16))
        return NULL;
    if (height < 0 || stride < 1 || bpp < 1 || bpp > 8 || stride % bpp != 0 || (swap16 && bpp % 2)) {
        PyErr_Format(PyExc_ValueError, "bad geometry: height %zd, stride %zd, %d bytes per pixel%s",
                     height, stride, bpp, swap16 ? ", 16-bit" : "");
        goto done;
    }
    if (height > 0 && (stride >= PY_SSIZE_T_MAX / height - 1 || height * (stride + 1) > src.len)) {
        PyErr_Format(PyExc_ValueError, "image data of %zd bytes is shorter than %zd rows of 1 + %zd bytes",
                     src.len, height, stride);
        goto done;
    }
    if (height * stride > dst.len) {
        PyErr_Format(PyExc_ValueError, "output buffer of %zd bytes is smaller than %zd rows of %zd bytes",
                     dst.len, height, stride);
        goto done;
    }
    {
        const uint8_t *s = (const uint8_t *)src.buf;
        uint8_t *d = (uint8_t *)dst.buf;
        /* In place means the same start; any other overlap would let a row overwrite bytes of
         * src not yet read. */
        if (d != s && d < s + src.len && s < d + dst.len) {
            PyErr_SetString(PyExc_ValueError, "dst overlaps src without being src itself");
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        bad = dispatch(s, d, height, stride, swap16, bpp);
        Py_END_ALLOW_THREADS
        if (bad >= 0) {
            PyErr_Format(PyExc_ValueError, "row %zd has filter type %d (PNG defines 0 to 4)", bad,
                         (int)s[bad * (stride + 1)]);
            goto done;
        }
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

PyDoc_STRVAR(drop_bytes_doc,
"drop_bytes(buf, pixels, bpp, keep)\n"
"--\n\n"
"Keep the first `keep` of every `bpp` bytes of the first `pixels` pixels of `buf`, packed at its\n"
"start, in place (RGBA to RGB: keep 3 of 4). Releases the GIL.");

static PyObject *drop_bytes(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t pixels, i;
    int bpp, keep;
    (void)self;

    if (!PyArg_ParseTuple(args, "w*nii:drop_bytes", &buf, &pixels, &bpp, &keep))
        return NULL;
    if (pixels < 0 || bpp < 1 || bpp > 8 || keep < 1 || keep > bpp || pixels > buf.len / bpp) {
        PyErr_Format(PyExc_ValueError, "bad geometry: %zd pixels of %d bytes (keep %d) in %zd bytes", pixels, bpp,
                     keep, buf.len);
        PyBuffer_Release(&buf);
        return NULL;
    }
    {
        uint8_t *p = (uint8_t *)buf.buf;
        Py_BEGIN_ALLOW_THREADS
        if (bpp == 4 && keep == 3) {
            /* A 4-byte store per pixel: its 4th byte lands where the next pixel goes, never on
             * a byte not yet read (3i + 4 <= 4i + 4), and within the buffer at the end. */
            for (i = 0; i < pixels; i++) {
                uint32_t v;
                memcpy(&v, p + 4 * i, 4);
                memcpy(p + 3 * i, &v, 4);
            }
        } else {
            for (i = 0; i < pixels; i++)
                memmove(p + keep * i, p + bpp * i, (size_t)keep);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(check_paeth_doc,
"check_paeth()\n"
"--\n\n"
"The number of (a, b, c) byte triples for which the decoder's Paeth predictor differs from the\n"
"PNG specification's (0 when it is right; all 2^24 are tried).");

static PyObject *check_paeth(PyObject *self, PyObject *unused)
{
    long wrong = 0;
    int a, b, c;
    (void)self;
    (void)unused;
    for (a = 0; a < 256; a++)
        for (b = 0; b < 256; b++)
            for (c = 0; c < 256; c++)
                wrong += paeth(a, b, c) != paeth_reference(a, b, c);
    return PyLong_FromLong(wrong);
}

static PyMethodDef methods[] = {
    {"check_paeth", check_paeth, METH_NOARGS, check_paeth_doc},
    {"unfilter", unfilter, METH_VARARGS, unfilter_doc},
    {"drop_bytes", drop_bytes, METH_VARARGS, drop_bytes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_png", "PNG row unfiltering (the C part of cityscapes_io's PNG decoder).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__png(void)
{
    return PyModule_Create(&module);
}
