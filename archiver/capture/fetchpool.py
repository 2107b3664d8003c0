"""Fetch processes for parallel captures: the capture process's side.

Why: with two capture workers, the capture process's own CPU per page (fetch,
records, signing, the commit round) under one GIL was the ceiling, not the
two cores (issue 12). Fetching is the part that needs no key and no index, so
it moves out: one fetch process per capture worker (``fetchproc.py``), each
running one hop at a time through the same vetted outbound path. The capture
process re-derives and hashes what it records (``fetchwire.py``).

By default (``isolate`` off) the pool never makes a capture wait for a
process: a hop goes to an idle fetch process, and when none is idle (the
processes are still starting, or a page's requisites hold them all), it runs
in the calling thread through the same path, as a lone ``archiver snapshot
URL`` does (starting an interpreter costs more than the fetch it would take
over). With ``isolate`` (``[capture] fetch_processes`` set to a count), every
hop waits for a fetch process, within its deadline: the capture process then
never opens a connection for a capture at all.

Every wait is bounded: a hop's answer must come within its deadline plus
:data:`GRACE`; a fetch process that misses it, dies, or sends anything the
protocol does not allow (or more bytes than the caps) fails that hop with a
one-line error and is killed; the next hop starts a replacement. Names are
looked up here, when the fetch process asks, with the capture's resolver.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from typing import Any, Callable, Mapping, TypeVar

from archiver.capture.addresses import AddressPolicy
from archiver.capture.childproc import ChildPool, ChildProcess
from archiver.capture.deadline import Deadline, Resolver, resolve, system_resolver
from archiver.capture.fetchwire import FRAME_SLACK, Malformed, RawHop, decode_error, decode_hop
from archiver.capture.http import CaptureLimits, wire_cap
from archiver.errors import CaptureError, FetchTimeout, LimitExceeded

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds past a hop's own deadline its fetch process may take to answer
GRACE = 2.0


class _Lost(Exception):
    """The fetch process can no longer be trusted with a hop: kill it, raise ``error``."""

    def __init__(self, error: CaptureError) -> None:
        super().__init__(str(error))
        self.error = error


class FetchProcess(ChildProcess):
    what, unit = "fetch process", "hop"

    def __init__(self, started: float, config: bytes, module: str = "archiver.capture.fetchproc") -> None:
        super().__init__(module, started)
        self.pipe.send(config, time.monotonic() + 5.0)  # read once it has started (the socket's buffer holds it)


class FetchPool(ChildPool[FetchProcess]):
    """``processes`` fetch processes, each running one hop at a time."""

    def __init__(self, processes: int, *, policy: AddressPolicy, ca_bundle: str | bool,
                 resolver: Resolver = system_resolver, isolate: bool = False,
                 clock: Callable[[], float] = time.monotonic, module: str = "archiver.capture.fetchproc") -> None:
        super().__init__(processes, clock)
        self.isolate = isolate
        self.module = module  # what the processes run (tests run one that lies)
        self.resolver = resolver
        self._config = json.dumps({
            "allow_private": policy.allow_private, "allow_networks": [str(n) for n in policy.allow_networks],
            "deny_networks": [str(n) for n in policy.deny_networks],
            "ca_bundle": ca_bundle if isinstance(ca_bundle, str) else "",
        }).encode("utf-8")

    def _spawn(self) -> FetchProcess:
        return FetchProcess(self.clock(), self._config, self.module)

    def _checkout(self, url: str, deadline: Deadline) -> FetchProcess | None:
        """An idle, live fetch process; None when there is none (with
        ``isolate``: waits for one until the deadline, then FetchTimeout)."""
        while True:
            with self._lock:
                if self._closed:
                    if self.isolate:
                        raise CaptureError(f"cannot fetch {url}: the fetch processes are stopped")
                    return None
            self.start()  # replaces processes discarded since
            self._promote()
            try:
                proc = self._idle.get(timeout=min(0.05, deadline.remaining(url))) if self.isolate else self._idle.get_nowait()
            except queue.Empty:
                if not self.isolate:
                    return None
                continue
            if proc.alive():
                return proc
            self._discard(proc)  # died while idle: no hop was lost with it

    # -- one hop -------------------------------------------------------------------
    def fetch(self, url: str, headers: Mapping[str, str], deadline: Deadline, limits: CaptureLimits,
              read: Callable[[RawHop], T]) -> T | None:
        """``read`` of the raw exchange of ``GET url`` run in an idle fetch process;
        None when none is idle. ``read`` refusing the exchange (anything but a
        cap: the live path read the same bytes the same way, so the process
        lied) costs the process its place."""
        proc = self._checkout(url, deadline)
        if proc is None:
            self.inline += 1
            return None
        try:
            raw = self._ask(proc, url, headers, deadline, limits)
            try:
                hop = read(raw)
            except LimitExceeded:
                raise
            except CaptureError as exc:
                raise _Lost(exc) from exc
        except _Lost as lost:
            self._discard(proc)
            raise lost.error from lost
        except CaptureError:
            self._idle.put(proc)  # a clean failure of the hop: the process is fine
            raise
        except BaseException:
            self._discard(proc)
            raise
        proc.jobs += 1
        self._idle.put(proc)
        return hop

    def _ask(self, proc: FetchProcess, url: str, headers: Mapping[str, str], deadline: Deadline,
             limits: CaptureLimits) -> RawHop:
        left = deadline.remaining(url)
        job = {"url": url, "headers": dict(headers), "left": left, "budget": deadline.budget,
               "connect": limits.connect_timeout, "read": limits.read_timeout,
               "max_body": limits.max_body_bytes, "max_decoded": limits.max_decoded_bytes}
        since = time.monotonic()
        end = since + left + GRACE
        cap = wire_cap(limits) + FRAME_SLACK
        try:
            proc.pipe.send(b"J" + json.dumps(job).encode("utf-8"), end)
            while True:
                frame = proc.pipe.recv(cap, end)
                kind = frame[:1]
                if kind == b"H":
                    return decode_hop(frame, url, since, time.monotonic())
                if kind == b"E":
                    raise decode_error(frame)
                if kind != b"R":
                    raise Malformed(f"unknown frame {kind!r}")
                proc.pipe.send(self._lookup(frame, deadline), end)
        except TimeoutError as exc:
            raise _Lost(FetchTimeout(f"{url}: total timeout of {deadline.budget:g}s reached "
                                     "(its fetch process did not answer and was stopped)")) from exc
        except Malformed as exc:
            raise _Lost(CaptureError(f"the fetch process fetching {url} sent a malformed answer ({exc})")) from exc
        except (EOFError, OSError) as exc:  # died, or sent more than the caps allow
            raise _Lost(CaptureError(f"the fetch process fetching {url} failed (exit code {proc.exit_code()})")) from exc

    def _lookup(self, frame: bytes, deadline: Deadline) -> bytes:
        """Answer a fetch process's name lookup with this process's resolver (within the deadline)."""
        try:
            d: Any = json.loads(frame[1:])
            host, port, timeout = d["host"], d["port"], float(d["timeout"])
            if not (isinstance(host, str) and 0 < len(host) <= 255 and isinstance(port, int) and 0 <= port < 65536):
                raise ValueError("bad lookup")
        except (ValueError, TypeError, KeyError) as exc:
            raise Malformed("malformed lookup") from exc
        try:
            addresses = resolve(host, port, min(timeout, deadline.remaining(host)), self.resolver)
        except CaptureError as exc:
            return b"A" + json.dumps({"error": type(exc).__name__, "message": str(exc)[:1000]}).encode("utf-8")
        return b"A" + json.dumps({"addresses": addresses}).encode("utf-8")


def fetch_pool_size(configured: int, captures: int) -> int:
    """Fetch processes for ``captures`` parallel captures: ``configured`` when positive, else one each."""
    return configured if configured > 0 else max(1, captures)
