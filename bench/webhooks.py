"""Webhook notifier under hostile receivers: peak memory and time, one run.

The notifier (the daemon's webhook sender, as the daemon builds it) delivers
N queued notifications to a receiver in another process that answers
``200 OK`` and then sends a reply body without end. The baseline, in the same
run, is the same N deliveries to a receiver that answers ``204`` at once.
Prints the peak resident memory growth of this process for each and the
ratio; a notifier that read whole replies grew by gigabytes here.

    python bench/webhooks.py [--deliveries 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def serve(kind: str) -> None:
    """The receiver process: prints its port, answers every connection, forever."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    block = b"x" * 65536

    def answer(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            if kind == "endless":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                while True:
                    conn.sendall(block)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run(kind: str, deliveries: int) -> dict[str, float]:
    from archiver.capture.addresses import AddressPolicy
    from archiver.capture.outbound import Outbound
    from archiver.config import NotifySettings
    from archiver.daemon.notify import Notifier, http_poster
    from store.index import Index

    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            index = Index(Path(tmp) / "index.sqlite3")
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for i in range(deliveries):
                index.execute(
                    "INSERT INTO notifications(snapshot_id, webhook, url, significance, payload_json, created_at, "
                    "next_attempt_at) VALUES(?,?,?,?,?,?,?)",
                    (f"s{i}", f"http://127.0.0.1:{port}/hook/{i}", "https://example.test/a", "substantive",
                     json.dumps({"event": "change", "n": i}), now, now),
                )
            settings = NotifySettings(timeout=10.0, retries=1)
            notifier = Notifier(index, settings, post=http_poster(Outbound(AddressPolicy(allow_private=True))),
                                clock=lambda: datetime.now(timezone.utc))
            base = peak = rss()
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.01):
                    peak = max(peak, rss())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            sent = 0
            while sent < deliveries and time.perf_counter() - started < 120:
                sent += notifier.deliver_due()
            took = time.perf_counter() - started
            done.set()
            sampler.join()
            notifier.stop(1)
            index.close()
            return {"sent": sent, "seconds": took, "peak_growth_mb": (peak - base) / 1e6, "peak_rss_mb": peak / 1e6}
    finally:
        proc.kill()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deliveries", type=int, default=50)
    ap.add_argument("--json", action="store_true", help="one JSON object: the endless receiver's figures")
    ap.add_argument("--serve", choices=["endless", "plain"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    os.environ.setdefault("PYTHONHASHSEED", "0")
    baseline = run("plain", args.deliveries)
    endless = run("endless", args.deliveries)
    if args.json:
        print(json.dumps({**endless, "baseline": baseline}))
        return 0
    print(f"{args.deliveries} webhook deliveries, notifier in this process (pid {os.getpid()})")
    for name, r in (("204 receiver (baseline)", baseline), ("endless 200 receiver", endless)):
        print(f"  {name:<24} sent {r['sent']:>4}  {r['seconds']:6.2f} s  peak RSS {r['peak_rss_mb']:6.1f} MB"
              f"  (+{r['peak_growth_mb']:.1f} MB)")
    ratio = endless["peak_rss_mb"] / baseline["peak_rss_mb"]
    print(f"  peak RSS endless / baseline: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
