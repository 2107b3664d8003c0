"""A WARC record's header, read strictly by WARC 1.1's grammar (section 4).

    header      = version warc-fields
    version     = "WARC/1.0" CRLF | "WARC/1.1" CRLF
    warc-fields = *named-field CRLF
    named-field = field-name ":" [ field-value ]
    field-name  = token                    ; US-ASCII, no CTLs or separators
    field-value = *( field-content | LWS )  ; TEXT: no CTLs but HT, LWS folds

The audit decides what a record is from these fields, so a header other
readers could take differently is not read at all: a name that is not a
token, a control character in a value, a bare CR or LF, bytes that are not
UTF-8, and a field given twice (WARC-Type twice: one tool replays a
response, another skips a warcinfo) all make it malformed. Only
WARC-Concurrent-To and WARC-Protocol may repeat (WARC 1.1 says so of them).
Content-Length must be digits and nothing else.

One regular expression checks the whole header block, so the strict read
costs less than splitting it line by line in Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = rb"[!#$%&'*+\-.0-9A-Z^_`a-z|~]+"
_TEXT = rb"[^\x00-\x08\x0a-\x1f\x7f]*"  # any octet but CTLs (HT allowed)
_HEADER = re.compile(rb"WARC/1\.[01]\r\n(?:" + _TOKEN + rb":" + _TEXT + rb"\r\n(?:[ \t]" + _TEXT + rb"\r\n)*)*")
_FOLD = re.compile(r"[ \t]*\r\n[ \t]+")
REPEATABLE = frozenset({"warc-concurrent-to", "warc-protocol"})
MAX_HEADER = 1 << 16  # a header longer than this is not one archiver reads


def parse_fields(data: bytes) -> tuple[dict[str, str], int]:
    """The named fields of a decompressed WARC record (or its first bytes)
    and where its header block ends; ValueError when it is not a well-formed
    WARC 1.0/1.1 header."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEADER)
    if end < 0 or not data.startswith(b"WARC/"):
        raise ValueError("not a WARC record")
    block = data[: end + 2]
    if _HEADER.fullmatch(block) is None:
        raise ValueError("malformed WARC header (not WARC/1.0 or 1.1 named fields)")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("WARC header is not UTF-8") from exc
    if "\r\n " in text or "\r\n\t" in text:  # LWS: a folded value is one value, its folds one space
        text = _FOLD.sub(" ", text)
    lines = text.split("\r\n")[1:-1]
    headers = {name: value.strip(" \t") for name, _, value in (line.partition(":") for line in lines)}
    if len(headers) != len(lines) or len({name.lower() for name in headers}) != len(headers):
        _no_repeats(name for name, _, _ in (line.partition(":") for line in lines))
    return headers, end


def _no_repeats(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        key = name.lower()
        if key in seen and key not in REPEATABLE:
            raise ValueError(f"WARC header field {name} given twice")
        seen.add(key)


def content_length(headers: dict[str, str]) -> int:
    """The record's Content-Length: ASCII digits only; ValueError otherwise."""
    text = headers.get("Content-Length", "")
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError("record has no valid Content-Length")
    return int(text)
