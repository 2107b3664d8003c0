"""bench/realworld.py end to end on team-written pages (the real pages live
outside the project): every change kind is generated, captured through the
real Archive on loopback and scored, and the report shows per-publisher rows."""

from __future__ import annotations

import io
import shutil
import sys
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import realedits  # noqa: E402
import realworld  # noqa: E402

CORPUS = REPO / "tests" / "corpus"


def test_generator_makes_every_kind_on_a_news_page() -> None:
    page = (CORPUS / "51-noise-realworld-de" / "before.html").read_text(encoding="utf-8")
    paras, changes = realedits.changes("de", page)
    assert len(paras) >= 4 and all(len(p.text) >= 120 for p in paras)
    kinds = {c.kind for c in changes}
    assert {"clock+comments", "inline teaser rotated", "recommendation box rotated", "redesign wrappers", "typo fixed",
            "figure changed", "negation added", "sentence removed", "paragraph removed"} <= kinds
    for c in changes:
        assert c.before != c.after, c.kind
    fig = next(c for c in changes if c.kind == "figure changed")
    (before, after), = fig.figures
    assert before != after


def test_realworld_bench_runs_through_capture(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    shutil.copy(CORPUS / "51-noise-realworld-de" / "before.html", pages / "de-01.html")
    shutil.copy(CORPUS / "52-noise-realworld-en" / "before.html", pages / "en-01.html")
    out = io.StringIO()
    with redirect_stdout(out):
        code = realworld.main(["--pages", str(pages)])
    report = out.getvalue()
    assert code == 0, report
    assert "captured through Archive.snapshot" in report
    assert "de-01.html" in report and "en-01.html" in report
    total = next(line for line in report.splitlines() if line.startswith("all "))
    alarms, found, figures, right, paragraphs = total.split()[1:]
    assert alarms.startswith("0/") and found.split("/")[0] == found.split("/")[1] and right.split("/")[0] == right.split("/")[1]
    assert paragraphs.split("/")[0] == paragraphs.split("/")[1] != "0"
