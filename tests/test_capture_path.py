"""The capture path's cheaper parts keep their guarantees: WARC records hold
the exact bytes of the exchange (whatever spacing the server's header lines
use), either gzip mode writes members every reader inflates, an IP literal
is vetted without a lookup, and DNS lookups keep their deadline while their
threads are reused."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.capture.addresses import AddressPolicy
from archiver.capture.deadline import DaemonThreads, Deadline, ip_literal, resolve
from archiver.capture.outbound import Outbound
from archiver.errors import AddressRefused, FetchTimeout
from conftest import warc_files

BODY = b"<html><body><article><h1>Meldung</h1><p>Der Etat steigt auf 4,5 Milliarden Euro.</p></article></body></html>"
# Header lines as some servers write them: no space after the colon, two spaces, a tab.
ODD_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type:text/html; charset=utf-8\r\nX-Two:  spaces\r\nX-Tab:\tvalue\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY))


@pytest.fixture
def odd_server() -> Any:
    """A raw socket server answering every request with ODD_HEAD + BODY."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(ODD_HEAD + BODY)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    srv.close()


def records(data_dir) -> list[tuple[str, dict[str, str], bytes]]:
    out = []
    for path in warc_files(data_dir):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, no_record_parse=True):
                out.append((rec.rec_type, dict(rec.rec_headers.headers), rec.content_stream().read()))
    return out


def test_the_response_record_holds_the_exact_bytes_of_odd_header_lines(cli, odd_server):
    """warcio's builder re-rendered the head ("Content-Type: text/html"), so the
    block differed from the wire bytes its WARC-Block-Digest was taken over and
    verify reported it; the block is now the wire bytes."""
    assert cli("snapshot", odd_server + "/a").code == 0
    responses = [block for kind, _, block in records(cli.data_dir) if kind == "response"]
    assert responses == [ODD_HEAD + BODY]
    assert cli("snapshot", odd_server + "/a").code == 0  # unchanged: a revisit of the first
    revisits = [(h, block) for kind, h, block in records(cli.data_dir) if kind == "revisit"]
    assert len(revisits) == 1 and revisits[0][1] == ODD_HEAD  # the head as received
    assert revisits[0][0]["WARC-Profile"].endswith("/identical-payload-digest")
    verify = cli("verify")
    assert verify.code == 0, verify.out


@pytest.mark.parametrize("mode", ["fast", "small"])
def test_either_gzip_mode_writes_members_every_reader_inflates(cli, site, tmp_path, mode):
    config = tmp_path / "gzip.toml"
    config.write_text(f'[archive]\nwarc_gzip = "{mode}"\n')
    site.page("/p", BODY)
    assert cli("--config", str(config), "snapshot", site.url("/p")).code == 0
    assert cli("--config", str(config), "verify").code == 0
    kinds = [kind for kind, _, _ in records(cli.data_dir)]
    assert kinds == ["warcinfo", "response", "request", "metadata", "metadata"]
    data = b"".join(p.read_bytes() for p in warc_files(cli.data_dir))
    assert gzip.decompress(data).count(b"WARC/1.1\r\n") == 5  # members of plain gzip (zlib reads them too)


def test_an_unknown_gzip_mode_is_a_one_line_usage_error(cli, tmp_path):
    config = tmp_path / "gzip.toml"
    config.write_text('[archive]\nwarc_gzip = "fastest"\n')
    result = cli("--config", str(config), "snapshot", "http://127.0.0.1:9/")
    assert result.code != 0 and "archive.warc_gzip" in result.err and len(result.err.strip().splitlines()) == 1


def test_an_ip_literal_is_vetted_without_a_lookup():
    def no_lookup(host: str, port: int) -> list[str]:
        raise AssertionError(f"looked up {host}")

    deadline = Deadline.after(5)
    open_policy = Outbound(AddressPolicy(allow_private=True), resolver=no_lookup)
    assert open_policy.vet("127.0.0.1", 80, deadline, 5, "127.0.0.1") == ["127.0.0.1"]
    assert open_policy.vet("::1", 80, deadline, 5, "::1") == ["::1"]
    strict = Outbound(AddressPolicy(), resolver=no_lookup)
    for literal in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1"):
        with pytest.raises(AddressRefused):
            strict.vet(literal, 80, deadline, 5, literal)
    # Names, and shorthand that only a resolver reads as an address, are looked up.
    assert [ip_literal(h) for h in ("127.1", "0x7f.0.0.1", "localhost", "1example.org")] == [None] * 4
    looked: list[str] = []
    assert resolve("127.1", 80, 5, lambda h, p: looked.append(h) or ["127.0.0.1"]) == ["127.0.0.1"]
    assert looked == ["127.1"]


def test_lookup_threads_are_reused_and_a_hung_lookup_still_times_out():
    pool = DaemonThreads("test-resolve", keep=2)
    names: set[str] = set()
    for _ in range(50):
        names.add(pool.submit(lambda: threading.current_thread().name + str(threading.get_ident())).result(5))
    assert len(names) == 1  # one thread served them all, one call after the other
    release = threading.Event()
    hung = pool.submit(release.wait)
    t0 = time.monotonic()
    with pytest.raises(FetchTimeout):
        resolve("stuck.example", 80, 0.2, lambda h, p: [str(release.wait(30))])
    assert time.monotonic() - t0 < 2
    assert pool.submit(lambda: 42).result(2) == 42  # a busy thread does not block the next call
    release.set()
    assert hung.result(5) is True


def test_a_failed_background_fsync_rolls_the_commit_back(site, tmp_path, monkeypatch):
    """The manifests' fsync runs while the rows are inserted; when it fails,
    the transaction does not commit, the capture fails with one error, and
    the next capture (and repair, verify) go on."""
    import errno
    import os

    from archiver import config
    from archiver.archive import Archive
    from archiver.errors import ArchiverError
    from conftest import article_html

    settings = config.load(None, {"ARCHIVER_ALLOW_PRIVATE": "1"})
    settings.archive.data_dir = str(tmp_path / "a")
    settings.capture.requisites = False
    urls = [site.page(f"/s{i}", article_html(f"Meldung {i}", [f"Es gab {i} Fälle."])) for i in range(3)]
    real = os.fsync
    with Archive(settings) as archive:
        archive.snapshot(urls[0])

        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(ArchiverError, match="Input/output error"):
            archive.snapshot(urls[1])
        monkeypatch.setattr(os, "fsync", real)
        assert [r.url for r in archive.index.all_snapshots()] == [urls[0]]
        archive.snapshot(urls[2])
    from conftest import CLI, _base_env

    cli = CLI(tmp_path / "a", _base_env(tmp_path))
    assert cli("repair").code == 0
    result = cli("verify")
    assert result.code == 0, result.out
    with Archive(settings) as again:  # the failed capture's signed records were adopted: nothing lost
        assert {r.url for r in again.index.all_snapshots()} == set(urls)


@pytest.mark.parametrize("title", ["Meldung", "Größte Änderung – “zitiert”"])
def test_a_manifest_record_embeds_the_signed_bytes_as_the_json_encoder_would(title):
    """The manifest record reuses the signed canonical bytes instead of encoding
    the manifest again: byte for byte the old document for an ASCII manifest;
    with other characters the same JSON value, which the audit's fast path
    (the signed bytes found in place) accepts."""
    import json

    from archiver.canonical import canonical_json, sha256_hex
    from archiver.capture.records import manifest_fields, manifest_record, signed_manifest
    from store.scan import parse_record

    manifest = {"snapshot_id": "s1", "url": "http://example.org/", "final_url": "http://example.org/",
                "title": title, "log": {"index": 3}, "records": [{"record_id": "<urn:uuid:1>", "sha256": "ab",
                                                                  "type": "response"}]}
    canonical = canonical_json(manifest)
    fields = {"manifest": manifest, "manifest_sha256": sha256_hex(canonical), "signature": "c2ln", "key_id": "0abc"}
    args = ("s1", "2026-01-01T00:00:00.000000Z", "<urn:uuid:1>", fields, lambda: "u1")
    embedded, encoded = manifest_record(*args, canonical), manifest_record(*args)
    assert json.loads(embedded.block) == json.loads(encoded.block) == fields
    assert (embedded.block == encoded.block) is title.isascii()
    rec = parse_record(embedded.to_bytes())
    assert manifest_fields(rec) == fields
    found = signed_manifest(rec)
    assert found is not None and found[1] == canonical


def test_a_header_field_with_a_line_break_is_never_written(tmp_path):
    """A value that smuggles CRLF would forge the fields after it; the record
    is refused (a capture of such a URL never gets this far: check_url)."""
    from store.errors import StoreError
    from store.warc import WarcFileWriter, WarcInfo, new_record

    bad = new_record("resource", "http://example.org/\r\nWARC-Type: response", "<urn:uuid:1>",
                     "2026-01-01T00:00:00.000000Z", b"x", "text/plain")
    with WarcFileWriter(tmp_path, WarcInfo(software="t")) as writer:
        with pytest.raises(StoreError, match="control character"):
            writer.append([bad])
        good = new_record("resource", "http://example.org/\tx", "<urn:uuid:2>", "2026-01-01T00:00:00.000000Z",
                          b"x", "text/plain")
        assert writer.append([good])[0].record_type == "resource"



def test_cached_address_verdicts_still_follow_each_policy():
    """Parsed addresses and their kind are cached per process, but never a
    policy's answer: the same address is allowed by one policy and refused by
    another, in any order; a malformed address is refused every time."""
    from archiver.capture.addresses import parse_ip

    open_policy, strict = AddressPolicy(allow_private=True), AddressPolicy()
    deny = AddressPolicy.from_settings(True, deny=["127.0.0.0/8"])
    for _ in range(2):
        open_policy.check_ip("127.0.0.1", "x")
        with pytest.raises(AddressRefused, match="loopback"):
            strict.check_ip("127.0.0.1", "x")
        with pytest.raises(AddressRefused, match="deny_networks"):
            deny.check_ip("127.0.0.1", "x")
        with pytest.raises(AddressRefused, match="not an IP address"):
            strict.check_ip("127.0.0.256", "x")
    with pytest.raises(AddressRefused, match="link-local"):
        open_policy.check_ip("fe80::1%eth0", "x")
    assert parse_ip("fe80::1%eth0") == parse_ip("fe80::1")
