"""The core flow on both configurations: embedded (SQLite + a WARC directory)
and shared (PostgreSQL + S3-compatible object storage, real servers)."""

from __future__ import annotations

from conftest import article_html


def test_snapshot_history_diff_verify(site, bcli):
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen zur Demonstration."]))
    first = bcli("snapshot", "--json", url)
    assert first.code == 0, first.err
    assert first.json()["significance"] == "first"
    site.page("/a", article_html("Lage", ["Es kamen 80.000 Menschen zur Demonstration."]))
    second = bcli("snapshot", "--json", url)
    assert second.json()["significance"] == "substantive"
    hist = bcli("history", "--json", url)
    assert [h["id"] for h in hist.json()] == [first.json()["id"], second.json()["id"]]
    d = bcli("diff", "--json", url).json()
    assert d["figures"][0]["before_value"] == 50000 and d["figures"][0]["after_value"] == 80000
    v = bcli("verify", "--json")
    assert v.code == 0, v.out
    assert v.json()["checked"] == 2
    assert bcli("show", url).out.count("80.000") == 1


def test_migrate_copies_an_archive_with_revisits_edits_and_rotated_keys(site, cli, pg_server, s3_server):
    from conftest import CLI, migrate_to_shared, shared_env

    url = site.page("/m", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    other = site.page("/n", article_html("Wetter", ["Morgen 20 Grad."]))
    assert cli("snapshot", url, other).code == 0
    assert cli("snapshot", url).code == 0  # unchanged: a revisit
    assert cli("keys", "rotate").code == 0
    site.page("/m", article_html("Lage", ["Es kamen 80.000 Menschen."]))
    assert cli("snapshot", url).code == 0  # an edit, signed with the new key
    assert cli("watch", url, "--every", "1h").code == 0
    before = cli("checkpoint", "--json").json()
    source_files = sorted(p.name for p in (cli.data_dir / "warcs").iterdir())
    source_index = (cli.data_dir / "index.sqlite3").read_bytes()

    env = shared_env(pg_server, s3_server)
    r = migrate_to_shared(cli, env)
    assert r.code == 0, r.out + r.err
    result = r.json()
    assert result["same_root"] and result["same_checkpoints"] and result["verify"]["ok"]
    assert result["rows"]["snapshots"] == 4 and result["warcs"] == len(source_files)
    # The source is untouched.
    assert sorted(p.name for p in (cli.data_dir / "warcs").iterdir()) == source_files
    assert (cli.data_dir / "index.sqlite3").read_bytes() == source_index
    # The copy answers as the source did, and keeps growing the same log.
    shared = CLI(cli.data_dir, {**cli.env, **env}, "shared")
    assert shared("checkpoint", "--json").json()["root"] == before["root"]
    assert [h["significance"] for h in shared("history", "--json", url).json()] == ["first", "none", "substantive"]
    assert shared("diff", "--json", url).json()["figures"][0]["after_value"] == 80000
    assert shared("sources", "--json").json()[0]["every"] == "1h"
    site.page("/m", article_html("Lage", ["Es kamen 90.000 Menschen."]))
    assert shared("snapshot", url).code == 0
    assert shared("verify", "--json").json()["ok"]
    # A second migration into the same (now used) database is refused.
    again = cli("migrate", "--index", env["ARCHIVER_INDEX"])
    assert again.code == 1 and "not empty" in again.err


def test_daemon_on_a_shared_archive_and_a_second_one_joins(site, tmp_path, pg_server, s3_server):
    """The daemon captures on schedule into PostgreSQL + S3; a second daemon on
    the same shared archive, from another data directory (another machine),
    joins as a second worker (tests/test_shared_schedule.py tests the sharing)."""
    import time

    from conftest import CLI, _base_env, shared_env
    from test_daemon import DaemonProcess, started, wait_for, write_config

    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    one = CLI(tmp_path / "machine-a", env, "shared")
    two = CLI(tmp_path / "machine-b", {**env, "ARCHIVER_SIGNING_ROLE": "worker"}, "shared")  # its own key, no copy
    url = site.page("/live", article_html("Grenze", ["Es kamen 50.000 Menschen."]))
    assert one("watch", url, "--every", "1s").code == 0
    config = write_config(tmp_path)
    d = DaemonProcess(one, config)
    try:
        wait_for("daemon start", lambda: started(d), d)
        wait_for("3 captures", lambda: len(one("history", "--json", url).json() or []) >= 3
                 if one("history", "--json", url).code == 0 else False, d)
        # Machine b makes its own key; machine a (the root key's) enrols it.
        shown = two("keys", "show")
        kid = shown.err.split("archiver keys enroll ")[1].split("`")[0]
        assert one("keys", "enroll", kid).code == 0
        d2 = DaemonProcess(two, config)
        try:
            wait_for("second worker", lambda: "daemon started as worker" in d2.log(), d2)
            assert d2.stop()[0] == 0, d2.log()
        finally:
            d2.kill()
        code, _ = d.stop()
        assert code == 0, d.log()
    finally:
        d.kill()
    time.sleep(0.1)
    assert two("verify", "--json").json()["ok"]


def test_repair_skips_settled_files_on_both_backends(site, bcli):
    """A second repair reads (on S3: downloads) none of the files the first
    accounted for; a file changed since is read again."""
    for i in range(3):
        assert bcli("snapshot", site.page(f"/s{i}", article_html("Lage", [f"Es kamen {i + 1}.000 Menschen."]))).code == 0
    first = bcli("repair", "--json").json()
    again = bcli("repair", "--json").json()
    assert again["scanned"] == [] and again["settled"] >= 1, (first, again)
    full = bcli("repair", "--json", "--full").json()
    assert len(full["scanned"]) == again["settled"]
