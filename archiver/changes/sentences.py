"""Articles as sentences: the unit the diff aligns before it looks at words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from archiver.changes.extract import Article
from archiver.changes.extract import collapse_whitespace as _collapse

# Starts only where a run of end marks starts: from inside a run it would fail
# the same way, and trying every place in a run of n marks costs n**2.
_SENT_BREAK = re.compile(r"(?<![.!?…])[.!?…]+[\"“”»«’'\)\]]*\s+")
_LAST_WORD = re.compile(r"\w+$")
#: longer than any abbreviation or ordinal below: a word this long ends a sentence
_WORD_LOOKBACK = 8
_ABBREV = {
    "dr", "prof", "mr", "mrs", "ms", "st", "nr", "bzw", "ca", "vgl", "etc", "inc", "ltd", "jr", "sr", "gen",
    "sen", "rep", "gov", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "okt", "nov", "dec", "dez", "no", "vs", "bspw", "usw", "evtl", "ggf", "mio", "mrd", "bio", "abs", "art",
    "hr", "fr", "str", "tel", "max", "min", "z", "b", "u", "a", "d", "h", "o", "s", "v", "e", "i",
}


def split_sentences(text: str) -> list[str]:
    """Split a block into sentences; abbreviations and German ordinals ("12. März") don't end one."""
    text = _collapse(text)
    out: list[str] = []
    start = 0
    for m in _SENT_BREAK.finditer(text):
        nxt = text[m.end():m.end() + 2]
        if not nxt or not (nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "„“\"»«‚(["):
            continue
        # Only the last few characters: a word longer than any abbreviation
        # ends a sentence whatever it is, and searching all the text since the
        # last break ("A. A. A. ..." never breaks) costs n**2.
        prev = _LAST_WORD.search(text, max(start, m.start() - _WORD_LOOKBACK), m.start())
        if text[m.start()] == "." and prev:
            w = prev.group(0)
            if w.lower() in _ABBREV or (w.isdigit() and len(w) <= 2) or (len(w) == 1 and w.isalpha()):
                continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


@dataclass(frozen=True)
class Unit:
    text: str
    block: int  # -1 for the title
    place: str = "body"  # headline | lead | body: where a reader meets it


LEAD_MIN_WORDS = 6  # a dateline or kicker before the first paragraph is not the lead


def units(article: Article) -> list[Unit]:
    """The title, then each block's sentences.

    A block that repeats the title (the ``<h1>`` when the title came from
    ``<title>`` or a dateline stood before it) is left out, so the diff
    shows the headline once and counts a headline figure once. The lead is
    the first block of at least :data:`LEAD_MIN_WORDS` words.
    """
    title = _collapse(article.title)
    out = [Unit(title, -1, "headline")] if title else []
    index, lead_seen = 0, False
    for block in article.blocks:
        text = _collapse(block)
        if title and text == title:
            continue
        place = "body"
        if not lead_seen and len(text.split()) >= LEAD_MIN_WORDS:
            place, lead_seen = "lead", True
        out.extend(Unit(s, index, place) for s in split_sentences(block))
        index += 1
    return out


def flat(article: Article) -> str:
    """Title and blocks as one whitespace-collapsed string."""
    return _collapse(" ".join([article.title, *article.blocks]))
