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

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

#: where this archiver package is imported from
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


#: seconds a new helper process may take to import and say it is ready
START_TIMEOUT = 60.0


class ChildProcess:
    """One helper process and the capture process's end of its pipe."""

    #: what it is called in log lines, and what it counts
    what, unit = "helper process", "job"

    def __init__(self, module: str, started: float) -> None:
        self.started = started
        self.jobs = 0  # answered
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


def stop_all(children: Sequence[ChildProcess], grace: float = 1.0) -> None:
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


C = TypeVar("C", bound=ChildProcess)


class ChildPool(Generic[C]):
    """Helper processes started together and reused, each with one job at a
    time: the ones ready are idle in a LIFO queue (the warmest first), the
    ones starting are promoted once they say ``ready``, a failed one is
    killed and replaced at the next :meth:`start`. Subclasses say how one is
    started (:meth:`_spawn`) and hand jobs out."""

    def __init__(self, processes: int, clock: Callable[[], float]) -> None:
        self.processes = max(1, processes)
        self.clock = clock
        self._idle: queue.LifoQueue[C] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._live: set[C] = set()
        self._starting: list[C] = []
        self._closed = False
        self.failures = 0  # processes killed or lost (for tests and benchmarks)
        self.inline = 0  # jobs done in the calling thread instead

    def _spawn(self) -> C:
        raise NotImplementedError

    def start(self) -> None:
        """Start every process that is not running (they get ready in the background)."""
        with self._lock:
            while not self._closed and len(self._live) < self.processes:
                child = self._spawn()
                self._live.add(child)
                self._starting.append(child)

    def wait_ready(self, timeout: float) -> bool:
        """Start the processes and wait until each is ready (tests, benchmarks)."""
        self.start()
        end = self.clock() + timeout
        while self.clock() < end:
            self._promote()
            with self._lock:
                if not self._starting:
                    return True
            time.sleep(0.02)
        return False

    def _promote(self) -> None:
        """Starting processes that said they are ready become idle; dead or late ones go."""
        with self._lock:
            starting, self._starting = self._starting, []
        for child in starting:
            try:
                if child.conn.poll(0):
                    if child.conn.recv_bytes(16) != b"ready":
                        raise OSError("no ready message")
                    self._idle.put(child)
                    continue
            except (EOFError, OSError):
                self._discard(child)
                continue
            if not child.alive() or self.clock() - child.started > START_TIMEOUT:
                self._discard(child)
                continue
            with self._lock:
                self._starting.append(child)

    def _discard(self, child: C) -> None:
        self.failures += 1
        log.warning("%s %d stopped after %d %s(s)", child.what, child.pid, child.jobs, child.unit)
        child.kill()
        with self._lock:
            self._live.discard(child)

    def pids(self) -> list[int]:
        """The processes' ids (tests kill one to see the pool recover)."""
        with self._lock:
            return [c.pid for c in self._live]

    def close(self) -> None:
        """Stop every process (waited for: no orphan, no zombie, their CPU counted as this process's children's)."""
        with self._lock:
            self._closed = True
            children = list(self._live)
            self._live.clear()
            self._starting.clear()
        stop_all(children)
