"""Measuring archiver as processes: wall time and peak RSS of a command, and
the daemon's start (launch to its status file saying ``running``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def env(data: Path) -> dict[str, str]:
    """The environment of an archiver process on ``data`` (loopback allowed, no config file)."""
    return {**installed(), "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO),
            "ARCHIVER_DATA_DIR": str(data)}


def installed() -> dict[str, str]:
    """This environment as an installed archiver runs in: its modules' bytecode
    cached (pip compiles it at install). PYTHONDONTWRITEBYTECODE, which some
    sandboxes set, would make every start compile about 100 modules again --
    0.1-0.2 s of CPU that no user pays, charged to each command measured."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], e: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one process."""
    wall, _, rss, out = timed_cpu(cmd, e, ok)
    return wall, rss, out


def timed_cpu(cmd: list[str], e: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (its worker processes included), peak RSS (MB,
    the largest single process) and stdout of one process. CPU time is what
    a loaded machine does not distort: compare it when others share the cores."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise SystemExit(f"{' '.join(cmd[:5])} exited {code}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def daemon_start(data: Path, e: dict[str, str], limit: float = 600) -> tuple[float, float]:
    """Seconds from launching ``archiver daemon`` to ``running``, and its peak RSS (MB)."""
    status = data / "daemon-status.json"
    status.unlink(missing_ok=True)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "archiver", "daemon"], env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = None
    while time.perf_counter() - t0 < limit:
        try:
            if json.loads(status.read_text()).get("state") == "running":
                started = time.perf_counter() - t0
                break
        except (OSError, ValueError):
            pass
        if p.poll() is not None:
            raise SystemExit("daemon exited early")
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(p.pid, 0)
    if started is None:
        raise SystemExit(f"daemon did not start within {limit:.0f} s")
    return started, usage.ru_maxrss / 1024
