"""One parse per captured page: the requisites it names and its article text.

Why: parsing and reading a page is the largest piece of CPU in a capture
(trafilatura above all), and it is pure: bytes in, a small result out. So a
page is decoded and parsed once (:func:`archiver.changes.extract.parse_page`,
within the extraction limits); the requisite scan reads the untouched tree
(:func:`archiver.capture.requisites.tree_references`), then extraction
consumes it. :func:`read_page` does all of it for one :class:`PageJob`.

Where it runs: in the capture thread (:class:`InlinePages`, what a lone
``archiver snapshot URL`` uses: no process to start), or, when captures run
in parallel (``snapshot -i --workers N``, the daemon), in a pool of worker
processes (:class:`PagePool`) so that the GIL no longer serialises the
capture threads on it. The pool is bounded: a page larger than the capture's
decoded-size cap is refused, each worker handles one page at a time, and a
worker that takes longer than ``kill_after`` seconds on a page, or dies, is
killed and replaced; that page gets no article text (as when extraction
itself fails: the capture is still recorded, compared by payload digest) and
the next page goes to a fresh worker. Nothing waits without a deadline.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Protocol

from archiver.capture.childproc import ChildPool, ChildProcess
from archiver.capture.requisites import FONT, ICON, IMAGE, STYLESHEET, tree_references
from archiver.changes.extract import Article, ExtractLimits, extract_parsed, parse_page
from archiver.errors import ArchiverError, ExtractError

log = logging.getLogger(__name__)

REQUISITE_KINDS = frozenset({STYLESHEET, FONT, ICON, IMAGE})

_WARM_UP = (b"<html><head><title>t</title><style>p{}</style></head><body><article><h1>t</h1>"
            b"<p>Ein Satz mit 12 Zahlen.</p><p>Another sentence of text.</p></article></body></html>")


@dataclass(frozen=True)
class PageJob:
    """What to read from one response body (picklable: it may go to a worker)."""

    body: bytes
    content_type: str
    url: str
    limits: ExtractLimits
    method: str | None = None  # the URL's kept extraction method
    language_hint: str | None = None
    refs: bool = True  # find the requisites the page names
    article: bool = True  # read the article text


@dataclass(frozen=True)
class PageReading:
    """What :func:`read_page` found. ``error`` says why there is no article
    (logged by the caller); ``warnings`` are log lines of a worker process,
    logged again by the capture process."""

    refs: list[tuple[str, str]] = field(default_factory=list)
    article: Article | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    reader: str | None = None  # how ``article`` was read, when that reading repeats (set by the capture process)
    reused: bool = False  # ``article`` is the previous snapshot's stored text, taken unread (capture process)


def read_page(job: PageJob) -> PageReading:
    """Parse the page once: the requisites it names (from the untouched tree), then its article."""
    try:
        parsed = parse_page(job.body, job.content_type, job.limits)
    except ArchiverError as exc:
        return PageReading(error=str(exc))
    refs = tree_references(parsed.doc, job.url) if job.refs and parsed.doc is not None else []
    if not job.article:
        return PageReading(refs)
    try:
        article = extract_parsed(parsed, url=job.url, language_hint=job.language_hint, method=job.method,
                                 limits=job.limits)
    except ArchiverError as exc:
        return PageReading(refs, error=str(exc))
    return PageReading(refs, article)


class PageReader(Protocol):
    def read(self, job: PageJob) -> PageReading: ...

    def close(self) -> None: ...


class InlinePages:
    """Reads pages in the calling thread."""

    def read(self, job: PageJob) -> PageReading:
        return read_page(job)

    def close(self) -> None:
        pass


class _Collect(logging.Handler):
    """A worker's log records of one page, handed back with its reading."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def encode_job(job: PageJob) -> bytes:
    """A job on the wire: a JSON head, a NUL, then the body bytes."""
    # vars, not asdict: the limits are plain numbers, and asdict's deep copy cost more than the rest
    head = {"content_type": job.content_type, "url": job.url, "limits": vars(job.limits), "method": job.method,
            "language_hint": job.language_hint, "refs": job.refs, "article": job.article}
    return json.dumps(head).encode("utf-8") + b"\0" + job.body


def decode_job(data: bytes) -> PageJob:
    head, _, body = data.partition(b"\0")
    h = json.loads(head)
    return PageJob(body, h["content_type"], h["url"], ExtractLimits(**h["limits"]), h["method"], h["language_hint"],
                   refs=h["refs"], article=h["article"])


def encode_reading(reading: PageReading) -> bytes:
    return json.dumps({"refs": reading.refs, "article": reading.article.to_json() if reading.article else None,
                       "error": reading.error, "warnings": list(reading.warnings)}, ensure_ascii=False).encode("utf-8")


def decode_reading(data: bytes) -> PageReading:
    """A worker's answer, checked: plain JSON (never a pickle: the worker parsed untrusted bytes)."""
    d = json.loads(data)
    refs = [(str(u), str(k)) for u, k in d["refs"]]
    if any(k not in REQUISITE_KINDS for _, k in refs):  # a subverted worker's: the fetch plan keys on kinds
        raise ValueError("unknown requisite kind")
    article = Article.from_json(d["article"]) if d["article"] is not None else None
    return PageReading(refs, article, None if d["error"] is None else str(d["error"]),
                       tuple(str(w) for w in d["warnings"]))


def serve(fd: int) -> None:
    """A worker process: answer each job on ``fd`` until the pipe closes."""
    conn = Connection(fd)
    collect = _Collect()
    root = logging.getLogger()
    root.handlers[:] = [collect]
    root.setLevel(logging.WARNING)
    # Lazy imports and first-call set-up happen now, not inside a page's time.
    read_page(PageJob(_WARM_UP, "text/html", "http://warm.up/", ExtractLimits()))
    collect.lines = []
    conn.send_bytes(b"ready")
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        collect.lines = []
        try:
            reading = read_page(decode_job(data))
        except Exception as exc:  # noqa: BLE001 - a bug on one page must not cost the next pages their worker
            reading = PageReading(error=f"extraction failed: {type(exc).__name__}: {exc}"[:500])
        if collect.lines:
            reading = PageReading(reading.refs, reading.article, reading.error, tuple(collect.lines))
        conn.send_bytes(encode_reading(reading))


class _Worker(ChildProcess):
    """One worker process (``python -m archiver.pages FD``, see
    ``archiver/capture/childproc.py``) and its end of the pipe."""

    what, unit = "page worker", "page"

    def __init__(self, started: float) -> None:
        super().__init__("archiver.pages", started)


class PagePool(ChildPool[_Worker]):
    """Worker processes that read pages, one page per worker at a time.

    All workers are started at once (:meth:`start`) and reused; a failed one
    is killed and replaced. While no worker is ready yet (an interpreter
    takes a moment to start), pages are read in the calling thread, so a
    capture never waits for a worker to start. Answers are bounded in size
    and parsed as JSON only, so even a worker subverted by a hostile page
    cannot reach into the capture process.
    """

    def __init__(self, processes: int, *, kill_after: float, max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(processes, clock)
        self.kill_after = kill_after
        self.max_bytes = max_bytes

    def _spawn(self) -> _Worker:
        return _Worker(self.clock())

    def read(self, job: PageJob) -> PageReading:
        if len(job.body) > self.max_bytes:
            return PageReading(error=f"page of {len(job.body)} bytes is over the {self.max_bytes}-byte cap for reading")
        worker = self._checkout()
        if worker is None:
            self.inline += 1
            return read_page(job)
        try:
            reading = self._ask(worker, job)
        except ExtractError as exc:
            self._discard(worker)
            return PageReading(error=str(exc))
        except BaseException:
            self._discard(worker)
            raise
        self._idle.put(worker)
        for line in reading.warnings:
            log.warning("%s", line)
        return reading

    def _ask(self, worker: _Worker, job: PageJob) -> PageReading:
        reply_cap = 8 * job.limits.max_text + 1_048_576  # JSON-escaped text, refs and notes
        deadline = time.monotonic() + self.kill_after  # handing the page over, reading it, answering
        try:
            worker.pipe.send(encode_job(job), deadline)
            data = worker.pipe.recv(reply_cap, deadline)
        except TimeoutError as exc:
            raise ExtractError(f"reading {job.url} took over {self.kill_after:g}s; its worker was killed") from exc
        except (EOFError, OSError) as exc:
            raise ExtractError(f"the worker reading {job.url} failed (exit code {worker.exit_code()})") from exc
        try:
            reading = decode_reading(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ExtractError(f"the worker reading {job.url} sent a malformed answer") from exc
        worker.jobs += 1
        return reading

    def _checkout(self) -> _Worker | None:
        """An idle worker; None when the page is better read here (workers still starting)."""
        self.start()  # replaces workers discarded since
        while True:
            self._promote()
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                pass
            else:
                if worker.alive():
                    return worker
                self._discard(worker)  # died while idle: no page was lost with it
                self.start()
                continue
            with self._lock:
                if self._closed:
                    raise ArchiverError("the page pool is closed")
                if self._starting:
                    return None
            try:
                self._idle.put(self._idle.get(timeout=1.0))  # checked for life at the top
            except queue.Empty:
                self.start()  # every worker busy for a second: one may have been discarded meanwhile


def pool_size(configured: int, captures: int) -> int:
    """Worker processes for ``captures`` parallel captures: ``configured`` when
    positive, else one per CPU core, never more than there are captures."""
    if configured > 0:
        return configured
    return max(1, min(os.cpu_count() or 1, captures))


__all__ = ["InlinePages", "PageJob", "PagePool", "PageReader", "PageReading", "pool_size",
           "read_page"]


if __name__ == "__main__":
    serve(int(sys.argv[1]))
