"""A fetch process that lies, for tests/test_fetch_processes.py.

It is the real fetch process (``archiver.capture.fetchproc``) whose every
answer is tampered with as ``EVIL_MODE`` says: a subverted fetch process,
say one an OpenSSL exploit took over, can send anything.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from archiver.capture import fetchproc
from archiver.capture.fetchwire import decode_hop, encode_hop
from archiver.capture.outbound import TLSInfo

MODE = os.environ.get("EVIL_MODE", "")
_real_run_job = fetchproc.run_job


def tamper(frame: bytes) -> bytes:
    if MODE == "garbage":
        return b"Z" + b"\0" * 16
    if MODE == "oversized":
        return b"H" + b"\0" * (8 * 1024 * 1024)  # past every cap for a 100 kB body
    if MODE == "die":
        os._exit(7)
    if MODE == "hang":
        time.sleep(3600)
    if MODE == "half-frame":  # a frame's length and a piece of it, then nothing: the rest never comes
        os.write(int(sys.argv[1]), (1000).to_bytes(4, "big") + b"H" * 10)
        time.sleep(3600)
    if not frame.startswith(b"H"):
        return frame
    raw = decode_hop(frame, decode_hop_url(frame), 0.0, float("inf"))
    if MODE == "forbidden-ip":
        raw = dataclasses.replace(raw, ip="169.254.169.254")
    elif MODE == "other-url":
        raw = dataclasses.replace(raw, url=raw.url + "-elsewhere")
    elif MODE == "unasked-request":
        raw = dataclasses.replace(raw, request_bytes=raw.request_bytes.replace(b"User-Agent: ", b"User-Agent: not-"))
    elif MODE == "early-start":
        raw = dataclasses.replace(raw, started=raw.started - 3600)
    elif MODE == "tls-on-http":
        raw = dataclasses.replace(raw, tls=TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", None, None, ()))
    elif MODE == "bad-response":
        raw = dataclasses.replace(raw, response_bytes=b"SMTP/1.0 220 hello\r\n\r\n")
    return encode_hop(raw)


def decode_hop_url(frame: bytes) -> str:
    import json
    import struct

    (n,) = struct.unpack_from(">I", frame, 1)
    return str(json.loads(frame[5:5 + n])["url"])


def run_job(capturer, job):  # type: ignore[no-untyped-def]
    return tamper(_real_run_job(capturer, job))


fetchproc.run_job = run_job

if __name__ == "__main__":
    fetchproc.serve(int(sys.argv[1]))
