"""store.s3deadline: a read blocked on a socket a request uses ends when the
deadline passes, and a socket is never touched once its request is over
(it may be serving another request from the pool by then)."""

from __future__ import annotations

import socket
import time

from store.s3deadline import Deadline, _watch


def test_a_blocked_read_ends_at_the_deadline():
    a, b = socket.socketpair()
    try:
        started = time.monotonic()
        with Deadline(0.3) as deadline:
            _watch(a)
            b.sendall(b"x")
            assert a.recv(1) == b"x"  # bytes that come are read as usual
            assert a.recv(1) == b""  # then nothing comes: shut at the deadline, not after
        assert deadline.expired and 0.25 < time.monotonic() - started < 5
    finally:
        a.close()
        b.close()


def test_a_socket_is_left_alone_after_its_request_and_shut_at_once_when_late():
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        with Deadline(0.2) as deadline:
            _watch(a)
        time.sleep(0.4)
        assert not deadline.expired
        b.sendall(b"y")
        assert a.recv(1) == b"y"
        with Deadline(0.05) as late:
            time.sleep(0.2)
            _watch(c)  # a retry's new connection, after the deadline
            assert c.recv(1) == b""
        assert late.expired
    finally:
        for s in (a, b, c, d):
            s.close()


def test_no_deadline_no_watch():
    a, b = socket.socketpair()
    try:
        _watch(a)  # outside any deadline: nothing to do
        b.sendall(b"z")
        assert a.recv(1) == b"z"
    finally:
        a.close()
        b.close()
