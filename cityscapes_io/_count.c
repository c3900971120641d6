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

static inline uint32_t at(const uint8_t *p, Py_ssize_t i, int size)
{
    switch (size) {
    case 1: return p[i];
    case 2: return ((const uint16_t *)p)[i];
    default: return ((const uint32_t *)p)[i];
    }
}

#define COUNT_LOOP(KEY)                                                         \
    for (i = 0; i < n; i++) {                                                   \
        uint64_t key;                                                           \
        uint32_t va = at(a, i, asize);                                          \
        if (va < amin)                                                          \
            continue;                                                           \
        key = (KEY);                                                            \
        if (key == run_key) {                                                   \
            run++;                                                              \
            continue;                                                           \
        }                                                                       \
        if (run) {                                                              \
            if (run_key < nout)                                                 \
                out[run_key] += run;                                            \
            else                                                                \
                missed += run;                                                  \
        }                                                                       \
        run_key = key;                                                          \
        run = 1;                                                                \
    }

/* The loop specialised by item sizes, so that each `at` is a plain load. */
static Py_ssize_t count(const uint8_t *a, int asize, const uint8_t *b, int bsize, Py_ssize_t n, uint64_t nb,
                        uint32_t amin, int64_t *out, uint64_t nout)
{
    Py_ssize_t i, missed = 0, run = 0;
    uint64_t run_key = UINT64_MAX;
    if (b == NULL) {
        COUNT_LOOP((uint64_t)(va - amin))
    } else if (asize == 1 && bsize == 1) {
        COUNT_LOOP((uint64_t)(va - amin) * nb + b[i])
    } else if (asize == 2 && bsize == 1) {
        COUNT_LOOP((uint64_t)(va - amin) * nb + b[i])
    } else {
        COUNT_LOOP((uint64_t)(va - amin) * nb + at(b, i, bsize))
    }
    if (run) {
        if (run_key < nout)
            out[run_key] += run;
        else
            missed += run;
    }
    return missed;
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
    unsigned long long nb;
    unsigned long amin;
    Py_ssize_t n, missed;
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*iOiKkw*:count_pairs", &a, &asize, &bobj, &bsize, &nb, &amin, &out))
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
    if (out.len % 8 || (bobj != Py_None && nb == 0) || nb > UINT32_MAX || amin > UINT32_MAX) {
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

static PyMethodDef methods[] = {
    {"count_pairs", count_pairs, METH_VARARGS, count_pairs_doc},
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
