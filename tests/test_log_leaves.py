"""verify's check of every snapshot's log leaf (audit/logcheck.py): a leaf
missing, or not the leaf of the snapshot's manifest digest, is reported --
in log-index order, whatever order the table holds the rows in (SQLite pages
through them by rowid and sorts the few problems, as ORDER BY log_index
would: NULL, numbers, then text)."""

from __future__ import annotations

import sqlite3

from test_verify import build, verify


def test_leaves_missing_or_wrong_are_reported_in_log_order_whatever_the_table_order(site, bcli):
    """On both configurations (PostgreSQL pages by its primary key); a text in
    the integer column only SQLite's loose typing lets in."""
    cli = bcli
    build(site, cli, n_urls=3, versions=2)
    db = cli.db()
    rows = db.execute("SELECT id, log_index FROM snapshots ORDER BY log_index").fetchall()
    assert len(rows) == 6
    (a, _), (b, _), (c, ic), (d, id_), (e, ie), _ = rows
    assert ic < id_ < ie
    db.execute("UPDATE snapshots SET log_index=99 WHERE id=?", (a,))  # past the log: no leaf
    if not cli.shared:
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
                   *([] if cli.shared else [(b, "log-missing", "log has no leaf x")])], log
    code, only = verify(cli, _url_of(cli, c))  # c and d: one URL's two snapshots
    assert [p["snapshot"] for p in only["problems"] if p["kind"].startswith("log-")] == [d, c]


def test_paging_through_the_snapshots_uses_a_key_an_index_holds(site, bcli):
    """The log check's pages of snapshots are read by a key an index holds: by
    log index (no index) every page sorted the whole table, quadratic in the
    archive. Asked of the database's own query plan."""
    from archiver.audit.logcheck import leaf_pages, page_sql

    cli = bcli
    build(site, cli, n_urls=1, versions=1)
    db = cli.db()
    try:
        sql, key, tie, where, start = leaf_pages(db if cli.shared else sqlite3.connect(":memory:"))
        page = page_sql(sql, key, tie, where)
        if cli.shared:  # a sort the planner cannot do without stays in the plan, at any cost
            db.execute("SET enable_sort = off")
            plan = " ".join(r[0] for r in db.execute("EXPLAIN " + page, (start,)).fetchall())
            assert "Sort" not in plan.replace("Sort Key", ""), plan
        else:
            plan = " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + page, (start,)).fetchall())
            assert "TEMP B-TREE" not in plan, plan
    finally:
        db.close()


def _url_of(cli, sid: str) -> str:
    db = cli.db()
    try:
        return db.execute("SELECT url FROM snapshots WHERE id=?", (sid,)).fetchone()[0]
    finally:
        db.close()
