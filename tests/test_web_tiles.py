"""The log over HTTP as C2SP tlog-tiles, checked by an independent
implementation: the root rebuilt from the served tiles must equal the signed
checkpoint's root, and every entry bundle must hold the leaves' data."""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from archiver import config
from archiver.provenance.log import MerkleLog
from archiver.provenance.notary import Notary
from store.index import Index, SnapshotRow
from web_support import Server, make_cli


# -- an independent implementation (RFC 6962 + C2SP tlog-tiles), nothing from archiver ---------
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over already-hashed leaves."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()


def tile_index(n: int) -> str:
    s = str(n)
    s = "0" * (-len(s) % 3) + s if len(s) % 3 else s
    groups = [s[i:i + 3] for i in range(0, len(s), 3)] or ["000"]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_url(base: str, level: str, n: int, width: int) -> str:
    return f"{base}/log/tile/{level}/{tile_index(n)}" + ("" if width == 256 else f".p/{width}")


def fetch(url: str) -> bytes:
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, (url, r.status_code, r.text[:200])
    assert "immutable" in r.headers["Cache-Control"]
    return r.content


def rebuild(base: str) -> tuple[int, bytes, bytes]:
    """(size, checkpoint root, root recomputed from the tiles)."""
    r = requests.get(base + "/log/checkpoint", timeout=30)
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "max-age=5" in r.headers["Cache-Control"]
    origin, size_text, root_b64 = r.text.split("\n")[:3]
    size, root = int(size_text), base64.b64decode(root_b64)
    leaves: list[bytes] = []
    for n in range((size + 255) // 256):
        width = min(256, size - 256 * n)
        tile = fetch(tile_url(base, "0", n, width))
        assert len(tile) == 32 * width
        hashes = [tile[i:i + 32] for i in range(0, len(tile), 32)]
        bundle = fetch(tile_url(base, "entries", n, width))
        entries, pos = [], 0
        while pos < len(bundle):
            (length,) = struct.unpack(">H", bundle[pos:pos + 2])
            entries.append(bundle[pos + 2:pos + 2 + length])
            pos += 2 + length
        assert len(entries) == width
        assert [leaf_hash(e) for e in entries] == hashes  # entry bundles hold the leaf data
        leaves += hashes
    level1: list[bytes] = []
    if size >> 8:
        width = size >> 8
        tile = fetch(tile_url(base, "1", 0, width))
        level1 = [tile[i:i + 32] for i in range(0, len(tile), 32)]
        assert level1 == [mth(leaves[256 * j:256 * j + 256]) for j in range(width)]

    def subtree(lo: int, hi: int) -> bytes:  # as a tlog client does: level-1 tiles for whole blocks
        if hi - lo == 256 and lo % 256 == 0:
            return level1[lo // 256]
        if hi - lo == 1:
            return leaves[lo]
        k = 1
        while k * 2 < hi - lo:
            k *= 2
        return hashlib.sha256(b"\x01" + subtree(lo, lo + k) + subtree(lo + k, hi)).digest()

    assert mth(leaves) == subtree(0, size)
    return size, root, subtree(0, size)


# -- a real archive whose log grows while the server runs -----------------------------------------
class Log:
    def __init__(self, root: Path) -> None:
        settings = config.load(None, environ={})
        settings.archive.data_dir = str(root)
        self.clock = lambda: datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
        self.index = Index(root / "index.sqlite3")
        self.notary = Notary.open(settings, self.index, clock=self.clock, hostname="tiles-test")
        self.signer = self.notary.keys.signer()

    def grow(self, to: int) -> None:
        with self.index.write() as conn:
            log = MerkleLog(conn)
            for i in range(log.size(), to):
                digest = hashlib.sha256(f"manifest {i}".encode()).hexdigest()
                sid = f"t{i:025d}"
                log.append(bytes.fromhex(digest), sid)
                self.index.insert_snapshot(conn, _row(sid, i, digest), [])
            log.checkpoint(self.notary.origin, self.signer, self.clock())


def _row(sid: str, i: int, digest: str) -> SnapshotRow:
    return SnapshotRow(
        id=sid, url=f"http://127.0.0.1:9/{i % 7}", seq=i + 1, final_url="http://127.0.0.1:9/", captured_at="2026-11-29T12:00:00Z",
        ended_at="2026-11-29T12:00:00Z", status=200, content_type="text/html", payload_sha256="0" * 64, revisit=False,
        original_id=None, warc_file="none.warc.gz", warc_offset=0, warc_length=0, response_record_id=f"<urn:uuid:{i}>",
        text_sha256=None, prev_id=None, significance="first", diff_json=None, manifest_json=None,
        manifest_sha256=digest, signature=None, key_id=None, log_index=i,
    )


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("tiles") / "archive"
    log = Log(root)
    log.grow(1)
    server = Server(make_cli(root))
    yield log, server
    server.stop()
    log.index.close()


def test_tile_index_encoding() -> None:
    assert tile_index(0) == "000" and tile_index(7) == "007" and tile_index(1000) == "x001/000"
    assert tile_index(1234067) == "x001/x234/067"


@pytest.mark.parametrize("size", [1, 255, 256, 257, 1000])
def test_root_rebuilt_from_tiles_equals_the_checkpoint(grown: Any, size: int) -> None:
    log, server = grown
    log.grow(size)  # the server reads a log that grows under it
    got_size, root, rebuilt = rebuild(server.base)
    assert got_size == size
    assert rebuilt == root


def test_partial_and_missing_tiles(grown: Any) -> None:
    log, server = grown
    log.grow(1000)
    base = server.base

    def status(path: str) -> int:
        return requests.get(base + path, timeout=30).status_code

    assert status("/log/tile/0/003") == 404  # 1000 = 3*256 + 232: tile 3 is partial
    assert status("/log/tile/0/003.p/233") == 404  # wider than the tree
    assert len(requests.get(base + "/log/tile/0/003.p/232", timeout=30).content) == 232 * 32
    assert status("/log/tile/0/000.p/17") == 200  # a prefix of a full tile stays valid
    assert status("/log/tile/1/000") == 404 and status("/log/tile/1/000.p/3") == 200
    assert status("/log/tile/2/000.p/1") == 404
    assert status("/log/tile/entries/x001/000") == 404
    r = requests.get(base + "/log/tile/0/004", timeout=30)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_entries_of_a_leaf_without_its_manifest_are_refused(grown: Any) -> None:
    log, server = grown
    log.grow(1000)
    with log.index.write() as conn:
        conn.execute("UPDATE snapshots SET manifest_sha256=? WHERE log_index=5", ("f" * 64,))
    try:
        r = requests.get(server.base + "/log/tile/entries/000", timeout=30)
        assert r.status_code == 500 and "manifest digest" in r.json()["detail"]
    finally:
        with log.index.write() as conn:
            conn.execute("UPDATE snapshots SET manifest_sha256=? WHERE log_index=5",
                         (hashlib.sha256(b"manifest 5").hexdigest(),))
