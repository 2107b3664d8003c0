"""A package's list documents (``locations.json``, ``proofs.json``) read
entry by entry.

``json.loads`` of a stranger's member makes about 25 times its size in
Python objects (30 MB of ``{},`` peaked at 794 MiB; the member limit allows
256 MiB). Here only one entry is parsed at a time, each at most
:data:`MAX_ENTRY_CHARS`, so parsing costs a few MiB whatever the document
holds; the caller decides how many entries it takes and what it keeps.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

# One entry of such a list: a record's location is ~250 bytes, an inclusion
# proof at most 64 hashes (~3.5 KiB indented). Anything larger is refused.
MAX_ENTRY_CHARS = 64 << 10

_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]*")
_DECODER = json.JSONDecoder()


class JsonStreamError(ValueError):
    """The document is not JSON of the expected shape, or an entry is too large."""


class _Reader:
    """Text of a JSON document decoded chunk by chunk; ``buf[pos:]`` is unread."""

    def __init__(self, chunks: Iterable[bytes], max_entry: int) -> None:
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._max_entry = max_entry
        self._eof = False
        self.buf = ""
        self.pos = 0

    def _more(self) -> bool:
        """Append the next chunk (dropping what was read); False at the end."""
        if self._eof:
            return False
        chunk = next(self._chunks, None)
        try:
            text = self._utf8.decode(chunk if chunk is not None else b"", final=chunk is None)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(f"not UTF-8: {exc.reason}") from exc
        self._eof = chunk is None
        self.buf = self.buf[self.pos:] + text
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ("" at the end)."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def take(self, allowed: str) -> str:
        """Consume the next character, one of ``allowed``."""
        char = self.peek()
        if not char or char not in allowed:
            where = f"{char!r}" if char else "the end"
            raise JsonStreamError(f"expected one of {allowed!r}, found {where}")
        self.pos += 1
        return char

    def value(self) -> Any:
        """One JSON value of at most ``max_entry`` characters."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except RecursionError as exc:
                raise JsonStreamError("an entry is nested too deeply") from exc
            except ValueError as exc:  # incomplete so far, or not JSON
                if len(self.buf) - self.pos <= self._max_entry and self._more():
                    continue
                if len(self.buf) - self.pos > self._max_entry:
                    raise JsonStreamError(f"an entry is not JSON of at most {self._max_entry} characters") from exc
                raise JsonStreamError(str(exc)) from exc
            if end - self.pos > self._max_entry:
                raise JsonStreamError(f"an entry is longer than {self._max_entry} characters")
            # A number read to the buffer's end, or up to a partial exponent or
            # fraction ("1." of "1.5"), may go on in the next chunk.
            cut = end == len(self.buf) or (
                type(obj) in (int, float) and _NUMBER_TAIL.fullmatch(self.buf, end) is not None)
            if cut and len(self.buf) - self.pos <= self._max_entry and self._more():
                continue
            self.pos = end
            return obj


def array_entries(chunks: Iterable[bytes], key: str, *, max_entry: int = MAX_ENTRY_CHARS) -> Iterator[Any]:
    """The entries of the list under ``key`` in the JSON object ``chunks``
    hold, one at a time (of every ``key`` member, should there be several).

    Raises :class:`JsonStreamError` where the document stops being a JSON
    object, or a value (an entry, another member's value) is longer than
    ``max_entry`` characters; the entries before it have been yielded.
    """
    r = _Reader(chunks, max_entry)
    r.take("{")
    if r.peek() == "}":
        r.pos += 1
    else:
        while True:
            name = r.value()
            if not isinstance(name, str):
                raise JsonStreamError("a member name is not a string")
            r.take(":")
            if name == key and r.peek() == "[":
                r.pos += 1
                if r.peek() == "]":
                    r.pos += 1
                else:
                    while True:
                        yield r.value()
                        if r.take(",]") == "]":
                            break
            else:
                r.value()
            if r.take(",}") == "}":
                break
    if r.peek():
        raise JsonStreamError("data after the end of the object")
