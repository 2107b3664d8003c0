"""The helper processes an Archive starts when captures run in parallel.

Pages are read (parsed, extracted) in page workers (``[diff]
extract_processes``, archiver/pages.py) and hops fetched in fetch processes
(``[capture] fetch_processes``, archiver/capture/fetchpool.py). Both are
started once, on demand, and closed with the Archive; kept here so the
Archive's snapshot flow does not carry their plumbing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from archiver.config import Settings

if TYPE_CHECKING:
    from archiver.capture.deadline import Resolver
    from archiver.capture.fetchpool import FetchPool
    from archiver.capture.http import Capturer
    from archiver.capture.outbound import Outbound
    from archiver.pages import PageReader


class HelperProcesses:
    """The page reader in use and the fetch processes, if any, of one Archive."""

    def __init__(self, settings: Settings, resolver: Resolver, lock: threading.Lock) -> None:
        self.settings = settings
        self.resolver = resolver
        self._lock = lock  # the Archive's build lock: components are built under one lock
        self._pages: PageReader | None = None
        self.fetchers: FetchPool | None = None

    @property
    def pages(self) -> PageReader:
        """Where pages are read: the capture thread, or worker processes once
        :meth:`read_pages_in_parallel` asked for them."""
        if self._pages is None:
            from archiver.pages import InlinePages

            with self._lock:
                if self._pages is None:
                    self._pages = InlinePages()
        return self._pages

    def read_pages_in_parallel(self, captures: int) -> None:
        """Captures will run ``captures`` at a time: read their pages in worker
        processes (``[diff] extract_processes``), started as they are needed."""
        from archiver.pages import PagePool, pool_size

        d = self.settings.diff
        if captures <= 1 or d.extract_processes == 0:
            return
        with self._lock:
            if isinstance(self._pages, PagePool):
                return
            pool = PagePool(pool_size(d.extract_processes, captures), kill_after=d.extract_kill_after,
                            max_bytes=self.settings.capture.max_decoded_bytes)
            pool.start()  # ready while the first pages are fetched (and read here meanwhile)
            self._pages = pool

    @property
    def elsewhere(self) -> bool:
        """Pages are read, or hops fetched, in helper processes: a capture
        started meanwhile mostly waits for them, instead of needing this
        process's interpreter (archiver/grouping.py: when a place is given back)."""
        from archiver.pages import InlinePages

        return self.fetchers is not None or (self._pages is not None and not isinstance(self._pages, InlinePages))

    def fetch_in_processes(self, captures: int, capturer: Callable[[], Capturer]) -> None:
        """Fetch in processes of their own (``[capture] fetch_processes``) when
        captures run in parallel; ``capturer`` builds the Archive's capturer."""
        from archiver.capture.fetchpool import fetch_pool_size

        cs = self.settings.capture
        if captures <= 1 or cs.fetch_processes == 0 or self.fetchers is not None:
            return
        built = capturer()
        with self._lock:
            if self.fetchers is None:
                self.attach_fetchers(built, fetch_pool_size(cs.fetch_processes, captures))

    def attach_fetchers(self, capturer: Capturer, processes: int) -> None:
        """Start fetch processes for ``capturer``'s vetted path and hand its hops
        to them (``[capture] fetch_processes`` > 0: every hop waits for one).
        The caller holds the build lock."""
        from archiver.capture.fetchpool import FetchPool

        outbound: Outbound = capturer.outbound
        pool = FetchPool(processes, policy=outbound.policy, ca_bundle=outbound.ca_bundle, resolver=self.resolver,
                         isolate=self.settings.capture.fetch_processes > 0)
        pool.start()
        self.fetchers = capturer.processes = pool

    def close(self) -> None:
        with self._lock:
            pages, self._pages = self._pages, None
            fetchers, self.fetchers = self.fetchers, None
        if fetchers is not None:
            fetchers.close()
        if pages is not None:
            pages.close()
