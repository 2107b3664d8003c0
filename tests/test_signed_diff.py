"""The diff a capture flagged is signed: each new snapshot's manifest states
``diff_sha256``, the SHA-256 of the diff exactly as the index stores it.

Readers show that stored diff's figures when its bytes hash to the signed
digest -- no recomputation -- and refuse the snapshot when they do not (the
index was written after the capture); ``verify`` reports it as a problem of
its own kind on both configurations. Manifests from before carry no digest:
their figures are recomputed from the two signed texts, as before, and they
verify as they always did."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import requests

from conftest import article_html, auditors_pem, index_state, lose_commit
from store.compact import pack, unpack

SCHEMA8 = Path(__file__).parent / "data" / "archive-schema8"  # manifests signed before diffs were (see its README)
SCHEMA8_URL_PATH = "/politik/lage"
LIE = {"significance": "substantive", "changes": [],
       "figures": [{"before": "50.000", "after": "90.000", "before_value": 50000, "after_value": 90000,
                    "context": "Es kamen 90.000 Menschen."}]}


def _two_captures(site: Any, cli: Any) -> tuple[str, str, str]:
    url = site.page("/lage", article_html("Lage", ["Es kamen 50.000 Menschen.", "Die Polizei war da."]))
    assert cli("snapshot", url).code == 0
    site.page("/lage", article_html("Lage", ["Es kamen 60.000 Menschen.", "Die Polizei war da."]))
    assert cli("snapshot", url).code == 0
    first, second = [h["id"] for h in cli("history", url, "--json").json()]
    return url, first, second


def _stored_diff(cli: Any, snapshot_id: str) -> str | None:
    db = cli.db()
    try:
        (packed,) = db.execute("SELECT diff_z FROM snapshots WHERE id=?", (snapshot_id,)).fetchone()
    finally:
        db.close()
    return unpack(packed) if packed is not None else None


def _set_stored_diff(cli: Any, snapshot_id: str, diff: dict[str, Any]) -> None:
    db = cli.db()
    try:
        db.execute("UPDATE snapshots SET diff_z=? WHERE id=?", (pack(json.dumps(diff)), snapshot_id))
        db.commit()
    finally:
        db.close()


def test_a_capture_with_a_changed_figure_signs_the_diff_it_stores(site, bcli):
    url, first, second = _two_captures(site, bcli)
    shown = bcli("show", url, "--json")
    assert shown.code == 0, shown.err
    manifest = shown.json()["manifest"]
    stored = _stored_diff(bcli, second)
    assert stored is not None and "60.000" in stored
    assert manifest["diff_sha256"] == hashlib.sha256(stored.encode("utf-8")).hexdigest()
    assert json.loads(stored)["significance"] == manifest["significance"] == "substantive"
    # canonical JSON: sorted keys, no spaces -- the digest is of these bytes, stable
    assert stored == json.dumps(json.loads(stored), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    provenance = bcli("show", url, "--provenance").json()
    assert provenance["manifest"]["diff_sha256"] == manifest["diff_sha256"]
    # a first snapshot has no diff: its manifest signs none
    assert "diff_sha256" not in bcli("show", url, "--at", first, "--json").json()["manifest"]
    assert _stored_diff(bcli, first) is None
    (figure,) = bcli("history", url, "--json").json()[1]["figures"]
    assert (figure["before"], figure["after"]) == ("50.000", "60.000")
    report = bcli("verify", "--json")
    assert report.code == 0 and report.json()["ok"] is True, report.out


def test_a_tampered_stored_diff_is_refused_by_every_reader_and_reported_by_verify(site, bcli):
    """An index writer puts figures of their own into a genuine row's stored
    diff: the snapshot no longer verifies -- history lists it unverified
    (exit 1), show refuses it in one line, the web desk answers 409 and lists
    it as not verifying -- and verify names the problem (both configurations)."""
    from web_support import Server

    url, first, second = _two_captures(site, bcli)
    _set_stored_diff(bcli, second, LIE)
    r = bcli("history", url, "--json")
    assert r.code == 1, r.err
    items = {it["id"]: it for it in r.json()}
    assert items[second]["verified"] is False and items[second]["significance"] == "unverified"
    assert items[second]["figures"] == [] and "stored diff" in items[second]["problem"]
    assert items[first]["verified"] is True
    for args in ([], ["--json"], ["--provenance"]):
        shown = bcli("show", url, *args)
        assert shown.code == 1 and shown.err.count("\n") == 1 and "Traceback" not in shown.err, shown.err
        assert "does not verify" in shown.err and "stored diff" in shown.err and "90.000" not in shown.out
    report = bcli("verify", "--json")
    assert report.code == 1
    problems = report.json()["problems"]
    assert [(p["snapshot"], p["kind"]) for p in problems] == [(second, "diff-mismatch")], problems
    server = Server(bcli)
    try:
        get = lambda path: requests.get(server.url(path), timeout=30)  # noqa: E731
        for path in (f"/snapshot/{second}", f"/api/v1/snapshot?url={url}"):
            page = get(path)
            assert page.status_code == 409 and "does not verify" in page.text, (path, page.status_code, page.text[:300])
            assert "90.000" not in page.text
        for path in (f"/timeline?url={url}", "/?significance=all"):
            page = get(path)
            assert page.status_code == 200 and "does not verify" in page.text and "90.000" not in page.text, path
        api = get(f"/api/v1/history?url={url}").json()
        assert {it["id"]: it["verified"] for it in api} == {first: True, second: False}
    finally:
        server.stop()


def test_listed_figures_are_the_signed_stored_ones_without_recomputing(site, cli):
    """Cold ``history`` takes the figures from the stored diff the manifest
    signs: with the article texts gone from the index (nothing left to
    recompute from), the figures are still listed; the web desk's API and
    ``show --json`` expose the signed digest with the manifest."""
    from web_support import Server

    url, _, second = _two_captures(site, cli)
    db = cli.db()
    db.execute("DELETE FROM texts")
    db.commit()
    db.close()
    r = cli("history", url, "--json")
    assert r.code == 0, r.err
    (figure,) = {it["id"]: it for it in r.json()}[second]["figures"]
    assert (figure["before"], figure["after"]) == ("50.000", "60.000")
    server = Server(cli)
    try:
        snap = requests.get(server.url(f"/api/v1/snapshot?url={url}"), timeout=30).json()
        assert snap["manifest"]["diff_sha256"] == hashlib.sha256(_stored_diff(cli, second).encode()).hexdigest()
        assert [(f["before"], f["after"]) for f in snap["figures"]] == [("50.000", "60.000")]
    finally:
        server.stop()


def test_an_archive_signed_before_diffs_were_reads_with_recomputed_figures_and_verifies(tmp_path):
    """archive-schema8's manifests carry no diff_sha256: its figures are
    recomputed from the two signed texts -- a stored diff an index writer
    changed is not what is listed -- and it verifies with no new problem."""
    from conftest import CLI, _base_env

    data = tmp_path / "archive"
    shutil.copytree(SCHEMA8, data)
    cli = CLI(data, _base_env(tmp_path))
    pin = ("--public-key", str(auditors_pem(data)))
    history = cli("history", "--json", *pin, _schema8_url(cli))
    assert history.code == 0, history.err
    items = history.json()
    assert [it["significance"] for it in items] == ["first", "none", "substantive"]
    assert any((f["before"], f["after"]) == ("50.000", "60.000") for f in items[-1]["figures"]), items[-1]
    manifest = cli("show", _schema8_url(cli), "--json", *pin).json()["manifest"]
    assert "diff_sha256" not in manifest
    _set_stored_diff(cli, items[-1]["id"], LIE)  # signed by nothing: not listed, not a problem
    again = cli("history", "--json", *pin, _schema8_url(cli)).json()
    assert [(f["before"], f["after"]) for f in again[-1]["figures"]] == [
        (f["before"], f["after"]) for f in items[-1]["figures"]]
    report = cli("verify", "--json", *pin)
    assert report.code == 0 and report.json()["ok"] is True, report.out


def _schema8_url(cli: Any) -> str:
    db = cli.db()
    try:
        (url,) = db.execute("SELECT DISTINCT url FROM snapshots WHERE url LIKE ?", (f"%{SCHEMA8_URL_PATH}",)).fetchone()
    finally:
        db.close()
    return str(url)


def _lost_second(site: Any, cli: Any) -> tuple[str, str]:
    """A figure edited in the second capture of a page, whose commit is then
    lost (conftest.lose_commit): the URL and the lost snapshot's id."""
    url = site.page("/lage", article_html("Lage", ["Es kamen 50.000 Menschen.", "Die Polizei war da."]))
    assert cli("snapshot", url).code == 0
    state = index_state(cli.data_dir)
    site.page("/lage", article_html("Lage", ["Es kamen 60.000 Menschen.", "Die Polizei war da."]))
    assert cli("snapshot", url).code == 0
    lost = cli("history", url, "--json").json()[1]["id"]
    assert "diff_sha256" in cli("show", url, "--at", lost, "--json").json()["manifest"]
    lose_commit(cli.data_dir, lost, state)
    return url, lost


def test_a_snapshot_repair_reindexes_lists_recomputed_figures_and_verifies(site, cli):
    """A capture whose commit was lost: repair re-indexes its signed manifest
    without the stored diff (it does not rebuild it); readers then recompute
    its figures from the signed texts, and the archive verifies."""
    url, second = _lost_second(site, cli)
    assert "re-indexed 1 signed snapshot(s)" in cli("repair").out
    assert _stored_diff(cli, second) is None
    assert cli("show", url, "--json").json()["manifest"]["diff_sha256"]  # signed, not stored: not a problem
    r = cli("history", url, "--json")
    assert r.code == 0, r.err
    (figure,) = r.json()[1]["figures"]
    assert (figure["before"], figure["after"]) == ("50.000", "60.000")
    report = cli("verify", "--json")
    assert report.code == 0, report.out


def test_repair_re_signing_after_another_capture_of_the_url_drops_the_diff_digest(site, cli):
    """A lost capture whose place in the URL's chain another capture took is
    signed again by repair after it: its diff digest named the diff with the
    previous snapshot it was captured after, so the new manifest leaves it out."""
    url, lost = _lost_second(site, cli)
    site.page("/lage", article_html("Lage", ["Es kamen 70.000 Menschen.", "Die Polizei war da."]))
    assert cli("snapshot", url).code == 0  # takes the lost capture's log index and place in the chain
    assert "re-indexed 1 signed snapshot(s)" in cli("repair").out
    manifest = cli("show", url, "--at", lost, "--json").json()["manifest"]
    assert manifest["relogged_from"] and "diff_sha256" not in manifest
    items = cli("history", url, "--json").json()
    assert [it["id"] for it in items][-1] == lost and all(it["verified"] for it in items)
    assert [(f["before"], f["after"]) for f in items[-1]["figures"]] == [("70.000", "60.000")]
    report = cli("verify", "--json")
    assert report.code == 0, report.out
