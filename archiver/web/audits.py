"""One archive audit at a time, run in a background thread for the Verify
page (progress shown while it runs) or synchronously for the API."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from archiver.errors import ArchiverError
from archiver.web.http import HttpError

log = logging.getLogger(__name__)


@dataclass
class AuditState:
    running: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    files_done: int = 0
    files_total: int = 0
    current: str = ""
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class AuditRunner:
    def __init__(self, archive: Any, clock: Callable[[], datetime]) -> None:
        self.archive = archive
        self.clock = clock
        self.state = AuditState()

    def _begin(self) -> None:
        with self.state.lock:
            if self.state.running:
                raise HttpError(409, "conflict", "an audit is already running")
            self.state.running = True
            self.state.started_at = self.clock().isoformat()
            self.state.finished_at = None
            self.state.files_done = 0
            self.state.files_total = len(self.archive.warcs.names())
            self.state.error = None

    def _progress(self, name: str) -> None:
        self.state.files_done += 1
        self.state.current = name

    def _run(self) -> dict[str, Any]:
        from archiver.audit.verify import audit

        try:
            result: dict[str, Any] = audit(self.archive, progress=self._progress).to_json()
            self.state.result = result
            return result
        except ArchiverError as exc:
            self.state.error = str(exc)
            raise
        finally:
            self.state.finished_at = self.clock().isoformat()
            self.state.running = False

    def run_now(self) -> dict[str, Any]:
        """Run the audit in this thread (the API); 409 while another runs."""
        self._begin()
        return self._run()

    def start(self) -> None:
        """Start the audit in the background (the Verify page)."""
        self._begin()

        def target() -> None:
            try:
                self._run()
            except Exception as exc:  # reported on the page, never lost in a thread
                log.exception("audit failed")
                self.state.error = f"{type(exc).__name__}: {exc}"

        threading.Thread(target=target, name="web-audit", daemon=True).start()
