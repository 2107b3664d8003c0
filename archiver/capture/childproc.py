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
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

#: where this archiver package is imported from
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


#: seconds a new helper process may take to import and say it is ready
START_TIMEOUT = 60.0


class ChildPipe:
    """The capture process's end of a helper's socket, every send and receive
    within a deadline (``time.monotonic()`` seconds).

    Why not :class:`multiprocessing.connection.Connection`, which the helper
    uses at its end (the frames here are its frames: a 4-byte big-endian
    length, or -1 and an 8-byte one): its ``send_bytes`` and ``recv_bytes``
    block for as long as the other end does -- a helper that stops reading
    (stopped, swapped out, subverted by the page it parses) would hold the
    sending capture thread for ever once the socket's buffer is full, and one
    that sends half a frame would hold the receiving one. Here a deadline
    passing raises :class:`TimeoutError`; the other end closing,
    :class:`EOFError`; a frame over its cap, :class:`OSError`.
    """

    _CHUNK = 1 << 20

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock

    def poll(self, timeout: float) -> bool:
        """Whether a frame has begun to arrive within ``timeout`` seconds."""
        return self._ready(select.POLLIN, timeout)

    def _ready(self, event: int, timeout: float) -> bool:
        # poll(2), not select(2): a daemon's descriptors can pass select's 1024.
        waiter = select.poll()
        waiter.register(self.sock, event)
        return bool(waiter.poll(max(0.0, timeout) * 1000.0))

    def send(self, data: bytes, deadline: float) -> None:
        n = len(data)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
        for part in (header, data):
            view = memoryview(part)
            while view:
                try:
                    view = view[self.sock.send(view[:self._CHUNK]):]
                except BlockingIOError:
                    self._wait(deadline, writing=True)

    def recv(self, cap: int, deadline: float) -> bytes:
        (n,) = struct.unpack("!i", self._read(4, deadline))
        if n == -1:
            (n,) = struct.unpack("!Q", self._read(8, deadline))
        if n < 0 or n > cap:
            raise OSError(f"a frame of {n} bytes is over the cap of {cap}")
        return self._read(n, deadline)

    def _read(self, n: int, deadline: float) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            try:
                k = self.sock.recv_into(view[got:], min(n - got, self._CHUNK))
            except BlockingIOError:
                self._wait(deadline, writing=False)
                continue
            if k == 0:
                raise EOFError("the helper process closed its end")
            got += k
        return bytes(buf)

    def _wait(self, deadline: float, *, writing: bool) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not self._ready(select.POLLOUT if writing else select.POLLIN, left):
            raise TimeoutError("the helper process did not " + ("read" if writing else "answer") + " in time")

    def close(self) -> None:
        self.sock.close()


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
        self.pipe = ChildPipe(ours)

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
        self.pipe.close()

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
        child.pipe.close()
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
                if child.pipe.poll(0):
                    if child.pipe.recv(16, time.monotonic() + 1.0) != b"ready":
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
