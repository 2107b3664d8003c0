"""Run the app under uvicorn (the production ASGI server) on a socket bound
here, so ``--bind 127.0.0.1:0`` can report the port it got."""

from __future__ import annotations

import logging
import re
import socket
from typing import TextIO

from archiver.archive import Archive
from archiver.errors import UsageError

log = logging.getLogger(__name__)

WILDCARDS = {"0.0.0.0", "::", ""}


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:\[\]\s]*):(\d{1,5})", text.strip())
    if not m:
        raise UsageError(f"--bind must be HOST:PORT (e.g. 127.0.0.1:8080), not {text!r}")
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise UsageError(f"port {port} is out of range")
    return host, port


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it keep-alive clients wait ~40 ms per response (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(archive: Archive, bind: str, *, allow_writes: bool, out: TextIO, err: TextIO) -> None:
    import uvicorn

    from archiver.web.app import create_app

    settings = archive.settings
    host, port = parse_bind(bind)
    app = create_app(settings, allow_writes=allow_writes, archive=archive)
    tokens = app.state.web.tokens.load()
    if host in WILDCARDS and not tokens:
        err.write(
            f"archiver: warning: listening on {host or '0.0.0.0'} (every interface) and no tokens are configured; "
            "anyone who can reach this port can read the archive\n"
        )
    if allow_writes and not any(t.scope == "write" for t in tokens):
        err.write("archiver: warning: --allow-writes, but no write token exists yet (archiver tokens create NAME --scope write)\n")
    sock = bind_socket(host, port)
    real_host, real_port = sock.getsockname()[:2]
    shown = f"[{real_host}]" if ":" in real_host else real_host
    out.write(f"serving {archive.root} on http://{shown}:{real_port}/ ({'writes allowed' if allow_writes else 'read-only'})\n")
    out.flush()
    config = uvicorn.Config(
        app,
        log_level="warning",
        proxy_headers=settings.web.proxy_headers,
        forwarded_allow_ips=settings.web.trusted_proxies,
        server_header=False,
        timeout_keep_alive=5,
        http="h11",
        limit_concurrency=64,
        # Room for a request line of ~1 MB, so an oversized query gets a clean 414 from the app
        # instead of a reset connection; with limit_concurrency this bounds memory at ~128 MB.
        h11_max_incomplete_event_size=2 * 1024 * 1024,
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
