"""What a reader pays for showing only what is signed: this tree against
another checkout (``--compare DIR``, say the commit before), alternating, in
one run on the same archive.

The archive: ``--urls`` edited loopback articles captured ``--rounds`` times
each (the figure changes every 4th capture), built once with the real
``archiver snapshot -i``. Then, per tree, in a fresh process each round:

- ``show`` one-shot: the real CLI as a process (``archiver show URL``) --
  wall time and CPU (user+sys of the child), start-up and key loading included;
- in one process (an ``Archive`` built once, the modules a reader loads
  imported before anything is timed): ``history_json`` of a URL (every
  snapshot of it checked -- the first check also loads the trusted keys --
  and its figures listed: the stored diff its manifest signs, or, for a
  tree or a manifest from before diffs were signed, recomputed from the
  signed texts), cold and warm; the
  first view of another URL's snapshot (``body``: a page of the web desk's
  replay) and the same view again; an article (``show``'s text) first and warm.

Medians over the rounds and the ratio this/before are printed, with the load.

    python bench/reader_cost.py --compare ../before [--urls 20] [--rounds 12] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402

PROBE = r"""
import json, sys, time
from archiver.archive import Archive
from archiver.config import load
data, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = load(environ={"ARCHIVER_DATA_DIR": data, "ARCHIVER_CONFIG": ""})
out = {}
def timed(name, fn, times=1):
    t = time.perf_counter()
    for _ in range(times):
        fn()
    out[name] = (time.perf_counter() - t) / times * 1e3
import archiver.audit.judge, archiver.changes.diff, archiver.changes.extract, warcio.archiveiterator  # imports apart
with Archive(settings) as a:
    rows = a.history(url)
    timed("history_cold_ms", lambda: a.history_json(url))
    timed("history_warm_ms", lambda: a.history_json(url), n)
    other = a.history(url.replace("/0", "/1"))
    timed("body_first_ms", lambda: a.body(other[-1]))
    timed("body_warm_ms", lambda: a.body(other[-1]), n)
    a.article(other[-2])
    timed("article_first_ms", lambda: a.article(other[-3]))
    timed("article_warm_ms", lambda: a.article(other[-3]), n)
print(json.dumps(out))
"""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build(data: Path, urls: int, rounds: int, work: Path) -> str:
    proc, port = loopback.start("edited")
    try:
        base = f"http://127.0.0.1:{port}/politik/"
        listing = work / "urls.txt"
        listing.write_text("".join(f"{base}{i}\n" for i in range(urls)))
        env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO)}
        for _ in range(rounds):
            subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), "snapshot", "-i", str(listing),
                            "--no-requisites"], check=True, env=env, capture_output=True)
        return f"{base}0"
    finally:
        proc.kill()
        proc.wait()


def one(tree: Path, data: Path, url: str, repeat: int) -> dict[str, float]:
    env = {**os.environ, "ARCHIVER_CONFIG": "", "PYTHONPATH": str(tree)}
    before, t = _child_cpu(), time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), "show", url],
                       env=env, capture_output=True, text=True, cwd=tree)
    wall, cpu = time.perf_counter() - t, _child_cpu() - before
    if p.returncode != 0:
        raise SystemExit(f"show failed in {tree}: {p.stderr}")
    probe = subprocess.run([sys.executable, "-c", PROBE, str(data), url, str(repeat)], env=env, capture_output=True,
                           text=True, cwd=tree)
    if probe.returncode != 0:
        raise SystemExit(f"probe failed in {tree}: {probe.stderr[-2000:]}")
    return {"show_wall_ms": wall * 1e3, "show_cpu_ms": cpu * 1e3, **json.loads(probe.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare", type=Path, required=True, help="another checkout (the baseline)")
    ap.add_argument("--urls", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=12, help="captures per URL")
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs per tree")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reader-cost-"))
    try:
        data = work / "archive"
        url = build(data, args.urls, args.rounds, work)
        runs: dict[str, list[dict[str, float]]] = {"this": [], "before": []}
        for _ in range(args.repeat):
            for name, tree in (("before", args.compare.resolve()), ("this", REPO)):
                runs[name].append(one(tree, data, url, 20))
        print(f"archive: {args.urls} URLs x {args.rounds} captures; load {os.getloadavg()[0]:.2f}; "
              f"medians of {args.repeat} alternating runs")
        print(f"{'':18} {'before':>10} {'this':>10} {'ratio':>7}")
        for key in runs["this"][0]:
            b = statistics.median(r[key] for r in runs["before"])
            t = statistics.median(r[key] for r in runs["this"])
            print(f"{key:18} {b:10.3f} {t:10.3f} {t / b if b else float('nan'):7.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
