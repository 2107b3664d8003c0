"""Response bytes -> text: the page's character set, and a not-HTML check.

Why: the same page must decode to the same characters on every capture, or
every umlaut becomes an "edit". Browsers (WHATWG encoding standard) honour a
BOM, then the declared charset, and replace bytes that are invalid in it; one
stray byte in a footer must not switch a UTF-8 page to cp1252.
"""

from __future__ import annotations

import codecs
import re

from archiver.errors import ExtractError

__all__ = ["check_text", "decode_html"]

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
_BINARY_MAGIC = (b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"RIFF", b"OggS", b"ID3")
_NON_TEXT_TYPES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip",
                   "application/octet-stream", "application/gzip")
_REPLACEMENT = "\ufffd"


def _lookup(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    if name in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso8859-1"):
        return "cp1252"  # what browsers do (WHATWG encoding standard)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _utf8_or_cp1252(body: bytes) -> str:
    """An undeclared page: UTF-8 unless its non-ASCII bytes are mostly not UTF-8.

    A UTF-8 page with a few invalid bytes has many more valid multi-byte
    characters than invalid bytes; a Latin-1/cp1252 page has almost none.
    """
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = body.decode("utf-8", errors="replace")
    invalid = text.count(_REPLACEMENT) - body.count("\ufffd".encode("utf-8"))
    valid = sum(1 for ch in text if ch > "\x7f") - text.count(_REPLACEMENT)
    if valid > invalid:
        return text
    return body.decode("cp1252", errors="replace")


def decode_html(body: bytes, content_type: str | None) -> str:
    """Bytes -> str: BOM, header charset, <meta> charset, else UTF-8 or cp1252.

    A declared charset is kept even when some bytes are invalid in it: they
    become U+FFFD, as in a browser, and the rest of the page reads the same.
    Only a page whose non-ASCII bytes are mostly invalid UTF-8 (Latin-1 sent
    as UTF-8 or undeclared) is read as cp1252.
    """
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", errors="replace")
    for bom, enc in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[2:].decode(enc, errors="replace")
    candidates: list[str | None] = []
    if content_type:
        m = re.search(r"charset\s*=\s*([^;\s]+)", content_type, re.IGNORECASE)
        if m:
            candidates.append(_lookup(m.group(1)))
    m2 = _META_CHARSET.search(body[:4096])
    if m2:
        candidates.append(_lookup(m2.group(1).decode("ascii", "ignore")))
    for cand in candidates:
        if cand == "utf-8":
            return _utf8_or_cp1252(body)  # a mislabelled Latin-1 page still reads right
        if cand and not cand.startswith("utf-16"):  # a utf-16 declaration in an 8-bit page is a lie
            return body.decode(cand, errors="replace")
    return _utf8_or_cp1252(body)


def check_text(body: bytes, content_type: str | None) -> None:
    """Raise ExtractError for content that is not text at all (images, archives, ...)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if any(ctype.startswith(t) for t in _NON_TEXT_TYPES) or body.startswith(_BINARY_MAGIC):
        raise ExtractError(f"not an HTML/text document ({ctype or 'binary content'})")
    head = body[:4096]
    if head and head.count(b"\x00") > len(head) // 10 and not body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ExtractError("not an HTML/text document (binary content)")
