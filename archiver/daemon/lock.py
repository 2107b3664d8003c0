"""One daemon per data directory, by an fcntl lock the kernel drops on exit.

A crashed daemon leaves no stale lock behind: the lock dies with the
process, so only a live holder refuses a second start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from archiver.errors import ArchiverError, DaemonError
from archiver.given import read_own
from archiver.provenance.files import open_private, ownership_problem
from store.warc import make_private_dir

LOCK_NAME = "daemon.lock"


class DaemonLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        make_private_dir(self.path.parent)
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as exc:
            raise DaemonError(f"lock file {exc}") from exc
        except OSError as exc:
            raise DaemonError(f"cannot open lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            pid = holder_pid(self.path)
            who = f" (pid {pid})" if pid else ""
            raise DaemonError(f"another archiver daemon is already running on {self.path.parent}{who}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> "DaemonLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(path: Path) -> int | None:
    try:
        text = (read_own(path, "lock file", 4096) or b"").strip()
        return int(text) if text else None
    except (ArchiverError, ValueError):
        return None


def is_locked(data_dir: Path) -> bool:
    """Whether a live daemon holds the lock on ``data_dir``."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def check_private_files(*paths: Path) -> None:
    """Refuse to start on a status (or other daemon) file that is a symlink or
    another user's: writing it would clobber whatever it points at."""
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        why = ownership_problem(path, st)
        if why is not None:
            raise DaemonError(f"daemon file {why}")
