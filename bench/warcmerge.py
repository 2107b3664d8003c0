"""What compaction buys on object storage, measured in one run against a real
PostgreSQL cluster and a real SeaweedFS S3 server on loopback (started here,
as the tests start them): N loopback pages captured into a shared archive
(two objects per capture), then

1. the number of WARC objects before and after ``archiver compact-warcs``;
2. ``archiver verify`` (lists, downloads and scans every object) before and
   after, as a ratio -- the same records, in a few large objects;
3. how long ``archiver compact-warcs`` took.

    python bench/warcmerge.py [--n 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))
import loopback  # noqa: E402
import servers  # noqa: E402


def archiver(env: dict[str, str], data: Path, *argv: str) -> tuple[float, str]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), *argv],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"archiver {' '.join(argv)} failed: {r.stderr.strip()[-500:]}")
    return time.perf_counter() - start, r.stdout


def best(times: int, run):  # type: ignore[no-untyped-def]
    return min(run() for _ in range(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="pages captured")
    args = ap.parse_args()
    server, port = loopback.start("article")
    pg, s3 = servers.PostgresServer(), servers.S3Server()
    tmp = Path(tempfile.mkdtemp(prefix="archiver-compaction-"))
    try:
        env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO), "ARCHIVER_CONFIG": "",
               "ARCHIVER_INDEX": pg.create_database(), "ARCHIVER_WARCS": f"s3://{s3.bucket}/bench",
               "ARCHIVER_S3_ENDPOINT_URL": s3.endpoint_url, **s3.env()}
        data = tmp / "archive"
        listing = tmp / "urls.txt"
        listing.write_text("".join(f"http://127.0.0.1:{port}/c/{i}\n" for i in range(args.n)))
        archiver(env, data, "snapshot", "--no-requisites", "-i", str(listing))
        before = json.loads(archiver(env, data, "verify", "--json")[1])
        t_before = best(3, lambda: archiver(env, data, "verify")[0])
        t_compact, out = archiver(env, data, "compact-warcs", "--keep-sources", "0", "--json")
        done = json.loads(out)
        after = json.loads(archiver(env, data, "verify", "--json")[1])
        t_after = best(3, lambda: archiver(env, data, "verify")[0])
        # The same records, plus one warcinfo record heading each large file.
        assert before["ok"] and after["ok"] and after["records"] == before["records"] + len(done["files"])
        print(f"{args.n} captures, {after['records']} records")
        print(f"WARC objects: {before['files']} before, {after['files']} after "
              f"({done['objects']} merged into {len(done['files'])} file(s) in {t_compact:.2f} s)")
        print(f"verify: {t_before:.2f} s before, {t_after:.2f} s after ({t_before / t_after:.2f}x faster)")
    finally:
        server.kill()
        s3.close()
        pg.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
