"""What an :class:`~archiver.archive.Archive` stands on: its components, built
from settings, and their lifecycle.

Why its own module: ``archive.py`` runs the snapshot flow; this opens the
index and WARC store, builds the WARC writer, capturer, outbound HTTP path,
notary and helper processes on first use (a read-only command never opens a
WARC file), and on close marks the files this process wrote settled when
every capture it wrote was committed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Self

from archiver import __version__
from archiver.capture.deadline import Resolver, system_resolver
from archiver.capture.records import record_id
from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.grouping import GroupCommitter
from archiver.helpers import HelperProcesses
from archiver.ids import SnapshotIds, random_uuid
from archiver.provenance.pinning import OwnRingCache
from archiver.takeover import CaptureTakeover
from archiver.vouching import SignedHere
from store.backends import WarcWriter, open_index, open_warcs
from store.warc import RecordLocation, WarcInfo, hold_dir

if TYPE_CHECKING:  # the capture stack (urllib3, TLS, requisites) loads when a capture needs it, not on a reader's start-up
    from archiver.capture.http import Capturer
    from archiver.capture.outbound import Outbound
    from archiver.committing import Pending
    from archiver.pages import PageReader
    from archiver.provenance.notary import Notary

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Components:
    """Injectable collaborators; tests pass a fixed clock and id generators."""

    clock: Callable[[], datetime] = utc_now
    new_uuid: Callable[[], str] = random_uuid
    resolver: Resolver = system_resolver  # name -> addresses; every outbound request resolves once
    snapshot_ids: Callable[[], str] | None = None
    hostname: str = field(default_factory=socket.gethostname)


class ArchiveComponents(CaptureTakeover):
    """The components an Archive is built of and their lifecycle; the reading
    half (history, bodies, articles, diffs) is :class:`ArchiveReads`, what a
    capture takes over from an earlier snapshot :class:`CaptureTakeover`, the
    snapshot flow :class:`~archiver.archive.Archive`."""

    def __init__(self, settings: Settings, components: Components | None = None) -> None:
        self.settings = settings
        self.c = components or Components()
        self.root = settings.data_path
        self.warc_dir = self.root / "warcs"  # the embedded store's directory
        self._dir_fd = hold_dir(self.root)  # in use: never removed as empty meanwhile (cli.main)
        try:
            self.index = open_index(settings.storage)
        except BaseException:
            os.close(self._dir_fd)
            raise
        try:
            self.warcs = open_warcs(settings.storage)
        except BaseException:
            self.index.close()
            os.close(self._dir_fd)
            raise
        self.new_snapshot_id = self.c.snapshot_ids or SnapshotIds(self.c.clock)
        self._writer: WarcWriter | None = None
        self._capturer: Capturer | None = None
        self._outbound: Outbound | None = None
        self._provenance: Notary | None = None
        self._committer: GroupCommitter[Pending] | None = None
        # Capture threads reach the lazily built components at once; without
        # this lock two of them could each open a WARC file (one left .open).
        self._build_lock = threading.Lock()
        self.helpers = HelperProcesses(settings, self.c.resolver, self._build_lock)
        self.signed_here = SignedHere()  # what a re-capture may take over without reading it back
        self.own_keys = OwnRingCache(self.own_ring)  # the keys keys/ vouches for (shared: other machines')
        # Files this process wrote, and captures whose records were written but
        # not committed: with none of those, close() marks the files settled so
        # start-up repair need not read them (audit/settled.py).
        self._written: set[str] = set()
        self._unsettled = 0
        # Index rows committed per file this process writes (nobody else
        # indexes a live writer's file): stored with each watermark, so a
        # watermark is trusted only while the index still holds them all.
        self.indexed: dict[str, int] = {}

    # -- lazily built components (read-only commands never open a WARC) -----
    @property
    def writer(self) -> WarcWriter:
        if self._writer is not None:
            return self._writer
        with self._build_lock:
            if self._writer is None:
                self._writer = self._make_writer()
        return self._writer

    def _make_writer(self) -> WarcWriter:
        return self.warcs.writer(
            WarcInfo(
                software=f"archiver/{__version__}",
                operator=self.settings.archive.operator,
                hostname=self.c.hostname,
                description="archiver snapshots: request/response/revisit records and signed manifests",
            ),
            prefix=self.settings.archive.warc_prefix,
            max_size=self.settings.archive.warc_max_size,
            gzip_mode=self.settings.archive.warc_gzip,
            clock=self.c.clock,
            record_id=lambda: record_id(self.c.new_uuid),
        )

    @property
    def outbound(self) -> Outbound:
        """The one vetted outbound HTTP path (captures, feeds, webhooks)."""
        if self._outbound is None:
            from archiver.capture.addresses import AddressPolicy
            from archiver.capture.outbound import Outbound

            cs = self.settings.capture
            self._outbound = Outbound(
                AddressPolicy.from_settings(cs.allow_private, cs.allow_networks, cs.deny_networks),
                ca_bundle=cs.ca_bundle or True,
                resolver=self.c.resolver,
            )
        return self._outbound

    @property
    def capturer(self) -> Capturer:
        if self._capturer is not None:
            return self._capturer
        with self._build_lock:
            if self._capturer is None:
                capturer = self._make_capturer()
                if self.settings.capture.fetch_processes > 0:  # every hop in a fetch process, a lone one too
                    self.helpers.attach_fetchers(capturer, self.settings.capture.fetch_processes)
                self._capturer = capturer
        return self._capturer

    def _make_capturer(self) -> Capturer:
        from archiver.capture.http import CaptureLimits, Capturer

        cs = self.settings.capture
        return Capturer(
            outbound=self.outbound,
            limits=CaptureLimits(
                connect_timeout=cs.connect_timeout,
                read_timeout=cs.read_timeout,
                total_timeout=cs.total_timeout,
                max_body_bytes=cs.max_body_bytes,
                max_decoded_bytes=cs.max_decoded_bytes,
                max_redirects=cs.max_redirects,
            ),
            user_agent=cs.user_agent.format(version=__version__, contact=cs.contact),
            clock=self.c.clock,
        )

    @property
    def provenance(self) -> Notary:
        if self._provenance is not None:
            return self._provenance
        from archiver.provenance.notary import Notary

        with self._build_lock:
            if self._provenance is None:
                self._provenance = Notary.open(
                    self.settings, self.index, clock=self.c.clock, hostname=self.c.hostname
                )
        return self._provenance

    def close(self) -> None:
        with self._build_lock:
            writer = self._writer
        self.helpers.close()
        if self._committer is not None:
            self._committer.close()
        if self._provenance is not None:
            self._provenance.close()
        if writer is not None:
            writer.close()
            with self._build_lock:
                written, clean = set(self._written), self._unsettled == 0
            if written and clean:
                from archiver.audit.settled import mark_settled

                try:
                    mark_settled(self.index, self.warcs, written)
                except ArchiverError as exc:  # only costs the next repair a read of these files
                    log.warning("cannot mark WARC files settled: %s", exc)
        self.index.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def note_written(self, locations: list[RecordLocation], *, unsettled: int = 0) -> None:
        """Remember the files records went to (and captures not yet committed) for close()."""
        with self._build_lock:
            self._written.update(loc.warc_file for loc in locations)
            self._unsettled += unsettled

    def note_indexed(self, warc_files: Iterable[str]) -> None:
        """Count committed index rows by the file their record is in (one name per row)."""
        with self._build_lock:
            for name in warc_files:
                self.indexed[name] = self.indexed.get(name, 0) + 1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pages(self) -> PageReader:
        """Where pages are read (archiver/helpers.py)."""
        return self.helpers.pages

    def parallel(self, captures: int) -> None:
        """Captures will run ``captures`` at a time: fetch and read their pages
        in helper processes (started now, used as they get ready)."""
        self.read_pages_in_parallel(captures)
        self.helpers.fetch_in_processes(captures, lambda: self.capturer)

    def read_pages_in_parallel(self, captures: int) -> None:
        """Read pages in worker processes (``[diff] extract_processes``) from now on."""
        self.helpers.read_pages_in_parallel(captures)
