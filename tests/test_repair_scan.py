"""``repair --full`` keeps only what the index does not account for: committed
records stream past (looked up in the index in batches) and are not held, so
its memory stays flat as the archive grows; what it keeps is held by location
and read again on demand. A copy of a committed record with other bytes is
not accounted for by the index's row and is quarantined like any forgery."""

from __future__ import annotations

import gzip
import json

from archiver.archive import Archive
from archiver.audit.repair import RepairResult, scan_warcs
from archiver.config import load
from conftest import article_html, warc_files
from test_trust_repair import append, forged_pair


def open_archive(cli) -> Archive:
    return Archive(load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"}))


def test_a_full_scan_keeps_only_the_records_the_index_lacks(site, cli, monkeypatch):
    from archiver.audit import repairscan

    monkeypatch.setattr(repairscan, "BATCH", 3)  # several index look-ups, a batch across the files' ends
    urls = [site.page(f"/p{i}", article_html("Bericht", [f"Die Armee hat {i}000 Soldaten verlegt."])) for i in range(3)]
    for url in urls:
        assert cli("snapshot", url).code == 0
    files = warc_files(cli.data_dir)
    pair, names = forged_pair(urls[0])
    append(files[-1], pair)
    with open_archive(cli) as archive:
        result = RepairResult()
        with scan_warcs(archive, result) as scan:
            committed = archive.index.query("SELECT COUNT(*) FROM records")[0][0]
            assert scan.seen >= committed + 2  # every record was read ...
            assert set(scan.records) == {n["record_id"] for n in names}  # ... and only the forged ones kept
            assert not scan.manifests and not scan.intents  # every manifest and intent is committed
            kept = scan.records[names[0]["record_id"]]
            assert kept.member.data == b""  # held by location, not by its bytes
            assert b"99999" in kept.rec.block  # which are read again on demand, checked by their SHA-256
            assert kept.member.sha256 == names[0]["sha256"]


def test_a_changed_copy_of_a_committed_record_is_quarantined_and_an_exact_copy_is_not(site, cli):
    url = site.page("/grenze", article_html("Bericht", ["Die Armee hat 5000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    with open_archive(cli) as archive:
        row = archive.index.last_snapshot(url)
        assert row is not None
        rec = archive.index.record(row.response_record_id)
        assert rec is not None
        stored = archive.warcs.read_member(rec.warc_file, rec.warc_offset, rec.warc_length)
    raw = gzip.decompress(stored)
    forged = raw.replace(b"5000 Soldaten", b"9000 Soldaten")
    assert forged != raw
    (warc,) = warc_files(cli.data_dir)
    end = warc.stat().st_size
    append(warc, [stored, gzip.compress(forged)])  # an exact copy, then one with other bytes under the same id
    r = cli("repair", "--full", "--json")
    assert r.code == 1, r.err
    foreign = r.json()["foreign"]
    assert [f["record_id"] for f in foreign] == [row.response_record_id]
    assert foreign[0]["offset"] == end + len(stored)  # the changed copy: neither the committed one nor its exact copy
    assert cli("show", url).code == 0 and "5000" in cli("show", url).out
    entries = [json.loads(line) for line in (cli.data_dir / "quarantine.jsonl").read_text().splitlines()]
    assert len(entries) == 1 and entries[0]["record_id"] == row.response_record_id
