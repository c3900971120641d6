/*
 * cityscapes_io._count: counting pairs of label values over the pixels of two images, the hot
 * loop of evaluation (confusion matrices, per-instance histograms).
 *
 * count_pairs(a, a_size, b, b_size, nb, a_min, out) adds 1 to out[(a[i] - a_min) * nb + b[i]]
 * for every pixel i with a[i] >= a_min (b may be None: then the key is a[i] - a_min). a and b are
 * buffers of unsigned integers of 1, 2 or 4 bytes in the host's order; out is a writable buffer
 * of int64 counters. A key past the end of out is not counted: the number of such pixels is
 * returned (0 when every key fits), so the caller can report the values.
 *
 * numpy's bincount converts its input to 64-bit integers first (16 MB for a 2048x1024 frame)
 * and holds the GIL; here the keys are made on the fly, runs of equal keys (label images are
 * flat) are counted in a register and added once, and the GIL is released.
 *
 * Built as an optional extension, like _png: without it, cityscapes_io/counting.py counts with
 * numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t at(const uint8_t *p, Py_ssize_t i, int size)
{
    switch (size) {
    case 1: return p[i];
    case 2: return ((const uint16_t *)p)[i];
    default: return ((const uint32_t *)p)[i];
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static inline
#endif

/* A run of `run` pixels of one key: counted, or, past the end of out, missed. */
ALWAYS_INLINE void add_run(int64_t *out, uint64_t nout, uint64_t key, Py_ssize_t run, Py_ssize_t *missed)
{
    if (run) {
        if (key < nout)
            out[key] += run;
        else
            *missed += run;
    }
}

/* The loop with the item sizes constant (bsize 0: no b). Runs of equal keys are counted in a
 * register and added once; inside a run, 8 more pixels are taken at once when both images
 * repeat their last pixel over the next 8 (a block equal to itself shifted by one item). */
ALWAYS_INLINE Py_ssize_t count_k(const uint8_t *a, const uint8_t *b, Py_ssize_t n, uint64_t nb, uint32_t amin,
                                 int64_t *out, uint64_t nout, const int asize, const int bsize)
{
    Py_ssize_t i, missed = 0, run = 0;
    uint64_t run_key = UINT64_MAX;
    int counted = 0; /* whether the last pixel was counted (a >= amin) */
    for (i = 0; i < n; i++) {
        uint64_t key;
        uint32_t va;
        while (i >= 1 && i + 8 <= n && memcmp(a + i * asize, a + (i - 1) * asize, 8 * asize) == 0 &&
               (!bsize || memcmp(b + i * bsize, b + (i - 1) * bsize, 8 * bsize) == 0)) {
            run += counted ? 8 : 0;
            i += 8;
        }
        if (i >= n)
            break;
        va = at(a, i, asize);
        counted = va >= amin;
        if (!counted)
            continue;
        key = (uint64_t)(va - amin) * nb + (bsize ? at(b, i, bsize) : 0);
        if (key == run_key) {
            run++;
            continue;
        }
        add_run(out, nout, run_key, run, &missed);
        run_key = key;
        run = 1;
    }
    add_run(out, nout, run_key, run, &missed);
    return missed;
}

static Py_ssize_t count(const uint8_t *a, int asize, const uint8_t *b, int bsize, Py_ssize_t n, uint64_t nb,
                        uint32_t amin, int64_t *out, uint64_t nout)
{
#define BSIZES(A)                                                               \
    switch (b ? bsize : 0) {                                                    \
    case 0: return count_k(a, b, n, nb, amin, out, nout, A, 0);                 \
    case 1: return count_k(a, b, n, nb, amin, out, nout, A, 1);                 \
    case 2: return count_k(a, b, n, nb, amin, out, nout, A, 2);                 \
    default: return count_k(a, b, n, nb, amin, out, nout, A, 4);                \
    }
    switch (asize) {
    case 1: BSIZES(1)
    case 2: BSIZES(2)
    default: BSIZES(4)
    }
#undef BSIZES
}

PyDoc_STRVAR(count_pairs_doc,
"count_pairs(a, a_size, b, b_size, nb, a_min, out) -> int\n"
"--\n\n"
"Add 1 to out[(a[i] - a_min) * nb + b[i]] for each i with a[i] >= a_min (b None: the key is\n"
"a[i] - a_min). a, b: buffers of unsigned integers of a_size, b_size bytes (1, 2 or 4), of the\n"
"same length; out: writable int64 buffer. Returns the number of pixels whose key is past the\n"
"end of out (not counted). Releases the GIL.");

static PyObject *count_pairs(PyObject *self, PyObject *args)
{
    Py_buffer a, b = {0}, out;
    PyObject *bobj;
    int asize, bsize;
    Py_ssize_t nb, amin; /* (range-checked below: no silent wrap-around) */
    Py_ssize_t n, missed;
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*iOinnw*:count_pairs", &a, &asize, &bobj, &bsize, &nb, &amin, &out))
        return NULL;
    if (bobj != Py_None && PyObject_GetBuffer(bobj, &b, PyBUF_SIMPLE) < 0)
        goto done_ab;
    if ((asize != 1 && asize != 2 && asize != 4) || (bobj != Py_None && bsize != 1 && bsize != 2 && bsize != 4)) {
        PyErr_Format(PyExc_ValueError, "item sizes must be 1, 2 or 4 bytes (got %d and %d)", asize, bsize);
        goto done;
    }
    if (a.len % asize || (bobj != Py_None && (b.len % bsize || b.len / bsize != a.len / asize))) {
        PyErr_SetString(PyExc_ValueError, "a and b must hold the same number of whole items");
        goto done;
    }
    if (out.len % 8 || nb < 0 || (bobj != Py_None && nb == 0) || nb > (Py_ssize_t)UINT32_MAX || amin < 0
        || amin > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "bad output buffer or nb");
        goto done;
    }
    if (((uintptr_t)a.buf % asize) || (bobj != Py_None && (uintptr_t)b.buf % bsize) || ((uintptr_t)out.buf % 8)) {
        PyErr_SetString(PyExc_ValueError, "buffers must be aligned to their item size");
        goto done;
    }
    n = a.len / asize;
    Py_BEGIN_ALLOW_THREADS
    missed = count((const uint8_t *)a.buf, asize, bobj != Py_None ? (const uint8_t *)b.buf : NULL, bsize, n,
                   bobj != Py_None ? (uint64_t)nb : 1, (uint32_t)amin, (int64_t *)out.buf,
                   (uint64_t)(out.len / 8));
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(missed);
done:
    if (bobj != Py_None)
        PyBuffer_Release(&b);
done_ab:
    PyBuffer_Release(&a);
    PyBuffer_Release(&out);
    return result;
}

/* -- panoptic segments ------------------------------------------------------------------------ */

/* The id of pixel i of an image of `size` bytes a pixel: 2 (uint16), 3 (RGB: R + 256 G + 65536 B,
 * the COCO panoptic encoding) or 4 (uint32). */
static inline uint32_t pixel_id(const uint8_t *p, Py_ssize_t i, int size)
{
    switch (size) {
    case 2: return ((const uint16_t *)p)[i];
    case 3: return (uint32_t)p[3 * i] | ((uint32_t)p[3 * i + 1] << 8) | ((uint32_t)p[3 * i + 2] << 16);
    default: return ((const uint32_t *)p)[i];
    }
}

/* The value of `id` in a table of sorted keys (0 when it is not listed). */
static inline uint32_t lookup(uint32_t id, const uint32_t *keys, const uint32_t *vals, Py_ssize_t n)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < n && keys[lo] == id) ? vals[lo] : 0;
}

typedef struct {
    const uint8_t *pix;
    int size;
    const uint32_t *keys, *vals;
    Py_ssize_t n;
    uint32_t last_id, last_val;
    Py_ssize_t missing, zero;
} side;

/* The loop with the pixel sizes constant (one specialisation per pair) and all state in
 * locals: the counters written through `out` could alias a struct's fields, which would keep
 * them in memory. Runs of equal (ground truth, prediction) ids are counted in a register; an
 * id is looked up only where it changes. */
ALWAYS_INLINE Py_ssize_t count_segs_k(side *g, side *p, Py_ssize_t npix, uint64_t nb, int64_t *out, uint64_t nout,
                                      const int gsize, const int psize)
{
    Py_ssize_t i, missed = 0, run = 0, gmiss = 0, gzero = 0, pmiss = 0, pzero = 0;
    uint64_t run_key = UINT64_MAX;
    const uint8_t *gp = g ? g->pix : NULL, *pp = p->pix;
    uint32_t gid = g ? g->last_id : 0, gval = g ? g->last_val : 0, pid = p->last_id, pval = p->last_val;
    for (i = 0; i < npix; i++) {
        uint64_t key;
        uint32_t id;
        /* Inside a run: 8 more pixels of it at once when both images repeat their last pixel
         * over the next 8 (a block equal to itself shifted by one pixel). */
        while (run && i + 8 <= npix && memcmp(pp + i * psize, pp + (i - 1) * psize, 8 * psize) == 0 &&
               (!gsize || memcmp(gp + i * gsize, gp + (i - 1) * gsize, 8 * gsize) == 0)) {
            run += 8;
            pzero += 8 * (pid == 0);
            pmiss += 8 * (pval == 0);
            if (gsize) {
                gzero += 8 * (gid == 0);
                gmiss += 8 * (gval == 0);
            }
            i += 8;
        }
        if (i >= npix)
            break;
        id = pixel_id(pp, i, psize);
        if (id != pid) {
            pid = id;
            pval = lookup(id, p->keys, p->vals, p->n);
        }
        pzero += id == 0;
        pmiss += pval == 0;
        key = pval;
        if (gsize) {
            id = pixel_id(gp, i, gsize);
            if (id != gid) {
                gid = id;
                gval = lookup(id, g->keys, g->vals, g->n);
            }
            gzero += id == 0;
            gmiss += gval == 0;
            key += (uint64_t)gval * nb;
        }
        if (key == run_key) {
            run++;
            continue;
        }
        add_run(out, nout, run_key, run, &missed);
        run_key = key;
        run = 1;
    }
    add_run(out, nout, run_key, run, &missed);
    if (g) {
        g->missing = gmiss;
        g->zero = gzero;
    }
    p->missing = pmiss;
    p->zero = pzero;
    return missed;
}

static Py_ssize_t count_segs(side *g, side *p, Py_ssize_t npix, uint64_t nb, int64_t *out, uint64_t nout)
{
#define PSIZES(G)                                                                  \
    switch (p->size) {                                                             \
    case 2: return count_segs_k(g, p, npix, nb, out, nout, G, 2);                  \
    case 3: return count_segs_k(g, p, npix, nb, out, nout, G, 3);                  \
    default: return count_segs_k(g, p, npix, nb, out, nout, G, 4);                 \
    }
    switch (g ? g->size : 0) {
    case 0: PSIZES(0)
    case 2: PSIZES(2)
    case 3: PSIZES(3)
    default: PSIZES(4)
    }
#undef PSIZES
}

static int side_init(side *s, Py_buffer *pix, int size, Py_buffer *keys, Py_buffer *vals, const char *name)
{
    if (size != 2 && size != 3 && size != 4) {
        PyErr_Format(PyExc_ValueError, "%s: pixels of 2, 3 or 4 bytes (got %d)", name, size);
        return -1;
    }
    if (pix->len % size || keys->len % 4 || keys->len != vals->len || (uintptr_t)keys->buf % 4 ||
        (uintptr_t)vals->buf % 4 || (size != 3 && (uintptr_t)pix->buf % size)) {
        PyErr_Format(PyExc_ValueError, "%s: buffers of whole, aligned items, as many keys as values", name);
        return -1;
    }
    {
        const uint32_t *k = (const uint32_t *)keys->buf;
        Py_ssize_t j, n = keys->len / 4;
        for (j = 1; j < n; j++)
            if (k[j - 1] >= k[j]) {
                PyErr_Format(PyExc_ValueError, "%s: keys not sorted and unique", name);
                return -1;
            }
        s->pix = (const uint8_t *)pix->buf;
        s->size = size;
        s->keys = k;
        s->vals = (const uint32_t *)vals->buf;
        s->n = n;
        s->last_id = n ? ~k[0] : 1; /* an id that is not the first pixel's cached value */
        s->last_val = n ? lookup(s->last_id, s->keys, s->vals, n) : 0;
        s->missing = s->zero = 0;
    }
    return 0;
}

PyDoc_STRVAR(count_segments_doc,
"count_segments(g, g_size, g_keys, g_vals, p, p_size, p_keys, p_vals, nb, out)\n"
"    -> (missed, g_missing, g_zero, p_missing, p_zero)\n"
"--\n\n"
"For each pixel, its ground-truth and predicted segment ids (g, p: pixels of 2, 3 (RGB) or 4\n"
"bytes) are looked up in sorted uint32 keys to their values (0 when not listed), and\n"
"out[g_value * nb + p_value] (int64) is incremented. g may be None (the key is p_value). Returns\n"
"the pixels whose key is past out, and per side the pixels whose id is not listed and those\n"
"whose id is 0. Releases the GIL.");

static PyObject *count_segments(PyObject *self, PyObject *args)
{
    PyObject *gobj, *gkobj, *gvobj, *result = NULL;
    Py_buffer gb = {0}, gk = {0}, gv = {0}, pb, pk, pv, out;
    int gsize, psize, have_g;
    Py_ssize_t nb;
    side g, p;
    Py_ssize_t npix, missed;
    (void)self;

    if (!PyArg_ParseTuple(args, "OiOOy*iy*y*nw*:count_segments", &gobj, &gsize, &gkobj, &gvobj, &pb, &psize, &pk,
                          &pv, &nb, &out))
        return NULL;
    have_g = gobj != Py_None;
    if (have_g) {
        if (PyObject_GetBuffer(gobj, &gb, PyBUF_SIMPLE) < 0)
            goto release_p;
        if (PyObject_GetBuffer(gkobj, &gk, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&gb);
            goto release_p;
        }
        if (PyObject_GetBuffer(gvobj, &gv, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&gb);
            PyBuffer_Release(&gk);
            goto release_p;
        }
    }
    if (side_init(&p, &pb, psize, &pk, &pv, "prediction") < 0 ||
        (have_g && side_init(&g, &gb, gsize, &gk, &gv, "ground truth") < 0))
        goto done;
    npix = pb.len / psize;
    if ((have_g && gb.len / gsize != npix) || out.len % 8 || (uintptr_t)out.buf % 8 || nb <= 0 || nb > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "images of different sizes, or a bad output buffer or nb");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    missed = count_segs(have_g ? &g : NULL, &p, npix, have_g ? (uint64_t)nb : 0, (int64_t *)out.buf, (uint64_t)(out.len / 8));
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nnnnn", missed, have_g ? g.missing : 0, have_g ? g.zero : 0, p.missing, p.zero);
done:
    if (have_g) {
        PyBuffer_Release(&gb);
        PyBuffer_Release(&gk);
        PyBuffer_Release(&gv);
    }
release_p:
    PyBuffer_Release(&pb);
    PyBuffer_Release(&pk);
    PyBuffer_Release(&pv);
    PyBuffer_Release(&out);
    return result;
}

/* -- lookup tables ---------------------------------------------------------------------------- */

ALWAYS_INLINE Py_ssize_t lut_k(const uint8_t *src, const uint8_t *table, Py_ssize_t ntable, uint8_t *dst,
                               Py_ssize_t n, const int ssize, const int tsize)
{
    Py_ssize_t i, bad = 0;
    uint32_t last = UINT32_MAX;
    uint32_t value = 0;
    for (i = 0; i < n; i++) {
        uint32_t v;
        /* Inside a run of a valid index: 8 more entries at once where the source repeats its
         * last value over the next 8 (a block equal to itself shifted by one item). */
        if (i >= 1 && last < (uint64_t)ntable) {
            while (i + 8 <= n && memcmp(src + i * ssize, src + (i - 1) * ssize, 8 * ssize) == 0) {
                int j;
                for (j = 0; j < 8; j++) {
                    if (tsize == 1)
                        dst[i + j] = (uint8_t)value;
                    else if (tsize == 2)
                        ((uint16_t *)dst)[i + j] = (uint16_t)value;
                    else
                        ((uint32_t *)dst)[i + j] = value;
                }
                i += 8;
            }
            if (i >= n)
                break;
        }
        v = at(src, i, ssize);
        if (v != last) { /* label images are runs: one look-up per run */
            last = v;
            if (v < (uint64_t)ntable)
                value = tsize == 1 ? table[v] : tsize == 2 ? ((const uint16_t *)table)[v] : ((const uint32_t *)table)[v];
            else {
                value = 0;
                bad++;
            }
        } else if (v >= (uint64_t)ntable) {
            bad++;
        }
        if (tsize == 1)
            dst[i] = (uint8_t)value;
        else if (tsize == 2)
            ((uint16_t *)dst)[i] = (uint16_t)value;
        else
            ((uint32_t *)dst)[i] = value;
    }
    return bad;
}

PyDoc_STRVAR(apply_lut_doc,
"apply_lut(src, src_size, table, table_size, dst) -> int\n"
"--\n\n"
"dst[i] = table[src[i]] for unsigned integers of src_size bytes (1, 2 or 4) and table entries\n"
"of table_size bytes (1, 2 or 4); dst holds as many entries as src. An index past the table\n"
"gives 0 and is counted: the count is returned. Releases the GIL.");

static PyObject *apply_lut(PyObject *self, PyObject *args)
{
    Py_buffer src, table, dst;
    int ssize, tsize;
    Py_ssize_t n, bad = 0;
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*iy*iw*:apply_lut", &src, &ssize, &table, &tsize, &dst))
        return NULL;
    if ((ssize != 1 && ssize != 2 && ssize != 4) || (tsize != 1 && tsize != 2 && tsize != 4) || src.len % ssize ||
        table.len % tsize || (uintptr_t)src.buf % ssize || (uintptr_t)table.buf % tsize ||
        (uintptr_t)dst.buf % tsize || dst.len != src.len / ssize * tsize) {
        PyErr_SetString(PyExc_ValueError, "apply_lut: item sizes 1, 2 or 4, aligned buffers, dst as long as src");
        goto done;
    }
    n = src.len / ssize;
    Py_BEGIN_ALLOW_THREADS
#define TSIZES(S)                                                                                        \
    switch (tsize) {                                                                                     \
    case 1: bad = lut_k(src.buf, table.buf, table.len, dst.buf, n, S, 1); break;                         \
    case 2: bad = lut_k(src.buf, table.buf, table.len / 2, dst.buf, n, S, 2); break;                     \
    default: bad = lut_k(src.buf, table.buf, table.len / 4, dst.buf, n, S, 4); break;                    \
    }
    switch (ssize) {
    case 1: TSIZES(1) break;
    case 2: TSIZES(2) break;
    default: TSIZES(4) break;
    }
#undef TSIZES
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(bad);
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&table);
    PyBuffer_Release(&dst);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_lut", apply_lut, METH_VARARGS, apply_lut_doc},
    {"count_pairs", count_pairs, METH_VARARGS, count_pairs_doc},
    {"count_segments", count_segments, METH_VARARGS, count_segments_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_count", "Counting label pairs over pixels (the C part of cityscapes_io's evaluation).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__count(void)
{
    return PyModule_Create(&module);
}
