"""Nothing unsigned gets signed: records someone else put into the WARC files
(without ever reading ``keys/``) are reported as ``foreign-record`` and
quarantined by ``repair`` and by the daemon's start -- never signed, never
shown -- and ``verify`` flags them. A malformed record stops neither."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import sqlite3
from pathlib import Path

from archiver.canonical import canonical_json, sha256_hex
from conftest import article_html, warc_files
from store.warc import sha256_label
from test_daemon import daemons, started, wait_for, write_config  # noqa: F401 - fixture

FORGED = "Die Armee hat 99999 Soldaten verlegt."


def member(headers: dict[str, str], block: bytes) -> tuple[bytes, str]:
    """One gzip member of a WARC record as a careful forger writes it (valid digests),
    with the SHA-256 of the uncompressed record."""
    headers = {**headers, "Content-Length": str(len(block)),
               "WARC-Block-Digest": sha256_label(hashlib.sha256(block).digest())}
    raw = ("WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + block + b"\r\n\r\n"
    return gzip.compress(raw), hashlib.sha256(raw).hexdigest()


def forged_pair(url: str, n: int = 1) -> tuple[list[bytes], list[dict[str, str]]]:
    body = article_html("Bericht", [FORGED]).encode()
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    resp_id, req_id = f"<urn:uuid:00000000-0000-4000-8000-00000000000{n}>", f"<urn:uuid:00000000-0000-4000-8000-00000000001{n}>"
    date = "2026-11-29T12:00:00.000000Z"
    resp, resp_sha = member({"WARC-Type": "response", "WARC-Record-ID": resp_id, "WARC-Date": date, "WARC-Target-URI": url,
                             "WARC-IP-Address": "127.0.0.1", "Content-Type": "application/http; msgtype=response",
                             "WARC-Payload-Digest": sha256_label(hashlib.sha256(body).digest())}, http)
    request = f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    req, req_sha = member({"WARC-Type": "request", "WARC-Record-ID": req_id, "WARC-Date": date, "WARC-Target-URI": url,
                           "WARC-Concurrent-To": resp_id, "Content-Type": "application/http; msgtype=request"}, request)
    names = [{"record_id": resp_id, "sha256": resp_sha, "type": "response"},
             {"record_id": req_id, "sha256": req_sha, "type": "request"}]
    return [resp, req], names


def metadata(url: str, doc: dict, content_type: str = "application/json") -> bytes:
    block = json.dumps(doc).encode()
    return member({"WARC-Type": "metadata", "WARC-Record-ID": "<urn:uuid:00000000-0000-4000-8000-0000000000ff>",
                   "WARC-Date": "2026-11-29T12:00:00.000000Z", "WARC-Target-URI": url, "Content-Type": content_type},
                  block)[0]


def append(warc: Path, members: list[bytes]) -> None:
    with open(warc, "ab") as fh:
        fh.write(b"".join(members))


def junk_signed_manifest(cli, url: str, names: list[dict[str, str]], **changes) -> dict:
    """A manifest in the archive's shape, naming the forged records and claiming
    the taken log index 0, with a junk signature under the archive's key id."""
    real = json.loads(cli("show", url, "--provenance").out)
    manifest = copy.deepcopy(real["manifest"])
    manifest.update(snapshot_id="01forgedforgedforgedforged", records=names, payload_sha256="0" * 64,
                    previous_manifest_sha256=None, log={"origin": manifest["log"]["origin"], "index": 0}, **changes)
    return {"manifest": manifest, "manifest_sha256": sha256_hex(canonical_json(manifest)),
            "signature": base64.b64encode(b"\x01" * 64).decode(), "key_id": real["key_id"]}


def count(cli, table: str) -> int:
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def kinds(cli) -> list[str]:
    r = cli("verify", "--json")
    assert r.code == 1 and "Traceback" not in r.err and "internal error" not in r.err
    return [(p["kind"], p["detail"]) for p in r.json()["problems"]]


def attack(site, cli) -> str:
    """A real capture, then a forged pair, a junk-signed manifest over a second
    forged pair, and a manifest-like record without ``log`` in its closed WARC."""
    url = site.page("/grenze", article_html("Bericht", ["Die Armee hat 5000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    (warc,) = warc_files(cli.data_dir)
    pair, _ = forged_pair(url, 1)
    pair2, names2 = forged_pair(url, 2)
    no_log = junk_signed_manifest(cli, url, names2)
    del no_log["manifest"]["log"]
    append(warc, pair + pair2 + [metadata(url, junk_signed_manifest(cli, url, names2)), metadata(url, no_log)])
    return url


def assert_nothing_adopted(cli, url: str) -> None:
    assert count(cli, "snapshots") == 1 and count(cli, "log_leaves") == 1
    assert FORGED.split()[3] not in cli("show", url).out
    assert len(cli("history", url, "--json").json()) == 1
    entries = [json.loads(line) for line in (cli.data_dir / "quarantine.jsonl").read_text().splitlines()]
    assert {e["type"] for e in entries} == {"response", "request", "metadata"}
    assert len(entries) == 6


def test_repair_signs_no_injected_pair_or_junk_signed_manifest(site, cli):
    url = attack(site, cli)
    found = kinds(cli)
    assert [k for k, _ in found] == ["foreign-record"] * 6, found
    r = cli("repair", "--json")
    assert r.code == 1 and "internal error" not in r.err, r.err
    result = r.json()
    assert result["recommitted"] == [] and result["reindexed"] == []
    assert len(result["foreign"]) == 6
    assert any("signature does not verify" in f["reason"] for f in result["foreign"])
    assert_nothing_adopted(cli, url)
    # Verify still flags them (the bytes stay, as evidence), now marked quarantined.
    problems = cli("verify", "--json").json()["problems"]
    assert {p["kind"] for p in problems} == {"foreign-record"}
    assert sum("quarantined by repair" in p["detail"] for p in problems) == 4  # the two malformed metadata records: by kind
    # Running repair again quarantines nothing twice.
    cli("repair")
    assert len((cli.data_dir / "quarantine.jsonl").read_text().splitlines()) == 6


def test_daemon_start_signs_nothing_foreign_and_still_starts(site, cli, tmp_path, daemons):  # noqa: F811
    url = attack(site, cli)
    d = daemons(cli, write_config(tmp_path))
    wait_for("the daemon to start", lambda: started(d), d)
    code, _ = d.stop()
    assert code == 0
    assert "quarantined 6 foreign record(s)" in d.log() and "Traceback" not in d.log()
    assert_nothing_adopted(cli, url)


def test_a_forged_intent_gets_nothing_signed_and_a_changed_record_loses_its_intent(site, cli):
    from archiver.archive import Archive
    from archiver.capture.records import exchange_records
    from archiver.config import load
    from archiver.provenance.intent import INTENT_CONTENT_TYPE

    url = site.page("/grenze", article_html("Bericht", ["Die Armee hat 5000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    (warc,) = warc_files(cli.data_dir)
    pair, names = forged_pair(url)
    intent = {"intent": {"v": 1, "created_at": "2026-11-29T12:00:00.000000Z",
                         "records": [{"record_id": n["record_id"], "sha256": n["sha256"]} for n in names]},
              "key_id": json.loads(cli("show", url, "--provenance").out)["key_id"],
              "signature": base64.b64encode(b"\x02" * 64).decode()}
    append(warc, pair + [metadata(url, intent, INTENT_CONTENT_TYPE)])
    # A genuine crash leftover (records + the archive's intent, no manifest) whose response is then altered.
    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        (loc, _) = archive.append_sealed(exchange_records(archive.capturer.capture(url).final, archive.c.new_uuid))
    (_, live) = sorted(warc_files(cli.data_dir))
    data = bytearray(live.read_bytes())
    raw = bytearray(gzip.decompress(bytes(data[loc.offset:loc.offset + loc.length])))
    raw[raw.index(b"5000")] = ord("9")
    live.write_bytes(bytes(data[:loc.offset]) + gzip.compress(bytes(raw)) + bytes(data[loc.offset + loc.length:]))
    r = cli("repair", "--json")
    assert r.code == 1 and r.json()["recommitted"] == []
    reasons = " ".join(f["reason"] for f in r.json()["foreign"])
    assert "capture intent does not verify" in reasons and "differs from its signed intent" in reasons
    assert count(cli, "snapshots") == 1


def test_verify_beside_a_writer_that_rotates_its_files(site, cli, tmp_path):
    """A writer closing (renaming) and starting WARC files every few captures
    while verify runs again and again: never an internal error, never a false alarm."""
    import time
    from collections.abc import Callable
    from http.server import BaseHTTPRequestHandler

    from conftest import send

    config = tmp_path / "rotate.toml"
    config.write_text("[archive]\nwarc_max_size = 6000\n")
    body = article_html("Laufend", ["Ein Absatz mit 1.234 Wörtern. " * 40])

    def slow(page: bytes) -> Callable[[BaseHTTPRequestHandler], object]:
        """10 ms a page: the writer runs long enough to be raced whatever the machine's load (a
        clean-clone CI once saw 400 captures done after 4 verify runs)."""
        return lambda h: (time.sleep(0.01), send(h, 200, page))

    urls = []
    for i in range(400):
        site.routes[f"/r{i}"] = slow(body.replace("Laufend", f"Laufend {i}").encode("utf-8"))
        urls.append(site.url(f"/r{i}"))
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    proc = cli.popen("--config", str(config), "snapshot", "-i", str(listing), "--workers", "2")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(warc_files(cli.data_dir)) < 3:
            time.sleep(0.05)
        runs = 0
        while proc.poll() is None and runs < 40:
            r = cli("--config", str(config), "verify", "--json")
            assert "internal error" not in r.err and "Traceback" not in r.err, r.err
            assert r.code == 0, r.json()["problems"]
            runs += 1
        assert runs >= 5, "the writer finished before verify could race it"
    finally:
        proc.communicate(timeout=180)
    assert proc.returncode == 0
    assert len(warc_files(cli.data_dir)) > 20
    r = cli("verify", "--json")
    assert r.code == 0 and r.json()["checked"] == 400


def test_repair_after_a_key_rotation_adopts_nothing_and_flags_nothing(site, cli):
    """Committed manifests and intents signed by a key rotated out since are the
    archive's own history, not foreign records."""
    url = site.page("/grenze", article_html("Bericht", ["Die Armee hat 5000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    assert cli("snapshot", url).code == 0
    assert cli("keys", "rotate").code == 0
    r = cli("repair", "--full", "--json")
    assert r.code == 0, r.out
    assert r.json()["foreign"] == [] and r.json()["recommitted"] == []
    assert cli("verify").code == 0


def test_a_rotation_first_commits_what_a_crash_left_signed_by_the_retiring_key(site, cli):
    """A capture killed after its records and signed intent were written, then
    ``keys rotate``: repair adopts only what the current key signed, so the
    rotation used to turn the lost commit into a ``foreign-record`` (the page
    version lost from the history). The rotation repairs first."""
    from archiver.archive import Archive
    from archiver.capture.records import exchange_records
    from archiver.config import load

    url = site.page("/grenze", article_html("Bericht", ["Die Armee hat 5000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    site.page("/grenze", article_html("Bericht", ["Die Armee hat 6000 Soldaten verlegt."]))
    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        final = archive.capturer.capture(url).final
        archive.append_sealed(exchange_records(final, archive.c.new_uuid, None))  # then the crash
    r = cli("keys", "rotate")
    assert r.code == 0, r.err
    assert "committed 1 unsigned capture(s)" in r.out
    assert cli("repair").code == 0
    assert len(cli("history", url, "--json").json()) == 2
    assert "6000" in cli("show", url, "--text").out
    assert cli("verify").code == 0


def test_a_recovered_revisit_reads_its_text_only_from_a_record_holding_its_payload(site, cli):
    """A crash leaves an unchanged page's revisit (its intent signed); whoever can
    write the index points the original's row at another page's response.
    Repair read the recovered snapshot's text from wherever the index pointed
    and signed its digest: another page's text under this URL."""
    from archiver.archive import Archive
    from archiver.capture.records import RevisitTarget, exchange_records
    from archiver.config import load

    url = site.page("/grenze", article_html("Bericht", ["Die Armee hat 5000 Soldaten verlegt."]))
    other = site.page("/intern", article_html("Intern", ["Vertraulich: 120 Stellen fallen weg."]))
    assert cli("snapshot", url).code == 0 and cli("snapshot", other).code == 0
    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        final = archive.capturer.capture(url).final
        original = archive.index.original_for_payload(url, final.payload_sha256)
        target = RevisitTarget(original.target_uri, original.date, original.record_id, original.payload_digest)
        archive.append_sealed(exchange_records(final, archive.c.new_uuid, target))  # then the crash
        theirs = archive.index.original_for_payload(other, archive.index.last_snapshot(other).payload_sha256)
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(records)")]
        moved = [c for c in ("warc_file", "file_id", "warc_offset", "warc_length") if c in columns]
        values = db.execute(f"SELECT {', '.join(moved)} FROM records WHERE record_id=?", (theirs.record_id,)).fetchone()
        db.execute(f"UPDATE records SET {', '.join(f'{c}=?' for c in moved)} WHERE record_id=?",
                   (*values, original.record_id))
    r = cli("repair", "--json")
    assert len(r.json()["recommitted"]) == 1, r.out
    signed = json.loads(cli("show", url, "--provenance").out)["manifest"]
    assert signed["text_sha256"] != json.loads(cli("show", other, "--provenance").out)["manifest"]["text_sha256"]
