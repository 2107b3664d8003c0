"""The replay tools the interop tests run, installed once and cached under
``~/.cache/archiver-tests/``:

* pywb in a virtualenv of its own (it pins its own warcio, gevent and
  friends, which must not meet ours; ``$ARCHIVER_PYWB_VENV`` overrides);
* ReplayWeb.page's built player (``ui.js``, ``sw.js``) from its npm package,
  fetched with ``npm pack`` (the bundle needs none of its dependencies).

``.ci/run`` calls this file before the tests so CI always has both; the test
fixtures call the same functions, so ``python -m pytest`` alone works too.

    python tests/players.py       # prepares both, prints where they are
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

PYWB = "pywb==2.10.0"
REPLAYWEBPAGE = "replaywebpage@2.5.3"
CACHE = Path.home() / ".cache" / "archiver-tests"


def venv_dir() -> Path:
    configured = os.environ.get("ARCHIVER_PYWB_VENV")
    if configured:
        return Path(configured)
    return CACHE / PYWB.replace("==", "-")


def _cached(target: Path, what: str, build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build`` unless a finished build is there.

    A lock file keeps concurrent test runs from building it twice, and a
    marker written last means a half-built one (a killed run) is rebuilt.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    marker = target / ".archiver-ready"
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
            marker.write_text(what + "\n")
    return target


def ensure_pywb() -> Path:
    """The bin directory of a working pywb venv; built when missing."""

    def build(venv: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PYWB], check=True)
        subprocess.run([str(venv / "bin" / "wayback"), "--version"], check=True, capture_output=True)

    return _cached(venv_dir(), PYWB, build) / "bin"


def ensure_replaywebpage() -> Path:
    """A directory holding ReplayWeb.page's ``index.html``, ``ui.js`` and ``sw.js``."""

    def build(target: Path) -> None:
        target.mkdir()
        p = subprocess.run(["npm", "pack", "--silent", REPLAYWEBPAGE], cwd=target, check=True,
                           capture_output=True, text=True)
        tarball = target / p.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as tar:
            for name in ("index.html", "ui.js", "sw.js"):
                member = tar.extractfile(f"package/{name}")
                assert member is not None, name
                (target / name).write_bytes(member.read())
        tarball.unlink()

    return _cached(CACHE / REPLAYWEBPAGE.replace("@", "-"), REPLAYWEBPAGE, build)


if __name__ == "__main__":
    print(ensure_pywb())
    print(ensure_replaywebpage())
