"""`archiver demo` tells the whole story offline, as a real process."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_offline_and_tells_the_story(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_ALLOW_PRIVATE"] = "0"  # the demo allows its own loopback site itself
    p = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(tmp_path / "d"), "demo"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "significance: first" in out and "significance: none" in out and "significance: substantive" in out
    assert "Figure changed: 50.000 → 60.000 (Soldaten)" in out
    # verify's summary line is the CLI's, word for word, on the same archive
    cli = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(tmp_path / "d"), "verify"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[0] == "OK: 3 snapshot(s) checked"
    assert "Verification (archiver verify):\n  OK: 3 snapshot(s) checked\n" in out
    # the checkpoint and the verification are explained in words, not only printed
    assert "What it proves: the archive's key signed that its log then held 3 snapshot(s)" in out
    assert "cannot later drop, reorder or alter one" in out and "archiver verify --since FILE" in out
    assert "What it checked:" in out and "byte for byte what the server sent" in out
    assert "Traceback" not in p.stderr
    assert list((tmp_path / "d" / "warcs").glob("*.warc.gz"))
