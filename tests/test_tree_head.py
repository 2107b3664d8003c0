"""The signer keeps the last tree head it signed in keys/ and signs a new
checkpoint only over a log that provably extends it (provenance/treehead.py).

Threat: whoever can write the index and the WARC store (not keys/) drops or
changes the newest leaves and destroys the old evidence (their checkpoints,
their WARC files). Before, the next capture signed a checkpoint over the
rewritten tree: a fork of what was published, under the archive's key."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from conftest import article_html
from test_verify import verify


def _head(cli: Any) -> dict[str, Any]:
    path = Path(cli.settings().key_path) / "tree-head.json"
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _build(site: Any, cli: Any, n: int = 3) -> list[str]:
    urls = []
    for i in range(n):
        url = site.page(f"/p{i}", article_html(f"P{i}", [f"Es kamen {i + 1}.000 Menschen."]))
        assert cli("snapshot", url).code == 0
        urls.append(url)
    return urls


def _drop_newest(cli: Any) -> str:
    """Drop the newest snapshot with its leaf, the nodes over it, the
    checkpoints that cover it and its WARC records: no trace left in the
    index or the WARC store. Returns its id."""
    db = cli.db()
    try:
        size = db.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0]
        sid = db.execute("SELECT snapshot_id FROM log_leaves WHERE idx = ?", (size - 1,)).fetchone()[0]
        files = {r[0] for r in db.execute("SELECT COALESCE(w.warc_name, r.warc_file) FROM records r LEFT JOIN "
                                          "warc_files w ON w.file_id = r.file_id WHERE r.snapshot_id = ?", (sid,))}
        db.execute("DELETE FROM log_leaves WHERE idx = ?", (size - 1,))
        for level, idx in list(db.execute("SELECT level, idx FROM log_nodes")):
            if (idx + 1) << level > size - 1:  # a node over the dropped leaf
                db.execute("DELETE FROM log_nodes WHERE level = ? AND idx = ?", (level, idx))
        db.execute("DELETE FROM checkpoints WHERE size >= ?", (size,))
        db.execute("DELETE FROM records WHERE snapshot_id = ?", (sid,))
        db.execute("DELETE FROM snapshots WHERE id = ?", (sid,))
        db.commit()
    finally:
        db.close()
    with cli.warcs() as paths:
        for p in paths:
            if p.name in files:
                p.unlink()
    return sid


def _log(cli: Any) -> tuple[int, list[int]]:
    db = cli.db()
    try:
        return (db.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0],
                sorted(r[0] for r in db.execute("SELECT size FROM checkpoints")))
    finally:
        db.close()


def test_a_log_rewritten_in_the_index_is_never_signed(site, bcli):
    urls = _build(site, bcli)
    head = _head(bcli)
    assert head["size"] == 3
    assert verify(bcli)[0] == 0
    _drop_newest(bcli)
    before = _log(bcli)
    # The next capture would sign a checkpoint of size 3 over another tree: refused, one line, nothing signed.
    r = bcli("snapshot", urls[0])
    assert r.code == 1 and r.err.count("\n") == 1 and "refusing to sign a checkpoint" in r.err, r.err
    assert "Traceback" not in r.err
    assert _log(bcli) == before
    assert _head(bcli) == head
    # verify and repair say what happened.
    code, report = verify(bcli)
    assert code == 1 and "tree-head" in {p["kind"] for p in report["problems"]}, report["problems"]
    r = bcli("repair")
    assert r.code == 1 and "fewer than the 3" in r.err and r.err.count("\n") == 1, r.err


def test_a_changed_leaf_is_never_signed(site, cli):
    """The tree rebuilt with one leaf changed (every node recomputed, the old
    checkpoints gone): internally consistent, but not an extension of the head."""
    from archiver.provenance.log import MerkleLog
    from archiver.provenance.merkle import hash_leaf

    urls = _build(site, cli)
    with sqlite3.connect(cli.data_dir / "index.sqlite3", isolation_level=None) as db:
        leaves = [(i, h, s) for i, h, s in db.execute("SELECT idx, leaf_hash, snapshot_id FROM log_leaves ORDER BY idx")]
        db.execute("BEGIN")
        db.execute("DELETE FROM log_leaves")
        db.execute("DELETE FROM log_nodes")
        db.execute("DELETE FROM checkpoints")
        ledger = MerkleLog(db)
        for i, _h, sid in leaves:
            ledger.append(b"forged" if i == 1 else bytes(32), sid)  # leaf hashes other than the signed ones
        db.execute("COMMIT")
        assert db.execute("SELECT leaf_hash FROM log_leaves WHERE idx = 1").fetchone()[0] == hash_leaf(b"forged")
    r = cli("snapshot", urls[1])
    assert r.code == 1 and "refusing to sign a checkpoint" in r.err and "root at size 3" in r.err, r.err
    assert _log(cli) == (3, [])


def test_an_honest_log_grows_with_one_proof_per_process_and_none_per_round(site, cli, monkeypatch):
    """The cost: a process checks a consistency proof from the kept head once
    (its first round); later rounds fold the root from the edge they kept."""
    from archiver.archive import Archive
    from archiver.provenance.log import MerkleLog

    urls = _build(site, cli, 2)
    proofs: list[tuple[int, int | None]] = []
    real = MerkleLog.consistency_proof

    def counted(self: MerkleLog, size1: int, size2: int | None = None) -> list[bytes]:
        proofs.append((size1, size2))
        return real(self, size1, size2)

    monkeypatch.setattr(MerkleLog, "consistency_proof", counted)
    assert cli("snapshot", urls[0]).code == 0  # a new process, kept head at 2, log at 2: equal, no proof
    assert proofs == [] and _head(cli)["size"] == 3
    with Archive(cli.settings()) as archive:
        for _ in range(4):
            archive.snapshot(urls[1])
    assert proofs == [] and _head(cli)["size"] == 7
    # Another process appended meanwhile: this one proves the log extends its head, once.
    with Archive(cli.settings()) as first:
        first.snapshot(urls[0])  # its frontier: size 8
        assert cli("snapshot", urls[1]).code == 0  # size 9, by another process
        first.snapshot(urls[0])
        first.snapshot(urls[0])
    assert proofs == [(8, 9)], proofs
    assert _head(cli)["size"] == 11 and verify(cli)[0] == 0


def test_the_kept_head_is_never_read_through_a_symlink(site, cli, tmp_path):
    urls = _build(site, cli, 1)
    path = Path(cli.settings().key_path) / "tree-head.json"
    decoy = tmp_path / "decoy.json"
    decoy.write_text(path.read_text())
    path.unlink()
    path.symlink_to(decoy)
    r = cli("snapshot", urls[0])
    assert r.code == 1 and "symlink" in r.err and r.err.count("\n") == 1, r.err
    assert _log(cli)[0] == 1


def test_each_machine_of_a_shared_archive_keeps_its_own_head(site, tmp_path, pg_server, s3_server):
    """Two machines append to one log (real PostgreSQL and SeaweedFS): each
    keeps the head it signed in its own keys/ and proves the other's leaves
    extend it; a log rolled back below a machine's head is refused by it."""
    from conftest import CLI, _base_env, shared_env
    from test_worker_keys import _key_id

    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    root = CLI(tmp_path / "root", env, "shared")
    worker = CLI(tmp_path / "w1", {**env, "ARCHIVER_SIGNING_ROLE": "worker"}, "shared")
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0
    worker("snapshot", url)  # refused (not enrolled yet): it makes its key
    assert root("keys", "enroll", _key_id(worker)).code == 0
    for cli in (worker, root, worker, worker):
        assert cli("snapshot", url).code == 0
    assert (_head(root)["size"], _head(worker)["size"]) == (3, 5)
    assert verify(root)[0] == 0
    # The newest two leaves (both the worker's) dropped without a trace: the
    # root machine's head (3) is still a prefix, the worker's (5) is not.
    _drop_newest(root)
    _drop_newest(root)
    assert root("snapshot", url).code == 0 and root("snapshot", url).code == 0  # size 5 again, another tree
    r = worker("snapshot", url)
    assert r.code == 1 and "root at size 5 is not the one this machine signed" in r.err, r.err
    assert r.err.count("\n") == 1 and _head(worker)["size"] == 5
