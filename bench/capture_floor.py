"""The floor under a capture's CPU per page: what the work archiver must do
costs with no archiver code around it, against the bare loop, in one run.

Issue 12 item 3 asks for a capture's CPU per page within 2.5x a bare
requests+warcio loop (fetch, write WARC, nothing else). This measures, on the
same N loopback pages (bench/loopback.py, its own process), per page:

1. the bare loop (as ``bench/capture.py`` runs it);
2. reading each page's article: one parse, trafilatura, the fallback when
   needed (``archiver.pages.read_page``, what every capture of a new page
   does to find its figures and text);
3. the least the signed log and the index take with no archiver code: three
   Ed25519 signatures (the capture's intent, its manifest, the checkpoint),
   two SHA-256 over the body, and one SQLite row inserted and committed in
   WAL mode, ``synchronous=NORMAL``.

and prints each as a multiple of the bare loop, then (1)+(2) and
(1)+(2)+(3): a capture that only did that work, in no code of its own, would
still cost that much. ``bench/capture.py`` and ``bench/capture_profile.py``
measure archiver itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from capture import bare_loop, cpu_self  # noqa: E402


def fetch_all(urls: list[str]) -> list[bytes]:
    import requests

    with requests.Session() as s:
        return [s.get(u, timeout=30).content for u in urls]


def read_articles(bodies: list[bytes]) -> None:
    from archiver.changes.extract import ExtractLimits
    from archiver.pages import PageJob, read_page

    limits = ExtractLimits()
    for i, body in enumerate(bodies):
        read_page(PageJob(body, "text/html; charset=utf-8", f"http://h.test/meldung/{i}", limits))


def sign_and_commit(bodies: list[bytes], db: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS s (id INTEGER PRIMARY KEY, digest BLOB, sig BLOB, cp BLOB)")
    for body in bodies:
        digest = hashlib.sha256(body).digest()
        intent = key.sign(digest + b"intent")
        manifest = key.sign(hashlib.sha256(digest + intent).digest())
        checkpoint = key.sign(hashlib.sha256(manifest).digest())
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO s (digest, sig, cp) VALUES (?,?,?)", (digest, manifest, checkpoint))
        conn.execute("COMMIT")
    conn.close()


def timed(what: object, *args: object) -> float:
    c0 = cpu_self()
    what(*args)  # type: ignore[operator]
    return cpu_self() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    server, port = loopback.start("article", 0.0)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-floor-") as work:
            urls = [f"http://127.0.0.1:{port}/meldung/{i}" for i in range(args.n)]
            bodies = fetch_all(urls)
            bare_loop(urls[:3], Path(work) / "warm.warc.gz")  # imports and first calls, untimed
            read_articles(bodies[:3])
            sign_and_commit(bodies[:3], Path(work) / "warm.sqlite3")
            rows: dict[str, list[float]] = {"bare": [], "article": [], "signed": []}
            for r in range(args.rounds):
                rows["bare"].append(timed(bare_loop, urls, Path(work) / f"bare{r}.warc.gz") / args.n)
                rows["article"].append(timed(read_articles, bodies) / args.n)
                rows["signed"].append(timed(sign_and_commit, bodies, Path(work) / f"s{r}.sqlite3") / args.n)
    finally:
        server.kill()
        server.wait()
    med = {k: sorted(v)[len(v) // 2] for k, v in rows.items()}
    bare = med["bare"]
    print(f"{args.n} pages, median of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"  bare requests+warcio loop            {bare * 1000:6.3f} ms CPU/page   1.00x")
    print(f"  reading the article (read_page)      {med['article'] * 1000:6.3f} ms CPU/page   {med['article'] / bare:.2f}x")
    print(f"  3 signatures, 2 SHA-256, 1 commit    {med['signed'] * 1000:6.3f} ms CPU/page   {med['signed'] / bare:.2f}x")
    print(f"  bare + article                       {(bare + med['article']) * 1000:6.3f} ms CPU/page   "
          f"{(bare + med['article']) / bare:.2f}x")
    total = bare + med["article"] + med["signed"]
    print(f"  bare + article + signed and indexed  {total * 1000:6.3f} ms CPU/page   {total / bare:.2f}x"
          f"   (item 3's target: 2.50x = {2.5 * bare * 1000:.3f} ms)")


if __name__ == "__main__":
    main()
