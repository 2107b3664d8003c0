"""verify's scanning tasks: files cut at the index's record offsets (the pieces
must tile the file, or it is read whole), captures whose records and manifest
fall into different tasks matched in the main process -- and an untouched
archive leaving nothing over, so memory does not grow with it."""

from __future__ import annotations

import os

import pytest

from archiver import config
from archiver.archive import Archive
from archiver.audit import verify as verify_mod
from archiver.audit.scratch import ManifestTable
from archiver.audit.verify import Auditor
from conftest import article_html
from test_verify import build, kinds, rewrite_warc, snapshot_ids, verify


@pytest.fixture
def tiny_tasks(monkeypatch):
    """Every file cut at every record the index knows; every small file a task of its own."""
    monkeypatch.setattr(verify_mod, "TASK_BYTES", (1, 1))
    monkeypatch.setattr(verify_mod, "TASK_FILES", 1)


def _archive(cli) -> Archive:
    s = config.load(None, {"ARCHIVER_ALLOW_PRIVATE": "1"})
    s.archive.data_dir = str(cli.data_dir)
    return Archive(s)


def test_cut_into_pieces_it_still_verifies_and_still_catches_a_forgery(site, bcli, tiny_tasks):
    urls = build(site, bcli, n_urls=3, versions=2)
    code, report = verify(bcli)
    assert code == 0, report["problems"]
    assert report["checked"] == 6
    target = snapshot_ids(bcli, urls[1])[0]

    def forge(headers, block):
        if headers.get("WARC-Type") == "response" and headers.get("WARC-Target-URI") == urls[1] and b"Version 0" in block:
            return headers, block.replace(b"1000 Menschen", b"9000 Menschen")
        return headers, block

    with bcli.warcs() as paths:
        for path in paths:
            rewrite_warc(path, forge)
    code, report = verify(bcli)
    assert code == 1
    assert {(target, "record-changed"), (target, "payload-changed")} <= kinds(report)


def test_a_record_split_from_its_manifest_by_rotation_is_matched_across_tasks(site, cli, tmp_path, tiny_tasks):
    config_file = tmp_path / "rotate.toml"
    config_file.write_text("[archive]\nwarc_max_size = 3000\n")
    urls = [site.page(f"/r{i}", article_html(f"Meldung {i}", [f"Es gab {i * 11} Vorfälle. " * 30])) for i in range(8)]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    assert cli("--config", str(config_file), "snapshot", "-i", str(listing)).code == 0
    db = cli.db()
    split = db.execute("SELECT COUNT(*) FROM snapshots s JOIN records r ON r.snapshot_id = s.id AND r.type = 'metadata' "
                       "WHERE r.file_id != s.file_id").fetchone()[0]
    db.close()
    assert split > 0, "no capture had its manifest rotated into the next file"
    code, report = verify(cli)
    assert code == 0, report["problems"]
    target = snapshot_ids(cli, urls[3])[0]
    with cli.warcs() as paths:
        for path in paths:
            rewrite_warc(path, lambda h, b: (h, b.replace(b"Es gab 33", b"Es gab 99")))
    code, report = verify(cli)
    assert code == 1 and (target, "record-changed") in kinds(report)


def test_cuts_that_fall_inside_a_record_make_it_read_whole(site, cli, tiny_tasks, monkeypatch):
    """An index lying about one record's offset must not turn into torn-file
    or bad-record alarms: the pieces do not tile, so the file is read whole --
    and the lie is reported as what it is."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # in-process, so the spy sees every task
    urls = build(site, cli, n_urls=2, versions=2)
    target = snapshot_ids(cli, urls[0])[1]
    db = cli.db()
    rid, offset = db.execute("SELECT record_id, warc_offset FROM records WHERE snapshot_id=? AND type='request'", (target,)).fetchone()
    db.execute("UPDATE records SET warc_offset=? WHERE record_id=?", (offset + 7, rid))
    db.commit()
    db.close()
    scanned: list[list] = []
    real = verify_mod.scan_task
    monkeypatch.setattr(verify_mod, "scan_task", lambda pieces, *a: scanned.append(pieces) or real(pieces, *a))
    tables: list[tuple[int, int]] = []  # the scratch table's manifests: rows, and places they were found at
    close = ManifestTable.close
    monkeypatch.setattr(ManifestTable, "close", lambda self: tables.append(
        self.db.execute("SELECT COUNT(*), COUNT(DISTINCT where_) FROM wm").fetchone()) or close(self))
    code, report = verify(cli)
    assert code == 1
    assert any(p.start > 0 for ps in scanned for p in ps), "the file was never cut"
    assert any(p.start == 0 and p.stop is None for ps in scanned for p in ps), "the file was never read whole"
    assert tables == [(4, 4)], "the pieces' manifests were not taken out when the file was read whole"
    assert kinds(report) == {(target, "index-mismatch")}, report["problems"]
    assert report["problems"][0]["detail"].endswith(f"@{offset + 7}")


def test_an_untouched_archive_leaves_nothing_over(site, cli):
    """Every record is matched with its manifest inside its task: nothing per
    record or per claim is held by the main process (what would grow with the archive)."""
    for i in range(4):
        url = site.page(f"/n{i}", article_html(f"Meldung {i}", [f"Es gab {i} Vorfälle."]))
        assert cli("snapshot", url).code == 0
        assert cli("snapshot", url).code == 0
    with _archive(cli) as archive:
        auditor = Auditor(archive)
        report = auditor.run()
    assert report.ok and report.checked == 8, report.problems
    assert (auditor.seen, auditor.dupes, auditor.unplaced, auditor.misplaced, auditor.loose, auditor.intents) == ({}, [], {}, [], [], [])


def test_workers_follow_the_cpus_the_process_may_use():
    """taskset or a container's CPU set, not the machine's count, sets how many scanning processes start."""
    import subprocess
    import sys

    code = ("import os\nfrom archiver.audit.verify import _cores\n"
            "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\nprint(_cores())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "1", p.stdout + p.stderr
