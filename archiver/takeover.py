"""The capture half of the Archive facade: what a new capture may take over
from an earlier snapshot of its URL -- its content on a 304, its text when
the page is unchanged -- and the earlier text it diffs against.

Split from ``reading.py`` (the readers: nothing there decides what a capture
signs) so each half stays small. ``Archive`` inherits this, which inherits
``ArchiveReads``, so callers see one facade.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from archiver.errors import ArchiverError, NotVerified
from archiver.reading import ArchiveReads, claims_of
from archiver.signedreads import CONTENT, TAKEN_OVER, matching, signed_facts
from archiver.vouching import SignedHere, Vouched
from store.errors import CorruptRecordError
from store.index import SnapshotRow

if TYPE_CHECKING:
    from archiver.changes.extract import Article
    from archiver.provenance.keyring import Keyring
    from archiver.provenance.notary import Notary
    from archiver.provenance.pinning import OwnRingCache

log = logging.getLogger(__name__)


class CaptureTakeover(ArchiveReads):
    """What a capture takes over from, and diffs against, the URL's previous
    snapshot: only what this machine's own ``keys/`` vouches for."""

    signed_here: SignedHere
    own_keys: OwnRingCache

    if TYPE_CHECKING:

        @property
        def provenance(self) -> Notary: ...  # Archive's: the signer vouches for what a capture takes over

    def vouched(self, row: SnapshotRow) -> Vouched | None:
        """``row`` as this machine's own ``keys/`` vouches for it (its signing
        key, or on a shared archive a key its root key enrolled: :meth:`own_ring`),
        with its stored article; None when it cannot.

        Why: a capture that takes something over from an earlier snapshot
        instead of fetching or reading it again (a 304's content, an unchanged
        page's text) signs it as its own. The index and the keyring can be
        written by someone who cannot read ``keys/``, so neither the row's
        digests nor a keyring entry is enough: the manifest must be one this
        process's signing key made -- or, shared, a key enrolled by the root key
        this machine holds or pinned (a worker without a pin: its own key only)
        -- stating the row's payload and text digests, and the stored text must
        hash to that signed digest. Anything else -- a snapshot of a key it
        cannot vouch for or a rotated one, a damaged record, a changed row or
        text -- is None, and the caller fetches or reads afresh.
        What this process signed itself it remembers (:class:`SignedHere`), so
        a daemon re-capturing its own snapshots reads no manifest back, and
        what it read back and checked once it remembers as well.
        """

        try:
            known = self.signed_here.get(row.id)
            if known is not None:  # this process signed it: what it signed, from memory
                if known != SignedHere.digest(row.payload_sha256, row.text_sha256):
                    return None
            elif self._signed_by_own_ring(row):  # checked once: a 304 asks up to three times
                self.signed_here.note(row.id, row.payload_sha256, row.text_sha256)
            else:
                return None
            if not row.text_sha256:
                return Vouched(None)
            article = self.stored_article(row)  # the row's digest is the signed one here
        except (ArchiverError, ValueError, TypeError) as exc:
            log.info("cannot vouch for snapshot %s: %s", row.id, exc)
            return None
        return Vouched(article) if article is not None else None

    def own_ring(self) -> Keyring:
        """The keys this machine's own ``keys/`` vouches for (provenance/pinning.py):
        its key, and on a shared archive every key its root key -- its own, or
        the one pinned on a worker -- enrolled."""
        from archiver.provenance.pinning import own_ring

        shared = None
        if self.settings.storage.shared_index:
            from archiver.provenance.ringstore import archive_keyring

            shared = archive_keyring(self)
        return own_ring(self.provenance.keys, shared)

    def _vouching_key(self, key_id: str | None) -> Keyring | None:
        """The ring to check a signature by ``key_id`` with when it is a key this
        machine's ``keys/`` vouches for that is not its own signing key."""
        if not self.settings.storage.shared_index or not key_id:
            return None
        return self.own_keys.with_key(key_id)

    def _vouching_ring(self, key_id: str | None) -> Keyring | None:
        """The anchors a capture checks a snapshot by ``key_id`` with: this
        process's signing key alone (no window: what it signed, it signed), or
        on a shared archive a key its root key enrolled (:meth:`own_ring`,
        each within its window) -- never a rotated-out key, which the readers
        trust. None: a key it does not vouch for."""
        signer = self.provenance.keys.signer()
        if key_id != signer.key_id:
            return self._vouching_key(key_id)
        from archiver.audit.judge import pinned_key
        from archiver.provenance.keyring import Keyring

        return Keyring.of([pinned_key(signer.public_key_spki())])

    def _signed_by_own_ring(self, row: SnapshotRow) -> bool:
        """Whether ``row``'s manifest (its WARC record's, with the signature and
        key id the row states) passes the readers' check (signedreads.py)
        anchored on :meth:`_vouching_ring`, stating the row's snapshot id,
        payload and text digests. A key it does not vouch for: no record read."""
        ring = self._vouching_ring(row.key_id)
        if ring is None or not row.manifest_sha256:
            return False
        try:
            matching(row, signed_facts(row, self._stated_fields(row), lambda _key_id: ring), TAKEN_OVER)
        except NotVerified:
            return False
        return True

    def _stated_fields(self, row: SnapshotRow) -> dict[str, Any]:
        """``row``'s manifest as a manifest record's fields, with the row's signature and key id."""
        manifest = self.manifest(row)
        if not isinstance(manifest, dict):
            raise NotVerified(f"snapshot {row.id} has no manifest")
        return {"manifest": manifest, "manifest_sha256": row.manifest_sha256, "key_id": row.key_id,
                "signature": row.signature}

    def reusable_article(self, prev: SnapshotRow | None, payload_sha256: str, content_type: str) -> Article | None:
        """``prev``'s stored article when a new capture would read exactly it again.

        Why: a daemon re-captures mostly unchanged pages, and extraction is
        the largest CPU cost of a capture. The article is a function of the
        payload, its Content-Type and the reading (code, libraries, limits,
        language hint, the URL's kept method), so the same payload and
        Content-Type read by the same reader as ``prev`` give ``prev``'s text;
        the method needs no check: it is kept from ``prev``, and reading a page
        with the method it chose gives the same article. None -- extract --
        when anything differs, when ``prev`` has no reader (its text came
        before readers were recorded, or from a time-limited reading), or
        when this archive's key cannot vouch for ``prev``'s text
        (:meth:`vouched`): only a text it signed for these very payload
        bytes is signed again."""
        from archiver.changes.extract import deterministic

        if prev is None or prev.reader is None or not prev.text_sha256:
            return None
        if prev.payload_sha256 != payload_sha256 or (prev.content_type or "") != content_type:
            return None
        if prev.reader != self.reader():
            return None
        vouched = self.vouched(prev)
        if vouched is None or vouched.article is None or not deterministic(vouched.article):
            return None
        return vouched.article

    def read_article(self, prev: SnapshotRow | None, body: bytes, content_type: str, url: str) -> Article | None:
        """The article of a new capture, read with the method of the URL's previous snapshot ``prev``."""
        return self._extract(body, content_type, url, method=self._method_of(prev))

    def _method_of(self, prev: SnapshotRow | None) -> str | None:
        """The extraction method of a URL's previous capture: kept, so furniture cannot flip it."""
        if prev is None or not prev.text_sha256:
            return None
        data = self.index.text(prev.text_sha256)
        return str(data.get("method")) if data and data.get("method") else None

    def _diff(self, prev: SnapshotRow | None, article: Article | None) -> dict[str, Any] | None:
        from archiver.changes.diff import diff_articles

        if prev is None or article is None:
            return None
        before = self._previous_article(prev)
        if before is None:
            return None
        return diff_articles(self._same_method(prev, before, article), article).to_json()

    def _previous_article(self, prev: SnapshotRow) -> Article | None:
        """``prev``'s article for the diff a new capture signs (its significance).

        The text signed for ``prev`` when this machine can vouch for it
        (:meth:`vouched`); when the row names a key it vouches for but the
        signature does not hold (the row and its text changed together), the
        page read again from its record -- never the index's word. A snapshot
        of a key it cannot vouch for (another worker's, on a worker without a
        pinned root) gets the stored text that hashes to its row's digest
        (the index's word: what a reader would refuse to show, a capture only
        compares with; ``keys pin-root`` closes it)."""
        vouched = self.vouched(prev)
        if vouched is not None and vouched.article is not None:
            return vouched.article
        try:
            if vouched is None and prev.text_sha256 and self._vouching_ring(prev.key_id) is not None:
                log.warning("snapshot %s: this archive's key cannot vouch for its stored text; diffing against "
                            "its record (run archiver verify)", prev.id)
                fields = self._manifest_fields(prev)
                signed = self.signed_reads.check(prev, lambda: fields, only=CONTENT)
                body, ctype = self._page(prev, claims_of(fields["manifest"]), signed.payload_sha256)  # not the row's type
                return self._extract(body, ctype, prev.final_url)
            # A key this machine does not vouch for (another worker's, on a worker
            # without a pinned root): the stored text hashing to the row's digest.
            return self._article_of(prev, prev.payload_sha256)
        except (CorruptRecordError, NotVerified) as exc:  # no text to compare with: the significance comes from the payloads
            log.warning("%s", exc)
            return None
