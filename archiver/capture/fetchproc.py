"""A fetch process: runs hops through the vetted outbound path for the capture process.

Why a process: fetching costs the capture process about a millisecond of
CPU per page holding the GIL (urllib3, http.client, warcio's recorder),
which, with signing, committing and record building in the same process,
kept two capture workers from using two cores. Here the hop runs in its own
interpreter, exactly as in the capture process (``Capturer.exchange``: the
address policy on every answer and on the connected peer, the total deadline
on the socket, the byte caps), and its raw bytes go back over the pipe.

What it never does: parse HTML (pages are read in the page pool, so a parser
exploit cannot reach it), hold a key, or decide what is recorded -- the
capture process derives and hashes everything it signs from the raw bytes
(``fetchwire.py``). Names are resolved by the capture process, asked over the
pipe (its resolver is the one a test or an operator injects); every answer is
vetted here again before a connection is made.

Started by ``fetchpool.py`` as ``python -m archiver.capture.fetchproc FD``; it
reads its settings, says ``ready``, then answers one job at a time until the
pipe closes. If the capture process dies, the next read or write on the pipe
fails and this process exits.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone
from multiprocessing.connection import Connection

from archiver.capture.addresses import AddressPolicy
from archiver.capture.deadline import Deadline, ip_literal
from archiver.capture.fetchwire import ERRORS, RawHop, encode_error, encode_hop
from archiver.capture.http import CaptureLimits, Capturer
from archiver.capture.outbound import Outbound
from archiver.errors import ArchiverError, CaptureError

log = logging.getLogger(__name__)

#: seconds past its own timeout a lookup answer may take before the pipe is taken for lost
LOOKUP_GRACE = 5.0


class ParentResolved(Outbound):
    """The vetted path with names resolved by the capture process."""

    def __init__(self, policy: AddressPolicy, conn: Connection, *, ca_bundle: str | bool) -> None:
        super().__init__(policy, ca_bundle=ca_bundle)
        self.conn = conn

    def vet(self, host: str, port: int, deadline: Deadline, timeout: float, what: str) -> list[str]:
        literal = ip_literal(host)
        addresses = [literal] if literal is not None else self._lookup(host, port, min(timeout, deadline.remaining(host)))
        for ip in addresses:
            self.policy.check_ip(ip, what if what == host else f"{what} ({host})")
        return addresses

    def _lookup(self, host: str, port: int, timeout: float) -> list[str]:
        self.conn.send_bytes(b"R" + json.dumps({"host": host, "port": port, "timeout": timeout}).encode("utf-8"))
        if not self.conn.poll(timeout + LOOKUP_GRACE):
            sys.exit(3)  # the capture process always answers within the timeout: the pipe is lost
        d = json.loads(self.conn.recv_bytes(1 << 20)[1:])
        if "error" in d:
            raise ERRORS.get(d["error"], CaptureError)(d["message"])
        return [str(a) for a in d["addresses"]]


def run_job(capturer: Capturer, job: dict) -> bytes:
    """One hop of the job, as the frame to send back."""
    url = job["url"]
    capturer.limits = CaptureLimits(connect_timeout=job["connect"], read_timeout=job["read"],
                                    total_timeout=job["budget"], max_body_bytes=job["max_body"],
                                    max_decoded_bytes=job["max_decoded"], max_redirects=0)
    try:
        deadline = Deadline(time.monotonic() + job["left"], job["budget"])
        started = time.monotonic()
        exchange, _, _, _, req, resp = capturer.exchange(url, deadline, job["headers"], decode=False)
        return encode_hop(RawHop(url, req, resp, exchange.peer.ip, exchange.peer.tls, started, time.monotonic()))
    except ArchiverError as exc:
        return encode_error(exc)
    except Exception as exc:  # noqa: BLE001 - a bug on one URL must not cost the next ones their fetch process
        return encode_error(CaptureError(f"cannot fetch {url}: {type(exc).__name__}: {exc}"))


def serve(fd: int) -> None:
    conn = Connection(fd)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        cfg = json.loads(conn.recv_bytes(1 << 20))
    except (EOFError, OSError):
        return
    policy = AddressPolicy.from_settings(cfg["allow_private"], cfg["allow_networks"], cfg["deny_networks"])
    outbound = ParentResolved(policy, conn, ca_bundle=cfg["ca_bundle"] or True)
    capturer = Capturer(outbound=outbound, limits=CaptureLimits(), user_agent="",
                        clock=lambda: datetime.now(timezone.utc))
    conn.send_bytes(b"ready")
    while True:
        try:
            data = conn.recv_bytes(16 << 20)
        except (EOFError, OSError):
            return
        try:
            frame = run_job(capturer, json.loads(data[1:]))
        except (ValueError, KeyError, TypeError) as exc:
            frame = encode_error(CaptureError(f"malformed fetch job: {exc}"))
        try:
            conn.send_bytes(frame)
        except OSError:
            return  # the capture process is gone


if __name__ == "__main__":
    serve(int(sys.argv[1]))
