"""What archiver writes is WARC 1.1 by the letter: every named field matches
the standard's ABNF (digest values are ``token``s), SHA-256 everywhere,
warcinfo first in time as in place, ``warcio check`` passes, and the signed
manifest has a target URI of its own so no replay tool mistakes it for the
page. Archives written in the earlier forms (padded base32 digests, the
manifest under the page's URL) still verify and export."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from conftest import article_html, warc_files
from store.warc import label_bytes

# --- WARC 1.1 section 4 ABNF, as regular expressions, held as strictly as
# jwarc's ``validate --forbid-extensions`` (HeaderValidator.warc_1_1) does:
# RFC 7230 tchar tokens, standard values only, per-type allowed fields.
TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
QUOTED = r'"(?:[^"\x00-\x1f\x7f]|\\.)*"'
URI = r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]*"
W3C_DATE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"
LABELLED_DIGEST = rf"{TOKEN}:{TOKEN}"
FIELD_GRAMMAR = {
    "WARC-Record-ID": rf"<{URI}>",
    "WARC-Date": W3C_DATE,
    "WARC-Type": r"warcinfo|response|resource|request|metadata|revisit|conversion|continuation",
    "Content-Length": r"\d+",
    "Content-Type": rf"{TOKEN}/{TOKEN}[ \t]*(;[ \t]*{TOKEN}=({TOKEN}|{QUOTED}))*",
    "WARC-Block-Digest": LABELLED_DIGEST,
    "WARC-Payload-Digest": LABELLED_DIGEST,
    "WARC-Concurrent-To": rf"<{URI}>",
    "WARC-Refers-To": rf"<{URI}>",
    "WARC-Refers-To-Target-URI": URI,
    "WARC-Refers-To-Date": W3C_DATE,
    "WARC-Target-URI": URI,
    "WARC-Truncated": r"length|time|disconnect|unspecified",
    "WARC-Warcinfo-ID": rf"<{URI}>",
    "WARC-Filename": r"[^\x00-\x1f\x7f]*",
    "WARC-Profile": r"http://netpreserve\.org/warc/1\.1/revisit/(identical-payload-digest|server-not-modified)",
    "WARC-IP-Address": r"[0-9.]+|[0-9A-Fa-f:.]+",
}
MANDATORY = {"WARC-Record-ID", "Content-Length", "WARC-Date", "WARC-Type"}
ALL_TYPES = {"warcinfo", "response", "resource", "request", "metadata", "revisit", "conversion", "continuation"}
ALLOWED_ON = {  # the types a field may appear on (WARC 1.1 section 5)
    "WARC-Concurrent-To": ALL_TYPES - {"warcinfo", "conversion", "continuation"},
    "WARC-IP-Address": ALL_TYPES - {"warcinfo", "conversion", "continuation"},
    "WARC-Refers-To": {"metadata", "revisit", "conversion"},
    "WARC-Refers-To-Target-URI": {"revisit"},
    "WARC-Refers-To-Date": {"revisit"},
    "WARC-Target-URI": ALL_TYPES - {"warcinfo"},
    "WARC-Warcinfo-ID": ALL_TYPES - {"warcinfo"},
    "WARC-Filename": {"warcinfo"},
    "WARC-Profile": {"revisit"},
}
REQUIRED_ON = {"WARC-Target-URI": ALL_TYPES - {"warcinfo", "metadata"}, "WARC-Profile": {"revisit"}}


def raw_records(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(version line, [(name, value)]) of every record, from the bytes as stored."""
    out = []
    data = gzip.decompress(path.read_bytes())
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n\r\n", pos)
        head = data[pos:end].decode("utf-8")
        lines = head.split("\r\n")
        fields = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
        length = int(dict(fields)["Content-Length"])
        out.append((lines[0], fields))
        pos = end + 4 + length + 4  # block, then the record's CRLF CRLF
    return out


def check_grammar(path: Path) -> list[str]:
    problems = []
    for version, fields in raw_records(path):
        if version != "WARC/1.1":
            problems.append(f"version line {version!r}")
        problems += check_fields(fields)
    return problems


def check_fields(fields: list[tuple[str, str]]) -> list[str]:
    """What is wrong with one record's named fields (empty when nothing)."""
    problems = []
    names = [n for n, _ in fields]
    rtype = dict(fields).get("WARC-Type", "")
    if missing := MANDATORY - set(names):
        problems.append(f"missing {missing}")
    for name, types in REQUIRED_ON.items():
        if rtype in types and name not in names:
            problems.append(f"{rtype} record without {name}")
    for name, value in fields:
        if names.count(name) > 1 and name != "WARC-Concurrent-To":
            problems.append(f"{name} repeated")
        if name not in FIELD_GRAMMAR:
            problems.append(f"non-standard field {name}")
        elif not re.fullmatch(FIELD_GRAMMAR[name], value):
            problems.append(f"{name}: {value!r}")
        if rtype not in ALLOWED_ON.get(name, ALL_TYPES):
            problems.append(f"{name} is not allowed on a {rtype} record")
        if name.endswith("-Digest"):
            algo = value.partition(":")[0]
            if algo != "sha256":
                problems.append(f"{name} uses {algo}, not sha256: {value}")
            if label_bytes(value) is None:
                problems.append(f"{name} {value} does not decode")
    return problems


def test_the_token_grammar_tells_padded_base32_from_hex():
    """The grammar check itself: warcio's padded base32 fails it, hex passes."""
    assert not re.fullmatch(LABELLED_DIGEST, "sha256:MSGKCDL5MPA6OFY6T7ACKFQZOIW4AEUTOO3EU57NTZQH4DJRRPJQ====")
    assert re.fullmatch(LABELLED_DIGEST, "sha256:648ca10d7d63c1e7171e9fc0251619722dc0129373b64a77ed9e607e0d318bd3")
    assert not re.fullmatch(FIELD_GRAMMAR["WARC-Record-ID"], "urn:uuid:1")
    assert check_fields([("WARC-Type", "request"), ("WARC-Refers-To", "<urn:uuid:1>")])  # not on a request
    assert check_fields([("WARC-Type", "response")])  # no target URI


def three_versions(site, cli) -> str:
    url = site.page("/politik/truppen", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    assert cli("snapshot", url).code == 0  # unchanged: a revisit
    site.page("/politik/truppen", article_html("Truppen", ["Es werden 60.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    return url


def test_every_record_matches_the_warc_1_1_grammar_and_warcio_check_passes(site, cli, tmp_path):
    url = three_versions(site, cli)
    wacz = tmp_path / "x.wacz"
    assert cli("export", url, "--wacz", str(wacz)).code == 0
    import zipfile

    exported = tmp_path / "data.warc.gz"
    exported.write_bytes(zipfile.ZipFile(wacz).read("archive/data.warc.gz"))
    files = [*warc_files(cli.data_dir), exported]
    for path in files:
        assert check_grammar(path) == [], path.name
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, files)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "failed" not in check.stdout
    assert check.stdout.count("digest pass") >= 10


def test_request_records_carry_sha256_and_warcinfo_is_first_in_time(site, cli):
    three_versions(site, cli)
    for path in warc_files(cli.data_dir):
        with open(path, "rb") as fh:
            recs = [(r.rec_type, dict(r.rec_headers.headers)) for r in ArchiveIterator(fh)]
        assert recs[0][0] == "warcinfo" and [t for t, _ in recs].count("warcinfo") == 1
        info_date = datetime.fromisoformat(recs[0][1]["WARC-Date"].replace("Z", "+00:00"))
        for rtype, headers in recs:
            assert datetime.fromisoformat(headers["WARC-Date"].replace("Z", "+00:00")) >= info_date, rtype
            if rtype == "request":
                assert headers["WARC-Payload-Digest"].startswith("sha256:")  # not warcio's SHA-1 of ""
                assert headers["WARC-Block-Digest"].startswith("sha256:")


def test_the_writer_dates_warcinfo_before_a_capture_announced_earlier(tmp_path):
    """A capture that began before its file was opened still follows the warcinfo."""
    from datetime import timedelta, timezone

    from archiver.capture.records import manifest_record
    from store.warc import WarcFileWriter, WarcInfo, warc_date

    now = [datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)]
    w = WarcFileWriter(tmp_path, WarcInfo(software="t", hostname="h"), clock=lambda: now[0], fsync=False)
    started = now[0]
    with w.hold(started):
        now[0] += timedelta(seconds=30)
        (loc,) = w.append([manifest_record("s1", warc_date(started), "<urn:uuid:x>", {"manifest": {}}, lambda: "1")])
    # a record older than the open file's warcinfo nobody announced: a new file, never out of order
    (old,) = w.append([manifest_record("s2", warc_date(started - timedelta(hours=1)), "<urn:uuid:y>", {}, lambda: "2")])
    w.close()
    assert old.warc_file != loc.warc_file
    for path in sorted(tmp_path.glob("*.warc.gz")):
        with open(path, "rb") as fh:
            dates = [r.rec_headers.get_header("WARC-Date") for r in ArchiveIterator(fh)]
        assert dates[0] == min(dates), path.name


def test_the_manifest_record_has_a_target_of_its_own(site, cli):
    url = three_versions(site, cli)
    history = cli("history", url, "--json").json()
    metas = []
    for path in warc_files(cli.data_dir):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                headers = dict(rec.rec_headers.headers)
                if rec.rec_type == "metadata" and headers["Content-Type"] == "application/json":
                    metas.append((headers, json.loads(rec.content_stream().read())))
                elif rec.rec_type == "metadata":  # the capture's signed intent: a URN of its own too
                    rid = headers["WARC-Refers-To"]
                    assert headers["WARC-Target-URI"] == "urn:archiver:intent:" + rid.strip("<>")[len("urn:uuid:"):]
                elif rec.rec_type in ("response", "revisit"):
                    assert headers["WARC-Target-URI"] == url
    assert len(metas) == 3
    responses = {h["id"]: h for h in history}
    for headers, body in metas:
        sid = body["manifest"]["snapshot_id"]
        assert sid in responses
        assert headers["WARC-Target-URI"] == f"urn:archiver:manifest:{sid}"
        assert headers["WARC-Refers-To"] == headers["WARC-Concurrent-To"]
        assert headers["Content-Type"] == "application/json"
    # cdxj-indexer, asked for every record, files the manifest under its URN, not under the page
    out = subprocess.run([str(Path(sys.executable).parent / "cdxj-indexer"), "--records", "all",
                          *map(str, warc_files(cli.data_dir))], capture_output=True, text=True, check=True).stdout
    page_key = [line for line in out.splitlines() if "/politik/truppen" in line.split(" ")[0]]
    assert page_key and all('"mime": "application/json"' not in line for line in page_key)
    assert sum("urn:archiver:manifest:" in line.split(" ")[0] for line in out.splitlines()) == 3
    assert sum("urn:archiver:intent:" in line.split(" ")[0] for line in out.splitlines()) == 3


def test_a_manifest_record_under_another_snapshots_urn_is_not_read_as_its_manifest():
    from archiver.capture.records import manifest_fields
    from store.scan import ParsedRecord

    block = json.dumps({"signature": "s", "key_id": "k", "manifest": {
        "snapshot_id": "A", "url": "http://example.org/", "final_url": "http://example.org/",
        "log": {"index": 0}, "records": []}}).encode()
    rec = lambda target: ParsedRecord(  # noqa: E731
        {"WARC-Type": "metadata", "Content-Type": "application/json", "WARC-Target-URI": target}, block)
    assert manifest_fields(rec("urn:archiver:manifest:A")) is not None
    assert manifest_fields(rec("http://example.org/page")) is not None  # the earlier form
    assert manifest_fields(rec("urn:archiver:manifest:B")) is None


def test_archives_in_the_earlier_forms_still_verify_and_export(site, cli, tmp_path, monkeypatch):
    """Padded base32 digests and the manifest under the page URL, as the
    previous version wrote them; then a capture in today's form on top."""
    import base64

    import archiver.capture.records as records

    url = site.page("/alt", article_html("Alt", ["Es waren 12 Minister."]))
    with monkeypatch.context() as m:
        m.setattr(records, "sha256_label", lambda d: "sha256:" + base64.b32encode(d).decode())
        m.setattr(records, "manifest_uri", lambda sid: url)
        assert cli("snapshot", url).code == 0
        assert cli("snapshot", url).code == 0  # a revisit of the old-form response
    site.page("/alt", article_html("Alt", ["Es waren 13 Minister."]))
    assert cli("snapshot", url).code == 0
    raw = b"".join(gzip.decompress(p.read_bytes()) for p in warc_files(cli.data_dir))
    assert b"====" in raw and b"urn:archiver:manifest:" in raw  # both forms really are there
    r = cli("verify", "--json")
    assert r.code == 0, r.out
    assert r.json()["checked"] == 3
    wacz = tmp_path / "old.wacz"
    assert cli("export", url, "--wacz", str(wacz)).code == 0
    assert cli("verify", "--wacz", str(wacz)).code == 0
    assert cli("repair").code == 0
    assert cli("verify").out.startswith("OK: 3 snapshot(s) checked")


@pytest.mark.parametrize("label", [
    "sha256:MSGKCDL5MPA6OFY6T7ACKFQZOIW4AEUTOO3EU57NTZQH4DJRRPJQ====",
    "sha256:MSGKCDL5MPA6OFY6T7ACKFQZOIW4AEUTOO3EU57NTZQH4DJRRPJQ",
    "sha256:648ca10d7d63c1e7171e9fc0251619722dc0129373b64a77ed9e607e0d318bd3",
    "sha256:ZIyhDX1jwecXHp/AJRYZci3AEpNztkp37Z5gfg0xi9M=",
])
def test_digest_labels_are_read_in_every_encoding(label):
    assert label_bytes(label) == ("sha256", bytes.fromhex("648ca10d7d63c1e7171e9fc0251619722dc0129373b64a77ed9e607e0d318bd3"))


def test_a_digest_of_the_wrong_size_is_not_read():
    assert label_bytes("sha256:" + "ab" * 20) is None
    assert label_bytes("sha1:" + "ab" * 32) is None


def _member(head: bytes, block: bytes = b"hello") -> bytes:
    return gzip.compress(head + b"Content-Length: " + str(len(block)).encode() + b"\r\n\r\n" + block + b"\r\n\r\n")


@pytest.mark.parametrize("bad", [
    b"WARC-Type: resource\r\nWARC-Type: warcinfo\r\n",  # one tool replays it, another skips it
    b"WARC-Type: resource\r\nWARC-Target-URI: http://a.test/\nWARC-Type: warcinfo\r\n",  # a lone LF
    b"WARC-Type: resource\r\nWARC Target: http://a.test/\r\n",  # a name that is no token
    b"WARC-Type: resource\x00\r\n",  # a control character
])
def test_a_packages_records_are_read_by_the_strict_grammar(bad):
    """verify --wacz reads a package's records as the archive reads its own
    (store/fields.py): a header other tools could read differently is not a
    record, whatever its digest says."""
    from archiver.audit.wacz_format import parse_member

    good = parse_member(_member(b"WARC/1.1\r\nWARC-Type: resource\r\nWARC-Target-URI: http://a.test/\r\n"
                                b"WARC-Concurrent-To: <urn:a>\r\nWARC-Concurrent-To: <urn:b>\r\n"))
    assert good.type == "resource" and good.block == b"hello" and good.header("warc-target-uri") == "http://a.test/"
    with pytest.raises(ValueError):
        parse_member(_member(b"WARC/1.1\r\n" + bad))
