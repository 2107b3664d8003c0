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
A long unmatched stretch is first cut into small pieces by pairing its
sentences (:mod:`archiver.changes.pairing`), so the cost stays linear in the
article's length however much of it changed.

The parts: :mod:`~archiver.changes.sentences` (splitting),
:mod:`~archiver.changes.pairing` (which sentences to compare),
:mod:`~archiver.changes.rules` (the significance rules per word),
:mod:`~archiver.changes.result` (the outcome) and
:mod:`~archiver.changes.render` (terminal output).
"""

from __future__ import annotations

import logging
from collections import deque

from archiver.changes.align import bounded_opcodes
from archiver.changes.extract import Article
from archiver.changes.figures import guess_language
from archiver.changes.pairing import pair_moved_edits, pieces
from archiver.changes.render import render_terminal
from archiver.changes.result import SIGNIFICANCES, DiffResult, FigureChange, TextChange, merge_figures
from archiver.changes.rules import NEGATIONS, Builder, is_typo_fix
from archiver.changes.sentences import flat, split_sentences, units

log = logging.getLogger(__name__)

__all__ = [
    "FigureChange", "TextChange", "DiffResult", "diff_articles", "render_terminal", "split_sentences",
    "is_typo_fix", "NEGATIONS", "SIGNIFICANCES",
]

#: what difflib aligns sentence by sentence: sentences on both sides, and
#: pairs of equal sentences (see archiver/changes/align.py)
ALIGN_UNITS = 4_000
ALIGN_PAIRS = 8_000


def _sentence_regions(kb: list[str], ka: list[str]) -> list[tuple[list[int], list[int]]]:
    """The unmatched stretches (before indexes, after indexes) of two sentence lists.

    Articles (a few hundred sentences, few repeated) are aligned by difflib
    whole, as always. Beyond the bounds (a hostile page: archiver/changes/
    align.py) the equal start and end are matched first, the rest by difflib
    if it is within them, else as one stretch, whose sentences found on both
    sides become moves."""
    return [(list(range(i1, i2)), list(range(j1, j2)))
            for op, i1, i2, j1, j2 in bounded_opcodes(kb, ka, ALIGN_UNITS, ALIGN_PAIRS) if op != "equal"]


def diff_articles(before: Article, after: Article) -> DiffResult:
    """Compare two versions of an article; see the module docstring for the rules."""
    if flat(before) == flat(after):
        return DiffResult("none")
    ub, ua = units(before), units(after)
    lang_b = before.language or after.language or guess_language(flat(before))
    lang_a = after.language or before.language or guess_language(flat(after))
    # title units get a marker so they only align with a title
    kb = [("\x00" if u.block == -1 else "") + u.text for u in ub]
    ka = [("\x00" if u.block == -1 else "") + u.text for u in ua]
    regions = _sentence_regions(kb, ka)
    builder = Builder(ub, ua)
    # moves: an unchanged sentence removed in one place and added in another
    removed: dict[str, deque[int]] = {}  # a deque: a sentence repeated n times costs n, not n**2
    for bi, _ in regions:
        for i in bi:
            removed.setdefault(kb[i], deque()).append(i)
    moved_b: set[int] = set()
    moved_a: set[int] = set()
    for _, ai in regions:
        for j in ai:
            cands = removed.get(ka[j])
            if cands:
                i = cands.popleft()
                moved_b.add(i)
                moved_a.add(j)
                builder.changes.append(TextChange("move", ub[i].text, ua[j].text, "move", False))
                builder.hunks.append([("move", ua[j].text)])
    left = [([i for i in bi if i not in moved_b], [j for j in ai if j not in moved_a]) for bi, ai in regions]
    left = [r for r in left if r[0] or r[1]]
    for bi, ai in pair_moved_edits(left, ub, ua, builder):
        for how, pb, pa in pieces(bi, ai, ub, ua):
            if how == "whole":
                builder.whole(pb, pa)
            else:
                builder.region(pb, pa, lang_b, lang_a)
    substantive = any(c.substantive for c in builder.changes) or bool(builder.figures)
    significance = "substantive" if substantive else "cosmetic"
    return DiffResult(significance, merge_figures(builder.figures), builder.changes, builder.hunks)
