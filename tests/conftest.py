"""Shared fixtures: real HTTP servers on 127.0.0.1 (port 0, in a thread),
real archive directories, and the real CLI (in-process and as a process)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from archiver.cli.main import main


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast tests first, the ones marked ``slow`` after them (stable order
    otherwise): a broken change shows within minutes, not after the kill -9
    loops and the browsers."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


REPO = Path(__file__).resolve().parent.parent

Handler = Callable[[BaseHTTPRequestHandler], None]


class Site:
    """A loopback server whose routes tests set: path -> handler(request)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.request_headers: list[dict[str, str]] = []
        site = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                site.hits[path] = site.hits.get(path, 0) + 1
                site.request_headers.append(dict(self.headers.items()))
                handler = site.routes.get(path)
                if handler is None:
                    send(self, 404, b"<html><body><p>not here</p></body></html>")
                    return
                handler(self)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up on purpose are not test failures

        self.server = Server(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def page(self, path: str, html: str | bytes, *, status: int = 200, content_type: str = "text/html; charset=utf-8",
             headers: dict[str, str] | None = None) -> str:
        body = html.encode("utf-8") if isinstance(html, str) else html
        self.routes[path] = lambda h: send(h, status, body, content_type=content_type, headers=headers)
        return self.url(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, *, content_type: str = "text/html; charset=utf-8",
         headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def site() -> Any:
    s = Site()
    yield s
    s.close()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


class CLI:
    """Runs the real command line against one archive directory."""

    def __init__(self, data_dir: Path, env: dict[str, str], backend: str = "embedded") -> None:
        self.data_dir = data_dir
        self.env = env
        self.backend = backend  # "embedded" (SQLite + directory) or "shared" (PostgreSQL + S3)

    @property
    def shared(self) -> bool:
        return self.backend == "shared"

    def __call__(self, *args: str) -> Result:
        """In-process: the same ``main`` the console script calls."""
        out, err = io.StringIO(), io.StringIO()
        with self.environ():
            code = main(["--data-dir", str(self.data_dir), *args], out=out, err=err)
        return Result(code, out.getvalue(), err.getvalue())

    @contextlib.contextmanager
    def environ(self) -> Iterator[None]:
        """This archive's environment in ``os.environ`` for the block (boto3 reads it there)."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def settings(self) -> Any:
        """The settings the CLI would load for this archive."""
        from archiver.config import load

        return load(environ={**self.env, "ARCHIVER_DATA_DIR": str(self.data_dir)})

    def db(self) -> Any:
        """A raw connection to the index that takes SQLite-style SQL (for tampering)."""
        if not self.shared:
            return sqlite3.connect(self.data_dir / "index.sqlite3")
        return _PgRaw(self.env["ARCHIVER_INDEX"])

    @contextlib.contextmanager
    def warcs(self) -> Iterator[list[Path]]:
        """The WARC files as local paths; in the shared mode, objects downloaded
        and, after the block, changed ones uploaded and removed ones deleted."""
        if not self.shared:
            yield warc_files(self.data_dir)
            return
        import tempfile

        from store.objects import S3WarcStore, make_client

        with self.environ():
            store = S3WarcStore(self.env["ARCHIVER_WARCS"], make_client(self.env["ARCHIVER_S3_ENDPOINT_URL"]))
            with tempfile.TemporaryDirectory() as tmp:
                sizes = store.sizes()
                paths = [Path(tmp) / n for n in sorted(sizes)]
                before = {}
                for p in paths:
                    store.download(p.name, p, sizes[p.name])
                    before[p] = p.read_bytes()
                yield paths
                for p, data in before.items():
                    if not p.exists():
                        store.client.delete_object(Bucket=store.bucket, Key=store.key(p.name))
                    elif p.read_bytes() != data:
                        store.put(p.name, p.read_bytes())

    def process(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        """As a separate process, exactly as a user runs it."""
        p = subprocess.run(
            [sys.executable, "-m", "archiver", "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env, **(env or {})},
        )
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "archiver", "--data-dir", str(self.data_dir), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env, **(env or {})},
        )


class _PgRaw:
    """psycopg with the SQLite dialect the tests write (via the index's translation)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url)

    def execute(self, sql: str, args: Any = ()) -> Any:
        from store.pgsql import translate

        return self.conn.execute(translate(sql, lambda table: []), tuple(args))

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _base_env(tmp_path: Path) -> dict[str, str]:
    return {
        "ARCHIVER_ALLOW_PRIVATE": "1",
        "ARCHIVER_CONFIG": "",
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    """The CLI with loopback allowed (every test server is on 127.0.0.1)."""
    return CLI(tmp_path / "archive", _base_env(tmp_path))


@pytest.fixture
def strict_cli(tmp_path: Path) -> CLI:
    """The CLI with the default address policy."""
    env = _base_env(tmp_path)
    env["ARCHIVER_ALLOW_PRIVATE"] = "0"
    return CLI(tmp_path / "archive", env)


@pytest.fixture(params=["in-process", "fetch-process"])
def fetch_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test twice: every hop fetched in the capture process, then every
    hop fetched in a fetch process (``[capture] fetch_processes = 1``, through
    ``ARCHIVER_FETCH_PROCESSES``). Afterwards, checks that the hops took that
    path: the real code runs, only counted."""
    from archiver.capture.fetchpool import FetchPool
    from archiver.capture.http import Capturer

    counts = {"hops": 0, "remote": 0}
    one, ask = Capturer._fetch_one, FetchPool._ask

    def counted_one(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["hops"] += 1
        return one(self, *args, **kwargs)

    def counted_ask(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["remote"] += 1
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(Capturer, "_fetch_one", counted_one)
    monkeypatch.setattr(FetchPool, "_ask", counted_ask)
    if request.param == "fetch-process":
        monkeypatch.setenv("ARCHIVER_FETCH_PROCESSES", "1")
    else:
        monkeypatch.delenv("ARCHIVER_FETCH_PROCESSES", raising=False)
    yield request.param
    assert counts["remote"] == (counts["hops"] if request.param == "fetch-process" else 0), counts


def article_html(title: str, paragraphs: list[str], lang: str = "de", chrome: str = "") -> str:
    ps = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><header><nav><a href='/'>Start</a></nav>{chrome}</header>"
        f"<main><article><h1>{title}</h1>\n{ps}</article></main><footer>Impressum</footer></body></html>"
    )


def warc_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "warcs").glob("*.warc.gz*"))


_CHECKPOINT_COLUMNS = "size, root, note, created_at, kept"


def index_state(data_dir: Path) -> tuple[bytes, tuple[Any, ...]]:
    """An embedded archive's kept tree head and latest checkpoint row: what a
    crash before a commit leaves them as (see :func:`lose_commit`)."""
    db = sqlite3.connect(data_dir / "index.sqlite3")
    try:
        before = db.execute(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return (data_dir / "keys" / "tree-head.json").read_bytes(), before


def lose_commit(data_dir: Path, snapshot_id: str, state: tuple[bytes, tuple[Any, ...]]) -> int:
    """Roll back the commit of ``snapshot_id`` (the archive's last), as a crash
    before COMMIT would have: its rows, leaf and checkpoint gone, the tree
    head and checkpoint as :func:`index_state` read them before the capture
    (its transaction had dropped the checkpoint before it: the rollback
    restores it; the tree head is written after COMMIT). Its log index."""
    head, before = state
    (data_dir / "keys" / "tree-head.json").write_bytes(head)
    db = sqlite3.connect(data_dir / "index.sqlite3")
    try:
        (idx,) = db.execute("SELECT log_index FROM snapshots WHERE id=?", (snapshot_id,)).fetchone()
        db.execute("DELETE FROM records WHERE snapshot_id=?", (snapshot_id,))
        db.execute("DELETE FROM snapshots WHERE id=?", (snapshot_id,))
        db.execute("DELETE FROM log_leaves WHERE idx >= ?", (idx,))
        db.execute("DELETE FROM log_nodes WHERE (idx + 1) * (1 << level) > ?", (idx,))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (idx,))
        db.execute(f"INSERT OR REPLACE INTO checkpoints({_CHECKPOINT_COLUMNS}) VALUES(?,?,?,?,?)", before)
        db.commit()
    finally:
        db.close()
    return int(idx)


def signed_manifests(data_dir: Path, url: str | None = None) -> list[Any]:
    """The signed manifests of an embedded archive's snapshots (of ``url``, in
    seq order; else all, by URL and seq), read as the archive's readers read
    them: from the WARC (the index keeps only their digests since schema 9)."""
    from archiver.archive import Archive
    from archiver.config import load

    if not (data_dir / "index.sqlite3").exists():
        return []
    settings = load(None, environ={})
    settings.archive.data_dir = str(data_dir)
    with Archive(settings) as archive:
        rows = archive.index.history(url) if url else archive.index.all_snapshots()
        return [archive.manifest(r) for r in rows]


# -- the shared mode: real PostgreSQL and S3-compatible servers ---------------
def _server(kind: str) -> Any:
    import servers

    try:
        return servers.PostgresServer() if kind == "pg" else servers.S3Server()
    except servers.Missing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the shared-mode suites: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_server() -> Any:
    server = _server("pg")
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server() -> Any:
    server = _server("s3")
    yield server
    server.close()


def shared_env(pg_server: Any, s3_server: Any) -> dict[str, str]:
    """Settings for a fresh shared archive: a new database and a new prefix."""
    import uuid

    return {
        "ARCHIVER_INDEX": pg_server.create_database(),
        "ARCHIVER_WARCS": f"s3://{s3_server.bucket}/{uuid.uuid4().hex[:12]}",
        "ARCHIVER_S3_ENDPOINT_URL": s3_server.endpoint_url,
        **s3_server.env(),
    }


def migrate_to_shared(cli: CLI, env: dict[str, str]) -> Result:
    """``archiver migrate`` of ``cli``'s embedded archive into the shared one
    ``env`` names; the S3 credentials are in the environment only meanwhile
    (boto3's chain, as an operator would give them)."""
    with cli.environ():
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        try:
            return cli("migrate", "--index", env["ARCHIVER_INDEX"], "--warcs", env["ARCHIVER_WARCS"],
                       "--s3-endpoint-url", env["ARCHIVER_S3_ENDPOINT_URL"], "--json")
        finally:
            for k in env:
                if k.startswith("AWS_"):
                    os.environ.pop(k, None)


@pytest.fixture(params=["embedded", "shared"])
def bcli(request: Any, tmp_path: Path) -> CLI:
    """The CLI on either configuration: embedded (SQLite + a WARC directory) or
    shared (PostgreSQL + S3-compatible object storage, real servers)."""
    env = _base_env(tmp_path)
    if request.param == "shared":
        env.update(shared_env(request.getfixturevalue("pg_server"), request.getfixturevalue("s3_server")))
    return CLI(tmp_path / "archive", env, request.param)


def auditors_pem(archive: Path) -> Path:
    """The archive's Ed25519 key as its operator hands it to an auditor (`keys export-public`);
    the copy carries no keys/, so its readers show nothing until a key is pinned."""
    from archiver.provenance.pinning import pem_of

    (key,) = [k for k in json.loads((archive / "keyring.json").read_text())["keys"] if k["algorithm"] == "ed25519"]
    pem = archive.parent / "archive.pem"
    pem.write_bytes(pem_of(base64.b64decode(key["public_key"])))
    return pem
