/* archiver.audit._claimsc: verify's native reading of the signed documents
 * archiver writes -- a snapshot's manifest record and a capture intent --
 * in one C call each, the manifest's Ed25519 signature checked in the same
 * call (libsodium's crypto_sign_open, the very function the Python path
 * calls, reached through PyNaCl's own binding: see use_sodium).
 *
 * It is a fast path, never a judge of refusals. It reads only a strict
 * subset of JSON (printable ASCII strings without escapes, integers without
 * fraction or exponent, keys of every object in strictly ascending order --
 * so no key twice --, nesting at most MAX_DEPTH deep) in the exact layout
 * archiver writes, and answers only what the Python reference
 * (capture/records.py signed_manifest, provenance/intent.py parse_intent,
 * audit/judge.py) would answer for the same bytes; for anything else it
 * returns None and the caller reads the record the general way. A signature
 * libsodium does not accept comes back as sig_ok False, and the caller
 * judges it again in Python, which words the refusal. A differential test
 * (tests/test_claims_native.py) holds both paths to the same answers on
 * valid, malformed and forged documents.
 *
 * manifest(block, target_uri, keys[, vouched]) -> None |
 *   (snapshot_id, url, payload_sha256, previous_manifest_sha256, relogged_from,
 *    signing time, manifest_sha256, key_id, signature, sig_ok, claims, diff_sha256,
 *    leaf)
 *   claims: ((record_id, sha256, type, warc_file, offset), ...) as
 *   provenance/manifest.py signed_records lists them; keys: {key_id: raw
 *   32-byte Ed25519 public key}. vouched: None, or {key_id: size} of signed
 *   checkpoints the caller checked, each signed by that key: a manifest by
 *   one of those keys whose log entry says its leaf holds its signature
 *   ("leaf": "manifest+signature") and whose index is below that key's
 *   size is not checked with libsodium -- sig_ok is
 *   True and leaf is the SHA-256 leaf hash its leaf must be (bytes), for the
 *   caller to compare with the stored leaf under that checkpoint
 *   (provenance/leaves.py); otherwise leaf is None.
 * intent(block) -> None | (record_id, ...) the intent names
 * use_sodium(address) -- the address of crypto_sign_open (0: none; sig_ok is
 *   then always False)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_CLAIMS 100000
#define MANIFEST_URN "urn:archiver:manifest:"

typedef int (*sign_open_fn)(unsigned char *m, unsigned long long *mlen, const unsigned char *sm, unsigned long long smlen,
                            const unsigned char *pk);
static sign_open_fn sign_open = NULL;
static EVP_MD *sha256_md = NULL;

typedef struct {
    const char *s; /* the value's first byte ('"' for a string) */
    const char *e; /* one past its last */
} Span;

/* -- the JSON subset ------------------------------------------------------------------------- */

static unsigned char in_string[256]; /* 1: a byte a string holds as is (printable ASCII but '"' and '\\') */

static const char *skip_string(const char *p, const char *end) {
    /* p at '"': printable ASCII without '\\'; returns one past the closing quote */
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (!in_string[c])
            return c == '"' ? p + 1 : NULL;
    }
    return NULL;
}

static const char *skip_number(const char *p, const char *end) {
    const char *q = p;
    if (q < end && *q == '-')
        q++;
    if (q >= end || *q < '0' || *q > '9')
        return NULL;
    if (*q == '0') {
        q++;
    } else {
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == '.' || *q == 'e' || *q == 'E'))
        return NULL; /* fraction or exponent: outside the subset */
    if (q - p > 18)
        return NULL; /* a number a C long long may not hold */
    return q;
}

static int key_before(Span a, Span b) { /* a < b, as Python orders ASCII strings */
    size_t na = (size_t)(a.e - a.s), nb = (size_t)(b.e - b.s);
    int c = memcmp(a.s, b.s, na < nb ? na : nb);
    return c < 0 || (c == 0 && na < nb);
}

static const char *skip_value(const char *p, const char *end, int depth) {
    if (p >= end || depth > MAX_DEPTH)
        return NULL;
    switch (*p) {
    case '"':
        return skip_string(p, end);
    case '{': {
        p++;
        if (p < end && *p == '}')
            return p + 1;
        Span last = {NULL, NULL};
        for (;;) {
            if (p >= end || *p != '"')
                return NULL;
            Span key = {p, skip_string(p, end)};
            if (key.e == NULL || (last.s != NULL && !key_before(last, key)))
                return NULL;
            last = key;
            p = key.e;
            if (p >= end || *p != ':')
                return NULL;
            p = skip_value(p + 1, end, depth + 1);
            if (p == NULL || p >= end)
                return NULL;
            if (*p == '}')
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    }
    case '[': {
        p++;
        if (p < end && *p == ']')
            return p + 1;
        for (;;) {
            p = skip_value(p, end, depth + 1);
            if (p == NULL || p >= end)
                return NULL;
            if (*p == ']')
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    }
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return skip_number(p, end);
    }
}

/* The end of a value already checked by skip_value: brackets counted, strings
 * (which hold no escapes in the subset) jumped over with memchr -- no
 * checking again at every level the readers below descend. */
static const char *end_of(const char *p, const char *end) {
    if (*p == '"')
        return (const char *)memchr(p + 1, '"', (size_t)(end - p - 1)) + 1;
    if (*p != '{' && *p != '[') {
        while (*p != ',' && *p != '}' && *p != ']')
            p++;
        return p;
    }
    int depth = 0;
    for (;; p++) {
        char c = *p;
        if (c == '"')
            p = memchr(p + 1, '"', (size_t)(end - p - 1));
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return p + 1;
    }
}

/* The members of an object already checked by skip_value, read in one pass. */
#define MAX_MEMBERS 64
typedef struct {
    int n;
    Span key[MAX_MEMBERS]; /* without the quotes */
    Span val[MAX_MEMBERS];
} Members;

static int members_of(Span obj, Members *t) { /* 0: not an object, or too many members (outside the subset) */
    t->n = 0;
    if (*obj.s != '{')
        return 0;
    const char *p = obj.s + 1, *end = obj.e;
    if (*p == '}')
        return 1;
    for (;;) {
        if (t->n == MAX_MEMBERS)
            return 0;
        const char *ke = end_of(p, end);
        t->key[t->n].s = p + 1;
        t->key[t->n].e = ke - 1;
        t->val[t->n].s = ke + 1;
        t->val[t->n].e = end_of(ke + 1, end);
        p = t->val[t->n].e;
        t->n++;
        if (*p == '}')
            return 1;
        p++;
    }
}

static int member(const Members *t, const char *key, Span *out) { /* 0 when absent */
    size_t klen = strlen(key);
    for (int i = 0; i < t->n; i++)
        if ((size_t)(t->key[i].e - t->key[i].s) == klen && memcmp(t->key[i].s, key, klen) == 0) {
            *out = t->val[i];
            return 1;
        }
    return 0;
}

/* The elements of an array checked by skip_value: *at starts at obj.s + 1; 0 at its end. */
static int next_element(Span arr, const char **at, Span *out) {
    const char *p = *at;
    if (*p == ']')
        return 0;
    out->s = p;
    out->e = end_of(p, arr.e);
    *at = *out->e == ',' ? out->e + 1 : out->e;
    return 1;
}

static int is_string(Span v) { return *v.s == '"'; }
static int is_null(Span v) { return *v.s == 'n'; }
static int is_int(Span v) { return *v.s == '-' || (*v.s >= '0' && *v.s <= '9'); }

static PyObject *str_of(Span v) { /* a string's text */
    return PyUnicode_DecodeASCII(v.s + 1, v.e - v.s - 2, NULL);
}

/* string -> its text; null or absent -> None; else NULL with no error (outside the subset) */
static PyObject *optional_str(const Members *obj, const char *key) {
    Span v;
    if (!member(obj, key, &v) || is_null(v))
        Py_RETURN_NONE;
    return is_string(v) ? str_of(v) : NULL;
}

static PyObject *required_str(const Members *obj, const char *key) {
    Span v;
    return member(obj, key, &v) && is_string(v) ? str_of(v) : NULL;
}

/* -- digests and signatures ------------------------------------------------------------------ */

static int hex_lower(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* 88 characters of standard base64 ending "==" -> the 64 bytes (as base64.b64decode gives them) */
static int b64_signature(const char *p, size_t n, unsigned char out[64]) {
    if (n != 88 || p[86] != '=' || p[87] != '=')
        return 0;
    unsigned int acc = 0;
    int bits = 0, k = 0;
    for (size_t i = 0; i < 86; i++) {
        int v = b64_value((unsigned char)p[i]);
        if (v < 0)
            return 0;
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return k == 64;
}

static int sha256_hex_is(const char *data, size_t n, const char *hex64) {
    static const char hx[] = "0123456789abcdef";
    unsigned char d[32];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex2(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, data, n) &&
             EVP_DigestFinal_ex(ctx, d, &len) && len == 32;
    EVP_MD_CTX_free(ctx);
    for (int i = 0; ok && i < 32; i++)
        ok = hex64[2 * i] == hx[d[i] >> 4] && hex64[2 * i + 1] == hx[d[i] & 15];
    return ok;
}

/* Does libsodium accept `sig` by the key named `key_id` in `keys` over `msg`? */
static int signature_ok(PyObject *keys, PyObject *key_id, const char *sig, size_t sig_len, const char *msg, size_t n) {
    unsigned char raw[64];
    PyObject *pk = PyDict_GetItemWithError(keys, key_id); /* borrowed */
    if (sign_open == NULL || pk == NULL || !PyBytes_Check(pk) || PyBytes_GET_SIZE(pk) != 32 || !b64_signature(sig, sig_len, raw))
        return 0;
    unsigned char *sm = PyMem_Malloc(n + 64), *m = PyMem_Malloc(n + 64);
    unsigned long long mlen = 0;
    int ok = 0;
    if (sm != NULL && m != NULL) {
        memcpy(sm, raw, 64);
        memcpy(sm + 64, msg, n);
        ok = sign_open(m, &mlen, sm, (unsigned long long)n + 64, (const unsigned char *)PyBytes_AS_STRING(pk)) == 0;
    }
    PyMem_Free(sm);
    PyMem_Free(m);
    return ok;
}

/* -- a leaf that vouches (provenance/leaves.py) ------------------------------------------------ */

static const char LEAF_SIGNED[] = "\"manifest+signature\""; /* the log entry's "leaf", as written */

/* The log index of a manifest whose log entry says its leaf holds its signature; -1 otherwise */
static long long signed_leaf_index(const Members *m) {
    Span v, idx;
    Members t;
    size_t n = sizeof(LEAF_SIGNED) - 1;
    if (!member(m, "log", &v) || !members_of(v, &t) || !member(&t, "index", &idx) || !is_int(idx) ||
        !member(&t, "leaf", &v) || (size_t)(v.e - v.s) != n || memcmp(v.s, LEAF_SIGNED, n) != 0 || *idx.s == '-')
        return -1;
    long long out = 0;
    for (const char *q = idx.s; q < idx.e; q++)
        out = out * 10 + (*q - '0');
    return out;
}

static int hex_nibble(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* The leaf hash SHA-256(0x00 || digest || signature || key id) into out; 0 on a malformed part */
static int signed_leaf(const char *digest_hex, const char *sig, size_t sig_len, const char *key, size_t key_len,
                       unsigned char out[32]) {
    unsigned char raw_digest[32], raw_sig[64], zero = 0;
    unsigned int len = 0;
    if (!b64_signature(sig, sig_len, raw_sig) || key_len == 0)
        return 0;
    for (int i = 0; i < 32; i++)
        raw_digest[i] = (unsigned char)(hex_nibble(digest_hex[2 * i]) << 4 | hex_nibble(digest_hex[2 * i + 1]));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex2(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, &zero, 1) &&
             EVP_DigestUpdate(ctx, raw_digest, 32) && EVP_DigestUpdate(ctx, raw_sig, 64) &&
             EVP_DigestUpdate(ctx, key, key_len) && EVP_DigestFinal_ex(ctx, out, &len) && len == 32;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* -- the manifest ---------------------------------------------------------------------------- */

/* One claim of signed_records: a record object with record_id and sha256; NULL: outside the subset */
static PyObject *claim(Span rec) {
    Members t;
    Span v;
    if (!members_of(rec, &t))
        return NULL;
    PyObject *rid = required_str(&t, "record_id"), *sha = required_str(&t, "sha256"), *type = required_str(&t, "type");
    PyObject *file = required_str(&t, "warc_file"), *offset = NULL;
    if (!member(&t, "offset", &v) || is_null(v)) {
        offset = Py_None;
        Py_INCREF(offset);
    } else if (is_int(v)) {
        char num[24]; /* skip_number: at most 18 characters */
        memcpy(num, v.s, (size_t)(v.e - v.s));
        num[v.e - v.s] = 0;
        offset = PyLong_FromString(num, NULL, 10);
    }
    PyObject *out = NULL;
    if (rid && sha && type && file && offset)
        out = PyTuple_Pack(5, rid, sha, type, file, offset);
    Py_XDECREF(rid);
    Py_XDECREF(sha);
    Py_XDECREF(type);
    Py_XDECREF(file);
    Py_XDECREF(offset);
    return out;
}

static int add_claims(PyObject *list, Span arr) {
    const char *at = arr.s + 1;
    Span rec;
    while (next_element(arr, &at, &rec)) {
        PyObject *c = claim(rec);
        if (c == NULL || PyList_GET_SIZE(list) >= MAX_CLAIMS || PyList_Append(list, c) < 0) {
            Py_XDECREF(c);
            return 0;
        }
        Py_DECREF(c);
    }
    return 1;
}

/* signed_records(manifest) in the subset, as claim tuples; NULL: outside it */
static PyObject *claims_of(const Members *m) {
    Span v, items, item, refs;
    Members req, it;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    if (!member(m, "records", &v) || *v.s != '[' || !add_claims(list, v))
        goto outside;
    if (member(m, "requisites", &v) && !is_null(v)) {
        if (!members_of(v, &req))
            goto outside;
        if (member(&req, "items", &items) && !is_null(items)) {
            if (*items.s != '[')
                goto outside;
            const char *at = items.s + 1;
            while (next_element(items, &at, &item)) {
                if (!members_of(item, &it))
                    goto outside;
                if (!member(&it, "records", &refs) || is_null(refs))
                    continue;
                if (*refs.s != '[' || !add_claims(list, refs))
                    goto outside;
            }
        }
    }
    PyObject *out = PyList_AsTuple(list);
    Py_DECREF(list);
    return out;
outside:
    Py_DECREF(list);
    return NULL;
}

/* The signing time signature_problem reads: signed_at, else fetch_ended_at (a non-empty string) */
static PyObject *signing_time(const Members *m) {
    Span v;
    if (member(m, "signed_at", &v) && !is_null(v)) {
        if (!is_string(v))
            return NULL;
        if (v.e - v.s > 2)
            return str_of(v);
    }
    if (member(m, "fetch_ended_at", &v) && is_string(v) && v.e - v.s > 2)
        return str_of(v);
    return NULL;
}

/* _well_formed's checks of the manifest object, and _as_manifest's of the record's target */
static int well_formed(const Members *m, PyObject *target, PyObject *sid) {
    Span v, rec, f;
    Members t;
    if (!member(m, "log", &v) || !members_of(v, &t) || !member(&t, "index", &v) || !is_int(v))
        return 0;
    if (!member(m, "url", &v) || !is_string(v) || !member(m, "final_url", &v) || !is_string(v))
        return 0;
    if (!member(m, "records", &v) || *v.s != '[')
        return 0;
    const char *at = v.s + 1;
    while (next_element(v, &at, &rec)) /* each a record object with record_id, sha256 and type strings */
        if (!members_of(rec, &t) || !member(&t, "record_id", &f) || !is_string(f) || !member(&t, "sha256", &f) ||
            !is_string(f) || !member(&t, "type", &f) || !is_string(f))
            return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(target), urn = (Py_ssize_t)strlen(MANIFEST_URN);
    if (n < urn || PyUnicode_READ_CHAR(target, 0) != 'u')
        return 1;
    for (Py_ssize_t i = 0; i < urn; i++)
        if (PyUnicode_READ_CHAR(target, i) != (Py_UCS4)MANIFEST_URN[i])
            return 1; /* not a manifest URN: the earlier form, with the page's URL */
    PyObject *tail = PyUnicode_Substring(target, urn, n);
    int same = tail != NULL && PyUnicode_Compare(tail, sid) == 0;
    Py_XDECREF(tail);
    return same; /* a URN naming another snapshot is not this manifest's record */
}

static PyObject *manifest(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *target, *keys, *vouched = Py_None;
    if (!PyArg_ParseTuple(args, "y*UO!|O", &buf, &target, &PyDict_Type, &keys, &vouched))
        return NULL;
    if (vouched != Py_None && !PyDict_Check(vouched)) {
        PyErr_SetString(PyExc_TypeError, "vouched is {key_id: size} or None");
        PyBuffer_Release(&buf);
        return NULL;
    }
    const char *b = buf.buf, *bend = b + buf.len;
    PyObject *out = NULL, *items[13] = {NULL};
    Members m;
    /* the record's document exactly as archiver writes it (signed_manifest's split by position) */
    static const char head[] = "{\"key_id\":\"", mid[] = "\",\"manifest\":", sha_key[] = ",\"manifest_sha256\":\"",
                      sig_key[] = "\",\"signature\":\"";
    if (buf.len < 11 + 13 + 20 + 64 + 15 + 2 || memcmp(b, head, 11) != 0 || memcmp(bend - 2, "\"}", 2) != 0)
        goto done;
    const char *key_end = memchr(b + 11, '"', (size_t)(buf.len - 11));
    if (key_end == NULL || bend - key_end < 13 || memcmp(key_end, mid, 13) != 0 || !hex_lower(b + 11, (size_t)(key_end - b - 11)))
        goto done;
    const char *sig_at = NULL;
    for (const char *q = bend - 15; q >= key_end; q--)
        if (*q == '"' && memcmp(q, sig_key, 15) == 0) {
            sig_at = q;
            break;
        }
    if (sig_at == NULL || sig_at - 84 < key_end + 13 || memcmp(sig_at - 84, sha_key, 20) != 0 || !hex_lower(sig_at - 64, 64))
        goto done;
    const char *sig = sig_at + 15, *sig_end = bend - 2;
    for (const char *q = sig; q < sig_end; q++)
        if (b64_value((unsigned char)*q) < 0 && *q != '=')
            goto done;
    Span ms = {key_end + 13, sig_at - 84};
    if (!sha256_hex_is(ms.s, (size_t)(ms.e - ms.s), sig_at - 64))
        goto done; /* not the stated digest: the general path says why */
    if (*ms.s != '{' || skip_value(ms.s, ms.e, 0) != ms.e || !members_of(ms, &m))
        goto done;
    if (!(items[0] = required_str(&m, "snapshot_id")) || !well_formed(&m, target, items[0]))
        goto done;
    if (PyErr_Occurred() || !(items[1] = required_str(&m, "url")) || !(items[2] = optional_str(&m, "payload_sha256")) ||
        !(items[3] = optional_str(&m, "previous_manifest_sha256")) || !(items[4] = optional_str(&m, "relogged_from")) ||
        !(items[5] = signing_time(&m)) || !(items[11] = optional_str(&m, "diff_sha256")))
        goto done;
    if (!(items[6] = PyUnicode_DecodeASCII(sig_at - 64, 64, NULL)) ||
        !(items[7] = PyUnicode_DecodeASCII(b + 11, key_end - b - 11, NULL)) ||
        !(items[8] = PyUnicode_DecodeASCII(sig, sig_end - sig, NULL)) || !(items[10] = claims_of(&m)))
        goto done;
    int ok = 0;
    /* the size of the checkpoint by this manifest's key that vouches, if any (none: -1) */
    long long vouch_size = -1;
    if (vouched != Py_None) {
        PyObject *size = PyDict_GetItemWithError(vouched, items[7]);
        if (size != NULL) {
            vouch_size = PyLong_AsLongLong(size);
            if (vouch_size == -1 && PyErr_Occurred())
                goto done;
        } else if (PyErr_Occurred())
            goto done;
    }
    long long at = vouch_size > 0 ? signed_leaf_index(&m) : -1;
    if (at >= 0 && at < vouch_size) {
        /* vouched for by its key's checkpoint, if its leaf is this one: the caller compares */
        unsigned char leaf[32];
        if (signed_leaf(sig_at - 64, sig, (size_t)(sig_end - sig), b + 11, (size_t)(key_end - b - 11), leaf)) {
            if (!(items[12] = PyBytes_FromStringAndSize((const char *)leaf, 32)))
                goto done;
            ok = 1;
        }
    }
    if (PyErr_Occurred())
        goto done;
    if (!ok)
        ok = signature_ok(keys, items[7], sig, (size_t)(sig_end - sig), ms.s, (size_t)(ms.e - ms.s));
    if (PyErr_Occurred())
        goto done;
    if (items[12] == NULL) {
        items[12] = Py_None;
        Py_INCREF(Py_None);
    }
    items[9] = ok ? Py_True : Py_False;
    Py_INCREF(items[9]);
    out = PyTuple_New(13);
    if (out != NULL)
        for (int i = 0; i < 13; i++) {
            PyTuple_SET_ITEM(out, i, items[i]);
            items[i] = NULL;
        }
done:
    for (int i = 0; i < 13; i++)
        Py_XDECREF(items[i]);
    PyBuffer_Release(&buf);
    if (out == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return out;
}

/* -- the intent ------------------------------------------------------------------------------ */

static PyObject *intent(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf))
        return NULL;
    Span doc = {buf.buf, (const char *)buf.buf + buf.len}, body, v, recs, rec, f;
    Members d, t, r;
    PyObject *list = NULL, *out = NULL;
    if (buf.len < 2 || *doc.s != '{' || skip_value(doc.s, doc.e, 0) != doc.e || !members_of(doc, &d))
        goto done;
    if (!member(&d, "key_id", &v) || !is_string(v) || !member(&d, "signature", &v) || !is_string(v))
        goto done;
    if (!member(&d, "intent", &body) || !members_of(body, &t) || !member(&t, "v", &v) || v.e - v.s != 1 || *v.s != '1')
        goto done;
    if (!member(&t, "created_at", &v) || !is_string(v) || !member(&t, "records", &recs) || *recs.s != '[')
        goto done;
    if ((list = PyList_New(0)) == NULL)
        goto done;
    const char *at = recs.s + 1;
    while (next_element(recs, &at, &rec)) {
        if (!members_of(rec, &r) || !member(&r, "sha256", &f) || !is_string(f) || !member(&r, "record_id", &f) || !is_string(f))
            goto done;
        PyObject *rid = str_of(f);
        if (rid == NULL || PyList_GET_SIZE(list) >= MAX_CLAIMS || PyList_Append(list, rid) < 0) {
            Py_XDECREF(rid);
            goto done;
        }
        Py_DECREF(rid);
    }
    out = PyList_AsTuple(list);
done:
    Py_XDECREF(list);
    PyBuffer_Release(&buf);
    if (out == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return out;
}

static PyObject *use_sodium(PyObject *self, PyObject *arg) {
    void *p = PyLong_AsVoidPtr(arg);
    if (p == NULL && PyErr_Occurred())
        return NULL;
    sign_open = (sign_open_fn)p;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"manifest", manifest, METH_VARARGS, "manifest(block, target_uri, keys[, vouched]) -> tuple | None: see the module's source."},
    {"intent", intent, METH_VARARGS, "intent(block) -> tuple of record ids | None: see the module's source."},
    {"use_sodium", use_sodium, METH_O, "use_sodium(address of libsodium's crypto_sign_open, or 0)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "archiver.audit._claimsc",
                                    "verify's native reading of signed manifests and intents", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__claimsc(void) {
    for (int c = 0x20; c <= 0x7e; c++)
        in_string[c] = c != '"' && c != '\\';
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (sha256_md == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    return PyModule_Create(&module);
}
