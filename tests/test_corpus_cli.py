"""The labelled corpus through the real CLI: serve `before.html` on a loopback
server, `archiver snapshot`, serve `after.html`, snapshot again, then
`archiver diff --json` must give the labelled significance and figure changes,
and `history` must carry the same significance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir() and (p / "expected.json").exists())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_through_cli(case: Path, site, cli) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    url = site.page("/article", (case / "before.html").read_bytes(), content_type="text/html")
    first = cli("snapshot", url, "--json")
    assert first.code == 0, first.err
    site.page("/article", (case / "after.html").read_bytes(), content_type="text/html")
    second = cli("snapshot", url, "--json")
    assert second.code == 0, second.err
    assert second.lines()[0]["significance"] == expected["significance"]

    r = cli("diff", url, "--json")
    assert r.code == 0, r.err
    diff = r.json()
    assert diff["from"] == first.lines()[0]["id"] and diff["to"] == second.lines()[0]["id"]
    assert diff["significance"] == expected["significance"], diff["changes"]
    got = sorted((f["before_value"], f["after_value"]) for f in diff["figures"])
    want = sorted((f["before_value"], f["after_value"]) for f in expected["figures"])
    assert got == want, diff["figures"]
    for f in diff["figures"]:
        assert {"before", "after", "before_value", "after_value", "context"} <= f.keys()

    history = cli("history", url, "--json").json()
    assert [h["significance"] for h in history] == ["first", expected["significance"]]
