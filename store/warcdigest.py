"""WARC digest labels: the form archiver writes, and every form it reads.

Kept apart from the writer and the reader because both sides (and the
scanner, the WACZ checker and the index) compare digests by these rules.
"""

from __future__ import annotations

import base64


def sha256_label(data_digest: bytes) -> str:
    """The WARC digest label archiver writes: ``sha256:`` + lowercase hex.

    WARC 1.1 says ``digest-value = token``; base32's ``=`` padding is not a
    token character (jwarc rejects it), and warcio's checker compares an
    unpadded base32 SHA-256 as base64 and fails it. Hex is a token that
    warcio, jwarc and pywb all read. Older archives hold padded base32:
    :func:`label_bytes` reads every form.
    """
    return "sha256:" + data_digest.hex()


def _b32decode(value: str) -> bytes:
    bare = value.upper().rstrip("=")
    return base64.b32decode(bare + "=" * (-len(bare) % 8))


DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64, "md5": 16}


def label_bytes(label: str | None) -> tuple[str, bytes] | None:
    """(algorithm, raw digest) of a WARC digest label; None when unreadable.

    Reads base32 (padded as warcio writes it, or not), hex and base64 --
    the RFC 4648 encodings the WARC standard allows -- checked against the
    algorithm's digest size so one encoding cannot pass for another.
    """
    if not label or ":" not in label:
        return None
    algo, _, value = label.partition(":")
    algo = algo.strip().lower().replace("-", "")
    size = DIGEST_SIZES.get(algo)
    value = value.strip()
    if size is None or not value or len(value) > 200:
        return None
    decoders = (
        _b32decode,
        bytes.fromhex,
        lambda v: base64.b64decode(v + "=" * (-len(v) % 4), validate=True),
        lambda v: base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)),
    )
    for decode in decoders:
        try:
            raw = decode(value)
        except ValueError:  # binascii.Error is a ValueError
            continue
        if len(raw) == size:
            return algo, raw
    return None

