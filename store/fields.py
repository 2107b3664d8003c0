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

The checks are C-speed scans over the whole block (CRLFs removed, then one translate leaves any control character or lone
CR or LF; one pattern over the joined names), so the strict read costs about twice the lenient split it replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NAMES = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z|~]+(?:\n[!#$%&'*+\-.0-9A-Z^_`a-z|~]+)*")  # tokens, one a line
_FOLD = re.compile(r"[ \t]*\r\n[ \t]+")
_TEXT_OCTETS = bytes([9, *range(32, 127), *range(128, 256)])  # all but CTLs (CR and LF are allowed only as CRLF)
VERSIONS = ("WARC/1.1", "WARC/1.0")
REPEATABLE = frozenset({"warc-concurrent-to", "warc-protocol"})
MAX_HEADER = 1 << 16  # a header longer than this is not one archiver reads


def parse_fields(data: bytes) -> tuple[dict[str, str], int]:
    """The named fields of a decompressed WARC record (or its first bytes)
    and where its header block ends; ValueError when it is not a well-formed
    WARC 1.0/1.1 header."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEADER)
    if end < 0 or not data.startswith(b"WARC/"):
        raise ValueError("not a WARC record")
    block = data[:end]
    if block.replace(b"\r\n", b"").translate(None, _TEXT_OCTETS):
        raise ValueError("malformed WARC header: a control character, or CR or LF alone")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("WARC header is not UTF-8") from exc
    if "\r\n " in text or "\r\n\t" in text:  # LWS: a folded value is one value, its folds one space
        text = _FOLD.sub(" ", text)
    lines = text.split("\r\n")
    if lines[0] not in VERSIONS:
        raise ValueError("malformed WARC header: not WARC/1.0 or WARC/1.1")
    pairs = [line.partition(":") for line in lines[1:]]
    headers = {name: value.strip(" \t") for name, _, value in pairs}
    if not all(sep for _, sep, _ in pairs) or (pairs and _NAMES.fullmatch("\n".join(headers)) is None):
        raise ValueError("malformed WARC header: a field name that is not a token, or no colon")
    if len(headers) != len(pairs) or len(set(map(str.lower, headers))) != len(headers):
        _no_repeats(name for name, _, _ in pairs)
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
