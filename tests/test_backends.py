"""The core flow on both configurations: embedded (SQLite + a WARC directory)
and shared (PostgreSQL + S3-compatible object storage, real servers)."""

from __future__ import annotations

from conftest import article_html


def test_snapshot_history_diff_verify(site, bcli):
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen zur Demonstration."]))
    first = bcli("snapshot", "--json", url)
    assert first.code == 0, first.err
    assert first.json()["significance"] == "first"
    site.page("/a", article_html("Lage", ["Es kamen 80.000 Menschen zur Demonstration."]))
    second = bcli("snapshot", "--json", url)
    assert second.json()["significance"] == "substantive"
    hist = bcli("history", "--json", url)
    assert [h["id"] for h in hist.json()] == [first.json()["id"], second.json()["id"]]
    d = bcli("diff", "--json", url).json()
    assert d["figures"][0]["before_value"] == 50000 and d["figures"][0]["after_value"] == 80000
    v = bcli("verify", "--json")
    assert v.code == 0, v.out
    assert v.json()["checked"] == 2
    assert bcli("show", url).out.count("80.000") == 1
