"""The labelled corpus (tests/corpus/NN-name/): every case must be judged right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archiver.changes.diff import diff_articles
from archiver.changes.extract import extract_article

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir() and (p / "expected.json").exists())


def test_corpus_is_big_and_covers_every_kind() -> None:
    kinds = {json.loads((c / "expected.json").read_text(encoding="utf-8"))["kind"] for c in CASES}
    assert len(CASES) >= 32
    assert {"noise", "typo", "punctuation", "quote-style", "whitespace", "figure-format", "figure", "name", "date",
            "negation", "sentence-added", "sentence-removed", "paragraph-added", "paragraph-removed", "move", "headline"} <= kinds
    langs = {json.loads((c / "expected.json").read_text(encoding="utf-8"))["language"] for c in CASES}
    assert langs == {"de", "en"}


def test_chrome_differs_in_most_pairs() -> None:
    differing = sum((c / "before.html").read_bytes() != (c / "after.html").read_bytes() for c in CASES)
    noise = [c for c in CASES if "noise" in c.name]
    assert differing == len(CASES)
    assert all((c / "before.html").read_bytes() != (c / "after.html").read_bytes() for c in noise)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    before = extract_article((case / "before.html").read_bytes())
    after = extract_article((case / "after.html").read_bytes())
    assert before.language == after.language == expected["language"]
    result = diff_articles(before, after).to_json()
    assert result["significance"] == expected["significance"], result["changes"]
    got = sorted((f["before_value"], f["after_value"]) for f in result["figures"])
    want = sorted((f["before_value"], f["after_value"]) for f in expected["figures"])
    assert got == want, result["figures"]
