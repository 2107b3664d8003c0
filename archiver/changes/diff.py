"""Two article versions -> text changes, figure changes and a significance.

Why: an editor's change of a fact (a figure, a name, a date, a negation, a
sentence) must stand out, and a change that leaves every fact intact must not
raise an alarm. The rules, in the order they are applied:

``none``
    Title and blocks are identical after collapsing whitespace (paragraph
    breaks are layout: a paragraph split or merged with the same words is
    ``none``).

``cosmetic``
    Every difference is one of: punctuation, quote style („“ "" «» ‘’),
    dash style, letter case, whitespace (a missing or extra space, i.e. the
    words are equal once spaces are removed), a figure written another way
    with the same value and unit ("50.000" -> "50 000" -> "fünfzigtausend",
    "10 %" -> "10 Prozent"), a doubled word removed ("die die" -> "die"),
    an English negative contraction spelled out or contracted ("did not" ->
    "didn't"), a pure reorder of unchanged sentences (``move``: every fact is
    still stated, so it is reported but not substantive), or a typo fix.

    Typo rule: a one-word-for-one-word replacement where neither word is a
    figure or a negation word, the longer word has at least 5 letters, and
    the words are one edit apart (Damerau-Levenshtein distance 1, case-folded),
    where that edit is
      - a swap of two adjacent letters ("Bundestga" -> "Bundestag"), or
      - one letter inserted/deleted, not as the last letter (so
        "Regirung" -> "Regierung" is a typo, but "troop" -> "troops" and
        "Minister" -> "Ministers" are not: those are inflections), or
      - one letter substituted by a keyboard neighbour, only in a lowercase
        word ("regierunf" -> "regierung"). Capitalised words never get the
        substitution allowance: "Meier" -> "Meyer" or "Anstieg" -> "Abstieg"
        are names or nouns that changed, hence substantive.

``substantive``
    Anything else: a figure's value or unit changed, added or removed; a
    date/time changed; a negation (nicht, kein*, nie, niemals, not, no,
    never, n't, ...) added or removed; a name or any other word changed;
    a sentence or paragraph added or removed.

Alignment: sentences are aligned first (difflib over whole sentences, which is
cheap even for 10,000-word articles), identical sentences found in a removed
and an added place are moves, and only the remaining unmatched stretches are
diffed word by word, with each figure collapsed to one token whose key is its
normalised value and unit. Figures inside a wholly added or removed sentence
are not reported as figure changes: the sentence change itself is reported.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from difflib import SequenceMatcher
from typing import Any, Iterable

from archiver.changes.extract import Article
from archiver.changes.figures import Figure, find_figures, guess_language, value_key

log = logging.getLogger(__name__)

__all__ = ["FigureChange", "TextChange", "DiffResult", "diff_articles", "render_terminal", "split_sentences"]

SIGNIFICANCES = ("none", "cosmetic", "substantive")
_COSMETIC_KINDS = {"contraction", "punctuation", "case", "spelling", "figure-format", "whitespace", "typo", "doubled-word", "move"}


@dataclass
class FigureChange:
    """A figure whose value changed (a side is None when added/removed)."""

    before: str | None
    after: str | None
    before_value: Decimal | None
    after_value: Decimal | None
    context: str
    noun: str | None = None
    unit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before, "after": self.after,
            "before_value": _num(self.before_value), "after_value": _num(self.after_value),
            "context": self.context, "noun": self.noun, "unit": self.unit,
        }


@dataclass
class TextChange:
    """One textual change; ``kind`` says why it is (or is not) substantive."""

    op: str  # replace | insert | delete | move
    before: str | None
    after: str | None
    kind: str = "word"
    substantive: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "before": self.before, "after": self.after, "kind": self.kind}


@dataclass
class DiffResult:
    """The outcome of :func:`diff_articles`; ``to_json`` is the CLI contract shape."""

    significance: str
    figures: list[FigureChange] = field(default_factory=list)
    changes: list[TextChange] = field(default_factory=list)
    hunks: list[list[tuple[str, str]]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "significance": self.significance,
            "figures": [f.to_json() for f in self.figures],
            "changes": [c.to_json() for c in self.changes],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "DiffResult":
        """Rebuild a stored result (no word-level hunks: rendering falls back to the changes)."""

        def dec(v: Any) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        figures = [
            FigureChange(f.get("before"), f.get("after"), dec(f.get("before_value")), dec(f.get("after_value")),
                         f.get("context") or "", f.get("noun"), f.get("unit"))
            for f in d.get("figures") or []
        ]
        changes = [
            TextChange(c["op"], c.get("before"), c.get("after"), c.get("kind") or "word",
                       (c.get("kind") or "word") not in _COSMETIC_KINDS)
            for c in d.get("changes") or []
        ]
        return cls(d.get("significance") or "none", figures, changes)


def _num(v: Decimal | None) -> int | float | None:
    if v is None:
        return None
    if v == v.to_integral_value():
        return int(v)
    return float(v)


# ---------------------------------------------------------------- sentences

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
class _Unit:
    text: str
    block: int  # -1 for the title


def _units(article: Article) -> list[_Unit]:
    units = [_Unit(_WS.sub(" ", article.title).strip(), -1)] if article.title.strip() else []
    for i, block in enumerate(article.blocks):
        units.extend(_Unit(s, i) for s in split_sentences(block))
    return units


# ---------------------------------------------------------------- tokens

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


def _key(raw: str) -> str:
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", raw).casefold())


def _tokenize(units: list[_Unit], idx: Iterable[int], language: str | None) -> list[_Tok]:
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
            key = "#" + value_key(piece_fig) if piece_fig else _key(raw)
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
    kb, ka = _key(before), _key(after)
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


def _has_negation(toks: list[_Tok]) -> bool:
    return any(t.key in NEGATIONS or re.search(r"n['’]t\b", t.raw, re.IGNORECASE) for t in toks)


# ---------------------------------------------------------------- the diff


class _Builder:
    """Collects changes, figure changes and render hunks for one diff."""

    def __init__(self, ub: list[_Unit], ua: list[_Unit]) -> None:
        self.ub, self.ua = ub, ua
        self.changes: list[TextChange] = []
        self.figures: list[FigureChange] = []
        self.hunks: list[list[tuple[str, str]]] = []

    def fig_change(self, b: _Tok | None, a: _Tok | None) -> None:
        ctx_tok = a if a is not None else b
        assert ctx_tok is not None
        ctx = (self.ua if a is not None else self.ub)[ctx_tok.sent].text
        fb, fa = (b.fig if b else None), (a.fig if a else None)
        self.figures.append(FigureChange(
            fb.text if fb else None, fa.text if fa else None,
            fb.value if fb else None, fa.value if fa else None, ctx,
            (fa.noun if fa else None) or (fb.noun if fb else None),
            (fa.unit if fa else None) or (fb.unit if fb else None),
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
        big = len(bt) > 3000 and len(at) > 3000
        sm = SequenceMatcher(None, kb, ka, autojunk=big)
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

    def _whole(self, op: str, idx: list[int], units: list[_Unit]) -> None:
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
        for i in range(max(len(fb), len(fa))):
            b = fb[i] if i < len(fb) else None
            a = fa[i] if i < len(fa) else None
            if b is None or a is None or b.key != a.key:
                self.fig_change(b, a)
        if fb or fa:
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

    def _indel(self, op: str, T: list[_Tok], side: list[_Tok], i1: int, units: list[_Unit], hunk: list[tuple[str, str]]) -> None:
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


def _pair_moved_edits(
    regions: list[tuple[list[int], list[int]]], ub: list[_Unit], ua: list[_Unit], builder: _Builder
) -> list[tuple[list[int], list[int]]]:
    """Pair a sentence removed in one place with a similar one added elsewhere (moved and edited).

    Only one-sided regions take part; the pairing is bounded so a rewrite of a
    whole long article stays linear-ish. A pair becomes its own region, so it
    is word-diffed instead of being reported as a removal plus an addition.
    """
    dels = [i for bi, ai in regions if not ai for i in bi]
    adds = [j for bi, ai in regions if not bi for j in ai]
    if not dels or not adds or len(dels) * len(adds) > 20000:
        return regions
    wb = {i: [_key(w) for w in ub[i].text.split()] for i in dels}
    wa = {j: [_key(w) for w in ua[j].text.split()] for j in adds}
    pairs: list[tuple[float, int, int]] = []
    sm = SequenceMatcher(None, autojunk=False)
    for j in adds:
        sm.set_seq2(wa[j])  # b2j is built once per added sentence
        for i in dels:
            sm.set_seq1(wb[i])
            if sm.real_quick_ratio() >= 0.7 and sm.quick_ratio() >= 0.7:
                r = sm.ratio()
                if r >= 0.7:
                    pairs.append((-r, i, j))
    used_b: set[int] = set()
    used_a: set[int] = set()
    out: list[tuple[list[int], list[int]]] = []
    for _, i, j in sorted(pairs):
        if i in used_b or j in used_a:
            continue
        used_b.add(i)
        used_a.add(j)
        builder.changes.append(TextChange("move", ub[i].text, ua[j].text, "move", False))
        out.append(([i], [j]))
    for bi, ai in regions:
        bi2 = [i for i in bi if i not in used_b]
        ai2 = [j for j in ai if j not in used_a]
        if bi2 or ai2:
            out.append((bi2, ai2))
    return out


def _flat(article: Article) -> str:
    return _WS.sub(" ", " ".join([article.title, *article.blocks])).strip()


def diff_articles(before: Article, after: Article) -> DiffResult:
    """Compare two versions of an article; see the module docstring for the rules."""
    if _flat(before) == _flat(after):
        return DiffResult("none")
    ub, ua = _units(before), _units(after)
    lang_b = before.language or after.language or guess_language(_flat(before))
    lang_a = after.language or before.language or guess_language(_flat(after))
    # title units get a marker so they only align with a title
    kb = [("\x00" if u.block == -1 else "") + u.text for u in ub]
    ka = [("\x00" if u.block == -1 else "") + u.text for u in ua]
    sm = SequenceMatcher(None, kb, ka, autojunk=False)
    regions: list[tuple[list[int], list[int]]] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op != "equal":
            regions.append((list(range(i1, i2)), list(range(j1, j2))))
    builder = _Builder(ub, ua)
    # moves: an unchanged sentence removed in one place and added in another
    removed: dict[str, list[int]] = {}
    for bi, _ in regions:
        for i in bi:
            removed.setdefault(kb[i], []).append(i)
    moved_b: set[int] = set()
    moved_a: set[int] = set()
    for _, ai in regions:
        for j in ai:
            cands = removed.get(ka[j])
            if cands:
                i = cands.pop(0)
                moved_b.add(i)
                moved_a.add(j)
                builder.changes.append(TextChange("move", ub[i].text, ua[j].text, "move", False))
                builder.hunks.append([("move", ua[j].text)])
    left = [([i for i in bi if i not in moved_b], [j for j in ai if j not in moved_a]) for bi, ai in regions]
    left = [r for r in left if r[0] or r[1]]
    for bi, ai in _pair_moved_edits(left, ub, ua, builder):
        builder.region(bi, ai, lang_b, lang_a)
    substantive = any(c.substantive for c in builder.changes) or bool(builder.figures)
    significance = "substantive" if substantive else "cosmetic"
    return DiffResult(significance, builder.figures, builder.changes, builder.hunks)


# ---------------------------------------------------------------- rendering

_RED, _GREEN, _YELLOW, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[0m"


def _fmt_value(fc_text: str | None) -> str:
    return fc_text if fc_text is not None else "—"


def _change_hunk(c: TextChange) -> list[tuple[str, str]]:
    if c.op == "move":
        return [("move", c.after or c.before or "")]
    out: list[tuple[str, str]] = []
    if c.before:
        out.append(("del", c.before))
    if c.after:
        out.append(("ins", c.after))
    return out


def render_terminal(result: DiffResult, *, color: bool) -> str:
    """A readable word diff ([-removed-] {+added+}, coloured when asked) and figure summary lines."""

    def paint(s: str, c: str) -> str:
        return f"{c}{s}{_RESET}" if color else s

    lines = [f"Significance: {result.significance}"]
    for fc in result.figures:
        noun = f" ({fc.noun})" if fc.noun else ""
        if fc.before is not None and fc.after is not None:
            lines.append(f"Figure changed: {fc.before} → {fc.after}{noun}")
        elif fc.after is not None:
            lines.append(f"Figure added: {fc.after}{noun}")
        else:
            lines.append(f"Figure removed: {fc.before}{noun}")
    hunks = result.hunks or [_change_hunk(c) for c in result.changes]
    for hunk in hunks:
        out: list[str] = []
        eq_run: list[str] = []

        def flush_eq(final: bool = False) -> None:
            if len(eq_run) > 12:
                keep = eq_run[:6] + ["…"] + eq_run[-6:] if out and not final else (["…"] + eq_run[-6:] if not out else eq_run[:6] + ["…"])
                out.extend(keep)
            else:
                out.extend(eq_run)
            eq_run.clear()

        for op, text in hunk:
            if op == "eq":
                eq_run.append(text)
                continue
            flush_eq()
            if op == "del":
                out.append(paint(f"[-{text}-]", _RED))
            elif op == "ins":
                out.append(paint(f"{{+{text}+}}", _GREEN))
            else:
                out.append(paint(f"[moved] {text}", _YELLOW))
        flush_eq(final=True)
        if out:
            lines.append(" ".join(out))
    return "\n".join(lines) + "\n"
