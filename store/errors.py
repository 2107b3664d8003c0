"""The one exception tree. Its root lives in ``store`` so that ``store`` never
imports ``archiver``; ``archiver.errors`` re-exports it and adds the rest."""

from __future__ import annotations


class ArchiverError(Exception):
    """Root of every error archiver raises on purpose; the CLI maps it to exit 1."""


class StoreError(ArchiverError):
    """The archive on disk (WARC files, index) could not be read or written."""


class CorruptRecordError(StoreError):
    """A WARC record is torn, truncated or unreadable."""
