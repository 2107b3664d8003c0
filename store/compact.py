"""Compressed JSON columns of the index (schema 6): manifest, diff, article.

A stored value is one format byte and a body:

- ``0x00``: the UTF-8 text as is (used when deflating would not save bytes);
- ``0x01``: raw DEFLATE (RFC 1951) of the UTF-8 text with :data:`DICTIONARY_1`
  as zlib's preset dictionary.

Why a preset dictionary: a manifest is ~2 kB of canonical JSON whose keys,
header names and software fields repeat in every row; DEFLATE on its own
gets ~2.2x on so small an input, with the dictionary ~4-5x, because the
repeated structure is already in the window. The dictionary is part of the
format: it never changes once written (a better one gets a new format byte),
so every value stays readable by every later version. Any zlib can read a
value back (``zlib.decompressobj(-15, zdict=DICTIONARY_1)``).

Inflating is bounded (:data:`MAX_INFLATED`): a forged or corrupt row fails
with a one-line :class:`StoreError`, never a memory blow-up.
"""

from __future__ import annotations

import functools
import zlib

from store.errors import StoreError

PLAIN = 0x00
DEFLATE_1 = 0x01
MAX_INFLATED = 64 * 1024 * 1024  # bytes one index value may inflate to

# Strings of the archive's JSON documents, most frequent last (nearest the data,
# so the shortest distances). Fixed forever: see the module docstring.
_WORDS_1 = (
    '{"figures":[],"changes":[],"significance":"none"}'
    '{"before":null,"after":null,"before_value":null,"after_value":null,"context":"'
    '{"op":"insert","before":null,"after":"'
    '{"op":"delete","before":"","after":null}{"op":"replace","before":"'
    '"significance":"substantive""significance":"cosmetic"'
    '{"blocks":["","language":"de","method":"trafilatura","method":"blocks","notes":[],"title":"'
    '"language":"en"'
    '"requisites":{"found":0,"items":[],"limit":null,"not_fetched":0},'
    '{"outcome":"stored","outcome":"revisit","outcome":"failed","bytes":'
    '"content_type":"text/css""content_type":"image/png""content_type":"font/woff2"'
    '"relogged_from":"'
    '"tls":{"cipher":"TLS_AES_256_GCM_SHA384","version":"TLSv1.3","peer_certificate_sha256":"'
    '"chain_sha256":["'
    '"Accept-Language":"de,en;q=0.8",'
    '"If-Modified-Since":"","If-None-Match":"'
    '"credentials":null,"fetch_ended_at":"20'
    '","fetch_started_at":"20'
    '","final_url":"https://www.'
    '","hops":[{"ended_at":"20'
    '","ip":"'
    '","payload_sha256":"'
    '","request_headers":{"Accept":"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",'
    '"Accept-Encoding":"gzip, deflate","User-Agent":"archiver/0.1.0 (+https://github.com/archiver-project/archiver; '
    'operator not configured)"},"started_at":"20'
    '","status":200,"tls":null,"url":"https://'
    '"}],"host":"'
    '","log":{"index":'
    ',"origin":"archiver/'
    '"},"manifest_version":1,"payload_sha256":"'
    '","previous_manifest_sha256":"'
    '","records":[{"length":'
    ',"offset":'
    ',"record_id":"<urn:uuid:'
    '>","sha256":"'
    '","target_uri":"https://'
    '","type":"response","warc_file":"archiver-20'
    '-00000-'
    '.warc.gz"},{"length":'
    '","type":"revisit","warc_file":"archiver-20'
    '","type":"request","warc_file":"archiver-20'
    '"],"redirect_chain":["https://'
    '"],"remote_ip":"'
    '","signed_at":"20'
    '","significance":"none","snapshot_id":"'
    '","software":{"name":"archiver","python":"3.1'
    '","requests":"2.3'
    '","urllib3":"2.'
    '","version":"0.1.0","warcio":"1.'
    '"},"status":200,"text_sha256":"'
    '","tls":null,"url":"https://'
)
DICTIONARY_1 = _WORDS_1.encode("utf-8")


#: texts up to this many characters are packed once per process and remembered
_REMEMBERED = 512


def pack(text: str) -> bytes:
    """``text`` as stored: deflated against the dictionary, or plain when shorter.

    A short text is packed once and remembered (the same text gives the same
    bytes): an unchanged page's diff is the same short document on every
    re-capture, and setting up a deflate stream with the dictionary costs
    far more than deflating it."""
    if len(text) <= _REMEMBERED:
        return _pack_short(text)
    return _pack(text)


@functools.lru_cache(maxsize=256)
def _pack_short(text: str) -> bytes:
    return _pack(text)


def _pack(text: str) -> bytes:
    raw = text.encode("utf-8")
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_1)
    deflated = co.compress(raw) + co.flush()
    if len(deflated) < len(raw):
        return bytes((DEFLATE_1,)) + deflated
    return bytes((PLAIN,)) + raw


def unpack(value: bytes | bytearray | memoryview, *, limit: int = MAX_INFLATED) -> str:
    """The text of a stored value; a :class:`StoreError` when it is not one."""
    raw = unpack_utf8(value, limit=limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"index value is not UTF-8: {exc}") from exc


def unpack_utf8(value: bytes | bytearray | memoryview, *, limit: int = MAX_INFLATED) -> bytes:
    """The bytes of a stored value's text, not decoded (what a digest of the
    text is taken over: ``verify`` hashes every stored diff). Not checked to
    be UTF-8: bytes that are not hash to no digest of a text."""
    data = bytes(value)
    if not data:
        raise StoreError("empty compressed index value")
    kind, body = data[0], data[1:]
    if kind == PLAIN:
        raw = body
    elif kind == DEFLATE_1:
        do = zlib.decompressobj(-15, zdict=DICTIONARY_1)
        try:
            raw = do.decompress(body, limit)
            if do.unconsumed_tail:
                raise StoreError(f"compressed index value inflates beyond {limit} bytes")
            raw += do.flush()
        except zlib.error as exc:
            raise StoreError(f"corrupt compressed index value: {exc}") from exc
        if not do.eof:
            raise StoreError("corrupt compressed index value: truncated")
    else:
        raise StoreError(f"unknown index value format {kind:#04x}")
    return raw
