"""A helper process of the capture process: a fresh interpreter running one
module of this package (``python -m MODULE FD``), talking over a socket pair.

Why a fresh interpreter and not a fork: the capture process is threaded
(capture threads, the watchdog, lookups), and a fork copies whatever lock
another thread held at that moment. Why it starts in the directory this
archiver package is imported from: ``-m`` puts the working directory first
on the module path, so started from anywhere else, an ``archiver`` package
there (another checkout, or one planted) would run instead of this one.

Used by the page pool (``archiver/pages.py``: pages are parsed there) and the
fetch processes (``fetchpool.py``: pages are fetched there).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

#: where this archiver package is imported from
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class ChildProcess:
    """One helper process and the capture process's end of its pipe."""

    def __init__(self, module: str, started: float) -> None:
        self.started = started
        ours, theirs = socket.socketpair()
        here = PACKAGE_ROOT
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=here)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill it and wait for it (no zombie, its CPU counted as this process's children's)."""
        self.process.kill()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        self.conn.close()

    def exit_code(self) -> int | None:
        """Its exit code, waited for a moment (None: still running)."""
        try:
            self.process.wait(1)
        except subprocess.TimeoutExpired:
            pass
        return self.process.returncode


def stop_all(children: list[ChildProcess], grace: float = 1.0) -> None:
    """Stop ``children`` together: every pipe closed first (idle ones exit at
    once), then ``grace`` seconds in all for them to exit, then the rest are
    killed (one busy with a hung server would only finish at its deadline)."""
    for child in children:
        child.conn.close()
    end = time.monotonic() + grace
    for child in children:
        try:
            child.process.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
