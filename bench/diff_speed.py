"""Diff speed: two synthetic 10,000-word German articles, archiver's diff vs. plain difflib;
then the cost of a large change: a 200-sentence article with 24/48/96/192
consecutive sentences edited (a word and a figure each: a rewrite) or replaced
by unrelated ones (a mis-extraction), and the same rewrite of a 400- and
800-sentence article (the cost must grow linearly with length).

The baseline is difflib.SequenceMatcher over the two word lists (autojunk off,
the setting that gives a correct word diff), measured in the same run.
Run: python bench/diff_speed.py [--words N] [--repeat R]
"""

from __future__ import annotations

import argparse
import difflib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.changes.diff import diff_articles  # noqa: E402
from archiver.changes.extract import Article  # noqa: E402

SUBJECTS = ["Die Regierung", "Der Stadtrat", "Die Opposition", "Das Ministerium", "Die Polizei", "Der Verband", "Die Bahn", "Das Gericht"]
VERBS = ["beschloss", "kritisierte", "prüfte", "verschob", "bestätigte", "forderte", "meldete", "plante"]
OBJECTS = ["den Haushalt", "den Einsatz", "neue Regeln", "die Reform", "mehr Personal", "den Ausbau", "eine Untersuchung", "die Finanzierung"]
TAILS = ["am Montag in Berlin", "nach langer Debatte", "für das kommende Jahr", "trotz heftiger Kritik", "im Landkreis", "vor der Wahl"]
UNITS = ["Soldaten", "Euro", "Prozent", "Stellen", "Menschen", "Züge"]


def make_article(words: int, seed: int = 7) -> Article:
    rnd = random.Random(seed)
    blocks: list[str] = []
    count = 0
    while count < words:
        sents = []
        for _ in range(rnd.randint(3, 6)):
            n = rnd.choice([f"{rnd.randint(2, 99)}.{rnd.randint(0, 999):03d}", f"{rnd.randint(1, 9)},{rnd.randint(1, 9)}", str(rnd.randint(2, 500))])
            s = f"{rnd.choice(SUBJECTS)} {rnd.choice(VERBS)} {rnd.choice(OBJECTS)} {rnd.choice(TAILS)}, betroffen seien {n} {rnd.choice(UNITS)} in Abschnitt {count}."
            sents.append(s)
            count += len(s.split())
        blocks.append(" ".join(sents))
    return Article("Langer Bericht über den Haushalt", tuple(blocks), "de")


def edit(article: Article, seed: int = 11) -> Article:
    """A few figure changes, a sentence added, a sentence removed, a typo."""
    rnd = random.Random(seed)
    blocks = list(article.blocks)
    for i in rnd.sample(range(40, len(blocks)), 5):
        words = blocks[i].split()
        for k, w in enumerate(words):
            if w[:1].isdigit() and "." not in w and "," not in w:
                words[k] = str(int(w) + 1)
                break
        blocks[i] = " ".join(words)
    blocks[10] += " Ein neuer Satz wurde am Abend ergänzt."
    blocks[20] = blocks[20].split(". ", 1)[-1]
    blocks[30] = blocks[30].replace("Regierung", "Regirung", 1)
    return Article(article.title, tuple(blocks), article.language)


def sentence_article(sentences: int, seed: int = 5) -> Article:
    rnd = random.Random(seed)
    sents = [
        f"In Abschnitt {k} {rnd.choice(VERBS)} {rnd.choice(SUBJECTS).lower()} {rnd.choice(OBJECTS)} "
        f"{rnd.choice(TAILS)}, betroffen seien {rnd.randint(2, 500)} {rnd.choice(UNITS)}."
        for k in range(sentences)
    ]
    return Article("Langer Bericht", tuple(" ".join(sents[i:i + 5]) for i in range(0, sentences, 5)), "de")


def rewrite(article: Article, changed: int, *, unrelated: bool = False, seed: int = 13) -> Article:
    """``changed`` consecutive sentences from the middle edited (a word and a
    figure each) or, with ``unrelated``, replaced by sentences sharing nothing."""
    rnd = random.Random(seed)
    sents = [s for b in article.blocks for s in b.split(". ") if s]
    sents = [s if s.endswith(".") else s + "." for s in sents]
    start = max(0, (len(sents) - changed) // 2)
    for k in range(start, start + changed):
        if unrelated:
            sents[k] = f"Völlig anderer Text Nummer {k} über Wetter, Sport und {rnd.randint(1, 99)} Kulturtermine."
        else:
            words = sents[k].split()
            words[3] = rnd.choice([v for v in VERBS if v != words[3]])
            for i, w in enumerate(words[4:], 4):
                if w.isdigit():
                    words[i] = str(int(w) + 1)
                    break
            sents[k] = " ".join(words)
    return Article(article.title, tuple(" ".join(sents[i:i + 5]) for i in range(0, len(sents), 5)), "de")


def cpu_timed(fn, repeat: int) -> float:
    """Best CPU time of ``repeat`` runs (wall time on a shared machine measures the neighbours)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def large_changes(repeat: int) -> None:
    print("\nlarge changes (CPU ms, best of %d):" % repeat)
    print(f"{'sentences':>9} {'changed':>7} {'rewrite':>8} {'unrelated':>9}")
    base200 = sentence_article(200)
    for n in (24, 48, 96, 192):
        edited, other = rewrite(base200, n), rewrite(base200, n, unrelated=True)
        t1 = cpu_timed(lambda: diff_articles(base200, edited), repeat)
        t2 = cpu_timed(lambda: diff_articles(base200, other), repeat)
        print(f"{200:>9} {n:>7} {t1 * 1000:8.1f} {t2 * 1000:9.1f}")
    for size in (400, 800):
        base = sentence_article(size)
        edited, other = rewrite(base, size), rewrite(base, size, unrelated=True)
        t1 = cpu_timed(lambda: diff_articles(base, edited), repeat)
        t2 = cpu_timed(lambda: diff_articles(base, other), repeat)
        print(f"{size:>9} {size:>7} {t1 * 1000:8.1f} {t2 * 1000:9.1f}")


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--words", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    before = make_article(args.words)
    after = edit(before)
    wb, wa = before.text().split(), after.text().split()
    result = diff_articles(before, after)
    t_ours = timed(lambda: diff_articles(before, after), args.repeat)
    t_base = timed(lambda: difflib.SequenceMatcher(None, wb, wa, autojunk=False).get_opcodes(), args.repeat)
    print(f"words: before={len(wb)} after={len(wa)}; significance={result.significance}, "
          f"figure changes={len(result.figures)}, text changes={len(result.changes)}")
    print(f"archiver diff_articles: {t_ours * 1000:8.1f} ms (best of {args.repeat})")
    print(f"difflib word baseline:  {t_base * 1000:8.1f} ms (best of {args.repeat})")
    print(f"ratio archiver/baseline: {t_ours / t_base:.3f}")
    large_changes(args.repeat)


if __name__ == "__main__":
    main()
