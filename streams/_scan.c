/* Compiled byte scans for the ingest hot path (streams/ingest.py). Each function here has a
 * pure-Python twin in streams/scan.py with the same result on any bytes (tests/test_scan.py holds
 * them to it); streams/scan.py picks this module when it was built, the twin otherwise. */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem */
#include <Python.h>
#include <structmember.h>
#include <string.h>

static inline int is_json_whitespace(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next byte at or after `i` that is not JSON whitespace, or -1 at the end. */
static inline int next_significant(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i) {
    while (*i < n && is_json_whitespace(s[*i])) {
        (*i)++;
    }
    return *i < n ? s[*i] : -1;
}

/* `compact.count(b'":') - compact.count(b'":null')` where `compact` is `raw` without JSON
 * whitespace: the raw side of the duplicate-key proof (see keyed_values in streams/scan.py).
 * Neither pattern overlaps itself, so every occurrence counts. */
static PyObject *keyed_values(PyObject *module, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "keyed_values() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    Py_ssize_t count = 0;
    /* Each colon whose previous byte other than whitespace is a quote; memchr finds the colons. */
    for (const unsigned char *colon = memchr(s, ':', n); colon != NULL;
         colon = memchr(colon + 1, ':', n - (colon + 1 - s))) {
        const unsigned char *before = colon;
        while (before > s && is_json_whitespace(before[-1])) {
            before--;
        }
        if (before == s || before[-1] != '"') {
            continue;
        }
        Py_ssize_t j = colon + 1 - s;
        if (!(next_significant(s, n, &j) == 'n' && (j++, next_significant(s, n, &j) == 'u')
              && (j++, next_significant(s, n, &j) == 'l') && (j++, next_significant(s, n, &j) == 'l'))) {
            count++; /* not `":null`: a value that counts */
        }
    }
    return PyLong_FromSsize_t(count);
}

/* Non-null values under `value`, counted as streams/scan.py `present_keys_py` counts them: each
 * non-None slot of a struct (a msgspec Struct: its slots are the type's own member
 * descriptors) and each non-None value of a dict, then the same inside them (lists are walked,
 * not counted). Recursion is bounded by the interpreter's recursion limit. */
static int count_present(PyObject *value, Py_ssize_t *count) {
    if (PyUnicode_CheckExact(value) || PyLong_CheckExact(value) || PyFloat_CheckExact(value)
        || value == Py_None || PyBool_Check(value)) {
        return 0;
    }
    if (Py_EnterRecursiveCall(" while counting an event's keys")) {
        return -1;
    }
    int failed = 0;
    if (PyDict_CheckExact(value)) {
        Py_ssize_t pos = 0;
        PyObject *key, *child;
        while (!failed && PyDict_Next(value, &pos, &key, &child)) {
            if (child != Py_None) {
                (*count)++;
                failed = count_present(child, count);
            }
        }
    } else if (PyList_CheckExact(value)) {
        for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(value); i++) {
            failed = count_present(PyList_GET_ITEM(value, i), count);
        }
    } else if (PyType_HasFeature(Py_TYPE(value), Py_TPFLAGS_HEAPTYPE) && Py_TYPE(value)->tp_members != NULL) {
        for (PyMemberDef *m = Py_TYPE(value)->tp_members; !failed && m->name != NULL; m++) {
            if (m->type != T_OBJECT_EX) {
                continue;
            }
            PyObject *child = *(PyObject **)((char *)value + m->offset);
            if (child != NULL && child != Py_None) {
                (*count)++;
                failed = count_present(child, count);
            }
        }
    }
    Py_LeaveRecursiveCall();
    return failed;
}

static PyObject *present_keys(PyObject *module, PyObject *arg) {
    Py_ssize_t count = 0;
    if (count_present(arg, &count) < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(count);
}

/* `raw` with the string after `key_token` replaced, as streams/scan.py `replace_once_py` says. */
static PyObject *replace_once(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])
        || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "replace_once() takes four bytes");
        return NULL;
    }
    const char *raw = PyBytes_AS_STRING(args[0]), *key = PyBytes_AS_STRING(args[1]);
    const char *value = PyBytes_AS_STRING(args[2]), *replacement = PyBytes_AS_STRING(args[3]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), key_size = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t value_size = PyBytes_GET_SIZE(args[2]), replacement_size = PyBytes_GET_SIZE(args[3]);
    if (memchr(raw, '\\', n) != NULL || key_size == 0 || value_size == 0) {
        Py_RETURN_NONE;
    }
    const char *found = memmem(raw, n, key, key_size);
    if (found == NULL) {
        Py_RETURN_NONE;
    }
    Py_ssize_t at = found - raw + key_size; /* where the value token must start */
    if (n - at < value_size || memcmp(raw + at, value, value_size) != 0
        || memmem(raw + at, n - at, key, key_size) != NULL) {
        Py_RETURN_NONE;
    }
    /* value_token is `:` then the value's string: the replacement goes after the colon */
    Py_ssize_t start = at + 1, end = at + value_size;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n - (end - start) + replacement_size);
    if (out == NULL) {
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    memcpy(dst, raw, start);
    memcpy(dst + start, replacement, replacement_size);
    memcpy(dst + start + replacement_size, raw + end, n - end);
    return out;
}

static PyMethodDef methods[] = {
    {"replace_once", (PyCFunction)(void (*)(void))replace_once, METH_FASTCALL,
     "raw with the value after its only key_token replaced, or None (see streams/scan.py)."},
    {"present_keys", present_keys, METH_O,
     "Keys holding a non-null value in a decoded event (struct slots and dict values, at any depth)."},
    {"keyed_values", keyed_values, METH_O,
     "Occurrences of `\":` not followed by `null` in the bytes without JSON whitespace."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
