"""Total deadlines that hold however slowly a peer sends.

A socket timeout bounds one ``recv``; a server that sends one byte a second
never trips it. So every outbound connection is armed on one shared
:class:`Watchdog`: when the request's deadline passes, the watchdog shuts the
socket down, which makes whatever read or write is blocked on it return at
once. The caller then asks :meth:`Watchdog.fired` and reports a timeout
(never a short body that merely looks complete).

DNS lookups get a deadline too: ``getaddrinfo`` has none of its own, so it
runs in a daemon thread the caller stops waiting for.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

from archiver.errors import CaptureError, FetchTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock, with the budget it came from."""

    at: float
    budget: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self, what: str) -> float:
        """Seconds left; FetchTimeout naming ``what`` when none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise FetchTimeout(f"total timeout of {self.budget:g}s reached while fetching {what}")
        return left

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at


class Watchdog:
    """One thread that shuts down sockets whose deadline has passed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, socket.socket] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, deadline: Deadline) -> int:
        """Watch ``sock`` until :meth:`disarm`; returns the token for it."""
        with self._cond:
            token = next(self._ids)
            self._armed[token] = sock
            heapq.heappush(self._heap, (deadline.at, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Stop watching; True when the deadline had already fired."""
        with self._cond:
            self._armed.pop(token, None)
            fired = token in self._fired
            self._fired.discard(token)
            return fired

    def fired(self, token: int) -> bool:
        with self._cond:
            return token in self._fired

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._cond.wait(wait)
                _, token = heapq.heappop(self._heap)
                sock = self._armed.pop(token, None)
                if sock is None:
                    continue  # disarmed in time
                self._fired.add(token)
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """Unblock every reader and writer of ``sock`` (TLS ones too: the raw fd)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected: nothing is blocked on it
    log.debug("deadline passed: shut down %r", sock)


WATCHDOG = Watchdog()


def in_daemon_thread(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` with a deadline, in a daemon thread so a hung call never
    blocks the caller or the process's exit (getaddrinfo has no timeout)."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name="resolve", daemon=True).start()
    return future.result(timeout=timeout)


Resolver = Callable[[str, int], list[str]]  # (host, port) -> addresses, in preference order


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for a TCP connection, without duplicates."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve(host: str, port: int, timeout: float, resolver: Resolver = system_resolver) -> list[str]:
    """Every address of ``host`` within ``timeout`` seconds; CaptureError otherwise."""
    try:
        addresses = in_daemon_thread(lambda: resolver(host, port), timeout)
    except FutureTimeout as exc:
        raise FetchTimeout(f"DNS lookup of {host} timed out after {timeout:g}s") from exc
    except (OSError, UnicodeError) as exc:
        raise CaptureError(f"cannot resolve host {host}: {exc}") from exc
    if not addresses:
        raise CaptureError(f"cannot resolve host {host}: no addresses")
    return list(addresses)
