"""The daemon's status file (what ``archiver status`` shows of this machine's
daemon) and its signal handlers: the parts of the service around the loop."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, Callable, Protocol

from archiver.errors import ArchiverError
from archiver.given import read_own
from archiver.provenance.files import write_all

log = logging.getLogger(__name__)

STATUS_NAME = "daemon-status.json"


def status_paths(data_dir: Path) -> tuple[Path, Path]:
    """The status file and the temporary file it is written through."""
    path = Path(data_dir) / STATUS_NAME
    return path, path.with_suffix(".tmp")


def read_status(data_dir: Path) -> dict[str, Any] | None:
    try:
        raw = read_own(Path(data_dir) / STATUS_NAME, "status file")
        return json.loads(raw) if raw is not None else None
    except (ArchiverError, ValueError):
        return None


def write_status(data_dir: Path, status: dict[str, Any]) -> None:
    """Replace the status file whole (never written through a planted link)."""
    path, tmp = status_paths(data_dir)
    data = json.dumps(status, indent=2, ensure_ascii=False)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            write_all(fd, (data + "\n").encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc)


class Controllable(Protocol):
    def request_stop(self) -> None: ...
    def request_reload(self) -> None: ...


def install_signals(daemon: Controllable) -> Callable[[], None]:
    """SIGTERM/SIGINT stop, SIGHUP reloads; returns a function restoring the old handlers."""
    handlers = {
        signal.SIGTERM: lambda *_: daemon.request_stop(),
        signal.SIGINT: lambda *_: daemon.request_stop(),
        signal.SIGHUP: lambda *_: daemon.request_reload(),
    }
    old = {sig: signal.signal(sig, h) for sig, h in handlers.items()}

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore
