"""RFC 3161 trusted time through the service: with TSA URLs configured, each
checkpoint is timestamped by a real TSA on 127.0.0.1, and `verify` checks the
stored tokens against the configured roots."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import article_html
from test_timestamping import TSA, stamped_twice

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for the TSA")


def test_checkpoints_are_timestamped_and_verified(site, cli, tmp_path):
    tsa = TSA(tmp_path / "tsa")
    try:
        cfg, url = stamped_twice(site, cli, tsa, tmp_path)
        tokens = sorted((cli.data_dir / "timestamps").glob("*.tsr"))
        assert [t.name.split("-")[0] for t in tokens] == ["1", "2"]
        assert tsa.requests == 2
        r = cli("--config", str(cfg), "verify", "--json")
        assert r.code == 0, r.out
        # A token over another checkpoint is caught.
        tokens[0].write_bytes(tokens[1].read_bytes())
        r = cli("--config", str(cfg), "verify", "--json")
        assert r.code == 1 and "timestamp" in {p["kind"] for p in json.loads(r.out)["problems"]}
    finally:
        tsa.close()


def test_unreachable_tsa_does_not_fail_the_snapshot(site, cli, tmp_path):
    cfg = tmp_path / "tsa.toml"
    cfg.write_text('[signing]\ntsa_urls = ["http://127.0.0.1:9/tsr"]\ntsa_timeout = 2.0\n')
    url = site.page("/u", article_html("Zeit", ["Es gab 3 Anträge."]))
    r = cli("--config", str(cfg), "snapshot", url, "--json")
    assert r.code == 0 and r.lines()[0]["status"] == 200
    assert cli("verify").code == 0
