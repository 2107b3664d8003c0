"""pywb in a virtual environment of its own, installed once and cached.

pywb pins its own warcio, gevent and friends, which must not meet ours, so
it lives in its own venv under ``~/.cache/archiver-tests/`` (or
``$ARCHIVER_PYWB_VENV``), built on first use and reused by every later run.
``.ci/run`` calls this file before the tests so CI always has it; the test
fixture calls :func:`ensure` too, so ``python -m pytest`` alone works.

    python tests/pywb_env.py      # prints the venv's bin directory
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

PYWB = "pywb==2.10.0"


def venv_dir() -> Path:
    configured = os.environ.get("ARCHIVER_PYWB_VENV")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "archiver-tests" / PYWB.replace("==", "-")


def ensure() -> Path:
    """The bin directory of a working pywb venv; builds it when missing.

    A lock file keeps concurrent test runs from building it twice, and a
    marker written last means a half-built venv (a killed run) is rebuilt.
    """
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    marker = venv / ".archiver-ready"
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PYWB], check=True)
            subprocess.run([str(venv / "bin" / "wayback"), "--version"], check=True, capture_output=True)
            marker.write_text(PYWB + "\n")
    return venv / "bin"


if __name__ == "__main__":
    print(ensure())
