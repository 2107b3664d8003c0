"""The Compare page's text diff: whole article, paragraph by paragraph, with
changed words marked and figures emphasised.

The significance and the figure changes come from ``archiver.changes`` (the
verdict the CLI gives); this module only lays out both texts for reading.
A changed span whose words differ only in punctuation, case or spacing is
marked cosmetic so the page can show it quieter than a substantive one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from archiver.changes.align import alignable, bounded_opcodes

MAX_TOKENS = 200_000  # beyond this, paragraphs are compared whole (bounded work)
#: what difflib aligns (archiver/changes/align.py: beyond, a hostile page's
#: repeated paragraphs or words took hours of the desk's CPU per view):
#: paragraphs, and the words (blanks are junk: never where a match starts) of one
PARAGRAPH_UNITS, PARAGRAPH_PAIRS = 4_000, 8_000
TOKEN_UNITS, TOKEN_PAIRS = 6_000, 20_000
_TOKEN = re.compile(r"\s+|[^\s]+")
_NUMBER = re.compile(r"\d")
_WORDISH = re.compile(r"[\W_]+", re.UNICODE)


@dataclass
class Span:
    op: str  # eq | del | ins
    text: str
    figure: bool = False
    cosmetic: bool = False


@dataclass
class Row:
    """One paragraph pair; ``left``/``right`` for side-by-side, ``inline`` for inline."""

    op: str  # equal | replace | delete | insert
    left: list[Span] = field(default_factory=list)
    right: list[Span] = field(default_factory=list)
    inline: list[Span] = field(default_factory=list)


def _norm(words: list[str]) -> str:
    return _WORDISH.sub("", "".join(words)).lower()


def _is_figure(text: str, figures: set[str]) -> bool:
    stripped = text.strip(".,;:!?()\"'„“”‚‘’«»")
    return bool(stripped) and (stripped in figures or bool(_NUMBER.search(stripped)))


def _words(a: str, b: str, figures: set[str]) -> Row:
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    if not alignable(ta, tb, TOKEN_UNITS, TOKEN_PAIRS, junk=_blank):
        return _whole(a, b)
    row = Row("replace")
    sm = difflib.SequenceMatcher(_blank, ta, tb, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            text = "".join(ta[i1:i2])
            for side in (row.left, row.right, row.inline):
                side.append(Span("eq", text))
            continue
        before, after = ta[i1:i2], tb[j1:j2]
        cosmetic = _norm(before) == _norm(after)
        if before:
            text = "".join(before)
            span = Span("del", text, _is_figure(text, figures), cosmetic)
            row.left.append(span)
            row.inline.append(span)
        if after:
            text = "".join(after)
            span = Span("ins", text, _is_figure(text, figures), cosmetic)
            row.right.append(span)
            row.inline.append(span)
    return row


def _blank(token: object) -> bool:
    return isinstance(token, str) and token.isspace()


def _whole(a: str, b: str) -> Row:
    return Row("replace", [Span("del", a)], [Span("ins", b)], [Span("del", a), Span("ins", b)])


def diff_rows(before: str, after: str, figures: set[str]) -> list[Row]:
    """Paragraph-aligned rows of the two article texts."""
    pa = [p for p in before.split("\n") if p.strip()]
    pb = [p for p in after.split("\n") if p.strip()]
    rows: list[Row] = []
    budget = MAX_TOKENS
    for tag, i1, i2, j1, j2 in bounded_opcodes(pa, pb, PARAGRAPH_UNITS, PARAGRAPH_PAIRS):
        if tag == "equal":
            for p in pa[i1:i2]:
                rows.append(Row("equal", [Span("eq", p)], [Span("eq", p)], [Span("eq", p)]))
            continue
        left, right = pa[i1:i2], pb[j1:j2]
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else None
            b = right[k] if k < len(right) else None
            if a is not None and b is not None and budget > 0:
                budget -= len(a) // 4 + len(b) // 4
                rows.append(_words(a, b, figures))
            elif a is not None and b is not None:
                rows.append(_whole(a, b))
            elif a is not None:
                rows.append(Row("delete", [Span("del", a)], [], [Span("del", a)]))
            elif b is not None:
                rows.append(Row("insert", [], [Span("ins", b)], [Span("ins", b)]))
    return rows
