/* store._scanc: verify's native scanner for small WARC records.
 *
 * One call takes a buffer of gzip members (a read of a WARC file) and, for
 * every complete member in it, inflates it (zlib, which checks the gzip CRC
 * and length), takes the record's SHA-256 (OpenSSL) and -- for a record in
 * the plain shape archiver writes -- reads its header and checks its block
 * and payload digests. The pure-Python path in store/checked.py stays the
 * reference: this module accepts only a strict subset of WARC 1.1 headers
 * (printable ASCII, no folds, no field twice, sha256 digest labels in hex,
 * no chunked HTTP body) on which both paths give the same answer, and hands
 * every other record back as bytes for the Python code to judge (the
 * record's verdict, error text included, is then the reference's own). It
 * stops, handing over, at the first member it cannot finish: one cut by the
 * end of the buffer, one that is corrupt, or one larger than `cap` (the
 * streaming path's job). A differential test holds the two paths to the
 * same verdicts on valid, malformed and forged input.
 *
 * scan(buf, pos, base, stop, cap) -> (results, pos, handoff)
 *   results: list of tuples, one per member, in file order:
 *     (offset, length, sha256_hex, data, headers, block_start, block_ok,
 *      payload_ok, payload_sha256_hex)         -- checked here
 *     (offset, length, sha256_hex, data, None, ...)  -- for Python to judge
 *   pos: where the next member starts in buf; handoff: True when the member
 *   there needs the Python path (False: buf is exhausted, or `stop` reached).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <string.h>
#include <zlib.h>

#define MAX_HEADER 65536 /* as store/fields.py: the header's CRLF CRLF lies within this */
#define PEEK 4096        /* first output of a member: a large record is told by its Content-Length here */
#define MAX_FIELDS 64

static EVP_MD *sha256_md = NULL;

/* The field names archiver writes, made once: a record's dict shares them */
static const char *const known_names[] = {
    "WARC-Type", "WARC-Record-ID", "WARC-Date", "WARC-Target-URI", "Content-Type", "Content-Length",
    "WARC-Block-Digest", "WARC-Payload-Digest", "WARC-IP-Address", "WARC-Concurrent-To", "WARC-Refers-To",
    "WARC-Warcinfo-ID", "WARC-Filename", "WARC-Protocol", "WARC-Cipher-Suite", "WARC-Profile",
    "WARC-Refers-To-Target-URI", "WARC-Refers-To-Date", "WARC-Truncated", "WARC-Identified-Payload-Type",
};
#define N_KNOWN (sizeof known_names / sizeof known_names[0])
static PyObject *known[N_KNOWN];

static PyObject *name_object(const char *p, Py_ssize_t n) {
    for (size_t i = 0; i < N_KNOWN; i++)
        if ((size_t)n == strlen(known_names[i]) && memcmp(p, known_names[i], (size_t)n) == 0) {
            Py_INCREF(known[i]);
            return known[i];
        }
    return PyUnicode_DecodeASCII(p, n, NULL);
}

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    const char *value;
    Py_ssize_t value_len;
} Field;

static int sha256(EVP_MD_CTX *ctx, const unsigned char *p, size_t n, unsigned char out[32]) {
    unsigned int len = 0;
    return EVP_DigestInit_ex2(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, p, n) && EVP_DigestFinal_ex(ctx, out, &len) && len == 32;
}

static void to_hex(const unsigned char *d, char out[64]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
}

static Py_ssize_t find_crlfcrlf(const unsigned char *p, Py_ssize_t from, Py_ssize_t to) {
    /* first i in [from, to - 4] with p[i..i+4) == CRLF CRLF, else -1 */
    for (Py_ssize_t i = from; i + 4 <= to; i++) {
        const unsigned char *q = memchr(p + i, '\r', (size_t)(to - 3 - i));
        if (q == NULL)
            return -1;
        i = q - p;
        if (i + 4 <= to && q[1] == '\n' && q[2] == '\r' && q[3] == '\n')
            return i;
    }
    return -1;
}

/* ASCII only, whatever the C locale says of other bytes (Python's bytes.lower() does the same) */
static int ascii_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ascii_caseeq(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int is_token_char(unsigned char c) {
    if (c >= '0' && c <= '9') return 1;
    if (c >= 'a' && c <= 'z') return 1;
    if (c >= 'A' && c <= 'Z') return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "sha256:" (any case) and 64 hex digits -> 1 and the digest; 0: another form (Python reads it) */
static int sha256_label(const Field *f, unsigned char out[32]) {
    if (f->value_len != 71 || !ascii_caseeq(f->value, "sha256:", 7))
        return 0;
    for (int i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)f->value[7 + 2 * i]), lo = hexval((unsigned char)f->value[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

static const Field *field(const Field *fields, int n, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if ((size_t)fields[i].name_len == len && memcmp(fields[i].name, name, len) == 0)
            return &fields[i];
    return NULL;
}

static int value_is(const Field *f, const char *s) {
    size_t len = strlen(s);
    return f != NULL && (size_t)f->value_len == len && memcmp(f->value, s, len) == 0;
}

/* The header of a record in the strict subset: its fields and where it ends
 * (the CRLF CRLF); -1 when it is outside the subset (Python judges it). */
static Py_ssize_t parse_header(const unsigned char *p, Py_ssize_t n, Field *fields, int *count) {
    Py_ssize_t end = find_crlfcrlf(p, 0, n < MAX_HEADER ? n : MAX_HEADER);
    if (end < 10 || (memcmp(p, "WARC/1.1\r\n", 10) != 0 && memcmp(p, "WARC/1.0\r\n", 10) != 0))
        return -1;
    int nf = 0;
    Py_ssize_t i = 10;
    while (i < end) { /* one field line: [i, eol) */
        const unsigned char *cr = memchr(p + i, '\r', (size_t)(end - i));
        Py_ssize_t eol = cr ? cr - p : end;
        if (eol < end && p[eol + 1] != '\n')
            return -1; /* a CR alone */
        if (nf == MAX_FIELDS)
            return -1;
        Py_ssize_t j = i;
        while (j < eol && is_token_char(p[j]))
            j++;
        if (j == i || j == eol || p[j] != ':')
            return -1; /* no name, no colon, or a name that is not a token */
        for (Py_ssize_t k = j + 1; k < eol; k++)
            if (p[k] < 0x20 || p[k] > 0x7e)
                return -1; /* control characters, HT, bytes beyond ASCII: Python's grammar */
        Py_ssize_t vs = j + 1, ve = eol;
        while (vs < ve && p[vs] == ' ')
            vs++;
        while (ve > vs && p[ve - 1] == ' ')
            ve--;
        for (int k = 0; k < nf; k++)
            if (fields[k].name_len == j - i && ascii_caseeq(fields[k].name, (const char *)p + i, (size_t)(j - i)))
                return -1; /* a field twice: Python decides (some may repeat) */
        fields[nf].name = (const char *)p + i;
        fields[nf].name_len = j - i;
        fields[nf].value = (const char *)p + vs;
        fields[nf].value_len = ve - vs;
        nf++;
        if (eol == end)
            break;
        i = eol + 2;
        if (i >= end || p[i] == ' ' || p[i] == '\t')
            return -1; /* an empty line cannot be here; a fold is Python's */
    }
    if (nf == 0)
        return -1;
    *count = nf;
    return end;
}

static int content_length(const Field *f, Py_ssize_t *out) {
    if (f == NULL || f->value_len == 0 || f->value_len > 15)
        return 0;
    Py_ssize_t v = 0;
    for (Py_ssize_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return 0;
        v = v * 10 + (f->value[i] - '0');
    }
    *out = v;
    return 1;
}

static int contains_chunked(const unsigned char *p, Py_ssize_t n) {
    static const char w[] = "chunked";
    for (Py_ssize_t i = 0; i + 7 <= n; i++)
        if (ascii_caseeq((const char *)p + i, w, 7))
            return 1;
    return 0;
}

/* (offset, length, sha256_hex, data, headers, block_start, block_ok, payload_ok,
 * payload_sha256): a new reference to each of head's four is taken, rest's five
 * are stolen (released on failure, as they are when one of them is NULL). */
static PyObject *record_tuple(PyObject *const head[4], PyObject *rest[5]) {
    PyObject *t = NULL;
    int ok = 1;
    for (int i = 0; i < 5; i++)
        ok = ok && rest[i] != NULL;
    if (ok)
        t = PyTuple_New(9);
    if (t == NULL) {
        for (int i = 0; i < 5; i++)
            Py_XDECREF(rest[i]);
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        Py_INCREF(head[i]);
        PyTuple_SET_ITEM(t, i, head[i]);
    }
    for (int i = 0; i < 5; i++)
        PyTuple_SET_ITEM(t, 4 + i, rest[i]);
    return t;
}

static PyObject *hex_str(const char hex[64]) {
    PyObject *s = PyUnicode_New(64, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), hex, 64);
    return s;
}

/* Judge one inflated record in the subset; NULL with no error set: outside it.
 * head: (offset, length, sha256_hex, data) of the record. */
static PyObject *judge(EVP_MD_CTX *ctx, PyObject *data, PyObject *const head[4]) {
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    Field fields[MAX_FIELDS];
    int nf = 0;
    Py_ssize_t end = parse_header(p, n, fields, &nf), clen;
    if (end < 0 || !content_length(field(fields, nf, "Content-Length"), &clen))
        return NULL;
    Py_ssize_t start = end + 4, stop = start + clen;
    if (n != stop + 4 || memcmp(p + stop, "\r\n\r\n", 4) != 0)
        return NULL; /* short, or not ended right: Python words the error */
    const Field *type = field(fields, nf, "WARC-Type");
    const Field *bclaim = field(fields, nf, "WARC-Block-Digest");
    const Field *pclaim = field(fields, nf, "WARC-Payload-Digest");
    int http = value_is(type, "response") || value_is(type, "request");
    int pclaimed = pclaim != NULL && !value_is(type, "revisit");
    unsigned char blabel[32], plabel[32], bdigest[32], pdigest[32];
    if ((bclaim != NULL && !sha256_label(bclaim, blabel)) || (pclaimed && !sha256_label(pclaim, plabel)))
        return NULL;
    int have_block = 0, block_ok = -1, payload_ok = -1;
    if (bclaim != NULL || (pclaimed && !http)) {
        if (!sha256(ctx, p + start, (size_t)clen, bdigest))
            return NULL;
        have_block = 1;
    }
    if (bclaim != NULL)
        block_ok = memcmp(bdigest, blabel, 32) == 0;
    char phex[64];
    if (http) {
        Py_ssize_t http_end = find_crlfcrlf(p, start, stop);
        if (http_end >= 0 && contains_chunked(p + start, http_end - start))
            return NULL; /* chunked, or one that says so somewhere: Python dechunks */
        Py_ssize_t ps = http_end >= 0 ? http_end + 4 : stop;
        if (!sha256(ctx, p + ps, (size_t)(stop - ps), pdigest))
            return NULL;
        to_hex(pdigest, phex);
        if (pclaimed)
            payload_ok = memcmp(pdigest, plabel, 32) == 0;
    } else if (pclaimed) {
        payload_ok = have_block && memcmp(bdigest, plabel, 32) == 0;
    }
    PyObject *headers = PyDict_New();
    if (headers == NULL)
        return NULL;
    for (int i = 0; i < nf; i++) {
        PyObject *k = name_object(fields[i].name, fields[i].name_len);
        PyObject *v = k ? PyUnicode_DecodeASCII(fields[i].value, fields[i].value_len, NULL) : NULL;
        if (v == NULL || PyDict_SetItem(headers, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(headers);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    PyObject *bo = block_ok < 0 ? Py_None : block_ok ? Py_True : Py_False;
    PyObject *po = payload_ok < 0 ? Py_None : payload_ok ? Py_True : Py_False;
    Py_INCREF(bo);
    Py_INCREF(po);
    PyObject *rest[5] = {headers, PyLong_FromSsize_t(start), bo, po, http ? hex_str(phex) : (Py_INCREF(Py_None), Py_None)};
    return record_tuple(head, rest);
}

/* Inflate one member at p[0..n) into a new bytes object; its compressed length
 * in *used. NULL (no error set): incomplete, corrupt or larger than cap. */
static PyObject *inflate_member(z_stream *z, const unsigned char *p, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t *used,
                                unsigned char **scratch, Py_ssize_t *scratch_size) {
    if (inflateReset(z) != Z_OK)
        return NULL;
    z->next_in = (unsigned char *)p;
    z->avail_in = n > (Py_ssize_t)UINT_MAX ? UINT_MAX : (uInt)n;
    Py_ssize_t have = 0;
    int ret = Z_OK;
    while (ret != Z_STREAM_END) {
        if (have == *scratch_size) {
            Py_ssize_t grow = *scratch_size * 2;
            if (grow > cap + 1)
                grow = cap + 1;
            if (grow <= have)
                return NULL; /* larger than cap */
            unsigned char *more = PyMem_Realloc(*scratch, (size_t)grow);
            if (more == NULL)
                return NULL;
            *scratch = more;
            *scratch_size = grow;
        }
        Py_ssize_t room = *scratch_size - have;
        if (have == 0 && room > PEEK)
            room = PEEK;
        z->next_out = *scratch + have;
        z->avail_out = (uInt)room;
        ret = inflate(z, Z_NO_FLUSH);
        have += room - z->avail_out;
        if (ret != Z_OK && ret != Z_STREAM_END)
            return NULL; /* corrupt, or cut off by the end of buf */
        if (have > cap)
            return NULL;
        if (ret == Z_OK && z->avail_in == 0)
            return NULL; /* the member goes on past buf */
        if (ret == Z_OK && have == PEEK && *scratch_size >= PEEK) {
            /* a large record is the streaming path's: tell it by its Content-Length */
            Py_ssize_t hend = find_crlfcrlf(*scratch, 0, have);
            if (hend > 0) {
                Field fs[MAX_FIELDS];
                int nf = 0;
                Py_ssize_t clen;
                if (parse_header(*scratch, have, fs, &nf) > 0 && content_length(field(fs, nf, "Content-Length"), &clen) &&
                    clen > cap - hend)
                    return NULL;
            }
        }
    }
    *used = (Py_ssize_t)(z->next_in - p);
    return PyBytes_FromStringAndSize((const char *)*scratch, have);
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t pos, base, stop, cap;
    if (!PyArg_ParseTuple(args, "y*nnnn", &buf, &pos, &base, &stop, &cap))
        return NULL;
    PyObject *results = PyList_New(0);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    z_stream z;
    memset(&z, 0, sizeof z);
    Py_ssize_t scratch_size = 1 << 16;
    unsigned char *scratch = PyMem_Malloc((size_t)scratch_size);
    int zok = inflateInit2(&z, 31) == Z_OK;
    int handoff = 0;
    if (results == NULL || ctx == NULL || scratch == NULL || !zok || pos < 0 || cap < PEEK) {
        if (zok)
            inflateEnd(&z);
        EVP_MD_CTX_free(ctx);
        PyMem_Free(scratch);
        PyBuffer_Release(&buf);
        Py_XDECREF(results);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "scan: cannot start");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)buf.buf;
    while (pos < buf.len) {
        if (stop >= 0 && base + pos >= stop)
            break;
        Py_ssize_t used = 0;
        PyObject *data = inflate_member(&z, p + pos, buf.len - pos, cap, &used, &scratch, &scratch_size);
        if (data == NULL) {
            if (PyErr_Occurred())
                goto fail;
            handoff = 1;
            break;
        }
        unsigned char digest[32];
        char hex[64];
        if (!sha256(ctx, (const unsigned char *)PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), digest)) {
            Py_DECREF(data);
            PyErr_SetString(PyExc_ValueError, "scan: SHA-256 failed");
            goto fail;
        }
        to_hex(digest, hex);
        PyObject *head[4] = {PyLong_FromSsize_t(base + pos), PyLong_FromSsize_t(used), hex_str(hex), data};
        PyObject *item = NULL;
        if (head[0] != NULL && head[1] != NULL && head[2] != NULL) {
            item = judge(ctx, data, head);
            if (item == NULL && !PyErr_Occurred()) { /* outside the subset: for Python to judge */
                PyObject *rest[5] = {Py_None, Py_None, Py_None, Py_None, Py_None};
                for (int i = 0; i < 5; i++)
                    Py_INCREF(Py_None);
                item = record_tuple(head, rest);
            }
        }
        for (int i = 0; i < 4; i++)
            Py_XDECREF(head[i]);
        if (item == NULL || PyList_Append(results, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
        pos += used;
    }
    inflateEnd(&z);
    EVP_MD_CTX_free(ctx);
    PyMem_Free(scratch);
    PyBuffer_Release(&buf);
    return Py_BuildValue("(NnO)", results, pos, handoff ? Py_True : Py_False);
fail:
    inflateEnd(&z);
    EVP_MD_CTX_free(ctx);
    PyMem_Free(scratch);
    PyBuffer_Release(&buf);
    Py_DECREF(results);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "scan(buf, pos, base, stop, cap) -> (results, pos, handoff): see the module's source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "store._scanc", "verify's native scanner for small WARC records", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scanc(void) {
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (sha256_md == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    for (size_t i = 0; i < N_KNOWN; i++) {
        known[i] = PyUnicode_InternFromString(known_names[i]);
        if (known[i] == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
