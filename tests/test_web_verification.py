"""The Snapshot page's server-side checks, on real archives: RFC 3161 tokens
checked against their checkpoint, and a manifest changed in the index fails
its signature check while the WARC records still match."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.canonical import canonical_json, sha256_hex
from archiver.config import load
from archiver.web.verification import verify_snapshot
from conftest import article_html
from test_timestamping import TSA, stamped_twice


def _archive(data: Path, cfg: Path | None = None) -> Archive:
    settings = load(cfg, environ={})
    settings.archive.data_dir = str(data)
    return Archive(settings)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for the TSA")
def test_timestamps_that_cover_a_snapshot_are_checked(site, cli, tmp_path):
    tsa = TSA(tmp_path / "tsa")
    try:
        cfg, url = stamped_twice(site, cli, tsa, tmp_path)
        with _archive(cli.data_dir, cfg) as archive:
            first, second = archive.history(url)
            stamps = verify_snapshot(archive, first).timestamps
            assert [(t["tree_size"], t["ok"]) for t in stamps] == [(1, True), (2, True)]
            assert [t["tree_size"] for t in verify_snapshot(archive, second).timestamps] == [2]
            tokens = sorted((cli.data_dir / "timestamps").glob("*.tsr"))
            tokens[0].write_bytes(tokens[1].read_bytes())  # a token over another checkpoint
            stamps = verify_snapshot(archive, first).timestamps
            assert [t["ok"] for t in stamps] == [False, True]
    finally:
        tsa.close()


def test_a_changed_manifest_fails_its_signature(site, cli):
    url = site.page("/a", article_html("Bericht", ["Es kamen 300 Menschen."]))
    assert cli("snapshot", url).code == 0
    with _archive(cli.data_dir) as archive:
        row = archive.history(url)[0]
        v = verify_snapshot(archive, row)
        assert v.ok and v.get("chain").ok is None  # the first snapshot has nothing to chain to
        manifest = archive.manifest(row)
        assert manifest is not None and manifest["status"] == 200
        # The index names the signed manifest by its digest: a changed manifest
        # (here: a digest naming another) is one no record in the WARC holds.
        forged = sha256_hex(canonical_json({**manifest, "status": 201}))
        archive.index.execute("UPDATE snapshots SET manifest_sha256=? WHERE id=?", (forged, row.id))
        v = verify_snapshot(archive, archive.history(url)[0])
        assert v.get("signature").ok is False and "signed digest" in v.get("signature").detail
        assert not v.ok
