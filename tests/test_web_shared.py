"""`archiver serve` on the shared configuration (PostgreSQL index + S3
WARC storage, real servers on loopback): the API equals the CLI, the
Snapshot page verifies, the archived page and the log tiles are served."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from typing import Any

import pytest
import requests

from conftest import CLI, REPO, shared_env
from web_support import NewsSite, Server, build_archive


@pytest.fixture
def shared_desk(tmp_path: Any, pg_server: Any, s3_server: Any) -> Any:
    env = {"ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO),
           **shared_env(pg_server, s3_server)}
    cli = CLI(tmp_path / "archive", env, "shared")
    news = NewsSite()
    rows = build_archive(cli, news)
    server = Server(cli)
    yield cli, news, rows, server
    server.stop()
    news.close()


def test_serve_on_postgresql_and_s3(shared_desk: Any) -> None:
    cli, news, rows, server = shared_desk
    url = news.url
    get = lambda path, **kw: requests.get(server.url(path), timeout=30, **kw)  # noqa: E731
    assert get("/api/v1/history", params={"url": url}).json() == cli("history", url, "--json").json()
    assert get("/api/v1/diff", params={"url": url}).json() == cli("diff", url, "--json").json()
    assert [c["id"] for c in get("/api/v1/changes").json()] == [rows[2]["id"]]
    page = get(f"/snapshot/{rows[2]['id']}").text
    for name in ("signature", "records", "inclusion", "chain"):
        assert re.search(rf'class="check check-{name}" data-ok="true"', page), name
    archived = get(f"/snapshot/{rows[2]['id']}/view").text.split('class="archived" src="', 1)[1].split('"', 1)[0]
    r = get(archived)
    assert r.status_code == 200 and "60.000" in r.text and "sandbox" in r.headers["Content-Security-Policy"]
    # The log: 3 leaves in one partial tile, whose entries hash to the tile and rebuild the root.
    note = get("/log/checkpoint").text.split("\n")
    assert note[1] == "3"
    tile = get("/log/tile/0/000.p/3").content
    bundle = get("/log/tile/entries/000.p/3").content
    entries = []
    pos = 0
    while pos < len(bundle):
        (n,) = struct.unpack(">H", bundle[pos:pos + 2])
        entries.append(bundle[pos + 2:pos + 2 + n])
        pos += 2 + n
    leaves = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    assert b"".join(leaves) == tile
    node = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()  # noqa: E731
    assert node(node(leaves[0], leaves[1]), leaves[2]) == base64.b64decode(note[2])
