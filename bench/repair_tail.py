"""Start-up repair of a file a crash left `.open`: read from its watermark
(the default, what `archiver daemon` runs at start) against `repair --full`.

A capture process (driving the library) captures N loopback pages into one
WARC file, writes one more capture's records without committing it, and is
killed (kill -9). Each repair runs on its own copy of that archive, as a
separate process; printed: wall time, peak RSS, where the file was read from.

    python bench/repair_tail.py [N]     (default 1500)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loopback

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
CHILD = textwrap.dedent("""
    import os, signal, sys
    from archiver import config
    from archiver.archive import Archive
    from archiver.capture.records import exchange_records
    urls = open(sys.argv[1]).read().split()
    a = Archive(config.load())
    for r in a.snapshot_many(urls[:-1], workers=4):
        pass
    c = a.capturer.capture(urls[-1])
    a.append_sealed(exchange_records(c.final, a.c.new_uuid))
    os.kill(os.getpid(), signal.SIGKILL)
""")
server, port = loopback.start("article", 0.0)
work = tempfile.mkdtemp()
try:
    lst = os.path.join(work, "u.txt")
    open(lst, "w").write("\n".join(f"http://127.0.0.1:{port}/m/{i}" for i in range(n + 1)))
    env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "ARCHIVER_DATA_DIR": os.path.join(work, "a"),
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    subprocess.run([sys.executable, "-c", CHILD, lst], env=env)
    shutil.copytree(os.path.join(work, "a"), os.path.join(work, "b"))
    size = sum(os.path.getsize(os.path.join(work, "a", "warcs", f)) for f in os.listdir(os.path.join(work, "a", "warcs")))
    print(f"{n} captures, one .open file of {size/1e6:.1f} MB left by kill -9")
    for what, d, extra in (("repair (watermark)", "a", []), ("repair --full", "b", ["--full"])):
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "archiver", "--data-dir", os.path.join(work, d),
                            "repair", "--json", *extra], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        got = json.loads(p.stdout)
        print(f"{what:20} wall {wall:6.2f} s  peak RSS {int(p.stderr.strip().splitlines()[-1]) / 1024:6.0f} MB  "
              f"scanned_from {list(got.get('scanned_from', {}).values())}  recommitted {len(got['recommitted'])}")
finally:
    server.kill()
    shutil.rmtree(work, ignore_errors=True)
