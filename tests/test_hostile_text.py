"""A captured site cannot make the diff take hours (text within the extraction caps).

The diff of a page's last two captures runs in the capture (its significance
is signed) and in every reader. Its parts were quadratic in the text: the
sentence splitter on "A. A. A. ..." (searched all the text since the last
break at every full stop), the sentence alignment on one sentence repeated
(difflib visits every equal pair), the word diff on one endless sentence,
the figure reader on "1 1 1 ..." (each figure compared with every one found
before, and its noun searched for to the end of the text).
Each case below took hours at these sizes on the old code (minutes at a
tenth of them); a capture and a diff now finish within the subprocess
timeout, with the verdict the change deserves."""

from __future__ import annotations

import itertools

import pytest

from archiver.changes.diff import diff_articles
from archiver.changes.extract import extract_article
from archiver.changes.figures import find_figures
from archiver.changes.sentences import split_sentences


def _page(body: bytes, ending: bytes) -> bytes:
    return (b"<html><head><title>T</title></head><body><article><h1>T</h1><p>" + body + b"</p><p>" + ending
            + b"</p></article></body></html>")


@pytest.mark.parametrize("unit", [b"A. ", b"Wort. "], ids=["never-a-break", "one-sentence-repeated"])
def test_capturing_a_page_of_one_sentence_repeated_is_not_quadratic(site, cli, unit: bytes) -> None:
    body = unit * (600_000 // len(unit))
    site.page("/a", _page(body, b"Ende mit 5 Euro."))
    url = site.url("/a")
    assert cli.process("snapshot", url, timeout=120).code == 0
    site.page("/a", _page(body, b"Ende mit 7 Euro."))
    r = cli.process("snapshot", "--json", url, timeout=120)
    assert r.code == 0, r.err
    d = cli.process("diff", "--json", url, timeout=120)
    assert d.code == 0, d.err
    diff = d.json()
    assert diff["significance"] == "substantive"
    assert [(f["before"], f["after"]) for f in diff["figures"]] == [("5 Euro", "7 Euro")]


def test_capturing_a_changed_page_of_figures_is_not_quadratic(site, cli) -> None:
    """The figures are read in what changed: here one endless sentence of them."""
    site.page("/a", _page(b"1 " * 300_000 + b"Menschen.", b"Ende."))
    url = site.url("/a")
    assert cli.process("snapshot", url, timeout=120).code == 0
    site.page("/a", _page(b"2 " + b"1 " * 300_000 + b"Menschen.", b"Ende."))
    assert cli.process("snapshot", url, timeout=120).code == 0
    d = cli.process("diff", "--json", url, timeout=120)
    assert d.code == 0, d.err
    assert d.json()["significance"] == "substantive"


def test_the_splitter_reads_abbreviations_as_before() -> None:
    text = "Dr. Meier kam um 12. März an. Er sah z. B. A. Smith. Ein sehr langes Wort Verwaltungsgebäude. Ende."
    assert split_sentences(text) == [
        "Dr. Meier kam um 12. März an.", "Er sah z. B. A. Smith.", "Ein sehr langes Wort Verwaltungsgebäude.", "Ende."]
    assert len(split_sentences("A. " * 300_000)) == 1
    assert len(split_sentences("." * 1_000_000 + " Next")) == 2


def _article(body: bytes):  # type: ignore[no-untyped-def]
    return extract_article(_page(body, b"Schluss."))


@pytest.mark.timeout(120)
def test_a_reordered_repetition_is_aligned_in_bounded_time() -> None:
    before = _article(b"Wort. " * 100_000 + b"Neu.")
    after = _article(b"Neu. " + b"Wort. " * 100_000)
    result = diff_articles(before, after)
    assert result.significance == "cosmetic"  # only moves
    assert {c.kind for c in result.changes} == {"move"}


@pytest.mark.timeout(120)
def test_an_endless_sentence_with_its_words_swapped_is_reported_whole() -> None:
    words = [b"w%d" % i for i in range(60_000)]
    swapped = list(itertools.chain.from_iterable((words[i + 1], words[i]) for i in range(0, len(words), 2)))
    result = diff_articles(_article(b" ".join(words) + b"."), _article(b" ".join(swapped) + b"."))
    assert result.significance == "substantive"
    assert [c.op for c in result.changes] == ["delete", "insert"]


@pytest.mark.timeout(120)
def test_a_text_of_figures_is_read_in_linear_time() -> None:
    figures = find_figures("1 " * 500_000 + "5 Menschen", "de")
    assert len(figures) == 500_001 and figures[-1].noun == "Menschen" and figures[0].noun is None


@pytest.mark.timeout(120)
def test_the_desks_compare_page_lays_out_hostile_texts_in_bounded_time() -> None:
    from archiver.web.textdiff import diff_rows

    rows = diff_rows("\n".join(["Wort."] * 30_000) + "\nNeu.", "Neu.\n" + "\n".join(["Wort."] * 30_000), set())
    assert len(rows) == 30_001 and {r.op for r in rows} == {"replace"}
    rows = diff_rows("a " * 300_000 + "x", "y " + "a " * 300_000, set())
    assert [(s.op, s.text[:2]) for s in rows[0].inline] == [("del", "a "), ("ins", "y ")]
    rows = diff_rows("Der Mann kam um 12 Uhr an.", "Der Mann kam um 13 Uhr an.", {"12", "13"})
    assert [(s.op, s.text) for s in rows[0].inline] == [
        ("eq", "Der Mann kam um "), ("del", "12"), ("ins", "13"), ("eq", " Uhr an.")]
