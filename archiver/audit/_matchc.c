/* archiver.audit._matchc: the bookkeeping of a scanning task
 * (archiver/audit/scanner.py) for the records that need none of its
 * judgement -- three of every four a capture writes -- in one C call per read
 * of a WARC file instead of a Python call per record.
 *
 * settle(found, i, name, index, waiting, pending, located, seen_type) -> j
 *
 *   found: the native scanner's tuples for one read (store/_scanc.c:
 *   offset, length, sha256, data, headers, block_start, block_ok, payload_ok,
 *   payload_sha256). From found[i] on, while a record is plain --
 *     its header read by the scanner (headers a dict), neither digest refused,
 *     a WARC-Record-ID, a WARC-Type other than metadata and warcinfo,
 *     an index row (index[record id]: snapshot, file, offset, sha256) that
 *     puts it exactly here with exactly these bytes,
 *     and no manifest of the task waiting for it (not in `waiting`)
 *   -- it does what scanner._Task._record does for such a record: notes it
 *   as located and sets it aside for a claim (pending[record id] gets a
 *   Seen(name, offset, length, sha256, type, payload sha256 of a response,
 *   WARC-Target-URI)). It stops at the first record that is not plain and
 *   returns its position (len(found) when all were): the Python code
 *   handles that one, problems and all, and calls again after it. So this
 *   function never decides anything the reference would word; a
 *   differential test (tests/test_match_native.py) holds a task to the same
 *   result with it and without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *k_id, *k_type, *k_target, *s_metadata, *s_warcinfo, *s_response, *s_empty;

static int same_str(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b) && PyUnicode_Compare(a, b) == 0);
}

/* 1: handled; 0: not plain (the caller's); -1: an error is set */
static int settle_one(PyObject *t, PyObject *name, PyObject *index, PyObject *waiting, PyObject *pending,
                      PyObject *located, PyObject *seen_type) {
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 9)
        return 0;
    PyObject *headers = PyTuple_GET_ITEM(t, 4);
    if (!PyDict_CheckExact(headers) || PyTuple_GET_ITEM(t, 6) == Py_False || PyTuple_GET_ITEM(t, 7) == Py_False)
        return 0;
    PyObject *rid = PyDict_GetItemWithError(headers, k_id);
    PyObject *rtype = rid ? PyDict_GetItemWithError(headers, k_type) : NULL;
    if (rtype == NULL || !PyUnicode_CheckExact(rid) || !PyUnicode_CheckExact(rtype))
        return PyErr_Occurred() ? -1 : 0;
    if (same_str(rtype, s_metadata) || same_str(rtype, s_warcinfo))
        return 0;
    PyObject *row = PyDict_GetItemWithError(index, rid);
    if (row == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 4 || !same_str(PyTuple_GET_ITEM(row, 1), name) ||
        !same_str(PyTuple_GET_ITEM(row, 3), PyTuple_GET_ITEM(t, 2)))
        return 0;
    int at = PyObject_RichCompareBool(PyTuple_GET_ITEM(row, 2), PyTuple_GET_ITEM(t, 0), Py_EQ);
    if (at <= 0)
        return at;
    int awaited = PyDict_Contains(waiting, rid);
    if (awaited != 0)
        return awaited < 0 ? -1 : 0;
    PyObject *target = PyDict_GetItemWithError(headers, k_target);
    if (target == NULL) {
        if (PyErr_Occurred())
            return -1;
        target = s_empty;
    }
    PyObject *payload = same_str(rtype, s_response) ? PyTuple_GET_ITEM(t, 8) : Py_None;
    if (PySet_Add(located, rid) < 0)
        return -1;
    PyObject *fields = PyTuple_Pack(7, name, PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1), PyTuple_GET_ITEM(t, 2), rtype,
                                    payload, target);
    PyObject *args = fields ? PyTuple_Pack(1, fields) : NULL;
    Py_XDECREF(fields);
    /* tuple.__new__(Seen, fields): the NamedTuple without its Python-level __new__ */
    PyObject *seen = args ? PyTuple_Type.tp_new((PyTypeObject *)seen_type, args, NULL) : NULL;
    Py_XDECREF(args);
    if (seen == NULL)
        return -1;
    PyObject *copies = PyDict_GetItemWithError(pending, rid);
    int rc;
    if (copies != NULL) {
        rc = PyList_Append(copies, seen);
    } else if (PyErr_Occurred()) {
        rc = -1;
    } else {
        PyObject *list = PyList_New(1);
        if (list == NULL) {
            Py_DECREF(seen);
            return -1;
        }
        Py_INCREF(seen);
        PyList_SET_ITEM(list, 0, seen);
        rc = PyDict_SetItem(pending, rid, list);
        Py_DECREF(list);
    }
    Py_DECREF(seen);
    return rc < 0 ? -1 : 1;
}

static PyObject *settle(PyObject *self, PyObject *args) {
    PyObject *found, *name, *index, *waiting, *pending, *located, *seen_type;
    Py_ssize_t i;
    if (!PyArg_ParseTuple(args, "O!nUO!O!O!O!O!", &PyList_Type, &found, &i, &name, &PyDict_Type, &index, &PyDict_Type,
                          &waiting, &PyDict_Type, &pending, &PySet_Type, &located, &PyType_Type, &seen_type))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)seen_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "settle: seen_type must be a tuple type");
        return NULL;
    }
    if (i < 0)
        i = 0;
    for (; i < PyList_GET_SIZE(found); i++) {
        int rc = settle_one(PyList_GET_ITEM(found, i), name, index, waiting, pending, located, seen_type);
        if (rc < 0)
            return NULL;
        if (rc == 0)
            break;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"settle", settle, METH_VARARGS,
     "settle(found, i, name, index, waiting, pending, located, seen_type) -> j: see the module's source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "archiver.audit._matchc",
                                    "verify's bookkeeping of plain records in a scanning task", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__matchc(void) {
    if (!(k_id = PyUnicode_InternFromString("WARC-Record-ID")) || !(k_type = PyUnicode_InternFromString("WARC-Type")) ||
        !(k_target = PyUnicode_InternFromString("WARC-Target-URI")) ||
        !(s_metadata = PyUnicode_InternFromString("metadata")) || !(s_warcinfo = PyUnicode_InternFromString("warcinfo")) ||
        !(s_response = PyUnicode_InternFromString("response")) || !(s_empty = PyUnicode_InternFromString("")))
        return NULL;
    return PyModule_Create(&module);
}
