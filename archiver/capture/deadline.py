"""Total deadlines that hold however slowly a peer sends.

A socket timeout bounds one ``recv``; a server that sends one byte a second
never trips it. So every outbound connection is armed on one shared
:class:`Watchdog`: when the request's deadline passes, the watchdog shuts the
socket down, which makes whatever read or write is blocked on it return at
once. The caller then asks :meth:`Watchdog.fired` and reports a timeout
(never a short body that merely looks complete).

DNS lookups get a deadline too: ``getaddrinfo`` has none of its own, so it
runs in a daemon thread the caller stops waiting for (threads are kept for
the next lookup: starting one per request cost more than the lookup). An IP
literal is no name: it is its own answer, with no lookup and no thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

from archiver.capture.addresses import parse_ip
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
            sooner = not self._heap or deadline.at < self._heap[0][0]
            heapq.heappush(self._heap, (deadline.at, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            if sooner:  # the thread sleeps until the earliest deadline: wake it only to move that
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


class DaemonThreads:
    """Runs calls in daemon threads that are kept for the next call.

    Why daemon threads: a hung call (``getaddrinfo`` has no timeout) never
    blocks the caller, who stops waiting at its deadline, nor the process's
    exit. A thread stuck in such a call is simply not idle; the next call
    gets another one. Idle threads beyond ``keep`` end.
    """

    def __init__(self, name: str, keep: int = 8) -> None:
        self.name = name
        self.keep = keep
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # claimed: the job below is this idle thread's
        self._jobs.put((fn, future))
        if start:
            threading.Thread(target=self._run, name=self.name, daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            try:
                fn, future = self._jobs.get(timeout=60.0)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no job was handed to this thread meanwhile
                        self._idle -= 1
                        return
                continue
            try:
                result, error = fn(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                result, error = None, exc
            with self._lock:  # idle before the answer is out: the caller's next call finds this thread
                stay = self._idle < self.keep
                if stay:
                    self._idle += 1
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
            if not stay:
                return


_LOOKUPS = DaemonThreads("resolve")


def in_daemon_thread(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` with a deadline, in a daemon thread so a hung call never
    blocks the caller or the process's exit (getaddrinfo has no timeout)."""
    return _LOOKUPS.submit(fn).result(timeout=timeout)


Resolver = Callable[[str, int], list[str]]  # (host, port) -> addresses, in preference order


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for a TCP connection, without duplicates."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve(host: str, port: int, timeout: float, resolver: Resolver = system_resolver) -> list[str]:
    """Every address of ``host`` within ``timeout`` seconds; CaptureError otherwise.
    An IP literal is its own answer (no lookup); the caller vets it like any."""
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        addresses = in_daemon_thread(lambda: resolver(host, port), timeout)
    except FutureTimeout as exc:
        raise FetchTimeout(f"DNS lookup of {host} timed out after {timeout:g}s") from exc
    except (OSError, UnicodeError) as exc:
        raise CaptureError(f"cannot resolve host {host}: {exc}") from exc
    if not addresses:
        raise CaptureError(f"cannot resolve host {host}: no addresses")
    return list(addresses)


def ip_literal(host: str) -> str | None:
    """``host`` when it is an IP address written out (IPv6 without brackets), else None."""
    if not host or not (host[0].isdigit() or ":" in host):
        return None  # a name: skip the parse
    try:
        parse_ip(host)
    except ValueError:
        return None
    return host
