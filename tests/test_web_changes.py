"""The Changes list: newest first across URLs and significances, paged, from
the index (schema 3) rather than a scan of every snapshot."""

from __future__ import annotations

import sqlite3

from archiver.archive import Archive
from archiver.config import load
from conftest import article_html


def test_recent_changes_merge_significances_newest_first(site, cli):
    urls = [site.url(f"/a/{i}") for i in range(3)]
    texts = {
        0: ["Es kamen 300 Menschen.", "Es kamen 400 Menschen.", "Es kamen 400 Menschen!"],  # substantive, cosmetic
        1: ["Der Rat tagte.", "Der Rat tagte nicht."],  # substantive
        2: ["Die Brücke ist gesperrt.", "Die Brücke ist gesperrt."],  # none
    }
    order = []
    for step in range(3):
        for i, versions in texts.items():
            if step < len(versions):
                site.page(f"/a/{i}", article_html("Bericht", [versions[step]]))
                r = cli("snapshot", urls[i], "--json")
                assert r.code == 0, r.err
                order.append((r.lines()[0]["id"], r.lines()[0]["significance"]))
    settings = load(None, environ={})
    settings.archive.data_dir = str(cli.data_dir)
    with Archive(settings) as archive:
        changes = [(r.id, r.significance) for r in archive.recent_changes(("substantive", "cosmetic"))]
        expected = [x for x in reversed(order) if x[1] in ("substantive", "cosmetic")]
        assert [s for _, s in expected] == ["cosmetic", "substantive", "substantive"]
        assert changes == expected
        assert [r.id for r in archive.recent_changes(("substantive", "cosmetic"), limit=1, offset=1)] == [expected[1][0]]
        assert [r.url for r in archive.recent_changes(("substantive",), url_contains="/a/1")] == [urls[1]]
        assert archive.recent_changes(("substantive",), url_contains="%") == []  # LIKE wildcards are literal
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as con:
        plan = con.execute("EXPLAIN QUERY PLAN SELECT * FROM snapshots WHERE significance='substantive' "
                           "ORDER BY captured_at DESC, id DESC LIMIT 5").fetchall()
    assert "snapshots_substantive" in " ".join(str(p) for p in plan)  # its partial index (schema 7)


def test_sources_search_pages_in_sql(cli):
    for i in range(7):
        assert cli("watch", f"http://127.0.0.1:9/story_{i}", "--every", "1h").code == 0
    assert cli("watch", "http://127.0.0.1:9/other", "--every", "1h").code == 0
    from datetime import datetime, timezone

    from archiver.daemon.sources import Sources
    from store.index import Index

    index = Index(cli.data_dir / "index.sqlite3")
    try:
        sources = Sources(index, lambda: datetime.now(timezone.utc))
        page, total = sources.search("story_", limit=3, offset=3)
        assert total == 7 and [s.url for s in page] == [f"http://127.0.0.1:9/story_{i}" for i in (3, 4, 5)]
        assert sources.search("story%", limit=10) == ([], 0)  # wildcards are literal
        assert sources.search("", limit=100)[1] == 8
    finally:
        index.close()
