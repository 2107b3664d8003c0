"""The WACZ layout both sides agree on, and the parsing of its WARC members.

The exporter (wacz_export) writes these paths; the checker (wacz_check)
reads them from a stranger's file, so the member parser and the digest
checks here must hold for hostile input.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from store.fields import content_length, parse_fields
from store.warc import dechunk, label_bytes
from store.warcreader import MAX_RECORD_BYTES as MAX_RECORD_BYTES  # re-exported: the WACZ readers' bound
from store.warcreader import inflate_member

WACZ_VERSION = "1.1.1"

WARC_PATH = "archive/data.warc.gz"
# The ZipNum layout py-wacz writes: gzip blocks of CDXJ lines (stored, not
# deflated, in the zip) plus a plain index of the blocks. pywb's
# ``wb-manager add --unpack-wacz`` only picks up ``*.cdx``/``*.cdx.gz``,
# ``wacz validate`` wants ``index.cdx.gz`` or ``index.idx``, and
# ReplayWeb.page reads the pair lazily -- an ``index.cdxj`` pleased none.
INDEX_PATH = "indexes/index.cdx.gz"
INDEX_IDX_PATH = "indexes/index.idx"
PAGES_PATH = "pages/pages.jsonl"
MANIFESTS_PATH = "provenance/manifests.jsonl"
CHECKPOINT_PATH = "provenance/checkpoint.txt"
PROOFS_PATH = "provenance/proofs.json"
LOCATIONS_PATH = "provenance/locations.json"
KEYRING_PATH = "provenance/keyring.json"
ENDORSEMENT_PATH = "provenance/keyring-endorsement.json"  # the keyring's SHA-256 signed by the archive's Ed25519 key
MAX_DOCUMENT_BYTES = 256 << 20  # one JSON/CDXJ entry of the package, inflated
# Lines read from one line document. An exported manifest entry is a few KiB
# and a CDXJ line a few hundred bytes, so no document within its size bound
# has more; a stranger's two-byte junk lines stop here, not after 128 million.
MAX_SNAPSHOTS = MAX_DOCUMENT_BYTES >> 10  # manifests.jsonl, pages.jsonl
MAX_INDEX_LINES = MAX_DOCUMENT_BYTES >> 7  # the CDXJ index
# One line of a line document, and one small JSON document (datapackage.json,
# its digest, the keyring's endorsement), parsed whole: ~25 bytes of memory
# per byte of ``{},``. A page or CDXJ line is a URL and a few fields, a
# manifest entry a few KiB (more with many requisites).
MAX_LINE_BYTES = 1 << 20
MAX_MANIFEST_LINE_BYTES = 4 << 20
MAX_SMALL_DOCUMENT_BYTES = 1 << 20
DATAPACKAGE = "datapackage.json"
DIGEST = "datapackage-digest.json"


# A snapshot's key is created or rotated in the moment it is signed, just
# after the fetch ends; a manifest may therefore predate its key's window by
# up to a capture's length. Anything older is treated as backdating.
KEY_CLOCK_SKEW = timedelta(minutes=10)



# --------------------------------------------------------------------------
# WARC members: parsing and digests (shared by export and verify)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WarcMember:
    """A WARC record parsed from one gzip member: headers (lower-case) and block."""

    headers: dict[str, str]
    block: bytes
    sha256: str  # hex SHA-256 of the uncompressed record: what manifests sign

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")

    def http_split(self) -> tuple[bytes, bytes] | None:
        """(HTTP head, payload) for request/response records carrying HTTP."""
        ctype = (self.header("Content-Type") or "").lower()
        if self.type not in ("response", "request") or not ctype.startswith("application/http"):
            return None
        end = self.block.find(b"\r\n\r\n")
        if end < 0:
            return self.block, b""
        return self.block[: end + 4], self.block[end + 4 :]


def parse_member(member: bytes) -> WarcMember:
    """Parse one stored record; raises ValueError when it is not a whole WARC
    record whose header meets WARC 1.1's grammar (store/fields.py: the
    archive's own reader). A package's records are the archive's own
    writing, so a header other tools could read differently (a field given
    twice, a control character, a name that is no token) is not evidence."""
    data = inflate_member(member)
    fields, end = parse_fields(data)
    length = content_length(fields)
    block = data[end + 4 : end + 4 + length]
    if len(block) != length:
        raise ValueError(f"record block is truncated ({len(block)} of {length} bytes)")
    return WarcMember({name.lower(): value for name, value in fields.items()}, block, hashlib.sha256(data).hexdigest())


def digest_ok(member: bytes, expected: object, spend: Callable[[int], object] | None = None) -> bool:
    """Does ``member`` have the signed record digest?

    Manifests sign the SHA-256 of the uncompressed record (it survives
    recompression); archives written before that signed the gzip member's
    bytes. Either identifies the record's content, so either is accepted.
    ``spend`` is told each inflated piece's size (a stranger's package
    counts what it costs against its budget).
    """
    if not isinstance(expected, str):
        return False
    if hashlib.sha256(member).hexdigest() == expected:
        return True
    h = hashlib.sha256()

    def sink(piece: bytes) -> None:
        if spend is not None:
            spend(len(piece))
        h.update(piece)

    try:
        inflate_member(member, sink=sink)
    except ValueError:
        return False
    return h.hexdigest() == expected


def digest_matches(label: str | None, *candidates: bytes) -> bool | None:
    """True/False when ``label`` is a digest we can check, None when it is not."""
    parsed = label_bytes(label)
    if parsed is None:
        return None
    algo, raw = parsed
    return any(hashlib.new(algo, c).digest() == raw for c in candidates)


def record_digest_problems(rec: WarcMember) -> list[tuple[str, str]]:
    """Block and payload digests of one record, as (kind, detail) pairs."""
    out: list[tuple[str, str]] = []
    block_label = rec.header("WARC-Block-Digest")
    if digest_matches(block_label, rec.block) is False:
        out.append(("block-digest", f"{rec.type} record block does not match {block_label}"))
    if rec.type == "revisit":
        return out  # its payload digest names the original's payload
    payload_label = rec.header("WARC-Payload-Digest")
    split = rec.http_split()
    payload = split[1] if split else rec.block
    candidates = [payload]
    if split and b"chunked" in split[0].lower():
        with contextlib.suppress(ValueError):
            candidates.append(dechunk(payload))
    if digest_matches(payload_label, *candidates) is False:
        out.append(("payload-digest", f"{rec.type} record payload does not match {payload_label}"))
    return out
