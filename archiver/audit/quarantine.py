"""What verify needs of repair's bookkeeping, without repair's code: whose
WARC file is still being written (the writer's pid is in its name), the
list of foreign records repair quarantined (``quarantine.jsonl``: never
signed, never indexed, never deleted), and which unsigned captures a later
snapshot of their URL has overtaken (set aside, never signed)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from archiver.errors import ArchiverError, StoreError
from archiver.given import MAX_LIST_BYTES, read_own
from store.warc import parse_warc_date, warc_date

WARC_NAME = re.compile(  # archiver-<stamp>-<serial>-<host>-<pid>.warc.gz (store/warcfiles.py)
    r"^(?P<prefix>.+)-(?P<stamp>\d{20})-(?P<serial>\d{5})-(?P<host>.+)-(?P<pid>\d+)\.warc\.gz$")


def writer_alive(name: str, hostname: str) -> bool:
    """Is the process that owns this WARC file (by the pid in its name) still running here?"""
    m = WARC_NAME.match(name)
    if not m or m.group("host") != re.sub(r"[^A-Za-z0-9.-]", "-", hostname):
        return False  # another host's file: it cannot be writing here now
    pid = int(m.group("pid"))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


QUARANTINE_NAME = "quarantine.jsonl"


def quarantine(root: Path, entries: list[dict[str, Any]], clock: Any) -> None:
    """Record foreign records in ``quarantine.jsonl`` (once each): never signed,
    never indexed, never deleted -- the bytes stay where they were found, as
    evidence, and the list says where."""
    path = Path(root) / QUARANTINE_NAME
    seen = {(e["warc_file"], e["offset"], e["sha256"]) for e in read_quarantine(root)}
    new = [e for e in entries if (e["warc_file"], e["offset"], e["sha256"]) not in seen]
    if not new:
        return
    when = warc_date(clock())
    data = "".join(json.dumps({**e, "found_at": when}, sort_keys=True) + "\n" for e in new).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_quarantine(root: Path) -> list[dict[str, Any]]:
    """What repair quarantined (a missing or unreadable list is empty)."""
    out = []
    try:
        text = (read_own(Path(root) / QUARANTINE_NAME, "quarantine list", MAX_LIST_BYTES, StoreError) or b"").decode("utf-8")
    except (ArchiverError, UnicodeDecodeError):
        return []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and {"warc_file", "offset", "sha256"} <= entry.keys():
            out.append(entry)
    return out


def overtaken(index: Any, url: str, written_at: str) -> str | None:
    """The snapshot of ``url`` captured after ``written_at`` (an unsigned
    capture's intent time), if the index has one; else None.

    A capture whose commit was lost (the index went away mid-commit, or its
    shared worker lost the lease) and that a later capture of its URL has
    overtaken is set aside by repair, never signed: appended to the URL's
    chain after the newer version, its diff would report the page's edit
    backwards. Its records stay where they are, unsigned. Repair and verify
    judge it by the same rule, from the index and the intent alone."""
    newest = index.last_snapshot(url)
    if newest is None:
        return None
    later, written = parse_warc_date(newest.captured_at), parse_warc_date(written_at)
    if later is None or written is None or later <= written:
        return None
    return str(newest.id)

