"""Putting an SQLite file in WAL mode when several processes open it at once."""

from __future__ import annotations

import logging
import sqlite3
import time

log = logging.getLogger(__name__)


def enter_wal(conn: sqlite3.Connection, *, within: float) -> None:
    """Put the file in WAL mode, waiting for other processes doing the same.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers
    SQLITE_BUSY at once, without its busy handler, when two connections that
    both read the file race to take it (deadlock avoidance): several
    processes opening a fresh archive together would otherwise fail one of
    them. So the switch is retried, with a short back-off, for up to ``within``
    seconds (the busy timeout); a file already in WAL mode needs no lock at all."""
    deadline = time.monotonic() + within
    pause = 0.005
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":  # a file system without shared memory: it still works, slower
                    log.warning("index stays in journal mode %s: WAL is not available here", mode)
            return
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
