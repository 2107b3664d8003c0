"""`archiver snapshot` end to end against real loopback servers: what lands
in the WARC files and the index, and every way a fetch can go wrong."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from warcio.archiveiterator import ArchiveIterator

from conftest import article_html, send, warc_files

ARTICLE = article_html(
    "Stadtrat beschließt neues Radwegenetz",
    ["Der Stadtrat hat am Montag mit 31 zu 12 Stimmen ein Netz von 48 Kilometern Radwegen beschlossen.",
     "Die Kosten liegen bei 8,5 Millionen Euro, verteilt auf vier Jahre."],
)


def records(data_dir: Path) -> list[tuple[str, dict, bytes]]:
    out = []
    for path in warc_files(data_dir):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                out.append((rec.rec_type, dict(rec.rec_headers.headers), rec.content_stream().read()))
    return out


def warcio_check(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, warc_files(data_dir))],
                          capture_output=True, text=True)


def test_normal_page_lands_as_standard_warc(site, cli):
    url = site.page("/politik/radwege", ARTICLE)
    r = cli("snapshot", url, "--json")
    assert r.code == 0, r.err
    (snap,) = r.lines()
    assert {"id", "url", "captured_at", "status", "payload_sha256", "warc_file", "warc_offset", "significance"} <= snap.keys()
    assert snap["status"] == 200 and snap["significance"] == "first" and snap["url"] == url
    assert snap["payload_sha256"] == hashlib.sha256(ARTICLE.encode()).hexdigest()

    check = warcio_check(cli.data_dir)
    assert check.returncode == 0, check.stdout
    assert "digest pass" in check.stdout

    recs = records(cli.data_dir)
    types = [t for t, _, _ in recs]
    assert types[0] == "warcinfo" and {"response", "request", "metadata"} <= set(types)
    resp = next(h for t, h, _ in recs if t == "response")
    req = next(h for t, h, _ in recs if t == "request")
    assert req["WARC-Concurrent-To"] == resp["WARC-Record-ID"]
    assert resp["WARC-IP-Address"] == "127.0.0.1"
    assert resp["WARC-Payload-Digest"].startswith("sha256:") and resp["WARC-Block-Digest"].startswith("sha256:")
    assert req["WARC-Date"] == resp["WARC-Date"] and len(resp["WARC-Date"]) == len("2026-01-01T00:00:00.000000Z")
    info = next(c for t, _, c in recs if t == "warcinfo").decode()
    assert "software: archiver/" in info and "conformsTo:" in info
    name = warc_files(cli.data_dir)[0].name
    assert name.startswith("archiver-") and name.endswith(".warc.gz")
    # The snapshot points at its response record.
    with open(cli.data_dir / "warcs" / snap["warc_file"], "rb") as fh:
        fh.seek(snap["warc_offset"])
        first = next(iter(ArchiveIterator(fh)))
        assert first.rec_type == "response"
    assert cli("show", url, "--text").out.startswith("Stadtrat beschließt neues Radwegenetz")


def test_cdxj_indexer_indexes_each_capture_with_status(site, cli):
    ok = site.page("/a", ARTICLE)
    missing = site.url("/gone")
    assert cli("snapshot", ok, missing, "--json").code == 0
    out = subprocess.run([str(Path(sys.executable).parent / "cdxj-indexer"), *map(str, warc_files(cli.data_dir))], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line.split(" ", 2)[2]) for line in out.stdout.splitlines()]
    statuses = {(d["url"], d.get("status")) for d in lines if d.get("mime") != "warc/revisit"}
    assert (ok, "200") in statuses and (missing, "404") in statuses


@pytest.mark.usefixtures("fetch_path")
def test_chunked_response_payload_digest_excludes_transfer_encoding(site, cli):
    body = article_html("Chunked", ["Erster Teil des Artikels.", "Zweiter Teil mit 17 Zahlen."]).encode()

    def chunked(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(0, len(body), 40):
            part = body[i:i + 40]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        h.wfile.write(b"0\r\n\r\n")

    site.routes["/chunked"] = chunked
    r = cli("snapshot", site.url("/chunked"), "--json")
    assert r.code == 0, r.err
    assert r.lines()[0]["payload_sha256"] == hashlib.sha256(body).hexdigest()
    rec = next(h for t, h, _ in records(cli.data_dir) if t == "response")
    assert rec["WARC-Payload-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    # The raw chunk framing is kept in the record block.
    with open(warc_files(cli.data_dir)[0], "rb") as fh:
        raw = gzip.decompress(fh.read())
    assert b"Transfer-Encoding: chunked" in raw and b"\r\n28\r\n" in raw
    # warcio check digests the chunked bytes (warcio issues #74/#75), so it
    # flags exactly this record's payload digest and nothing else.
    check = warcio_check(cli.data_dir)
    problems = [line for line in check.stdout.splitlines() if "failed" in line]
    assert problems == [f"    payload digest failed {rec['WARC-Payload-Digest']}"]


@pytest.mark.usefixtures("fetch_path")
def test_redirect_chain_records_every_hop(site, cli):
    final = site.page("/final", ARTICLE)
    site.page("/one", b"", status=301, headers={"Location": "/two"})
    site.page("/two", b"moved", status=302, headers={"Location": final})
    r = cli("snapshot", site.url("/one"), "--json")
    assert r.code == 0, r.err
    snap = r.lines()[0]
    assert snap["status"] == 200 and snap["final_url"] == final and snap["url"] == site.url("/one")
    pairs = [(t, h["WARC-Target-URI"]) for t, h, _ in records(cli.data_dir) if t in ("request", "response")]
    assert [u for t, u in pairs if t == "response"] == [site.url("/one"), site.url("/two"), final]
    manifest = json.loads(cli("show", site.url("/one"), "--provenance").out)["manifest"]
    assert manifest["redirect_chain"] == [site.url("/one"), site.url("/two"), final]


def test_identical_recapture_is_a_revisit(site, cli):
    url = site.page("/same", ARTICLE)
    first = cli("snapshot", url, "--json").lines()[0]
    second = cli("snapshot", url, "--json").lines()[0]
    assert second["revisit"] is True and second["significance"] == "none"
    assert second["payload_sha256"] == first["payload_sha256"]
    recs = records(cli.data_dir)
    revisit = next(h for t, h, _ in recs if t == "revisit")
    original = next(h for t, h, _ in recs if t == "response")
    assert revisit["WARC-Profile"] == "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
    assert revisit["WARC-Refers-To-Target-URI"] == url
    # the original's date to the second (ReplayWeb.page looks up at-or-after it in a whole-second index)
    assert revisit["WARC-Refers-To-Date"] == original["WARC-Date"][:19] + "Z"
    assert revisit["WARC-Refers-To"] == original["WARC-Record-ID"]
    assert revisit["WARC-Payload-Digest"] == original["WARC-Payload-Digest"]
    assert revisit["WARC-Truncated"] == "length"
    assert warcio_check(cli.data_dir).returncode == 0
    # The text of the revisit is served from the original record.
    assert "48 Kilometern" in cli("show", url, "--at", second["id"], "--text").out


@pytest.mark.usefixtures("fetch_path")
def test_server_that_never_answers_times_out(site, tmp_path, cli):
    def silent(h):
        time.sleep(30)

    site.routes["/silent"] = silent
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[capture]\nread_timeout = 1.0\ntotal_timeout = 5.0\n")
    start = time.monotonic()
    r = cli("--config", str(cfg), "snapshot", site.url("/silent"))
    assert time.monotonic() - start < 10
    assert r.code == 1 and "no response within" in r.err and r.err.count("\n") == 1
    assert "Traceback" not in r.err


@pytest.mark.usefixtures("fetch_path")
def test_two_gib_body_stops_at_cap(site, tmp_path, cli):
    def huge(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()  # no length: the body runs until the connection closes
        h.close_connection = True
        chunk = b"\0" * 65536
        try:
            for _ in range(2 * 1024 * 1024 * 1024 // 65536):
                h.wfile.write(chunk)
        except OSError:
            pass

    def declared(h):
        h.send_response(200)
        h.send_header("Content-Length", str(2 * 1024 ** 3))
        h.end_headers()

    site.routes["/huge"] = huge
    site.routes["/declared"] = declared
    cfg = tmp_path / "cap.toml"
    cfg.write_text("[capture]\nmax_body_bytes = 5000000\n")
    start = time.monotonic()
    r = cli("--config", str(cfg), "snapshot", site.url("/huge"))
    assert r.code == 1 and "exceeds the 5000000-byte cap" in r.err, r.err
    r = cli("--config", str(cfg), "snapshot", site.url("/declared"))
    assert r.code == 1 and "body of 2147483648 bytes exceeds" in r.err
    assert time.monotonic() - start < 30
    assert not cli.data_dir.joinpath("index.sqlite3").exists() or cli("history", site.url("/huge")).code == 1


@pytest.mark.usefixtures("fetch_path")
def test_gzip_bomb_stops_at_decoded_cap(site, tmp_path, cli):
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 300_000
    site.page("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    cfg = tmp_path / "cap.toml"
    cfg.write_text("[capture]\nmax_decoded_bytes = 10000000\n")
    r = cli("--config", str(cfg), "snapshot", site.url("/bomb"))
    assert r.code == 1 and "decoded body exceeds the 10000000-byte cap" in r.err, r.err


def test_gzip_encoded_page_is_decoded_for_text(site, bcli):
    site.page("/gz", gzip.compress(ARTICLE.encode()), headers={"Content-Encoding": "gzip"})
    assert bcli("snapshot", site.url("/gz")).code == 0
    assert "8,5 Millionen Euro" in bcli("show", site.url("/gz"), "--text").out


@pytest.mark.usefixtures("fetch_path")
def test_redirect_loop_is_refused(site, bcli):
    site.page("/a", b"", status=302, headers={"Location": "/b"})
    site.page("/b", b"", status=302, headers={"Location": "/a"})
    r = bcli("snapshot", site.url("/a"))
    assert r.code == 1 and "redirect loop" in r.err


@pytest.mark.usefixtures("fetch_path")
def test_too_many_redirects_is_refused(site, tmp_path, cli):
    for i in range(5):
        site.page(f"/r{i}", b"", status=301, headers={"Location": f"/r{i + 1}"})
    cfg = tmp_path / "r.toml"
    cfg.write_text("[capture]\nmax_redirects = 3\n")
    r = cli("--config", str(cfg), "snapshot", site.url("/r0"))
    assert r.code == 1 and "more than 3 redirects" in r.err


def test_connection_cut_mid_body(site, bcli):
    def cut(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.write(b"<html><body><p>Anfang des Textes")
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)
        h.close_connection = True

    site.routes["/cut"] = cut
    r = bcli("snapshot", site.url("/cut"))
    assert r.code == 1 and "connection broken after" in r.err, r.err


@pytest.mark.usefixtures("fetch_path")
def test_redirect_to_cloud_metadata_is_refused_even_when_private_allowed(site, cli):
    site.page("/meta", b"", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    r = cli("snapshot", site.url("/meta"))
    assert r.code == 1 and "link-local address 169.254.169.254" in r.err, r.err


def test_latin1_page_without_charset_keeps_umlauts(site, bcli):
    html = article_html("Grüße aus Köln", ["Die Bürger äußern sich über die Straßenbahn: Öffnung im Mai."])
    site.page("/latin", html.replace('<meta charset="utf-8">', "").encode("latin-1"), content_type="text/html")
    assert bcli("snapshot", site.url("/latin")).code == 0
    text = bcli("show", site.url("/latin"), "--text").out
    assert "Grüße aus Köln" in text and "äußern" in text and "Öffnung" in text


@pytest.mark.parametrize("status", [404, 500])
def test_error_pages_are_captures(site, bcli, status):
    url = site.page(f"/e{status}", article_html("Fehler", ["Die Seite ist nicht verfügbar."]), status=status)
    r = bcli("snapshot", url, "--json")
    assert r.code == 0
    assert r.lines()[0]["status"] == status
    hist = bcli("history", url, "--json").json()
    assert [h["status"] for h in hist] == [status]


@pytest.mark.usefixtures("fetch_path")
def test_loopback_refused_without_allowance(site, strict_cli):
    url = site.page("/x", ARTICLE)
    r = strict_cli("snapshot", url)
    assert r.code == 1
    assert r.err.strip() == f"archiver: {url}: 127.0.0.1 resolves to loopback address 127.0.0.1, which is refused (set ARCHIVER_ALLOW_PRIVATE=1 to allow)"
    assert site.hits == {}


@pytest.mark.parametrize(
    "url,message",
    [
        ("file:///etc/passwd", "unsupported URL scheme 'file'"),
        ("http://", "no host"),
        ("http://exa mple.org/", "whitespace"),
        ("not a url", "unsupported URL scheme"),
        ("http://127.0.0.1:99999/", "malformed URL"),
    ],
)
def test_bad_urls_get_one_line_errors(cli, url, message):
    r = cli("snapshot", url)
    assert r.code == 1 and message in r.err and r.err.count("\n") == 1


def test_usage_errors_exit_2(cli):
    r = cli("snapshot")
    assert r.code == 2 and "at least one URL" in r.err
    r = cli("frobnicate")
    assert r.code == 2 and r.err.count("\n") == 1


def test_unknown_url_history_is_a_clear_error(site, bcli):
    assert bcli("snapshot", site.page("/other", ARTICLE)).code == 0
    r = bcli("history", "http://example.invalid/none")
    assert r.code == 1 and "no snapshots of http://example.invalid/none" in r.err


def test_many_urls_from_a_file_concurrently(site, cli, tmp_path):
    urls = [site.page(f"/p{i}", article_html(f"Meldung {i}", [f"Es gab {i} Vorfälle."])) for i in range(12)]
    listing = tmp_path / "urls.txt"
    listing.write_text("# a comment\n" + "\n".join(urls) + "\n\n")
    r = cli("snapshot", "-i", str(listing), "--json", "--workers", "4")
    assert r.code == 0, r.err
    assert sorted(s["url"] for s in r.lines()) == sorted(urls)
    assert warcio_check(cli.data_dir).returncode == 0


def test_one_failure_among_many_exits_1_but_keeps_the_rest(site, bcli):
    good = site.page("/good", ARTICLE)
    r = bcli("snapshot", good, "file:///nope", "--json")
    assert r.code == 1
    results = r.lines()
    assert {x.get("url") for x in results} == {good, "file:///nope"}
    assert bcli("history", good).code == 0


def test_four_concurrent_processes_share_one_archive(site, cli):
    urls = [site.page(f"/c{i}", article_html(f"Bericht {i}", [f"Heute wurden {i * 100} Bäume gepflanzt."])) for i in range(8)]
    procs = [cli.popen("snapshot", urls[2 * i], urls[2 * i + 1], "--json") for i in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [e for _, e in outs]
    snaps = [json.loads(line) for o, _ in outs for line in o.splitlines()]
    assert len(snaps) == 8 and len({s["id"] for s in snaps}) == 8
    assert len({s["warc_file"] for s in snaps}) == 4  # one file per process, never interleaved
    assert warcio_check(cli.data_dir).returncode == 0
    assert sorted(h["log_index"] for h in snaps) == list(range(8))


def test_reading_a_missing_archive_names_it_and_creates_nothing(tmp_path, cli):
    from conftest import CLI

    missing = CLI(tmp_path / "typo", cli.env)
    for args in (["history", "http://x.invalid/"], ["verify"], ["diff", "http://x.invalid/"], ["checkpoint"]):
        r = missing(*args)
        assert r.code == 1 and f"no archive at {tmp_path / 'typo'}" in r.err, (args, r.err)
    assert not (tmp_path / "typo").exists()


def test_show_html_and_human_snapshot_output(site, bcli):
    url = site.page("/h", article_html("Zahlen", ["Es kamen 50.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    html = bcli("show", url, "--html")
    assert html.code == 0 and html.out.startswith("<!doctype html>") and "50.000 Menschen" in html.out
    site.page("/h", article_html("Zahlen", ["Es kamen 60.000 Menschen."]))
    r = bcli("snapshot", url)
    assert r.code == 0 and "substantive" in r.out and "Figure changed: 50.000 → 60.000 (Menschen)" in r.out
    d = bcli("diff", url, "--color", "always")
    assert "\x1b[" in d.out and "Figure changed: 50.000 → 60.000 (Menschen)" in d.out
    assert "\x1b[" not in bcli("diff", url).out  # not a terminal: no colour


@pytest.mark.parametrize("behaviour", ["garbage", "hangup", "bad-gzip"])
def test_misbehaving_servers_get_one_line_errors_or_are_kept_as_sent(site, cli, behaviour):
    def garbage(h):
        h.wfile.write(b"this is not HTTP at all\r\n\r\n")
        h.close_connection = True

    def hangup(h):
        h.close_connection = True  # close without a single byte

    def bad_gzip(h):  # declares gzip, sends plain text: archived as sent, text still shown
        send(h, 200, article_html("Kaputt", ["Es gab 3 Fehler."]).encode(), headers={"Content-Encoding": "gzip"})

    site.routes["/m"] = {"garbage": garbage, "hangup": hangup, "bad-gzip": bad_gzip}[behaviour]
    r = cli("snapshot", site.url("/m"))
    assert "Traceback" not in r.err
    if behaviour == "bad-gzip":
        assert r.code == 0
        assert "3 Fehler" in cli("show", site.url("/m")).out
        assert cli("verify").code == 0
    else:
        assert r.code == 1 and r.err.count("\n") == 1 and "cannot fetch" in r.err


def capture_with_a_moved_digest(site: Any, cli: Any, capture: Callable[[str], Any]) -> tuple[str, dict, dict]:
    """Two versions of a page captured; whoever can write the index gives the
    first row the second's payload digest; ``capture(url)`` runs the third
    capture; the row is put back. The URL and the first two history items."""
    def set_digest(digest: str) -> None:
        db = cli.db()  # either configuration's index
        try:
            db.execute("UPDATE snapshots SET payload_sha256=? WHERE id=?", (digest, first["id"]))
            db.commit()
        finally:
            db.close()

    url = site.page("/lage", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    site.page("/lage", article_html("Lage", ["Es kamen 80.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    first, second = sorted(cli("history", url, "--json").json(), key=lambda h: h["captured_at"])
    set_digest(second["payload_sha256"])
    assert capture(url).code == 0
    set_digest(first["payload_sha256"])
    return url, first, second


def test_a_payload_digest_moved_in_the_index_never_makes_a_revisit_of_other_content(site, cli):
    """Whoever can write the index (not keys/) gives an old snapshot row the
    digest of the page as it is now. The next capture took that row's response
    -- the old text -- as its revisit's original and signed it: the snapshot
    replayed (show --html, pywb, the web desk) content it never fetched, and
    verify, which checks no payload for a revisit, passed once the row was put back."""
    url, _first, _second = capture_with_a_moved_digest(site, cli, lambda url: cli("snapshot", url))
    latest = cli("show", url, "--html").out
    assert "80.000" in latest and "50.000" not in latest
    assert cli("verify").code == 0
    # An honest index still gets its revisit: the page unchanged since the last capture.
    assert cli("snapshot", url).code == 0
    assert [r for r, _, _ in records(cli.data_dir)].count("revisit") == 1
