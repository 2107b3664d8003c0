"""verify's settled snapshots (archiver/audit/scratch.py SETTLED): the
snapshots one query after the scan says a check would find nothing wrong in
are not checked one by one. That must never hide a problem: on an archive
whose index is tampered with in each way a snapshot row can be -- its
payload, digest, signature, key, response record and its location, order in its URL's chain,
a second manifest for it -- the report is the same as when every snapshot is
checked one by one, and the untouched archive is settled by the query."""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any

import pytest

from archiver import config
from archiver.archive import Archive
from archiver.audit import scratch
from archiver.audit.verify import audit
from store.scan import iter_members
from store.warc import gzip_member
from test_verify import build, rewrite_warc


def _other_prefix(column: str, prefix: str, instead: str) -> str:
    """SQL for ``column`` with its first characters replaced by ``prefix`` --
    by ``instead`` when it starts with ``prefix`` already (a digest does one
    time in 256: the tampering would change nothing)."""
    n = len(prefix)
    return (f"CASE WHEN substr({column}, 1, {n}) = '{prefix}' THEN '{instead}' ELSE '{prefix}' END "
            f"|| substr({column}, {n + 1})")


TAMPERINGS: list[tuple[str, str]] = [  # (name, SQL on the index; :sid is one snapshot)
    ("payload", "UPDATE snapshots SET payload_sha256 = " + _other_prefix("payload_sha256", "ab", "ba") + " WHERE id = :sid"),
    ("digest", "UPDATE snapshots SET manifest_sha256 = " + _other_prefix("manifest_sha256", "cd", "dc") + " WHERE id = :sid"),
    ("no digest", "UPDATE snapshots SET manifest_sha256 = '' WHERE id = :sid"),
    ("null digest", "UPDATE snapshots SET manifest_sha256 = NULL WHERE id = :sid"),
    ("signature", "UPDATE snapshots SET signature = " + _other_prefix("signature", "AAAA", "BBBB") + " WHERE id = :sid"),
    ("null signature", "UPDATE snapshots SET signature = NULL WHERE id = :sid"),
    ("key", "UPDATE snapshots SET key_id = " + _other_prefix("key_id", "ff", "ee") + " WHERE id = :sid"),
    ("response", "UPDATE snapshots SET response_record_id = '<urn:uuid:elsewhere>' WHERE id = :sid"),
    ("response with a tab", "UPDATE snapshots SET response_record_id = response_record_id || char(9) WHERE id = :sid"),
    ("response with a line", "UPDATE snapshots SET response_record_id = char(10) || response_record_id WHERE id = :sid"),
    ("response of another snapshot", "UPDATE snapshots SET response_record_id = (SELECT MIN(response_record_id) "
                                     "FROM snapshots WHERE id != :sid) WHERE id = :sid"),
    ("its own request", "UPDATE snapshots SET response_record_id = (SELECT record_id FROM records "
                        "WHERE snapshot_id = :sid AND type = 'request' LIMIT 1) WHERE id = :sid"),
    ("location of another snapshot", "UPDATE snapshots SET (file_id, warc_file, warc_offset, warc_length) = (SELECT "
                                     "file_id, warc_file, warc_offset, warc_length FROM snapshots WHERE id != :sid "
                                     "ORDER BY id LIMIT 1) WHERE id = :sid"),
    ("length", "UPDATE snapshots SET warc_length = warc_length + 7 WHERE id = :sid"),
    ("chain", "UPDATE snapshots SET seq = seq + 100 WHERE id = :sid"),
    ("url", "UPDATE snapshots SET url = url || '?moved' WHERE id = :sid"),
    ("another's digest", "UPDATE snapshots SET manifest_sha256 = (SELECT MIN(manifest_sha256) FROM snapshots WHERE id != :sid) "
                         "WHERE id = :sid"),
]


def _audit(data_dir: Any, every: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], int]:
    """The audit's report, and how many snapshots were checked one by one."""
    report, one_by_one, _ = audit_counting(data_dir, every, monkeypatch)
    return report, one_by_one


def audit_counting(data_dir: Any, every: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], int, int]:
    """The audit's report, how many snapshots were checked one by one, and how
    many manifests' signatures the checkpoint vouched for (audit/leafvouch.py)."""
    one_by_one: list[int] = []
    vouched_for: list[int] = []
    real = scratch.ManifestTable.snapshots

    def snapshots(self: scratch.ManifestTable, every_one: bool, vouched: bool = False) -> Any:
        vouched_for.append(int(self.db.execute("SELECT COUNT(*) FROM wm WHERE leaf IS NOT NULL").fetchone()[0]))
        total, rows = real(self, every_one or every, vouched)
        listed = list(rows)
        one_by_one.append(len(listed))
        return total, iter_rows(listed)

    def iter_rows(listed: list[Any]) -> Any:
        class Rows:
            def fetchmany(self, n: int) -> list[Any]:
                out = listed[:n]
                del listed[:n]
                return out
        return Rows()

    monkeypatch.setattr(scratch.ManifestTable, "snapshots", snapshots)
    s = config.load(None, {"ARCHIVER_ALLOW_PRIVATE": "1"})
    s.archive.data_dir = str(data_dir)
    with Archive(s) as archive:
        report = audit(archive).to_json()
    monkeypatch.undo()
    return report, one_by_one[0], vouched_for[0]


def test_settled_snapshots_hide_no_problem(site, cli, tmp_path, monkeypatch):
    build(site, cli, n_urls=3, versions=3)
    report, one_by_one = _audit(cli.data_dir, False, monkeypatch)
    assert report["ok"] and report["checked"] == 9
    assert one_by_one == 0  # all settled by the query
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        sids = [r[0] for r in db.execute("SELECT id FROM snapshots ORDER BY url, seq")]
    for name, sql in TAMPERINGS:
        copy = tmp_path / name.replace(" ", "-")
        shutil.copytree(cli.data_dir, copy)
        with sqlite3.connect(copy / "index.sqlite3") as db:
            db.execute(sql, {"sid": sids[4]})
        fast, fast_count = _audit(copy, False, monkeypatch)
        slow, _ = _audit(copy, True, monkeypatch)
        assert fast == slow, name
        assert 0 < fast_count < 9, (name, fast_count)  # the tampered row (and the next in its chain) one by one
        assert not fast["ok"], name  # every tampering is reported (a row naming another response, or locating
        # it elsewhere, was not: readers follow it)


def test_a_changed_response_or_manifest_in_the_warc_is_not_settled(site, cli, tmp_path, monkeypatch):
    build(site, cli, n_urls=2, versions=2)
    for target, change in [("response", lambda b: b.replace(b"Menschen", b"Mannschaft", 1)),
                           ("metadata", lambda b: b.replace(b'"status":200', b'"status":201', 1))]:
        copy = tmp_path / target
        shutil.copytree(cli.data_dir, copy)

        def forge(headers: Any, block: bytes, target: str = target, change: Any = change) -> Any:
            return (headers, change(block)) if headers.get("WARC-Type") == target else (headers, block)

        for path in sorted((copy / "warcs").glob("*.warc.gz")):
            rewrite_warc(path, forge)
        fast, fast_count = _audit(copy, False, monkeypatch)
        slow, _ = _audit(copy, True, monkeypatch)
        assert fast == slow and not fast["ok"], target
        assert fast_count > 0


def test_a_second_manifest_for_a_snapshot_is_not_settled(site, cli, tmp_path, monkeypatch):
    """A copy of a manifest record appended to a file: two candidates for one snapshot."""
    build(site, cli, n_urls=2, versions=2)
    path = sorted((cli.data_dir / "warcs").glob("*.warc.gz"))[0]
    manifest = next(m for m in iter_members(path) if b"urn:archiver:manifest:" in m.data[:2000])
    with open(path, "ab") as fh:
        fh.write(gzip_member(manifest.data))
    fast, fast_count = _audit(cli.data_dir, False, monkeypatch)
    slow, _ = _audit(cli.data_dir, True, monkeypatch)
    assert fast == slow and not fast["ok"]
    assert fast_count == 1
