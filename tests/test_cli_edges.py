"""The rough edges a new user hits first: an auditor with only a WACZ, an
empty log, reading commands on no archive, a first snapshot that fails,
and the help texts."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from archiver.cli.main import main
from conftest import REPO, article_html


def run_clean(args: list[str], home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``archiver`` as a stranger runs it: an empty HOME, no archiver settings at all."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARCHIVER_", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "archiver", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd or home)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*"))


def tamper_warc(src: Path, dst: Path, old: bytes, new: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(".warc.gz"):
                plain = gzip.decompress(data)
                assert old in plain
                data = gzip.compress(plain.replace(old, new))
            zout.writestr(info, data)


def test_verify_wacz_needs_no_archive_and_creates_nothing(site, cli, tmp_path):
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    assert cli("snapshot", url).code == 0
    wacz = tmp_path / "evidence.wacz"
    assert cli("export", url, "--wacz", str(wacz)).code == 0

    home = tmp_path / "auditor-home"
    home.mkdir()
    good = run_clean(["verify", "--wacz", str(wacz)], home)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("OK: 1 snapshot(s) checked")
    assert files_under(home) == []  # no data dir, no keys, no config written

    bad = tmp_path / "tampered.wacz"
    tamper_warc(wacz, bad, b"50.000 Soldaten", b"60.000 Soldaten")
    r = run_clean(["verify", "--wacz", str(bad)], home)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "PROBLEM(S)" in r.stdout and "Traceback" not in r.stderr
    assert files_under(home) == []

    missing = run_clean(["verify", "--wacz", str(tmp_path / "nope.wacz")], home)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_checkpoint_on_an_empty_log_exits_1_with_a_clear_message(site, cli):
    assert cli("watch", site.url("/later"), "--every", "1h").code == 0  # an archive, but nothing signed
    r = cli("checkpoint")
    assert r.code == 1
    assert r.err.startswith("archiver: the log at ") and "no snapshot has been signed yet" in r.err
    assert r.err.count("\n") == 1


def test_reading_commands_create_no_data_dir(cli):
    for args in (["verify"], ["history", "http://example.org/"], ["checkpoint"], ["status"], ["repair"]):
        r = cli(*args)
        assert r.code == 1, (args, r.out, r.err)
        assert not cli.data_dir.exists(), args
    r = cli("sources")
    assert r.code == 0 and r.out.startswith("no sources watched")
    assert cli("sources", "--json").out == "[]\n"
    assert not cli.data_dir.exists()


def test_a_failed_first_snapshot_leaves_no_archive_behind(site, strict_cli):
    url = site.page("/a", article_html("Intern", ["Nur im Intranet."]))
    r = strict_cli("snapshot", url)  # loopback refused by the default policy
    assert r.code == 1 and r.err.count("\n") == 1
    assert not strict_cli.data_dir.exists()
    v = strict_cli("verify")
    assert v.code == 1 and "no archive at" in v.err  # not "OK: 0 snapshot(s)"


def test_a_failed_snapshot_keeps_an_archive_that_has_snapshots(site, cli):
    url = site.page("/a", article_html("Da", ["Es sind 3 Punkte."]))
    assert cli("snapshot", url).code == 0
    assert cli("snapshot", "http://127.0.0.1:1/nothing-listens-here").code == 1
    assert cli("verify").out.startswith("OK: 1 snapshot(s) checked")


def test_a_failed_first_snapshot_beside_other_files_removes_only_its_own(site, strict_cli):
    strict_cli.data_dir.mkdir(parents=True)
    (strict_cli.data_dir / "notes.txt").write_text("mine")
    assert strict_cli("snapshot", site.url("/a")).code == 1
    assert [p.name for p in strict_cli.data_dir.iterdir()] == ["notes.txt"]


def _main(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        code = main(list(argv), out=out, err=err)
    except SystemExit as exc:  # --help exits through argparse
        code = int(exc.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def test_bare_archiver_prints_the_command_list(tmp_path):
    r = run_clean([], tmp_path)
    assert r.returncode == 2
    for command in ("snapshot", "history", "diff", "verify", "export", "checkpoint", "daemon", "demo"):
        assert command in r.stdout, command
    assert r.stderr == "archiver: error: no command given; pick one of the commands above\n"


def test_global_help_shows_the_effective_default_data_dir(tmp_path):
    r = run_clean(["--help"], tmp_path)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert f"now: {tmp_path / '.local' / 'share' / 'archiver'}" in text and "ARCHIVER_DATA_DIR" in text


def test_snapshot_help_explains_url_and_the_private_address_switch(tmp_path):
    r = run_clean(["snapshot", "--help"], tmp_path)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "ARCHIVER_ALLOW_PRIVATE" in text
    assert "http" in text and "URL" in text


def test_every_command_explains_every_argument(tmp_path):
    """No positional or option in any --help is left without a word of help."""
    import argparse

    from archiver.cli.main import build_parser

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(), "archiver") == []


def test_a_failed_first_snapshot_spares_a_concurrent_first_snapshot(site, cli):
    """Two first snapshots into one new archive: the one that fails (after
    the other started) must not remove what the other, still capturing, has
    begun -- its index is open and empty at that moment."""
    import time

    from conftest import send

    def slow(h):
        time.sleep(4)
        send(h, 200, article_html("Langsam", ["Es kamen 40 Gäste zur Eröffnung."]).encode())

    def hang_up(h):
        time.sleep(2)
        h.close_connection = True  # no answer at all: that capture fails

    site.routes["/slow"] = slow
    site.routes["/broken"] = hang_up
    failing = cli.popen("snapshot", site.url("/broken"))
    time.sleep(0.8)  # the failing one has found no archive and is capturing
    other = cli.popen("snapshot", site.url("/slow"))
    out, err = failing.communicate(timeout=60)
    assert failing.returncode == 1, err
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    r = cli("verify")
    assert r.out.startswith("OK: 1 snapshot(s) checked"), r.out + r.err


def test_each_command_is_registered_by_the_module_the_fast_path_loads():
    """`archiver verify` loads only the module that registers it (MODULE_OF):
    the map must name every command and the module that really has it."""
    import argparse
    import importlib

    from archiver.cli.main import MODULE_OF, command_word

    found = {}
    for name in sorted(set(MODULE_OF.values())):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"archiver.cli.{name}").register(sub)
        found.update(dict.fromkeys(sub.choices, name))
    assert found == MODULE_OF
    assert command_word(["--data-dir", "verify", "-v", "history", "x"]) == "history"
    assert command_word(["--config", "c.toml", "verify", "--json"]) == "verify"
    assert command_word(["--data-dir=d", "verify"]) == "verify"
    assert command_word(["-v"]) is None


def test_a_data_dir_that_is_a_file_is_one_clear_line(site, cli, tmp_path):
    """A --data-dir naming a regular file (a typo, a mount gone): one line
    naming the path, exit 1 -- not an internal error -- and the file untouched."""
    url = site.page("/a", article_html("Truppen", ["Es werden 50.000 Soldaten verlegt."]))
    cli.data_dir.parent.mkdir(parents=True, exist_ok=True)
    cli.data_dir.write_text("not an archive\n")
    for args in (("snapshot", url), ("watch", url)):
        r = cli(*args)
        assert r.code == 1, (args, r.out, r.err)
        assert r.err.count("\n") == 1 and "internal error" not in r.err, r.err
        assert f"cannot use {cli.data_dir} as the archive directory" in r.err
    assert cli.data_dir.read_text() == "not an archive\n"
