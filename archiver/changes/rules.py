"""Significance rules for one word-level region: why a change is (or is not) substantive.

The rules themselves are stated in :mod:`archiver.changes.diff`'s docstring;
this module tokenises aligned sentences (each figure one token keyed by its
value and unit) and classifies each difference, collecting text changes,
figure changes and render hunks.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Iterable

from archiver.changes.align import alignable
from archiver.changes.figures import Figure, find_figures, value_key
from archiver.changes.result import FigureChange, TextChange
from archiver.changes.sentences import Unit

#: the most words a word diff aligns (both sides) and pairs of equal words it
#: may visit (archiver/changes/align.py); a piece of PIECE_WORDS a side
#: (archiver/changes/pairing.py) is always within them
WORD_UNITS = 6_000
WORD_PAIRS = 20_000

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
NEGATIONS = {
    "nicht", "kein", "keine", "keinen", "keinem", "keiner", "keines", "nie", "niemals", "nichts", "niemand",
    "weder", "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "without", "ohne",
}


@dataclass
class _Tok:
    raw: str
    key: str
    sent: int  # index into the side's unit list
    fig: Figure | None = None


@functools.lru_cache(maxsize=65536)  # words repeat; bounded so memory stays flat
def word_key(raw: str) -> str:
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", raw).casefold())


def _tokenize(units: list[Unit], idx: Iterable[int], language: str | None) -> list[_Tok]:
    toks: list[_Tok] = []
    for si in idx:
        text = units[si].text
        pending = ""
        pos = 0
        pieces: list[tuple[str, Figure | None]] = []
        for fig in find_figures(text, language):
            pieces.extend((w, None) for w in text[pos:fig.start].split())
            pieces.append((fig.text, fig))
            pos = fig.end
        pieces.extend((w, None) for w in text[pos:].split())
        for raw, piece_fig in pieces:
            key = "#" + value_key(piece_fig) if piece_fig else word_key(raw)
            if not key:
                if toks and toks[-1].sent == si:
                    toks[-1].raw += raw
                else:
                    pending += raw
                continue
            toks.append(_Tok(pending + raw, key, si, piece_fig))
            pending = ""
    return toks


# ---------------------------------------------------------------- typo rule

_ROWS = ("qwertzuiopü", "asdfghjklöä", "yxcvbnm", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_ADJ: set[tuple[str, str]] = set()
for _layout in ((0, 1, 2), (3, 4, 5)):
    for _r in _layout:
        row = _ROWS[_r]
        for _i, _c in enumerate(row):
            if _i + 1 < len(row):
                _ADJ.add((_c, row[_i + 1]))
            if _r + 1 in _layout:
                below = _ROWS[_r + 1]
                for _j in (_i - 1, _i):
                    if 0 <= _j < len(below):
                        _ADJ.add((_c, below[_j]))
_ADJ |= {(b, a) for a, b in _ADJ}


def _one_edit(a: str, b: str) -> tuple[str, int] | None:
    """('transpose'|'indel'|'substitute', position) when a and b are one edit apart."""
    if a == b:
        return None
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return "substitute", diff[0]
        if len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]:
            return "transpose", diff[0]
        return None
    if abs(len(a) - len(b)) != 1:
        return None
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    if short[i:] == long_[i + 1:]:
        return "indel", i
    return None


def is_typo_fix(before: str, after: str) -> bool:
    """The typo rule of the module docstring, for two raw words."""
    kb, ka = word_key(before), word_key(after)
    if not kb or not ka or kb.startswith("#") or ka.startswith("#"):
        return False
    if any(ch.isdigit() for ch in kb + ka) or kb in NEGATIONS or ka in NEGATIONS:
        return False
    if max(len(kb), len(ka)) < 5:
        return False
    edit = _one_edit(kb, ka)
    if edit is None:
        return False
    kind, pos = edit
    if kind == "transpose":
        return True
    if kind == "indel":
        return pos < max(len(kb), len(ka)) - 1
    wb = _NON_WORD.sub("", before)
    wa = _NON_WORD.sub("", after)
    if wb[:1].isupper() or wa[:1].isupper():
        return False
    return (kb[pos], ka[pos]) in _ADJ and pos < len(kb) - 1


_CONTRACTIONS = {"won't": "will not", "can't": "can not", "cannot": "can not", "shan't": "shall not", "ain't": "is not"}


def _expand(toks: list[_Tok]) -> list[str]:
    """Keys with English negative contractions spelled out ("didn't" == "did not")."""
    out: list[str] = []
    for t in toks:
        raw = re.sub(r"[^\w']+", "", t.raw.replace("’", "'").casefold())
        if t.fig is None and raw in _CONTRACTIONS:
            out.extend(_CONTRACTIONS[raw].split())
        elif t.fig is None and raw.endswith("n't"):
            out.extend([raw[:-3], "not"])
        else:
            out.append(t.key)
    return out


def _without(toks: list[_Tok], keys: Counter[str]) -> list[_Tok]:
    """``toks`` less one token per counted key."""
    left = Counter(keys)
    out = []
    for t in toks:
        if left[t.key] > 0:
            left[t.key] -= 1
        else:
            out.append(t)
    return out


def _has_negation(toks: list[_Tok]) -> bool:
    return any(t.key in NEGATIONS or re.search(r"n['’]t\b", t.raw, re.IGNORECASE) for t in toks)


# ---------------------------------------------------------------- the diff


class Builder:
    """Collects changes, figure changes and render hunks for one diff."""

    def __init__(self, ub: list[Unit], ua: list[Unit]) -> None:
        self.ub, self.ua = ub, ua
        self.changes: list[TextChange] = []
        self.figures: list[FigureChange] = []
        self.hunks: list[list[tuple[str, str]]] = []

    def fig_change(self, b: _Tok | None, a: _Tok | None) -> None:
        ctx_tok = a if a is not None else b
        assert ctx_tok is not None
        ctx = (self.ua if a is not None else self.ub)[ctx_tok.sent].text
        fb, fa = (b.fig if b else None), (a.fig if a else None)
        unit = (self.ua if a is not None else self.ub)[ctx_tok.sent]
        self.figures.append(FigureChange(
            fb.text if fb else None, fa.text if fa else None,
            fb.value if fb else None, fa.value if fa else None, ctx,
            (fa.noun if fa else None) or (fb.noun if fb else None),
            (fa.unit if fa else None) or (fb.unit if fb else None),
            (unit.place,),
        ))

    def region(self, bi: list[int], ai: list[int], lang_b: str | None, lang_a: str | None) -> None:
        if not ai:
            self._whole("delete", bi, self.ub)
            return
        if not bi:
            self._whole("insert", ai, self.ua)
            return
        bt = _tokenize(self.ub, bi, lang_b)
        at = _tokenize(self.ua, ai, lang_a)
        kb, ka = [t.key for t in bt], [t.key for t in at]
        if not alignable(kb, ka, WORD_UNITS, WORD_PAIRS):
            self.whole(bi, ai)  # a sentence of thousands of words: reported whole, in bounded time
            return
        sm = SequenceMatcher(None, kb, ka, autojunk=False)
        hunk: list[tuple[str, str]] = []
        for op, i1, i2, j1, j2 in sm.get_opcodes():
            B, A = bt[i1:i2], at[j1:j2]
            if op == "equal":
                self._equal(B, A, hunk)
            elif op == "replace":
                self._replace(B, A, hunk)
            elif op == "delete":
                self._indel("delete", B, bt, i1, self.ub, hunk)
            else:
                self._indel("insert", A, at, j1, self.ua, hunk)
        self.hunks.append(hunk)

    def whole(self, bi: list[int], ai: list[int]) -> None:
        """Sentences reported as removed and added, without a word diff."""
        if bi:
            self._whole("delete", bi, self.ub)
        if ai:
            self._whole("insert", ai, self.ua)

    def _whole(self, op: str, idx: list[int], units: list[Unit]) -> None:
        """Whole sentences added or removed, grouped per block."""
        groups: list[list[int]] = []
        for i in idx:
            if groups and units[groups[-1][-1]].block == units[i].block and groups[-1][-1] == i - 1:
                groups[-1].append(i)
            else:
                groups.append([i])
        for g in groups:
            text = " ".join(units[i].text for i in g)
            kind = "title" if units[g[0]].block == -1 else ("paragraph" if len(g) > 1 else "sentence")
            self.changes.append(TextChange(op, text if op == "delete" else None, text if op == "insert" else None, kind))
            self.hunks.append([("del" if op == "delete" else "ins", text)])

    def _equal(self, B: list[_Tok], A: list[_Tok], hunk: list[tuple[str, str]]) -> None:
        run_b: list[str] = []
        run_a: list[str] = []
        kinds: set[str] = set()

        def flush() -> None:
            if run_b:
                kind = "figure-format" if kinds == {"figure-format"} else ("punctuation" if "punctuation" in kinds else sorted(kinds)[0])
                self.changes.append(TextChange("replace", " ".join(run_b), " ".join(run_a), kind, False))
                run_b.clear()
                run_a.clear()
                kinds.clear()

        for b, a in zip(B, A):
            if b.raw == a.raw:
                flush()
                hunk.append(("eq", a.raw))
                continue
            run_b.append(b.raw)
            run_a.append(a.raw)
            if b.fig is not None:
                kinds.add("figure-format")
            elif _NON_WORD.sub("", b.raw) == _NON_WORD.sub("", a.raw):
                kinds.add("punctuation")
            elif b.raw.lower() == a.raw.lower():
                kinds.add("case")
            else:
                kinds.add("spelling")
            hunk.extend([("del", b.raw), ("ins", a.raw)])
        flush()

    def _replace(self, B: list[_Tok], A: list[_Tok], hunk: list[tuple[str, str]]) -> None:
        hunk.extend([("del", " ".join(t.raw for t in B)), ("ins", " ".join(t.raw for t in A))])
        before, after = " ".join(t.raw for t in B), " ".join(t.raw for t in A)
        if "".join(t.key for t in B) == "".join(t.key for t in A):
            self.changes.append(TextChange("replace", before, after, "whitespace", False))
            return
        if _expand(B) == _expand(A):
            self.changes.append(TextChange("replace", before, after, "contraction", False))
            return
        fb = [t for t in B if t.fig is not None]
        fa = [t for t in A if t.fig is not None]
        figs_changed = bool(fb or fa)
        # a figure on both sides of a longer replacement is unchanged: pair only the rest
        common = Counter(t.key for t in fb) & Counter(t.key for t in fa)
        fb, fa = _without(fb, common), _without(fa, common)
        for i in range(max(len(fb), len(fa))):
            b = fb[i] if i < len(fb) else None
            a = fa[i] if i < len(fa) else None
            if b is None or a is None or b.key != a.key:
                self.fig_change(b, a)
        if figs_changed:
            kind = "figure"
        elif _has_negation(B) != _has_negation(A) or {t.key for t in B if t.key in NEGATIONS} != {t.key for t in A if t.key in NEGATIONS}:
            kind = "negation"
        elif len(B) == len(A) and all(is_typo_fix(b.raw, a.raw) for b, a in zip(B, A)):
            self.changes.append(TextChange("replace", before, after, "typo", False))
            return
        elif any(_NON_WORD.sub("", t.raw)[:1].isupper() for t in B + A):
            kind = "name"
        else:
            kind = "word"
        self.changes.append(TextChange("replace", before, after, kind))

    def _indel(self, op: str, T: list[_Tok], side: list[_Tok], i1: int, units: list[Unit], hunk: list[tuple[str, str]]) -> None:
        text = " ".join(t.raw for t in T)
        hunk.append(("del" if op == "delete" else "ins", text))
        # a doubled word removed or added: "die die Regierung" -> "die Regierung"
        if all((i1 + k > 0 and side[i1 + k - 1].key == t.key) or (i1 + k + 1 < len(side) and side[i1 + k + 1].key == t.key)
               for k, t in enumerate(T)) and not any(t.fig for t in T) and not _has_negation(T):
            self.changes.append(TextChange(op, text if op == "delete" else None,
                                           text if op == "insert" else None, "doubled-word", False))
            return
        sents = {t.sent for t in T}
        whole = all(sum(1 for t in side if t.sent == s) == sum(1 for t in T if t.sent == s) for s in sents)
        if whole:
            kind = "title" if any(units[s].block == -1 for s in sents) else ("paragraph" if len({units[s].block for s in sents}) > 1 or len(sents) > 1 else "sentence")
        else:
            kind = "negation" if _has_negation(T) else ("figure" if any(t.fig for t in T) else "word")
            for t in T:
                if t.fig is not None:
                    self.fig_change(t if op == "delete" else None, t if op == "insert" else None)
        self.changes.append(TextChange(op, text if op == "delete" else None, text if op == "insert" else None, kind))
