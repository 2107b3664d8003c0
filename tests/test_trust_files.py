"""Files an attacker can plant or a careless setup leaves: a symlinked or
foreign-owned ``keys/``, key file, ``daemon.lock`` or status file is refused
with one clear line; new directories are private whatever the umask; a
read-only copy can be audited; a full disk leaves no empty WARC behind."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import article_html, warc_files
from test_daemon import daemons, started, wait_for, write_config  # noqa: F401 - fixture

OTHER = "archiver-test-other"


def other_user() -> pwd.struct_passwd:
    """A second local user to own things (we run as root in CI and here)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user and chown to it")
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        pytest.skip("no useradd to create a second user")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER],
                   check=False, capture_output=True)
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        pytest.skip("could not create a second user")


def one_line_error(r, *words: str) -> None:
    assert r.code == 1, (r.out, r.err)
    assert r.err.count("\n") == 1 and "Traceback" not in r.err and "internal error" not in r.err, r.err
    for w in words:
        assert w in r.err, r.err


def test_a_symlinked_keys_dir_is_refused_and_nothing_is_written_through_it(site, cli, tmp_path):
    url = site.page("/a", article_html("A", ["Es gab 5 Einsätze."]))
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir(mode=0o755)
    cli.data_dir.mkdir()
    (cli.data_dir / "keys").symlink_to(elsewhere)
    one_line_error(cli("snapshot", url), "keys", "symlink")
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755  # not chmod-ed either


def test_a_keys_dir_or_key_file_owned_by_another_user_is_refused(site, cli):
    user = other_user()
    url = site.page("/a", article_html("A", ["Es gab 5 Einsätze."]))
    assert cli("snapshot", url).code == 0
    keys = cli.data_dir / "keys"
    key_file = next(p for p in keys.iterdir() if p.suffix == ".pem")
    os.chown(key_file, user.pw_uid, user.pw_gid)
    one_line_error(cli("snapshot", url), "owned by", str(key_file.name))
    os.chown(key_file, 0, 0)
    os.chown(keys, user.pw_uid, user.pw_gid)
    one_line_error(cli("snapshot", url), "owned by", "keys")


def test_a_symlinked_key_file_is_refused(site, cli, tmp_path):
    url = site.page("/a", article_html("A", ["Es gab 5 Einsätze."]))
    assert cli("snapshot", url).code == 0
    key_file = next(p for p in (cli.data_dir / "keys").iterdir() if p.suffix == ".pem")
    swapped = tmp_path / "swapped.pem"
    shutil.copy(key_file, swapped)
    key_file.unlink()
    key_file.symlink_to(swapped)
    one_line_error(cli("snapshot", url), key_file.name)


@pytest.mark.parametrize("name", ["daemon.lock", "daemon-status.json", "daemon-status.tmp"])
def test_daemon_refuses_symlinked_lock_and_status_files(site, cli, tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    cli.data_dir.mkdir()
    (cli.data_dir / name).symlink_to(victim)
    r = cli.process("--config", str(write_config(tmp_path)), "daemon", timeout=60)
    one_line_error(r, name, "symlink")
    assert victim.read_text() == "precious\n"


def test_daemon_refuses_a_lock_file_owned_by_another_user(cli, tmp_path):
    user = other_user()
    cli.data_dir.mkdir()
    lock = cli.data_dir / "daemon.lock"
    lock.write_text("")
    os.chown(lock, user.pw_uid, user.pw_gid)
    r = cli.process("--config", str(write_config(tmp_path)), "daemon", timeout=60)
    one_line_error(r, "daemon.lock", "owned by")


def test_data_dir_warcs_and_index_are_private_whatever_the_umask(site, cli):
    url = site.page("/a", article_html("A", ["Es gab 5 Einsätze."]))
    p = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(cli.data_dir), "snapshot", url],
                       env={**os.environ, **cli.env}, capture_output=True, text=True, preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, p.stderr
    for path in (cli.data_dir, cli.data_dir / "warcs", cli.data_dir / "keys"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [cli.data_dir / "index.sqlite3", *warc_files(cli.data_dir), cli.data_dir / "keyring.json"]:
        assert not stat.S_IMODE(path.stat().st_mode) & 0o022, path


def test_a_read_only_copy_can_be_audited(site, cli, tmp_path, tiny_disk):
    """An auditor's copy on a read-only filesystem: history, show, diff and
    verify work (the index is opened read-only) and change nothing."""
    url = site.page("/a", article_html("A", ["Es gab 5 Einsätze."]))
    assert cli("snapshot", url).code == 0
    site.page("/a", article_html("A", ["Es gab 6 Einsätze."]))
    assert cli("snapshot", url).code == 0
    pem = tmp_path / "archive.pem"  # the copy carries no keys/: the auditor pins the archive's key
    assert cli("keys", "export-public", str(pem)).code == 0
    medium = tmp_path / "medium"
    tiny_disk(medium, size="16m")
    copy = medium / "archive"
    shutil.copytree(cli.data_dir, copy, ignore=shutil.ignore_patterns("keys"))
    assert subprocess.run(["mount", "-o", "remount,ro", str(medium)], capture_output=True).returncode == 0
    before = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in copy.rglob("*"))
    auditor = type(cli)(copy, cli.env)
    pin = ("--public-key", str(pem))
    for args in (("history", url, *pin), ("show", url, *pin), ("diff", url, "--color", "never", *pin), ("verify",)):
        r = auditor.process(*args)
        assert r.code == 0, (args, r.out, r.err)
    assert auditor("diff", url, "--json", *pin).json()["significance"] == "substantive"
    assert sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in copy.rglob("*")) == before


@pytest.fixture
def tiny_disk():
    """Mounts a small tmpfs (64 KiB unless told) at the path given; unmounted after the test."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "64k") -> None:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                                               capture_output=True).returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
        mounted.append(path)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_leaves_no_empty_or_torn_warc(site, cli, tiny_disk):
    """A real full filesystem (a 64 KiB tmpfs as warcs/): each failed snapshot
    says so in one line and leaves no 0-byte or torn WARC file behind."""
    import base64
    import random

    noise = base64.b64encode(random.Random(7).randbytes(30000)).decode()  # does not compress
    big = article_html("Voll", [f"Ein Absatz mit 1.234 Zahlen: {noise}"])
    url = site.page("/big", big)
    small = site.page("/small", article_html("Klein", ["Es gab 5 Einsätze."]))
    assert cli("snapshot", small).code == 0  # keys, index (outside the tmpfs) exist now
    for path in warc_files(cli.data_dir):
        path.unlink()
    tiny_disk(cli.data_dir / "warcs")
    filler = cli.data_dir / "warcs" / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)  # fill the filesystem to the last page
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    for _ in range(3):
        r = cli("snapshot", url)
        one_line_error(r, "WARC")
    assert [p.name for p in (cli.data_dir / "warcs").iterdir()] == ["filler"]
    # Room for the warcinfo but not for the records: the file is taken back to whole records.
    os.truncate(filler, filler.stat().st_size - 8192)
    r = cli("snapshot", url)
    one_line_error(r, "WARC")
    from store.scan import TornTail, iter_members

    for path in warc_files(cli.data_dir):
        assert path.stat().st_size > 0
        assert not any(isinstance(m, TornTail) for m in iter_members(path)), path


def test_a_warc_name_in_the_index_never_reaches_outside_the_archive(site, cli, tmp_path):
    """Whoever can write the index renames a snapshot's WARC file to a path: every
    reader (show, the web desk's open pages) read a file outside the archive --
    here another archive's page -- as this snapshot's."""
    import json
    import sqlite3

    from conftest import CLI

    other = CLI(tmp_path / "private", cli.env)
    secret = site.page("/intern", article_html("Intern", ["Vertraulich: 120 Stellen fallen weg."]))
    assert other("snapshot", secret).code == 0
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    (theirs,) = warc_files(other.data_dir)
    row = json.loads(other("show", secret, "--json").out)
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        db.execute("UPDATE warc_files SET warc_name=?", (f"../../private/warcs/{theirs.name}",))
        db.execute("UPDATE snapshots SET warc_offset=?", (row["warc_offset"],))
    r = cli("show", url, "--html")
    assert "Vertraulich" not in r.out
    assert r.code == 1 and "not a WARC file name" in r.err and r.err.count("\n") == 1, r.err
