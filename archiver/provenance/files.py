"""Crash-safe small-file writes for key material and the keyring.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

MAX_KEY_FILE = 1 << 20  # a key file of keys/ is a few hundred bytes


class NotRegularFile(OSError):
    """What :func:`open_private` raises for a FIFO, device or directory (EINVAL)."""


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never an existing file, never through a symlink) with
    exactly ``mode`` whatever the umask, write ``data`` and fsync it."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int, *, replace: bool = True) -> None:
    """Write ``path`` whole or not at all: temp file, fsync, then rename over
    it — or, with ``replace=False``, link it into place so an existing file
    is never overwritten (FileExistsError)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        write_new(tmp, data, mode)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)




def ownership_problem(path: Path, st: os.stat_result) -> str | None:
    """Why a private file or directory (from ``lstat``/``fstat``) must not be
    used: a symlink (someone could point it anywhere), or owned by another
    user (who could swap its contents). None when it is ours."""
    import stat as _stat

    if _stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink; refusing to follow it"
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}); refusing to use it"
    return None


def open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` of a regular file that never follows a symlink at ``path``
    and refuses a file another user owns; raises PermissionError with a
    one-line reason; :class:`NotRegularFile` for a FIFO, device or
    directory. Opened non-blocking, then set back to blocking: a FIFO in
    a file's place would otherwise hold the open for ever."""
    import errno
    import fcntl
    import stat

    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PermissionError(f"{path} is a symlink; refusing to follow it") from exc
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path)) from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
    why = ownership_problem(path, st)
    if why is not None:
        os.close(fd)
        raise PermissionError(why)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def read_key_file(path: Path) -> tuple[bytes, tuple[int, int, int, int]]:
    """A file of ``keys/`` and its (dev, ino, mtime_ns, size), refusing symlinks,
    other users' files and files others can read (PermissionError or
    SigningError, one line). Here rather than in keyfiles.py so a reader can
    take a public key from ``keys/`` without loading OpenSSL."""
    import stat as _stat

    from archiver.errors import SigningError

    try:
        fd = open_private(path, os.O_RDONLY)
    except PermissionError as exc:
        raise SigningError(f"key file {exc}") from exc
    except NotRegularFile as exc:
        raise SigningError(f"key file {path} is not a regular file") from exc
    try:
        st = os.fstat(fd)  # a regular file (open_private)
        if st.st_mode & 0o077:
            raise SigningError(
                f"key file {path} is accessible to others (mode {_stat.S_IMODE(st.st_mode):04o}); "
                "run chmod 600 on it"
            )
        chunks, held = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            held += len(chunk)
            if held > MAX_KEY_FILE:
                raise SigningError(f"key file {path} is over {MAX_KEY_FILE} bytes: not a key file")
        return b"".join(chunks), (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    finally:
        os.close(fd)
