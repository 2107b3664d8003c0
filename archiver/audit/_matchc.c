/* archiver.audit._matchc: the bookkeeping of a scanning task
 * (archiver/audit/scanner.py) for the records that need none of its
 * judgement -- three of every four a capture writes -- in one C call per read
 * of a WARC file instead of a Python call per record.
 *
 * settle(found, i, name, index, waiting, pending, located, seen_type[, books]) -> j
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
 *
 *   books (optional): (resolved, unplaced, manifests, intents, manifest,
 *   keys, in_window, parsed_record, intent, intent_type[, refers[,
 *   vouched]]) -- vouched: what `manifest` takes as its fourth argument ({key
 *   id: size} of signed checkpoints, each by that key, or None). With it, a
 *   metadata record is taken too where scanner._Task._signed_record would
 *   take it -- neither digest refused, a WARC-Record-ID, an index row (if
 *   any) that puts it exactly here with exactly these bytes, and either
 *     a manifest (Content-Type application/json, an index row, a
 *     WARC-Target-URI) that the native reader (`manifest`, i.e.
 *     _claimsc.manifest, with `keys`) reads, whose signature it accepts and
 *     whose key `in_window(key_id, signed_at)` says was valid then: it is
 *     located, its claims matched with the records set aside as
 *     scanner._Task._match matches them, and (reader's tuple, "file@offset",
 *     record id) appended to `manifests` (scanner._Task.finish reads it);
 *   or an intent (Content-Type `intent_type`): located if it has a row, and
 *     (parsed_record(headers, block), "file@offset", record id,
 *     intent(block)) appended to `intents`.
 *   Anything else -- a manifest the reader does not accept, a signature it
 *   refuses, a key outside its window -- stops it with nothing changed, and
 *   the Python reference reads the record (and words what is wrong).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *k_id, *k_type, *k_target, *k_ctype, *k_refers, *k_pdigest, *s_metadata, *s_warcinfo, *s_response,
    *s_revisit, *s_empty, *s_json;

static int same_str(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b) && PyUnicode_Compare(a, b) == 0);
}

static int hexval(Py_UCS4 c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* store.scan.label_hex of a label in archiver's own form ("sha256:", any
 * case, and 64 hex digits): a new str of the 64 digits in lower case. NULL
 * with no error set: another form, which Python reads (label_hex's other
 * branches). */
static PyObject *sha256_label_hex(PyObject *label) {
    static const char prefix[] = "sha256:";
    if (!PyUnicode_CheckExact(label) || PyUnicode_GET_LENGTH(label) != 71 || PyUnicode_KIND(label) != PyUnicode_1BYTE_KIND)
        return NULL;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(label);
    for (int i = 0; i < 7; i++)
        if ((p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]) != prefix[i])
            return NULL;
    char out[64];
    for (int i = 0; i < 64; i++) {
        int v = hexval(p[7 + i]);
        if (v < 0)
            return NULL;
        out[i] = "0123456789abcdef"[v];
    }
    return PyUnicode_FromStringAndSize(out, 64);
}

/* scanner._Task._revisit for a revisit settle takes: refers[(record id,
 * sha256)] = (WARC-Refers-To, the payload hex its WARC-Payload-Digest states).
 * 1 noted; 0 (nothing done) when either header is missing or the digest is in
 * another form (the reference notes it); -1 error. */
static int note_revisit(PyObject *refers, PyObject *headers, PyObject *rid, PyObject *sha) {
    PyObject *to = PyDict_GetItemWithError(headers, k_refers);
    PyObject *label = to ? PyDict_GetItemWithError(headers, k_pdigest) : NULL;
    if (label == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *stated = sha256_label_hex(label);
    if (stated == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *key = PyTuple_Pack(2, rid, sha), *value = PyTuple_Pack(2, to, stated);
    int rc = key && value ? PyDict_SetItem(refers, key, value) : -1;
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_DECREF(stated);
    return rc < 0 ? -1 : 1;
}

/* 1: handled; 0: not plain (the caller's); -1: an error is set. A revisit is
 * plain only with `refers` (a dict) to note it in. */
static int settle_one(PyObject *t, PyObject *name, PyObject *index, PyObject *waiting, PyObject *pending,
                      PyObject *located, PyObject *seen_type, PyObject *refers) {
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
    if (same_str(rtype, s_revisit)) {
        int noted = refers == NULL ? 0 : note_revisit(refers, headers, rid, PyTuple_GET_ITEM(t, 2));
        if (noted <= 0)
            return noted;
    }
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

typedef struct {
    PyObject *resolved, *unplaced, *manifests, *intents, *manifest, *keys, *in_window, *parsed_record, *intent,
        *intent_type, *refers, *vouched;
} Books;

/* The claims of a manifest the reader returned: a tuple of 5-tuples whose
 * record id and SHA-256 are str. 0: some other shape (nothing is done). */
static int claims_shape(PyObject *claims) {
    if (!PyTuple_CheckExact(claims))
        return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(claims); k++) {
        PyObject *c = PyTuple_GET_ITEM(claims, k);
        if (!PyTuple_CheckExact(c) || PyTuple_GET_SIZE(c) != 5 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(c, 0)) ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(c, 1)))
            return 0;
    }
    return 1;
}

/* t[i] == value for a tuple t of at least `size` items: 1, 0, or -1 with an error (`what` t should be) */
static int item_equals(PyObject *t, Py_ssize_t size, Py_ssize_t i, PyObject *value, const char *what) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < size) {
        PyErr_Format(PyExc_TypeError, "settle: %s", what);
        return -1;
    }
    return PyObject_RichCompareBool(PyTuple_GET_ITEM(t, i), value, Py_EQ);
}

/* scanner._Task._match for a manifest whose signature holds (it vouches):
 * each claim answered by a record set aside, or left waiting. */
static int match_claims(PyObject *claims, PyObject *index, PyObject *waiting, PyObject *pending, Books *b) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(claims); k++) {
        PyObject *c = PyTuple_GET_ITEM(claims, k);
        PyObject *crid = PyTuple_GET_ITEM(c, 0), *sha = PyTuple_GET_ITEM(c, 1);
        PyObject *r = PyDict_GetItemWithError(b->resolved, crid);
        if (r == NULL && PyErr_Occurred())
            return -1;
        if (r != NULL) { /* a record matched once stays matched */
            int same = item_equals(r, 1, 0, sha, "resolved holds (sha256, payload) tuples");
            if (same < 0)
                return -1;
            if (same)
                continue;
        }
        PyObject *copies = PyDict_GetItemWithError(pending, crid);
        if (copies == NULL && PyErr_Occurred())
            return -1;
        Py_ssize_t at = -1;
        if (copies != NULL) {
            if (!PyList_CheckExact(copies)) {
                PyErr_SetString(PyExc_TypeError, "settle: pending holds a list per record id");
                return -1;
            }
            for (Py_ssize_t m = 0; m < PyList_GET_SIZE(copies) && at < 0; m++) {
                int same = item_equals(PyList_GET_ITEM(copies, m), 6, 3, sha, "pending holds Seen tuples");
                if (same < 0)
                    return -1;
                if (same)
                    at = m;
            }
        }
        if (at < 0) { /* waiting.setdefault(crid, []).append(sha) */
            PyObject *list = PyDict_GetItemWithError(waiting, crid);
            if (list == NULL) {
                if (PyErr_Occurred())
                    return -1;
                list = PyList_New(0);
                if (list == NULL || PyDict_SetItem(waiting, crid, list) < 0) {
                    Py_XDECREF(list);
                    return -1;
                }
                Py_DECREF(list);
            }
            if (!PyList_Check(list) || PyList_Append(list, sha) < 0) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "settle: waiting holds a list per record id");
                return -1;
            }
            continue;
        }
        PyObject *match = PyList_GET_ITEM(copies, at);
        Py_INCREF(match);
        PyObject *pair = PyTuple_Pack(2, sha, PyTuple_GET_ITEM(match, 5));
        int rc = pair == NULL || PySequence_DelItem(copies, at) < 0 ? -1 : 0;
        if (rc == 0 && PyList_GET_SIZE(copies) == 0)
            rc = PyDict_DelItem(pending, crid);
        if (rc == 0)
            rc = PyDict_SetItem(b->resolved, crid, pair);
        if (rc == 0) {
            int indexed = PyDict_Contains(index, crid);
            if (indexed < 0) {
                rc = -1;
            } else if (!indexed) {
                PyObject *entry = PyTuple_Pack(2, crid, match);
                rc = entry == NULL || PyList_Append(b->unplaced, entry) < 0 ? -1 : 0;
                Py_XDECREF(entry);
            }
        }
        Py_XDECREF(pair);
        Py_DECREF(match);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* A borrowed header value or NULL (an error set only when the lookup failed) */
static PyObject *header(PyObject *headers, PyObject *key) { return PyDict_GetItemWithError(headers, key); }

/* f"{name}@{offset}", the place a summary names ("file@offset") */
static PyObject *where_of(PyObject *name, PyObject *offset) {
    if (PyLong_CheckExact(offset)) {
        long long v = PyLong_AsLongLong(offset);
        if (v != -1 || !PyErr_Occurred()) {
            char buf[32];
            int n = snprintf(buf, sizeof buf, "@%lld", v);
            PyObject *tail = PyUnicode_FromStringAndSize(buf, n);
            PyObject *out = tail != NULL ? PyUnicode_Concat(name, tail) : NULL;
            Py_XDECREF(tail);
            return out;
        }
        PyErr_Clear(); /* beyond a long long: Python's own formatting */
    }
    return PyUnicode_FromFormat("%U@%S", name, offset);
}

/* scanner._Task._signed_record's taking of a signed metadata record, for the
 * two cases it has (see the top): 1 taken, 0 not (nothing changed), -1 error. */
static int signed_one(PyObject *t, PyObject *name, PyObject *index, PyObject *waiting, PyObject *pending,
                      PyObject *located, Books *b) {
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 9)
        return 0;
    PyObject *headers = PyTuple_GET_ITEM(t, 4), *data = PyTuple_GET_ITEM(t, 3), *offset = PyTuple_GET_ITEM(t, 0);
    if (!PyDict_CheckExact(headers) || !PyBytes_CheckExact(data) || !PyLong_CheckExact(PyTuple_GET_ITEM(t, 5)))
        return 0;
    PyObject *rtype = header(headers, k_type);
    if (rtype == NULL || !same_str(rtype, s_metadata))
        return PyErr_Occurred() ? -1 : 0;
    PyObject *rid = header(headers, k_id);
    if (rid == NULL || !PyUnicode_CheckExact(rid))
        return PyErr_Occurred() ? -1 : 0;
    if (PyTuple_GET_ITEM(t, 6) == Py_False || PyTuple_GET_ITEM(t, 7) == Py_False)
        return 0;
    PyObject *row = PyDict_GetItemWithError(index, rid);
    if (row == NULL && PyErr_Occurred())
        return -1;
    if (row != NULL) {
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 4 || !same_str(PyTuple_GET_ITEM(row, 1), name) ||
            !same_str(PyTuple_GET_ITEM(row, 3), PyTuple_GET_ITEM(t, 2)))
            return 0;
        int at = PyObject_RichCompareBool(PyTuple_GET_ITEM(row, 2), offset, Py_EQ);
        if (at <= 0)
            return at;
    }
    PyObject *kind = header(headers, k_ctype);
    if (kind == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int manifest = same_str(kind, s_json) && row != NULL;
    if (!manifest && !same_str(kind, b->intent_type))
        return 0;
    if (manifest && b->manifest == Py_None)
        return 0;
    PyObject *target = NULL;
    if (manifest) {
        target = header(headers, k_target);
        if (target == NULL || !PyUnicode_CheckExact(target))
            return PyErr_Occurred() ? -1 : 0;
    }
    Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 5)), end = PyBytes_GET_SIZE(data) - 4;
    if (start == -1 && PyErr_Occurred())
        return -1;
    if (start < 0 || start > end)
        return 0; /* (never from the scanner) Python slices it */
    PyObject *block = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + start, end - start);
    if (block == NULL)
        return -1;
    PyObject *found = NULL, *where = NULL, *entry = NULL;
    int rc = -1;
    if (manifest) {
        found = PyObject_CallFunctionObjArgs(b->manifest, block, target, b->keys, b->vouched, NULL);
        if (found == NULL)
            goto out;
        rc = 0;
        if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 13 || PyTuple_GET_ITEM(found, 9) != Py_True ||
            !claims_shape(PyTuple_GET_ITEM(found, 10)))
            goto out; /* not read, or its signature refused: the reference reads it */
        PyObject *ok = PyObject_CallFunctionObjArgs(b->in_window, PyTuple_GET_ITEM(found, 7), PyTuple_GET_ITEM(found, 5), NULL);
        if (ok == NULL) {
            rc = -1;
            goto out;
        }
        int in = PyObject_IsTrue(ok);
        Py_DECREF(ok);
        if (in <= 0) {
            rc = in;
            goto out;
        }
        rc = -1;
        if (!(where = where_of(name, offset)) || PySet_Add(located, rid) < 0 ||
            match_claims(PyTuple_GET_ITEM(found, 10), index, waiting, pending, b) < 0 ||
            !(entry = PyTuple_Pack(3, found, where, rid)) || PyList_Append(b->manifests, entry) < 0)
            goto out;
        rc = 1;
    } else {
        PyObject *rec = NULL, *named = NULL;
        if (row != NULL && PySet_Add(located, rid) < 0)
            goto out;
        if (!(where = where_of(name, offset)) ||
            !(rec = PyObject_CallFunctionObjArgs(b->parsed_record, headers, block, NULL)) ||
            !(named = b->intent == Py_None ? (Py_INCREF(Py_None), Py_None)
                                           : PyObject_CallFunctionObjArgs(b->intent, block, NULL)) ||
            !(entry = PyTuple_Pack(4, rec, where, rid, named)) || PyList_Append(b->intents, entry) < 0) {
            Py_XDECREF(rec);
            Py_XDECREF(named);
            goto out;
        }
        Py_DECREF(rec);
        Py_DECREF(named);
        rc = 1;
    }
out:
    Py_DECREF(block);
    Py_XDECREF(found);
    Py_XDECREF(where);
    Py_XDECREF(entry);
    return rc;
}

static PyObject *settle(PyObject *self, PyObject *args) {
    PyObject *found, *name, *index, *waiting, *pending, *located, *seen_type, *books = NULL;
    Py_ssize_t i;
    Books b;
    b.refers = NULL;
    b.vouched = Py_None;
    if (!PyArg_ParseTuple(args, "O!nUO!O!O!O!O!|O!", &PyList_Type, &found, &i, &name, &PyDict_Type, &index, &PyDict_Type,
                          &waiting, &PyDict_Type, &pending, &PySet_Type, &located, &PyType_Type, &seen_type,
                          &PyTuple_Type, &books))
        return NULL;
    if (books != NULL &&
        !PyArg_ParseTuple(books, "O!O!O!O!OO!OOOU|O!O;settle: books are (resolved, unplaced, manifests, intents, manifest, "
                          "keys, in_window, parsed_record, intent, intent_type[, refers[, vouched]])",
                          &PyDict_Type, &b.resolved, &PyList_Type, &b.unplaced, &PyList_Type, &b.manifests, &PyList_Type,
                          &b.intents, &b.manifest, &PyDict_Type, &b.keys, &b.in_window, &b.parsed_record, &b.intent,
                          &b.intent_type, &PyDict_Type, &b.refers, &b.vouched))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)seen_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "settle: seen_type must be a tuple type");
        return NULL;
    }
    if (i < 0)
        i = 0;
    for (; i < PyList_GET_SIZE(found); i++) {
        PyObject *t = PyList_GET_ITEM(found, i);
        int rc = settle_one(t, name, index, waiting, pending, located, seen_type, books != NULL ? b.refers : NULL);
        if (rc == 0 && books != NULL)
            rc = signed_one(t, name, index, waiting, pending, located, &b);
        if (rc < 0)
            return NULL;
        if (rc == 0)
            break;
    }
    return PyLong_FromSsize_t(i);
}

/* summaries(manifests, i, resolved, rows, payloads, revisits, refers) -> j
 *
 * scanner._Task.finish for the manifests settle took (entries (reader's
 * tuple, "file@offset", record id)) whose every claim a record of the task
 * answered: from manifests[i] on, while an entry is such a one, the scratch
 * row its summary makes (scanner.summary_row) is appended to `rows`, and its
 * matched responses and revisits to `payloads` and `revisits` as
 * scanner._Task._originals appends them. It stops at the first entry of any
 * other kind -- one the Python reference made, a claim unanswered, a
 * response's id holding a tab or a line break (pack_responses writes JSON
 * then), anything not in the shape described -- and returns its position,
 * with nothing appended for it: finish() makes that summary and calls again
 * after it. */
static int append_pair(PyObject *list, PyObject *a, PyObject *b) {
    PyObject *pair = PyTuple_Pack(2, a, b);
    int rc = pair == NULL ? -1 : PyList_Append(list, pair);
    Py_XDECREF(pair);
    return rc;
}

/* 1: done, 0: not this kind (nothing appended), -1: error */
static int summary_one(PyObject *entry, PyObject *resolved, PyObject *rows, PyObject *payloads, PyObject *revisits,
                       PyObject *refers) {
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3)
        return 0;
    PyObject *found = PyTuple_GET_ITEM(entry, 0);
    if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 13 || !PyTuple_CheckExact(PyTuple_GET_ITEM(found, 10)))
        return 0;
    PyObject *claims = PyTuple_GET_ITEM(found, 10);
    Py_ssize_t n = PyTuple_GET_SIZE(claims), text_len = 0, count = 0;
    /* first pass: every claim answered, and the responses' text as pack_responses writes it */
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *c = PyTuple_GET_ITEM(claims, k);
        if (!PyTuple_CheckExact(c) || PyTuple_GET_SIZE(c) < 3 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(c, 0)) ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(c, 2)))
            return 0;
        PyObject *r = PyDict_GetItemWithError(resolved, PyTuple_GET_ITEM(c, 0));
        if (r == NULL)
            return PyErr_Occurred() ? -1 : 0;
        if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 2)
            return 0;
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(r, 0)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(c, 1)) ||
            PyUnicode_Compare(PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(c, 1)) != 0)
            return PyErr_Occurred() ? -1 : 0; /* unanswered: the general way */
        PyObject *kind = PyTuple_GET_ITEM(c, 2);
        if (!same_str(kind, s_response) && !same_str(kind, s_revisit))
            continue;
        PyObject *rid = PyTuple_GET_ITEM(c, 0), *payload = PyTuple_GET_ITEM(r, 1);
        if ((payload != Py_None && (!PyUnicode_CheckExact(payload) || !PyUnicode_IS_ASCII(payload))) ||
            !PyUnicode_IS_ASCII(rid))
            return 0;
        if (memchr(PyUnicode_1BYTE_DATA(rid), '\t', (size_t)PyUnicode_GET_LENGTH(rid)) != NULL ||
            memchr(PyUnicode_1BYTE_DATA(rid), '\n', (size_t)PyUnicode_GET_LENGTH(rid)) != NULL)
            return 0; /* pack_responses writes JSON then: the reference's */
        text_len += 2 + PyUnicode_GET_LENGTH(rid) + (payload == Py_None ? 0 : PyUnicode_GET_LENGTH(payload));
        count++;
    }
    PyObject *sid = PyTuple_GET_ITEM(found, 0), *text = Py_None;
    if (count > 0) { /* "\n{id}\t{payload or ''}" per response, in claim order (all ASCII: checked above) */
        text = PyUnicode_New(text_len, 127);
        if (text == NULL)
            return -1;
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *c = PyTuple_GET_ITEM(claims, k), *kind = PyTuple_GET_ITEM(c, 2), *rid = PyTuple_GET_ITEM(c, 0);
            if (!same_str(kind, s_response) && !same_str(kind, s_revisit))
                continue;
            PyObject *payload = PyTuple_GET_ITEM(PyDict_GetItem(resolved, rid), 1);
            *out++ = '\n';
            memcpy(out, PyUnicode_1BYTE_DATA(rid), (size_t)PyUnicode_GET_LENGTH(rid));
            out += PyUnicode_GET_LENGTH(rid);
            *out++ = '\t';
            if (payload != Py_None) {
                memcpy(out, PyUnicode_1BYTE_DATA(payload), (size_t)PyUnicode_GET_LENGTH(payload));
                out += PyUnicode_GET_LENGTH(payload);
            }
        }
    } else {
        Py_INCREF(text);
    }
    /* the row: summary_row of the summary _signed makes (no verdict, no signature problem) */
    PyObject *row = PyTuple_Pack(18, sid, PyTuple_GET_ITEM(found, 1), PyTuple_GET_ITEM(entry, 1), PyTuple_GET_ITEM(entry, 2),
                                 PyTuple_GET_ITEM(found, 6), PyTuple_GET_ITEM(found, 6), PyTuple_GET_ITEM(found, 8),
                                 PyTuple_GET_ITEM(found, 7), PyTuple_GET_ITEM(found, 2), PyTuple_GET_ITEM(found, 3),
                                 PyTuple_GET_ITEM(found, 4), Py_None, Py_None, Py_None, text, Py_None,
                                 PyTuple_GET_ITEM(found, 11), PyTuple_GET_ITEM(found, 12));
    Py_DECREF(text);
    if (row == NULL || PyList_Append(rows, row) < 0) {
        Py_XDECREF(row);
        return -1;
    }
    Py_DECREF(row);
    /* _originals: a response's payload (a possible original), a revisit's note */
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *c = PyTuple_GET_ITEM(claims, k), *kind = PyTuple_GET_ITEM(c, 2), *rid = PyTuple_GET_ITEM(c, 0);
        if (!same_str(kind, s_response) && !same_str(kind, s_revisit))
            continue;
        PyObject *r = PyDict_GetItem(resolved, rid), *payload = PyTuple_GET_ITEM(r, 1);
        if (payload != Py_None) {
            if (append_pair(payloads, rid, payload) < 0)
                return -1;
            continue;
        }
        PyObject *key = PyTuple_Pack(2, rid, PyTuple_GET_ITEM(r, 0));
        if (key == NULL)
            return -1;
        PyObject *named = PyDict_GetItemWithError(refers, key);
        Py_DECREF(key);
        if (named == NULL && PyErr_Occurred())
            return -1;
        PyObject *to = s_empty, *stated = Py_None;
        if (named != NULL) {
            if (!PyTuple_Check(named) || PyTuple_GET_SIZE(named) != 2) {
                PyErr_SetString(PyExc_TypeError, "summaries: refers holds (refers-to, stated) pairs");
                return -1;
            }
            to = PyTuple_GET_ITEM(named, 0);
            stated = PyTuple_GET_ITEM(named, 1);
        }
        PyObject *note = PyTuple_Pack(4, sid, rid, to, stated);
        int rc = note == NULL ? -1 : PyList_Append(revisits, note);
        Py_XDECREF(note);
        if (rc < 0)
            return -1;
    }
    return 1;
}

static PyObject *summaries(PyObject *self, PyObject *args) {
    PyObject *manifests, *resolved, *rows, *payloads, *revisits, *refers;
    Py_ssize_t i;
    if (!PyArg_ParseTuple(args, "O!nO!O!O!O!O!", &PyList_Type, &manifests, &i, &PyDict_Type, &resolved, &PyList_Type,
                          &rows, &PyList_Type, &payloads, &PyList_Type, &revisits, &PyDict_Type, &refers))
        return NULL;
    if (i < 0)
        i = 0;
    for (; i < PyList_GET_SIZE(manifests); i++) {
        int rc = summary_one(PyList_GET_ITEM(manifests, i), resolved, rows, payloads, revisits, refers);
        if (rc < 0)
            return NULL;
        if (rc == 0)
            break;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"settle", settle, METH_VARARGS,
     "settle(found, i, name, index, waiting, pending, located, seen_type[, books]) -> j: see the module's source."},
    {"summaries", summaries, METH_VARARGS,
     "summaries(manifests, i, resolved, rows, payloads, revisits, refers) -> j: see the module's source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "archiver.audit._matchc",
                                    "verify's bookkeeping of plain records in a scanning task", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__matchc(void) {
    if (!(k_id = PyUnicode_InternFromString("WARC-Record-ID")) || !(k_type = PyUnicode_InternFromString("WARC-Type")) ||
        !(k_target = PyUnicode_InternFromString("WARC-Target-URI")) ||
        !(s_metadata = PyUnicode_InternFromString("metadata")) || !(s_warcinfo = PyUnicode_InternFromString("warcinfo")) ||
        !(s_response = PyUnicode_InternFromString("response")) || !(s_empty = PyUnicode_InternFromString("")) ||
        !(k_ctype = PyUnicode_InternFromString("Content-Type")) || !(s_json = PyUnicode_InternFromString("application/json")) ||
        !(k_refers = PyUnicode_InternFromString("WARC-Refers-To")) ||
        !(k_pdigest = PyUnicode_InternFromString("WARC-Payload-Digest")) ||
        !(s_revisit = PyUnicode_InternFromString("revisit")))
        return NULL;
    return PyModule_Create(&module);
}
