"""A compact index (issue 12, item 5): manifest, diff and article JSON stored
compressed (schema 6), older rows read as they are, and only the checkpoints
that matter kept -- while verify still checks every kept one and proofs for
any size stay computable."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest

from archiver.provenance.merkle import hash_leaf, root_from_leaf_hashes, roots_at_sizes
from conftest import article_html, auditors_pem
from store.compact import DEFLATE_1, DICTIONARY_1, PLAIN, pack, unpack
from store.errors import StoreError
from store.index import SCHEMA_VERSION

OLD = Path(__file__).parent / "data" / "archive-0.1.0"
SCHEMA8 = Path(__file__).parent / "data" / "archive-schema8"  # see its README


# -- the stored form -----------------------------------------------------------
def test_pack_round_trips_and_shrinks_a_manifest_shaped_document() -> None:
    doc = json.dumps({"url": "https://www.example.org/a", "hops": [{"status": 200, "ip": "192.0.2.1"}],
                      "records": [{"type": "response", "warc_file": "archiver-2026.warc.gz"}] * 3,
                      "text": "Es kamen 50.000 Menschen – ünïcödé."}, ensure_ascii=False)
    packed = pack(doc)
    assert packed[0] == DEFLATE_1 and len(packed) < len(doc.encode()) / 2
    assert unpack(packed) == doc
    # Any zlib reads it: raw DEFLATE with the published dictionary.
    assert zlib.decompressobj(-15, zdict=DICTIONARY_1).decompress(packed[1:]).decode() == doc


def test_pack_keeps_incompressible_text_plain() -> None:
    packed = pack("x")
    assert packed == bytes((PLAIN,)) + b"x" and unpack(packed) == "x"


def test_a_short_text_is_packed_the_same_whether_remembered_or_not() -> None:
    """Short texts (an unchanged page's diff, on every re-capture) are packed
    once and remembered: the bytes are exactly a fresh deflate's, any zlib
    reads them, and a text just over the limit is packed afresh."""
    from store import compact

    for text in ('{"changes": [], "figures": [], "significance": "none"}', "x" * compact._REMEMBERED,
                 "y" * (compact._REMEMBERED + 1), "Bürgermeister " * 10):
        first, again, fresh = pack(text), pack(text), compact._pack(text)
        assert first == again == fresh
        assert first[0] == DEFLATE_1
        co = zlib.decompressobj(-15, zdict=DICTIONARY_1)
        assert co.decompress(first[1:]).decode("utf-8") == text == unpack(first)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "empty"),
        (b"\x07abc", "unknown index value format 0x07"),
        (bytes((DEFLATE_1,)) + b"\xff\xff\xff", "corrupt"),
        (pack('{"a": "' + "b" * 5000 + '"}')[:-4], "truncated"),
        (bytes((PLAIN,)) + b"\xff", "not UTF-8"),
    ],
)
def test_a_broken_stored_value_is_one_clear_error(value: bytes, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        unpack(value)


def test_inflating_is_bounded() -> None:
    bomb = pack("{" + " " * 2_000_000 + "}")
    assert len(bomb) < 5_000
    with pytest.raises(StoreError, match="inflates beyond 100000 bytes"):
        unpack(bomb, limit=100_000)


def test_roots_at_sizes_match_the_roots_of_each_prefix() -> None:
    leaves = [hash_leaf(bytes([i])) for i in range(37)]
    sizes = [0, 1, 2, 3, 8, 13, 32, 37, 40]
    roots = roots_at_sizes(iter(leaves), sizes)
    assert sorted(roots) == [0, 1, 2, 3, 8, 13, 32, 37]  # 40 is beyond the leaves
    for n in roots:
        assert roots[n] == root_from_leaf_hashes(leaves[:n])


# -- the archive ---------------------------------------------------------------
def _checkpoints(db: sqlite3.Connection) -> list[tuple[int, str | None]]:
    return [(int(r[0]), r[1]) for r in db.execute("SELECT size, kept FROM checkpoints ORDER BY size")]


def _snap(bcli, site, path: str, figure: str) -> None:  # type: ignore[no-untyped-def]
    url = site.page(path, article_html("Lage", [f"Es kamen {figure} Menschen zur Kundgebung."]))
    r = bcli("snapshot", url)
    assert r.code == 0, r.err


def test_new_rows_are_stored_compressed_and_read_back(site, bcli) -> None:
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    site.page("/a", article_html("Lage", ["Es kamen 60.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    db = bcli.db()
    try:
        rows = list(db.execute("SELECT manifest_json, manifest_z, diff_json, diff_z FROM snapshots ORDER BY seq"))
        texts = list(db.execute("SELECT article_json, article_z FROM texts"))
    finally:
        db.close()
    assert len(rows) == 2 and all(r[0] is None and r[1] is None for r in rows)  # schema 9: the manifest is in the WARC only
    assert rows[1][2] is None and json.loads(unpack(rows[1][3]))["significance"] == "substantive"
    assert texts and all(t[0] == "" and "Menschen" in unpack(t[1]) for t in texts)
    shown = json.loads(bcli("show", url, "--provenance").out)
    assert shown["manifest"]["url"] == url
    assert json.loads(bcli("diff", url, "--json").out)["figures"][0]["after"] == "60.000"
    assert "60.000" in bcli("show", url).out
    code = bcli("verify", "--json")
    assert code.code == 0, code.out


def test_only_the_checkpoints_that_matter_are_kept(site, bcli, tmp_path: Path) -> None:
    for i in range(3):
        _snap(bcli, site, f"/p{i}", f"{i + 1}.000")
    db = bcli.db()
    assert _checkpoints(db) == [(3, None)]  # the latest only
    published = bcli("checkpoint")
    assert published.code == 0
    assert _checkpoints(db) == [(3, "published")]
    _snap(bcli, site, "/p3", "4.000")
    r = bcli("proof", "--consistency", "2")  # against the tree, not a stored note
    assert r.code == 0, r.err
    assert _checkpoints(db) == [(3, "published"), (4, "proof")]
    for i in range(4, 6):
        _snap(bcli, site, f"/p{i}", f"{i + 1}.000")
    assert _checkpoints(db) == [(3, "published"), (4, "proof"), (6, None)]
    db.close()
    # Proofs for any size are still computable, and verify checks every kept note.
    r = bcli("proof", "--consistency", "1", "--size", "5")
    assert r.code == 0 and json.loads(r.out)["size2"] == 5
    report = json.loads(bcli("verify", "--json").out)
    assert report["ok"], report["problems"]
    since = tmp_path / "cp.txt"
    since.write_text(published.out)
    assert bcli("verify", "--since", str(since)).code == 0


def test_verify_checks_every_kept_checkpoint(site, bcli) -> None:
    for i in range(3):
        _snap(bcli, site, f"/p{i}", f"{i + 1}.000")
    assert bcli("checkpoint").code == 0
    for i in range(3, 5):
        _snap(bcli, site, f"/p{i}", f"{i + 1}.000")
    db = bcli.db()
    (note,) = db.execute("SELECT note FROM checkpoints WHERE size = 3").fetchone()
    # A kept checkpoint whose root is not the log's first three entries: rewritten history.
    db.execute("UPDATE checkpoints SET root = ? WHERE size = 3", (b"\x00" * 32,))
    db.commit()
    report = json.loads(bcli("verify", "--json").out)
    kinds = {(p["kind"], p["detail"].split(":")[0]) for p in report["problems"]}
    assert not report["ok"]
    assert ("not-append-only", "the first 3 entries no longer hash to the root of the kept signed checkpoint of that size") in kinds
    assert any(k == "checkpoint" and "size 3" in d for k, d in kinds)
    # A kept note whose signature is broken.
    db.execute("UPDATE checkpoints SET root = (SELECT root FROM checkpoints WHERE size = 5), note = ? WHERE size = 3",
               (note.replace("\n— ", "\n— x", 1),))
    db.commit()
    db.close()
    report = json.loads(bcli("verify", "--json").out)
    assert any(p["kind"] == "checkpoint" and "size 3: signature" in p["detail"] for p in report["problems"])


def test_an_old_index_is_read_in_both_forms_and_keeps_its_checkpoints(site, cli, tmp_path: Path) -> None:
    data = tmp_path / "archive"
    shutil.copytree(OLD, data)
    before = sqlite3.connect(data / "index.sqlite3")
    old_version = before.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    old_checkpoints = [r[0] for r in before.execute("SELECT size FROM checkpoints ORDER BY size")]
    before.close()
    assert int(old_version) < 6 <= SCHEMA_VERSION and len(old_checkpoints) >= 2
    cli.data_dir = data
    assert cli("verify").code == 0  # opens (and upgrades) the index in place: nothing is rewritten
    db = sqlite3.connect(data / "index.sqlite3")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert db.execute("SELECT COUNT(*) FROM snapshots WHERE manifest_z IS NULL AND manifest_json IS NOT NULL").fetchone()[0] == 3
    assert _checkpoints(db) == [(s, "legacy") for s in old_checkpoints]
    # New captures land beside the old rows (without a manifest copy); the legacy notes stay.
    _snap(cli, site, "/neu", "7.000")
    _snap(cli, site, "/neu2", "8.000")
    assert db.execute("SELECT COUNT(*) FROM snapshots WHERE manifest_z IS NULL AND manifest_json IS NULL").fetchone()[0] == 2
    n = old_checkpoints[-1]
    assert _checkpoints(db) == [(s, "legacy") for s in old_checkpoints] + [(n + 2, None)]
    db.close()
    report = json.loads(cli("verify", "--json").out)
    assert report["ok"], report["problems"]


def test_the_original_lookups_use_their_partial_indexes(site, cli) -> None:
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    assert cli("snapshot", url).code == 0  # a revisit of the first
    db = sqlite3.connect(cli.data_dir / "index.sqlite3")
    plans = {
        "snapshots_original": "SELECT r.* FROM snapshots s JOIN records r ON r.record_id = s.response_record_id "
                              "WHERE s.url=? AND s.payload_sha256=? AND s.revisit=0 ORDER BY s.seq LIMIT 1",
        "records_response": "SELECT * FROM records WHERE target_uri=? AND type='response' ORDER BY date, record_id",
        "snapshots_substantive": "SELECT * FROM snapshots WHERE significance='substantive' AND url LIKE ? ESCAPE '\\' "
                                 "ORDER BY captured_at DESC, id DESC LIMIT 5",
    }
    for index, sql in plans.items():
        plan = " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, ("u", "p")[: sql.count("?")]))
        assert f"USING INDEX {index}" in plan, plan
    entries = {name: n for name, n in db.execute(
        "SELECT name, COUNT(*) FROM (SELECT 'snapshots_original' AS name FROM snapshots WHERE revisit=0 "
        "UNION ALL SELECT 'records_response' FROM records WHERE type='response') GROUP BY name")}
    assert entries == {"snapshots_original": 1, "records_response": 1}  # the revisit takes no entry
    digests = dict(db.execute("SELECT type, payload_digest FROM records"))
    db.close()
    assert digests["request"] is None and digests["metadata"] is None
    assert digests["response"].startswith("sha256:") and digests["revisit"] == digests["response"]
    assert cli("verify").code == 0


def test_newest_changes_are_listed_per_significance(site, cli) -> None:
    from archiver.archive import Archive
    from archiver.config import load

    for figure in ("50.000", "60.000", "60.000", "70.000"):
        url = site.page("/a", article_html("Lage", [f"Es kamen {figure} Menschen."]))
        assert cli("snapshot", url).code == 0
    settings = load(None, {"ARCHIVER_ALLOW_PRIVATE": "1"})
    settings.archive.data_dir = str(cli.data_dir)
    with Archive(settings) as archive:
        changes = archive.recent_changes(("substantive",))
        assert [r.seq for r in changes] == [4, 2]
        assert [r.seq for r in archive.recent_changes(("none", "first"))] == [3, 1]  # read without an index of their own
        assert archive.recent_changes(("substantive",), url_contains="nomatch") == []


def test_compact_rewrites_an_old_index_in_place_and_it_still_verifies(cli, tmp_path: Path) -> None:
    data = tmp_path / "archive"
    shutil.copytree(OLD, data)
    cli.data_dir = data
    pin = ("--public-key", str(auditors_pem(data)))  # a copy without keys/: readers show what the pinned key signed
    url = "http://127.0.0.1:44081/politik/nordallianz-verlegung"
    history = cli("history", "--json", url, *pin).out
    before = {r[0]: json.loads(r[1]) for r in sqlite3.connect(OLD / "index.sqlite3").execute("SELECT id, manifest_json FROM snapshots")}
    r = cli("compact", "--json")
    assert r.code == 0, r.err
    done = json.loads(r.out)
    assert done["snapshots"] == 3 and done["texts"] >= 1 and done["bytes_after"] < done["bytes_before"]
    assert (done["manifests_dropped"], done["manifests_kept"]) == (3, 0)  # the WARC holds every one
    db = sqlite3.connect(data / "index.sqlite3")
    rows = db.execute("SELECT id, manifest_json, manifest_z FROM snapshots").fetchall()
    assert [(plain, z) for _, plain, z in rows] == [(None, None)] * 3
    for sid, manifest in before.items():  # read from the WARC now: the same signed manifest
        shown = json.loads(cli("show", url, "--at", sid, "--provenance", *pin).out)
        assert shown["manifest"] == manifest
    assert db.execute("SELECT COUNT(*) FROM texts WHERE article_json != ''").fetchone()[0] == 0
    assert [k for _, k in _checkpoints(db)] == ["legacy"] * len(_checkpoints(db))
    db.close()
    assert json.loads(cli("compact", "--json").out)["snapshots"] == 0  # nothing left: it can run again
    assert cli("history", "--json", url, *pin).out == history
    report = json.loads(cli("verify", "--json").out)
    assert report["ok"], report["problems"]
    d = cli("diff", "--json", "http://127.0.0.1:44081/politik/nordallianz-verlegung", *pin)
    assert d.code == 0 and any(f["after"] == "60.000" for f in d.json()["figures"])


def test_compact_on_a_shared_index(site, bcli) -> None:
    _snap(bcli, site, "/a", "1.000")
    r = bcli("compact", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["snapshots"] == 0  # written compact already
    assert bcli("verify").code == 0


def test_compact_interrupted_midway_leaves_whole_rows_and_carries_on(cli, tmp_path: Path, monkeypatch) -> None:
    import store.compaction as compaction
    from store.index import Index

    data = tmp_path / "archive"
    shutil.copytree(OLD, data)
    cli.data_dir = data
    assert cli("verify").code == 0  # upgraded in place
    calls = []

    def failing_check(sid: str, digest: str) -> bool:
        calls.append(sid)
        if len(calls) == 2:  # the second snapshot row: its batch of one is never written
            raise OSError("disk gone")
        return True

    index = Index(data / "index.sqlite3")
    try:
        with pytest.raises(OSError):
            compaction.compact(index, failing_check, batch=1)
    finally:
        index.close()
    db = sqlite3.connect(data / "index.sqlite3")
    forms = db.execute("SELECT manifest_json IS NULL, manifest_z IS NULL FROM snapshots ORDER BY id").fetchall()
    db.close()
    assert sorted(forms) == [(0, 1), (0, 1), (1, 1)]  # one copy dropped, two untouched, none half-done
    assert cli("verify").code == 0
    assert json.loads(cli("compact", "--json").out)["snapshots"] == 2
    assert cli("verify").code == 0


def test_compact_keeps_a_manifest_copy_the_warc_does_not_confirm(cli, tmp_path: Path) -> None:
    from store.compaction import compact
    from store.index import Index

    data = tmp_path / "archive"
    shutil.copytree(OLD, data)
    cli.data_dir = data
    assert cli("verify").code == 0  # upgraded in place
    index = Index(data / "index.sqlite3")
    try:
        first = index.query("SELECT id FROM snapshots ORDER BY id LIMIT 1")[0][0]
        done = compact(index, lambda sid, digest: sid != first)
    finally:
        index.close()
    assert (done.manifests_dropped, done.manifests_kept) == (2, 1)
    db = sqlite3.connect(data / "index.sqlite3")
    kept = db.execute("SELECT manifest_json, manifest_z FROM snapshots WHERE id=?", (first,)).fetchone()
    db.close()
    assert kept[0] is None and json.loads(unpack(kept[1]))["snapshot_id"] == first  # packed, not dropped
    assert cli("verify").code == 0


def test_a_corrupt_stored_manifest_is_a_one_line_error(site, cli) -> None:
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    db = sqlite3.connect(cli.data_dir / "index.sqlite3")
    db.execute("UPDATE snapshots SET manifest_z=?", (pack("{" + " " * (80 * 1024 * 1024) + "}"),))
    db.commit()
    db.close()
    r = cli("show", url, "--provenance")
    assert r.code == 1 and "inflates beyond" in r.err and len(r.err.strip().splitlines()) == 1


def test_a_schema_8_archive_upgrades_reads_its_manifests_and_compacts(site, cli, tmp_path: Path) -> None:
    data = tmp_path / "archive"
    shutil.copytree(SCHEMA8, data)
    db = sqlite3.connect(data / "index.sqlite3")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "8"
    url = db.execute("SELECT url FROM snapshots WHERE seq = 3").fetchone()[0]
    copies = {sid: json.loads(unpack(z)) for sid, z in db.execute("SELECT id, manifest_z FROM snapshots")}
    db.close()
    cli.data_dir = data
    pin = ("--public-key", str(auditors_pem(data)))  # a copy without keys/: readers show what the pinned key signed
    shown = {sid: json.loads(cli("show", url, "--at", sid, "--provenance", *pin).out)["manifest"]
             for sid in copies if cli("show", url, "--at", sid, "--json", *pin).code == 0}
    assert len(shown) == 3 and all(shown[sid] == copies[sid] for sid in shown)  # the index's copies, upgraded
    assert cli("verify").code == 0 and cli("verify", "--wacz", str(data / "export.wacz")).code == 0
    db = sqlite3.connect(data / "index.sqlite3")  # upgraded: the old rows name their files, every name registered
    names = {r[0] for r in db.execute("SELECT DISTINCT warc_file FROM records")}
    assert len(names) == 4 and db.execute("SELECT COUNT(*) FROM records WHERE file_id IS NOT NULL").fetchone()[0] == 0
    assert {r[0] for r in db.execute("SELECT warc_name FROM warc_files")} == names
    n_records = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    db.close()
    r = cli("compact", "--json")
    assert r.code == 0, r.err
    done = r.json()
    assert (done["manifests_dropped"], done["manifests_kept"]) == (4, 0)
    assert done["records"] == n_records and done["bytes_after"] < done["bytes_before"]
    db = sqlite3.connect(data / "index.sqlite3")  # every row now names its file by id
    for table in ("records", "snapshots"):
        assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE warc_file != '' OR file_id IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM records WHERE sha256 != '' OR length(digest) != 32").fetchone()[0] == 0
    db.close()
    assert json.loads(cli("compact", "--json").out)["records"] == 0  # nothing left
    for sid, manifest in shown.items():  # now read from the WARC: the same signed documents
        assert json.loads(cli("show", url, "--at", sid, "--provenance", *pin).out)["manifest"] == manifest
    report = json.loads(cli("verify", "--json").out)
    assert report["ok"] and report["checked"] == 4, report["problems"]
    new = data / "new.wacz"
    assert cli("export", url, "--wacz", str(new), *pin).code == 0 and cli("verify", "--wacz", str(new)).code == 0
    # A capture into the upgraded archive lands in the new form beside the old rows.
    _snap(cli, site, "/neu", "9.000")
    assert json.loads(cli("verify", "--json").out)["ok"]


def test_new_rows_name_their_warc_file_by_id_and_each_form_has_its_index(site, bcli) -> None:
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    assert bcli("snapshot", url).code == 0
    db = bcli.db()
    try:
        files = {r[0]: r[1] for r in db.execute("SELECT file_id, warc_name FROM warc_files")}
        rows = db.execute("SELECT warc_file, file_id FROM records UNION ALL SELECT warc_file, file_id FROM snapshots").fetchall()
        assert rows and all(name == "" and fid in files for name, fid in rows)
        digests = db.execute("SELECT sha256, digest FROM records").fetchall()  # 32 bytes, not 64 hex characters
        assert digests and all(sha == "" and len(bytes(d)) == 32 for sha, d in digests)
    finally:
        db.close()
    shown = bcli("show", url, "--json").json()
    assert shown["warc_file"] in files.values() and shown["warc_file"].endswith(".warc.gz")
    assert bcli("show", url, "--html").code == 0 and bcli("verify").code == 0
    if bcli.shared:
        return
    db = sqlite3.connect(bcli.data_dir / "index.sqlite3")
    for sql, index in (("SELECT MIN(warc_offset) FROM records WHERE file_id = ? AND warc_offset >= ?", "records_at"),
                       ("SELECT MIN(warc_offset) FROM records WHERE warc_file = ? AND warc_file > '' AND warc_offset >= ?",
                        "records_file")):
        plan = " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, (1, 0)))
        assert f"INDEX {index}" in plan, plan
    db.close()


def test_a_record_row_pointing_into_another_warc_file_is_caught(site, cli) -> None:
    urls = [site.page(f"/p{i}", article_html("Lage", [f"Es kamen {i}.000 Menschen."])) for i in range(2)]
    for url in urls:  # one process each: two WARC files
        assert cli("snapshot", url).code == 0
    db = sqlite3.connect(cli.data_dir / "index.sqlite3")
    first, second = (r[0] for r in db.execute("SELECT file_id FROM warc_files ORDER BY file_id"))
    sid = db.execute("SELECT snapshot_id FROM records WHERE file_id=? AND type='response'", (second,)).fetchone()[0]
    db.execute("UPDATE records SET file_id=? WHERE snapshot_id=? AND type='response'", (first, sid))
    db.commit()
    db.close()
    r = cli("verify", "--json")
    assert r.code == 1
    assert any(p["snapshot"] == sid and p["kind"] == "index-mismatch" for p in r.json()["problems"]), r.out


def test_a_swapped_record_digest_in_the_index_is_caught(site, cli) -> None:
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    db = sqlite3.connect(cli.data_dir / "index.sqlite3")
    (sid,) = db.execute("SELECT id FROM snapshots").fetchone()
    (request, req_digest), (response, resp_digest) = db.execute(
        "SELECT record_id, digest FROM records WHERE type IN ('request', 'response') ORDER BY type").fetchall()
    db.execute("UPDATE records SET digest=? WHERE record_id=?", (resp_digest, request))
    db.execute("UPDATE records SET digest=? WHERE record_id=?", (req_digest, response))
    db.commit()
    db.close()
    r = cli("verify", "--json")
    assert r.code == 1 and any(p["snapshot"] == sid for p in r.json()["problems"]), r.out
