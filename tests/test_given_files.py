"""Text files the operator names -- a URL list (``snapshot -i``), a sources
file (``watch --file``), a settings file (``--config``), a checkpoint note
(``verify --since``) -- are read through one bounded reader (archiver/given.py):
a file that is not UTF-8, not a regular file, or too large is one line naming
it and a non-zero exit; never an internal error, never a wait on a FIFO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.given import MAX_NOTE_BYTES
from conftest import CLI, REPO, article_html

NOT_UTF8 = b"\xff\xfe\x00http://127.0.0.1/\n"


def refused(r, says: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code in (1, 2), (r.code, r.out, r.err)
    assert says in r.err and "internal error" not in r.err and "Traceback" not in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1, r.err


def test_a_url_list_that_is_not_utf8_is_one_line(cli: CLI, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(NOT_UTF8)
    refused(cli("snapshot", "-i", str(listing)), f"URL list {listing} is not UTF-8 text")


def test_a_url_list_on_a_fifo_is_refused_at_once(cli: CLI, tmp_path: Path) -> None:
    """Opening a FIFO nobody writes blocked the command for ever."""
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    refused(cli.process("snapshot", "-i", str(fifo), timeout=60), "not a regular file")


def test_a_url_list_from_stdin_still_reads(site, cli: CLI) -> None:  # type: ignore[no-untyped-def]
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    p = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(cli.data_dir), "snapshot", "-i", "-"],
                       input=f"# a comment\n{url}\n", capture_output=True, text=True, timeout=120,
                       env={**os.environ, **cli.env, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr
    assert url in p.stdout and "first" in p.stdout


def test_a_sources_file_that_is_not_utf8_is_one_line(cli: CLI, tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_bytes(b'[[source]]\nurl = "http://127.0.0.1/\xff"\n')
    refused(cli("watch", "--file", str(sources)), f"sources file {sources} is not UTF-8 text")


def test_a_settings_file_that_is_not_utf8_is_one_line(cli: CLI, tmp_path: Path) -> None:
    config = tmp_path / "archiver.toml"
    config.write_bytes(b"[capture]\nworkers = 2 # \xe4\n")
    refused(cli("--config", str(config), "sources"), f"config file {config} is not UTF-8 text")


def test_a_missing_settings_file_still_says_so(cli: CLI, tmp_path: Path) -> None:
    refused(cli("--config", str(tmp_path / "absent.toml"), "sources"), "does not exist")


@pytest.mark.parametrize("content", [NOT_UTF8, b"x" * (MAX_NOTE_BYTES + 1)], ids=["not-utf8", "too-large"])
def test_a_checkpoint_file_that_is_no_note_is_one_line(site, cli: CLI, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       content: bytes) -> None:
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    note = tmp_path / "checkpoint.txt"
    note.write_bytes(content)
    refused(cli("verify", "--since", str(note)), str(note))


@pytest.mark.parametrize("what", ["fifo", "huge"])
def test_a_keyring_replaced_by_a_fifo_or_a_gigabyte_does_not_hold_verify(site, cli: CLI, what: str) -> None:  # type: ignore[no-untyped-def]
    """Whoever can write the archive's directory could put a FIFO (verify
    waited on it for ever) or a huge file (read whole) where keyring.json is:
    verify now refuses it at once, in one line, exit 1."""
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    ring = cli.data_dir / "keyring.json"
    assert ring.is_file()
    ring.unlink()
    if what == "fifo":
        os.mkfifo(ring)
    else:
        with open(ring, "wb") as fh:
            fh.truncate(1 << 30)  # sparse: a gigabyte of zeros, no disk
    r = cli.process("verify", timeout=60)
    assert r.code == 1, (r.out, r.err)
    assert "keyring" in (r.out + r.err) and "Traceback" not in r.err and "internal error" not in r.err, r.out + r.err


def test_a_fifo_among_the_warc_files_is_reported_not_waited_on(site, cli: CLI) -> None:  # type: ignore[no-untyped-def]
    """Whoever can write the archive's directory could put FIFOs with WARC
    names beside the WARC files: verify and repair (every daemon start) opened
    them and waited for ever. Now verify reports each, repair passes them
    over, and the archive's snapshots still read."""
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    warcs = cli.data_dir / "warcs"
    for name in ("planted-20260101000000000-00001-host-1.warc.gz", "planted.warc.gz.open"):
        os.mkfifo(warcs / name)
    r = cli.process("verify", "--json", timeout=60)
    assert r.code == 1, r.out + r.err
    problems = json.loads(r.out)["problems"]
    assert sorted(p["detail"].split()[0] for p in problems if p["kind"] == "foreign-file") == [
        "planted-20260101000000000-00001-host-1.warc.gz", "planted.warc.gz.open"], problems
    assert all(p["kind"] == "foreign-file" for p in problems), problems
    assert cli.process("repair", timeout=60).code == 0
    assert cli.process("history", url, timeout=60).code == 0


def test_a_fifo_for_the_signed_tree_head_is_reported_not_waited_on(site, cli: CLI) -> None:  # type: ignore[no-untyped-def]
    """keys/tree-head.json as a FIFO held verify and the next capture for
    ever (open_private opened it blocking): now verify reports the tree head
    unreadable and a capture refuses to sign, each in one line."""
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    head = cli.data_dir / "keys" / "tree-head.json"
    assert head.is_file()
    head.unlink()
    os.mkfifo(head, 0o600)
    r = cli.process("verify", "--json", timeout=60)
    assert r.code == 1, r.out + r.err
    assert [p["kind"] for p in json.loads(r.out)["problems"]] == ["tree-head"], r.out
    assert "not a regular file" in r.out
    r = cli.process("snapshot", url, timeout=60)
    assert r.code == 1 and "not a regular file" in r.err and "internal error" not in r.err, r.out + r.err
