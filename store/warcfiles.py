"""WARC files on disk: names, the ``.open`` suffix of a file being written,
listing, private directories and directory fsyncs.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from store.errors import StoreError

OPEN_SUFFIX = ".open"


def warc_name(prefix: str, when: datetime, serial: int, hostname: str, pid: int) -> str:
    """A WARC file name unique per writer: time, serial, host and process."""
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S%f")
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in hostname)
    return f"{prefix}-{stamp}-{serial:05d}-{host}-{pid}.warc.gz"



def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) if missing; one this call creates is
    0700 whatever the umask. An existing one keeps the mode its owner chose."""
    directory = Path(directory)
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def hold_dir(directory: Path) -> int:
    """Create ``directory`` if missing and hold it with a shared ``flock``:
    the archive is in use. Returns the fd; closing it lets go.

    Whoever removes an (empty) archive takes the lock exclusively first, so
    it never removes one another process has open. A directory removed
    between creating and locking it is created again.
    """
    import fcntl

    while True:
        try:
            make_private_dir(directory)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:  # a file where the directory should be, no permission, ...
            raise StoreError(f"cannot use {directory} as the archive directory: {exc.strerror}") from exc
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            if os.stat(directory).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_name(name: str) -> str:
    """``name`` if it is a plain file name; StoreError for a path (``../``, ``/abs``).

    Why: names come from the index, which whoever can write the data
    directory (or the shared database) can change; a path there would make
    every reader -- the web desk's open pages among them -- read a file
    outside the archive as if it were one of its WARC files."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise StoreError(f"not a WARC file name: {name!r}")
    return name


def resolve(directory: Path, name: str) -> Path:
    """The path of a WARC by its final name, whether or not it is still open."""
    path = Path(directory) / check_name(name)
    if path.exists():
        return path
    open_path = path.with_name(name + OPEN_SUFFIX)
    if open_path.exists():
        return open_path
    raise StoreError(f"WARC file {name} is missing from {directory}")


def final_name(path: Path) -> str:
    name = Path(path).name
    return name[: -len(OPEN_SUFFIX)] if name.endswith(OPEN_SUFFIX) else name


def list_warcs(directory: Path) -> list[Path]:
    """The WARC files of ``directory`` (``.open`` ones too): regular files
    with a WARC name only (see :func:`irregular_warcs`)."""
    return [p for p in _warc_names(directory) if _regular(p)]


def irregular_warcs(directory: Path) -> list[str]:
    """Names in ``directory`` that look like WARC files but are no regular
    file -- a FIFO, a device, a directory. Never opened: whoever can write
    the directory could make a reader wait on a FIFO for ever; verify
    reports them instead."""
    return [p.name for p in _warc_names(directory) if not _regular(p)]


def _regular(path: Path) -> bool:
    """Is ``path`` a regular file? One gone since it was listed counts as one:
    a writer closing its file renames it, and readers look for the file
    under its other name (scan.open_current)."""
    import stat

    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _warc_names(directory: Path) -> list[Path]:
    directory = Path(directory)
    if not directory.exists():
        return []
    return sorted(
        p for p in directory.iterdir() if p.name.endswith(".warc.gz") or p.name.endswith(".warc.gz" + OPEN_SUFFIX)
    )


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` opened for reading, only if it is a regular file: opened
    non-blocking, so that a FIFO put in a WARC file's place (after it was
    listed) is refused at once instead of blocking the reader; StoreError
    otherwise. FileNotFoundError passes through (callers look for a renamed file)."""
    import fcntl
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{Path(path).name} is not a regular file; not read")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


