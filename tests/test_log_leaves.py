"""verify's check of every snapshot's log leaf (audit/logcheck.py): a leaf
missing, or not the leaf of the snapshot's manifest digest, is reported --
in log-index order, whatever order the table holds the rows in (SQLite pages
through them by rowid and sorts the few problems, as ORDER BY log_index
would: NULL, numbers, then text)."""

from __future__ import annotations

from test_verify import build, verify


def test_leaves_missing_or_wrong_are_reported_in_log_order_whatever_the_table_order(site, cli):
    build(site, cli, n_urls=3, versions=2)
    db = cli.db()
    rows = db.execute("SELECT id, log_index FROM snapshots ORDER BY rowid").fetchall()
    assert len(rows) == 6
    (a, _), (b, _), (c, ic), (d, id_), (e, ie), _ = rows
    assert ic < id_ < ie
    db.execute("UPDATE snapshots SET log_index=99 WHERE id=?", (a,))  # past the log: no leaf
    db.execute("UPDATE snapshots SET log_index='x' WHERE id=?", (b,))  # not even a number
    db.execute("UPDATE snapshots SET log_index=? WHERE id=?", (ie, c))  # three leaves taken round: none is theirs
    db.execute("UPDATE snapshots SET log_index=? WHERE id=?", (ic, d))
    db.execute("UPDATE snapshots SET log_index=? WHERE id=?", (id_, e))
    db.commit()
    db.close()
    code, report = verify(cli)
    assert code == 1
    log = [(p["snapshot"], p["kind"], p["detail"]) for p in report["problems"] if p["kind"].startswith("log-")]
    mismatch = "is not this snapshot's manifest digest"
    assert log == [(d, "log-mismatch", f"log leaf {ic} {mismatch}"), (e, "log-mismatch", f"log leaf {id_} {mismatch}"),
                   (c, "log-mismatch", f"log leaf {ie} {mismatch}"), (a, "log-missing", "log has no leaf 99"),
                   (b, "log-missing", "log has no leaf x")], log
    code, only = verify(cli, _url_of(cli, c))  # c and d: one URL's two snapshots
    assert [p["snapshot"] for p in only["problems"] if p["kind"].startswith("log-")] == [d, c]


def _url_of(cli, sid: str) -> str:
    db = cli.db()
    try:
        return db.execute("SELECT url FROM snapshots WHERE id=?", (sid,)).fetchone()[0]
    finally:
        db.close()
