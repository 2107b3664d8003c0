"""Where the public keyring lives: ``keyring.json`` beside an embedded
archive, or one row of the shared index's ``meta`` table, so that every
worker machine reads and extends the same keyring without copying files.

Updates are read-modify-write under the index's write transaction (on
PostgreSQL the archive-wide advisory lock), so two machines enrolling at
once never lose each other's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from archiver.errors import SigningError, VerificationError
from archiver.provenance.keyring import KeyRecord, Keyring, keyring_bytes, parse_keyring

META_KEY = "keyring"
KEYRING_NAME = "keyring.json"  # an embedded archive's keyring file, beside its index

Change = Callable[[list[KeyRecord]], "list[KeyRecord] | None"]


class IndexRing:
    """The shared archive's keyring, kept in the index (``meta.keyring``)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    @property
    def where(self) -> str:
        return f"{self.index.where} (meta.{META_KEY})"

    def load(self) -> Keyring | None:
        """The keyring, or None when no key was ever registered here."""
        raw = self.index.meta(META_KEY)
        if raw is None:
            return None
        return Keyring.of(parse_keyring(raw, self.where), Path(self.where))

    def update(self, change: Change) -> list[KeyRecord]:
        """Apply ``change`` to the keyring atomically; it returns the new
        records, or None to leave them as they are."""
        with self.index.write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
            try:
                records = parse_keyring(row[0], self.where) if row else []
            except VerificationError as exc:
                raise SigningError(str(exc)) from exc
            new = change(list(records))
            if new is None:
                return records
            self.index.set_meta(conn, META_KEY, keyring_bytes(new).decode("utf-8"))
            return new


def archive_keyring(archive: Any) -> Keyring | None:
    """The keyring an auditor reads: the shared index's when it holds one,
    else ``keyring.json`` in the data directory (embedded archives, and
    shared ones from before worker keys); None when there is neither."""
    if archive.settings.storage.shared_index:
        ring = IndexRing(archive.index).load()
        if ring is not None:
            return ring
    path = archive.root / KEYRING_NAME
    return Keyring(path).load() if path.exists() else None


def trusted_keyring(archive: Any) -> Keyring | None:
    """The archive's keyring reduced to the keys its root key vouches for
    (on a shared archive; an embedded keyring.json is taken as it is)."""
    from archiver.provenance.enrolment import trusted_ring

    ring = archive_keyring(archive)
    return trusted_ring(ring.keys)[0] if ring is not None else None
