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
    assert "Verification (archiver verify): OK — 3 snapshot(s)" in out
    assert "Traceback" not in p.stderr
    assert list((tmp_path / "d" / "warcs").glob("*.warc.gz"))
