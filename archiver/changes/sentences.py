"""Articles as sentences: the unit the diff aligns before it looks at words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from archiver.changes.extract import Article

_WS = re.compile(r"\s+")
_SENT_BREAK = re.compile(r"[.!?…]+[\"“”»«’'\)\]]*\s+")
_ABBREV = {
    "dr", "prof", "mr", "mrs", "ms", "st", "nr", "bzw", "ca", "vgl", "etc", "inc", "ltd", "jr", "sr", "gen",
    "sen", "rep", "gov", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "okt", "nov", "dec", "dez", "no", "vs", "bspw", "usw", "evtl", "ggf", "mio", "mrd", "bio", "abs", "art",
    "hr", "fr", "str", "tel", "max", "min", "z", "b", "u", "a", "d", "h", "o", "s", "v", "e", "i",
}


def split_sentences(text: str) -> list[str]:
    """Split a block into sentences; abbreviations and German ordinals ("12. März") don't end one."""
    text = _WS.sub(" ", text).strip()
    out: list[str] = []
    start = 0
    for m in _SENT_BREAK.finditer(text):
        nxt = text[m.end():m.end() + 2]
        if not nxt or not (nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "„“\"»«‚(["):
            continue
        prev = re.search(r"(\w+)$", text[start:m.start()])
        if text[m.start()] == "." and prev:
            w = prev.group(1)
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


def units(article: Article) -> list[Unit]:
    out = [Unit(_WS.sub(" ", article.title).strip(), -1)] if article.title.strip() else []
    for i, block in enumerate(article.blocks):
        out.extend(Unit(s, i) for s in split_sentences(block))
    return out


def flat(article: Article) -> str:
    """Title and blocks as one whitespace-collapsed string."""
    return _WS.sub(" ", " ".join([article.title, *article.blocks])).strip()
