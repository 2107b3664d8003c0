"""Diff: significance rules, figure changes, text changes, rendering, speed."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from archiver.changes.diff import (
    DiffResult,
    diff_articles,
    is_typo_fix,
    render_terminal,
    split_sentences,
)
from archiver.changes.extract import Article

BASE_DE = (
    "Die Bundesregierung hat am 12. März beschlossen, weitere Truppen zu verlegen. Der Bundestag muss noch zustimmen.",
    "Nach Angaben des Ministeriums sollen 50.000 Soldaten bis Ende April verlegt werden. Die Kosten liegen bei 1,5 Millionen Euro pro Tag, sagte Ministerin Anna Müller.",
    "„Wir sehen keinen Plan“, sagte der Abgeordnete Peter Schmidt. Laut Umfrage unterstützen 8,5 Prozent einen Rückzug.",
    "Die Truppen sollen zunächst drei Stützpunkte beziehen. Dort lagern 10.000 Tonnen Material.",
)
BASE_EN = (
    "A storm left about 50,000 homes without power, the utility said on Tuesday.",
    "Crews restored power to 8.5 percent of customers by noon. Spokesperson Laura Bennett said three districts were worst hit.",
    "The government will release 2 million dollars in emergency funds. It did not say when.",
)


def de(*blocks: str, title: str = "Regierung schickt 50.000 Soldaten") -> Article:
    return Article(title, tuple(blocks), "de")


def en(*blocks: str, title: str = "Storm leaves 50,000 homes without power") -> Article:
    return Article(title, tuple(blocks), "en")


def edited(base: tuple[str, ...], old: str, new: str) -> tuple[str, ...]:
    joined = "\x1e".join(base)
    assert old in joined
    return tuple(joined.replace(old, new, 1).split("\x1e"))


def diff_de(old: str, new: str) -> DiffResult:
    return diff_articles(de(*BASE_DE), de(*edited(BASE_DE, old, new)))


def diff_en(old: str, new: str) -> DiffResult:
    return diff_articles(en(*BASE_EN), en(*edited(BASE_EN, old, new)))


def figure_values(r: DiffResult) -> list[tuple[object, object]]:
    return [(f.to_json()["before_value"], f.to_json()["after_value"]) for f in r.figures]


# ------------------------------------------------------------------ none

def test_identical_is_none() -> None:
    r = diff_articles(de(*BASE_DE), de(*BASE_DE))
    assert (r.significance, r.figures, r.changes) == ("none", [], [])


def test_whitespace_runs_and_paragraph_breaks_are_none() -> None:
    spaced = tuple(b.replace(" ", "  \n ") for b in BASE_DE)
    assert diff_articles(de(*BASE_DE), de(*spaced)).significance == "none"
    merged = (BASE_DE[0] + " " + BASE_DE[1], *BASE_DE[2:])
    assert diff_articles(de(*BASE_DE), de(*merged)).significance == "none"


# ------------------------------------------------------------------ cosmetic

@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Bundestag muss", "Bundestga muss"),  # transposition
        ("Ministeriums", "Ministeriuums"),  # doubled letter
        ("beschlossen,", "beschlossen"),  # punctuation
        ("„Wir sehen keinen Plan“", "»Wir sehen keinen Plan«"),  # quote style
        ("„Wir sehen keinen Plan“", '"Wir sehen keinen Plan"'),
        ("Ende April", "Ende april"),  # case
        ("50.000 Soldaten", "50 000 Soldaten"),  # same value
        ("50.000 Soldaten", "50\u202f000 Soldaten"),
        ("10.000 Tonnen", "zehntausend Tonnen"),
        ("1,5 Millionen Euro", "1.500.000 Euro"),
        ("8,5 Prozent", "8,5 %"),
        ("drei Stützpunkte", "3 Stützpunkte"),
        ("Die Kosten liegen", "DieKosten liegen"),  # missing space
        ("zu verlegen", "zu zu verlegen"),  # doubled word
        ("weitere Truppen zu verlegen.", "weitere Truppen zu verlegen!"),
        ("Truppen", "Trupen"),  # deleted letter inside the word
    ],
)
def test_cosmetic(old: str, new: str) -> None:
    # the fix direction and the breaking direction are both cosmetic
    for a, b in ((old, new), (new, old)):
        r = diff_articles(de(*edited(BASE_DE, old, a)), de(*edited(BASE_DE, old, b)))
        assert r.significance == ("none" if a == b else "cosmetic"), (a, b, r.changes)
        assert r.figures == []
        assert r.changes and all(not c.substantive for c in r.changes)


def test_cosmetic_english() -> None:
    assert diff_en("2 million dollars", "$2,000,000").significance == "cosmetic"
    assert diff_en("8.5 percent", "8.5%").significance == "cosmetic"
    assert diff_en("three districts", "3 districts").significance == "cosmetic"
    assert diff_en("government", "goverment").significance == "cosmetic"
    assert diff_en("It did not say", "It didn't say").significance == "cosmetic"
    assert diff_en("The government will release", "The government will not release").significance == "substantive"


def test_pure_move_is_cosmetic_and_reported() -> None:
    moved = (BASE_DE[0], BASE_DE[2], BASE_DE[1], BASE_DE[3])
    r = diff_articles(de(*BASE_DE), de(*moved))
    assert r.significance == "cosmetic"
    assert [c.op for c in r.changes] == ["move"] * len(split_sentences(BASE_DE[1]))


# ------------------------------------------------------------------ substantive

@pytest.mark.parametrize(
    ("old", "new", "values"),
    [
        ("50.000 Soldaten", "60.000 Soldaten", [(50000, 60000)]),
        ("8,5 Prozent", "9,5 Prozent", [(8.5, 9.5)]),
        ("1,5 Millionen Euro", "2 Millionen Euro", [(1500000, 2000000)]),
        ("drei Stützpunkte", "vier Stützpunkte", [(3, 4)]),
        ("10.000 Tonnen", "zwölftausend Tonnen", [(10000, 12000)]),
        ("am 12. März", "am 14. März", [(12, 14)]),
        ("8,5 Prozent", "8,5 Prozentpunkte", [(8.5, 8.5)]),  # unit changed
        ("50.000 Soldaten", "Soldaten", [(50000, None)]),  # figure removed
        ("sollen 50.000 Soldaten", "sollen 50.000 Soldaten und 300 Panzer", [(None, 300)]),  # figure added
    ],
)
def test_figure_change_de(old: str, new: str, values: list[tuple[object, object]]) -> None:
    r = diff_de(old, new)
    assert r.significance == "substantive"
    assert figure_values(r) == values


@pytest.mark.parametrize(
    ("old", "new", "values"),
    [
        ("50,000 homes", "65,000 homes", [(50000, 65000)]),
        ("8.5 percent", "9.5 percent", [(8.5, 9.5)]),
        ("2 million dollars", "2.5 million dollars", [(2000000, 2500000)]),
        ("three districts", "five districts", [(3, 5)]),
    ],
)
def test_figure_change_en(old: str, new: str, values: list[tuple[object, object]]) -> None:
    r = diff_en(old, new)
    assert r.significance == "substantive"
    assert figure_values(r) == values


def test_figure_change_details() -> None:
    r = diff_de("sollen 50.000 Soldaten", "sollen 60.000 Soldaten")
    (fc,) = r.figures
    assert (fc.before, fc.after, fc.noun) == ("50.000", "60.000", "Soldaten")
    assert (fc.before_value, fc.after_value) == (Decimal(50000), Decimal(60000))
    assert fc.context == "Nach Angaben des Ministeriums sollen 60.000 Soldaten bis Ende April verlegt werden."


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("Anna Müller", "Anna Meier", "name"),
        ("Peter Schmidt", "Peter Schmitt", "name"),  # one letter, but a capitalised word: a different name
        ("Bundestag muss noch zustimmen", "Bundestag muss nicht zustimmen", "negation"),
        ("muss noch zustimmen", "muss noch nicht zustimmen", "negation"),
        ("keinen Plan", "einen Plan", "negation"),
        ("weitere Truppen", "weniger Truppen", "word"),
        ("Ende April", "Ende Mai", "name"),
    ],
)
def test_substantive_words(old: str, new: str, kind: str) -> None:
    r = diff_de(old, new)
    assert r.significance == "substantive"
    assert [c.kind for c in r.changes if c.substantive] == [kind]
    assert r.figures == []


def test_english_negation_and_contractions() -> None:
    assert diff_en("It did not say when.", "It did say when.").significance == "substantive"
    r = diff_en("The government will release", "The government won't release")
    assert r.significance == "substantive"
    assert r.changes[0].kind == "negation"


def test_sentence_and_paragraph_added_removed() -> None:
    r = diff_de("Der Bundestag muss noch zustimmen.", "Der Bundestag muss noch zustimmen. Die Kosten trägt der Bund.")
    assert r.significance == "substantive"
    assert [(c.op, c.kind, c.after) for c in r.changes] == [("insert", "sentence", "Die Kosten trägt der Bund.")]
    r = diff_articles(de(*BASE_DE), de(*BASE_DE[:3]))
    assert r.significance == "substantive"
    assert [(c.op, c.kind) for c in r.changes] == [("delete", "paragraph")]
    assert r.figures == []  # figures of a removed paragraph are not figure changes
    r = diff_articles(de(*BASE_DE), de(*BASE_DE[:2], "Neu: Die Lage bleibt angespannt.", *BASE_DE[2:]))
    assert [(c.op, c.kind) for c in r.changes] == [("insert", "sentence")]


def test_headline_change() -> None:
    r = diff_articles(de(*BASE_DE), de(*BASE_DE, title="Regierung schickt 60.000 Soldaten"))
    assert r.significance == "substantive"
    assert figure_values(r) == [(50000, 60000)]
    r = diff_articles(de(*BASE_DE), de(*BASE_DE, title="Regierung zieht Soldaten ab"))
    assert r.significance == "substantive"


def test_moved_and_edited_sentence_is_word_diffed() -> None:
    after = (BASE_DE[0], BASE_DE[2], BASE_DE[1].replace("50.000", "60.000"), BASE_DE[3])
    r = diff_articles(de(*BASE_DE), de(*after))
    assert r.significance == "substantive"
    assert figure_values(r) == [(50000, 60000)]


# ------------------------------------------------------------------ typo rule

@pytest.mark.parametrize(
    ("a", "b", "typo"),
    [
        ("Bundestga", "Bundestag", True),
        ("Regirung", "Regierung", True),
        ("goverment", "government", True),
        ("recieved", "received", True),
        ("regierumg", "regierung", True),  # keyboard neighbour, lowercase
        ("regierunf", "regierung", False),  # ...but never the last letter (inflections live there)
        ("Meier", "Meyer", False),
        ("Müller", "Meier", False),
        ("Anstieg", "Abstieg", False),
        ("troop", "troops", False),  # inflection at the end
        ("Minister", "Ministers", False),
        ("rise", "rose", False),  # too short
        ("keine", "kleine", False),  # negation word
        ("increase", "decrease", False),
        ("wurde", "würde", False),
    ],
)
def test_typo_rule(a: str, b: str, typo: bool) -> None:
    assert is_typo_fix(a, b) is typo


# ------------------------------------------------------------------ output

def test_to_json_contract_shape() -> None:
    r = diff_de("sollen 50.000 Soldaten", "sollen 60.000 Soldaten")
    d = json.loads(json.dumps(r.to_json()))
    assert set(d) == {"significance", "figures", "changes"}
    assert d["significance"] == "substantive"
    fig = d["figures"][0]
    assert {"before", "after", "before_value", "after_value", "context"} <= set(fig)
    assert (fig["before_value"], fig["after_value"]) == (50000, 60000)
    assert isinstance(fig["before_value"], int)
    assert {"op", "before", "after"} <= set(d["changes"][0])
    d2 = diff_de("8,5 Prozent", "9,5 Prozent").to_json()
    assert d2["figures"][0]["after_value"] == 9.5


def test_render_terminal() -> None:
    r = diff_de("sollen 50.000 Soldaten", "sollen 60.000 Soldaten")
    plain = render_terminal(r, color=False)
    assert "Figure changed: 50.000 → 60.000 (Soldaten)" in plain
    assert "[-50.000-]" in plain and "{+60.000+}" in plain
    assert "\x1b[" not in plain
    coloured = render_terminal(r, color=True)
    assert "\x1b[31m[-50.000-]\x1b[0m" in coloured and "\x1b[32m{+60.000+}\x1b[0m" in coloured


def test_from_json_roundtrip_and_render_without_hunks() -> None:
    r = diff_de("sollen 50.000 Soldaten", "sollen 60.000 Soldaten")
    back = DiffResult.from_json(json.loads(json.dumps(r.to_json())))
    assert back.to_json() == r.to_json()
    text = render_terminal(back, color=False)
    assert "Figure changed: 50.000 → 60.000 (Soldaten)" in text and "[-50.000-] {+60.000+}" in text
    cosmetic = DiffResult.from_json(diff_de("Bundestag muss", "Bundestga muss").to_json())
    assert [c.substantive for c in cosmetic.changes] == [False]


def test_render_added_and_removed_figures_and_none() -> None:
    r = diff_de("sollen 50.000 Soldaten", "sollen 50.000 Soldaten und 300 Panzer")
    assert "Figure added: 300 (Panzer)" in render_terminal(r, color=False)
    assert "none" in render_terminal(diff_articles(de(*BASE_DE), de(*BASE_DE)), color=False)


def test_split_sentences_keeps_ordinals_and_abbreviations() -> None:
    assert split_sentences("Am 12. März kam Dr. Müller nach Berlin. Er blieb z. B. zwei Tage. Im Jahr 2023. Ende.") == [
        "Am 12. März kam Dr. Müller nach Berlin.",
        "Er blieb z. B. zwei Tage.",
        "Im Jahr 2023.",
        "Ende.",
    ]


def test_edits_in_a_long_article_are_all_found() -> None:
    """The bench's 10,000-word article and its five edited figures (its speed
    is measured in ``bench/diff_speed.py``, against a baseline in one run)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from diff_speed import edit, make_article

    before = make_article(10_000)
    r = diff_articles(before, edit(before))
    assert r.significance == "substantive"
    assert len(r.figures) == 5


def _bench_articles():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from diff_speed import rewrite, sentence_article

    return sentence_article, rewrite


def test_full_rewrite_reports_every_edited_sentence_word_by_word() -> None:
    sentence_article, rewrite = _bench_articles()
    before = sentence_article(200)
    after = rewrite(before, 192)
    r = diff_articles(before, after)
    assert r.significance == "substantive"
    # every sentence had one figure raised by one: each is a figure change, none a removed sentence
    # (the same change recurring -- equal values and noun -- is one entry with a count)
    assert sum(f.count for f in r.figures) == 192 and len(r.figures) < 192
    assert all(f.after_value == f.before_value + 1 for f in r.figures)
    assert not [c for c in r.changes if c.kind in ("sentence", "paragraph")]


def test_unrelated_replacement_is_sentences_removed_and_added() -> None:
    sentence_article, rewrite = _bench_articles()
    before = sentence_article(200)
    r = diff_articles(before, rewrite(before, 150, unrelated=True))
    assert r.significance == "substantive"
    assert {c.op for c in r.changes} == {"delete", "insert"}
    assert not r.figures  # figures inside wholly replaced sentences are not figure changes


def test_large_changed_region_is_cut_into_bounded_pieces() -> None:
    from archiver.changes.pairing import PIECE_WORDS, pieces
    from archiver.changes.sentences import units

    sentence_article, rewrite = _bench_articles()
    for size in (200, 800):
        before = sentence_article(size)
        ub, ua = units(before), units(rewrite(before, size))
        got = pieces(list(range(1, len(ub))), list(range(1, len(ua))), ub, ua)
        words = [p for p in got if p[0] == "words"]
        assert len(words) > 1 and not [p for p in got if p[0] == "whole"]
        for _, b, a in words:  # each word diff is bounded, so the whole is linear
            assert sum(len(ub[i].text.split()) for i in b) <= PIECE_WORDS
            assert sum(len(ua[j].text.split()) for j in a) <= PIECE_WORDS
        covered_b = sorted(i for _, b, _ in got for i in b)
        assert covered_b == list(range(1, len(ub)))  # nothing dropped, nothing twice


def test_sentence_split_inside_a_long_rewrite_stays_punctuation() -> None:
    sentence_article, rewrite = _bench_articles()
    before = sentence_article(200)
    after = rewrite(before, 100)
    blocks = list(after.blocks)
    mid = len(blocks) // 2
    first, rest = blocks[mid].split(". ", 1)
    blocks[mid] = first + "; " + rest[0].lower() + rest[1:]  # two sentences joined into one
    joined = type(after)(after.title, tuple(blocks), after.language)
    r = diff_articles(before, joined)
    assert not [c for c in r.changes if c.kind in ("sentence", "paragraph")]
    (joint,) = [c for c in r.changes if "; " in (c.after or "")]
    assert ". " in (joint.before or "") and not joint.substantive
