"""Pairing sentences, so the word diff only ever runs over small pieces.

Why: a word diff (difflib) over a whole changed region costs about the square
of its length, so a rewrite of every sentence of a long article (or a
mis-extraction) took seconds. Sentences are paired first -- in order, by the
overlap of their words, within a band around the diagonal -- and the region is
cut into pieces of at most :data:`PIECE_WORDS` words a side, each a run of
pairs with the unpaired sentences between them. A piece is word-diffed as
before (so a sentence split in two or merged stays a punctuation change);
a run of unpaired sentences too long for one piece is reported as sentences
removed and added. The cost is linear in the region's length.

Also here: pairing a sentence removed in one place with a similar one added
elsewhere (moved and edited).
"""

from __future__ import annotations

from difflib import SequenceMatcher

from archiver.changes.result import TextChange
from archiver.changes.rules import Builder, word_key
from archiver.changes.sentences import Unit

PIECE_WORDS = 120  # words a side a piece may have; a region within it is diffed whole
MIN_SIMILARITY = 0.5  # Dice overlap of two sentences' word sets to pair them
MAX_BAND = 40  # sentences either side of the diagonal a pair may lie

Region = tuple[list[int], list[int]]


def _words(units: list[Unit], i: int) -> set[str]:
    return {k for k in (word_key(w) for w in units[i].text.split()) if k}


def _size(units: list[Unit], idx: list[int]) -> int:
    return sum(len(units[i].text.split()) for i in idx)


def _similarity(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def pair_in_order(bi: list[int], ai: list[int], ub: list[Unit], ua: list[Unit]) -> list[tuple[int, int]]:
    """The monotone pairing of the region's sentences with the greatest total
    similarity, searched in a band of the diagonal (positions within ``bi``/``ai``)."""
    n, m = len(bi), len(ai)
    band = min(MAX_BAND, abs(n - m) + 6)
    wb = [_words(ub, i) for i in bi]
    wa = [_words(ua, j) for j in ai]
    lo = [max(0, (i * m) // max(n, 1) - band) for i in range(n)]
    hi = [min(m - 1, (i * m) // max(n, 1) + band) for i in range(n)]
    score: list[dict[int, float]] = []
    step: list[dict[int, int]] = []  # 0: pair, 1: skip a before-sentence, 2: skip an after-sentence

    def get(i: int, j: int) -> float:
        while i >= 0 and j >= 0:
            if j > hi[i]:
                j = hi[i]
            elif j < lo[i]:
                i -= 1
            else:
                return score[i][j]
        return 0.0

    for i in range(n):
        row: dict[int, float] = {}
        moves: dict[int, int] = {}
        for j in range(lo[i], hi[i] + 1):
            best, how = get(i - 1, j), 1
            left = row[j - 1] if j - 1 in row else get(i - 1, j - 1)
            if left > best:
                best, how = left, 2
            sim = _similarity(wb[i], wa[j])
            if sim >= MIN_SIMILARITY and get(i - 1, j - 1) + sim > best:
                best, how = get(i - 1, j - 1) + sim, 0
            row[j], moves[j] = best, how
        score.append(row)
        step.append(moves)
    pairs: list[tuple[int, int]] = []
    i, j = n - 1, m - 1
    while i >= 0 and j >= 0:
        if j > hi[i]:
            j = hi[i]
            continue
        if j < lo[i]:
            i -= 1
            continue
        how = step[i][j]
        if how == 0:
            pairs.append((i, j))
            i, j = i - 1, j - 1
        elif how == 1:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs


def pieces(bi: list[int], ai: list[int], ub: list[Unit], ua: list[Unit]) -> list[tuple[str, list[int], list[int]]]:
    """The region as ("words", before, after) pieces to word-diff and ("whole",
    before, after) runs to report as sentences removed and added.

    Each pair is word-diffed on its own (in a long stretch of similar
    sentences a word diff across sentence borders misaligns); the unpaired
    sentences between two pairs join the neighbour they resemble more, so a
    sentence split in two or merged is still diffed word by word.
    """
    if not bi or not ai or (_size(ub, bi) <= PIECE_WORDS and _size(ua, ai) <= PIECE_WORDS):
        return [("words", bi, ai)]
    pairs = pair_in_order(bi, ai, ub, ua)
    if not pairs:
        return [_alone(bi, ai, ub, ua)]
    held: list[tuple[list[int], list[int]]] = [([bi[x]], [ai[y]]) for x, y in pairs]
    between: list[list[tuple[str, list[int], list[int]]]] = [[] for _ in range(len(pairs) + 1)]
    bounds = [(-1, -1), *pairs, (len(bi), len(ai))]
    for k in range(len(pairs) + 1):
        gb = bi[bounds[k][0] + 1 : bounds[k + 1][0]]
        ga = ai[bounds[k][1] + 1 : bounds[k + 1][1]]
        if not gb and not ga:
            continue
        prev = held[k - 1] if k > 0 else None
        nxt = held[k] if k < len(pairs) else None
        target = _closer(gb, ga, prev, nxt, ub, ua)
        if target is not None and _fits(target, gb, ga, ub, ua):
            if target is prev:
                target[0].extend(gb)
                target[1].extend(ga)
            else:
                target[0][:0] = gb
                target[1][:0] = ga
        else:
            between[k].append(_alone(gb, ga, ub, ua))
    out: list[tuple[str, list[int], list[int]]] = []
    for k, (pb, pa) in enumerate(held):
        out.extend(between[k])
        out.append(("words", pb, pa))
    out.extend(between[-1])
    return out


def _alone(gb: list[int], ga: list[int], ub: list[Unit], ua: list[Unit]) -> tuple[str, list[int], list[int]]:
    small = _size(ub, gb) <= PIECE_WORDS and _size(ua, ga) <= PIECE_WORDS
    return ("words" if small else "whole", gb, ga)


def _fits(piece: Region, gb: list[int], ga: list[int], ub: list[Unit], ua: list[Unit]) -> bool:
    return _size(ub, piece[0] + gb) <= PIECE_WORDS and _size(ua, piece[1] + ga) <= PIECE_WORDS


def _closer(
    gb: list[int], ga: list[int], prev: Region | None, nxt: Region | None, ub: list[Unit], ua: list[Unit]
) -> Region | None:
    """The neighbouring pair whose other side shares more words with the gap."""
    if prev is None or nxt is None:
        return prev or nxt
    gap = set().union(*(_words(ub, i) for i in gb), *(_words(ua, j) for j in ga))

    def other(piece: Region) -> set[str]:
        return set().union(*(_words(ua, j) for j in piece[1]), *(_words(ub, i) for i in piece[0]))

    return prev if _similarity(gap, other(prev)) >= _similarity(gap, other(nxt)) else nxt


def pair_moved_edits(regions: list[Region], ub: list[Unit], ua: list[Unit], builder: Builder) -> list[Region]:
    """Pair a sentence removed in one place with a similar one added elsewhere (moved and edited).

    Only one-sided regions take part; the pairing is bounded so a rewrite of a
    whole long article stays linear-ish. A pair becomes its own region, so it
    is word-diffed instead of being reported as a removal plus an addition.
    """
    dels = [i for bi, ai in regions if not ai for i in bi]
    adds = [j for bi, ai in regions if not bi for j in ai]
    if not dels or not adds or len(dels) * len(adds) > 20000:
        return regions
    wb = {i: [word_key(w) for w in ub[i].text.split()] for i in dels}
    wa = {j: [word_key(w) for w in ua[j].text.split()] for j in adds}
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
    out: list[Region] = []
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
