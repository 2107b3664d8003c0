"""A total deadline on each object-store request, however slowly its bytes come.

botocore's read timeout is per socket read: a store that sends a byte every
50 s (or the status line of its answer that way) held a reader for ever.
Each request of :class:`store.objects.S3WarcStore` runs inside a
:class:`Deadline`; the connections of a client made by
:func:`watch_connections` register their socket with the deadline of the
thread using them, and when it passes those sockets are shut down, which
ends a read blocked on them at once (and any retry botocore then makes).
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

from store.errors import StoreError

#: seconds one object-store request may take in all (s3.deadline): a ranged read, a
#: HEAD, a listing page (store.objects gives whole-object transfers more)
DEFAULT_DEADLINE = 300.0

_local = threading.local()


class Deadline:
    """``with Deadline(seconds):`` -- the requests of this thread meanwhile end
    at the latest ``seconds`` after it began; ``expired`` says if they were cut."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._done = False
        self._outer: Deadline | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._outer = getattr(_local, "deadline", None)
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True  # the sockets may go back to the pool: never shut them now
            self._socks.clear()
        _local.deadline = self._outer

    def watch(self, sock: Any) -> None:
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self._done:
                return
            if self.expired:
                _shut(sock)
            elif sock not in self._socks:
                self._socks.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._socks:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """End both directions at the socket level (for TLS too, without touching
    its SSL object, which the blocked reader is using): its read returns."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _watch(sock: Any) -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _Watched:
    """Mixed into botocore's connection classes: each socket a request uses
    (new or reused) is told to the thread's deadline."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


def watch_connections(client: Any) -> None:
    """Make ``client`` (a boto3 S3 client) use connections that register with
    the thread's deadline. botocore picks its pool classes from a mapping of
    its HTTP session, which its proxy managers share; a botocore without it
    is refused here rather than left without deadlines."""
    from botocore.awsrequest import (
        AWSHTTPConnection,
        AWSHTTPConnectionPool,
        AWSHTTPSConnection,
        AWSHTTPSConnectionPool,
    )

    class HTTPConnection(_Watched, AWSHTTPConnection):
        pass

    class HTTPSConnection(_Watched, AWSHTTPSConnection):
        pass

    class HTTPPool(AWSHTTPConnectionPool):
        ConnectionCls = HTTPConnection

    class HTTPSPool(AWSHTTPSConnectionPool):
        ConnectionCls = HTTPSConnection

    classes = client._endpoint.http_session._pool_classes_by_scheme
    if classes.get("http") is not AWSHTTPConnectionPool or classes.get("https") is not AWSHTTPSConnectionPool:
        raise StoreError("this botocore builds its connections differently: store.s3deadline needs updating")
    classes["http"], classes["https"] = HTTPPool, HTTPSPool
