"""The watched sources, kept in the index's ``sources`` table.

The index is the one place both the CLI (watch/unwatch) and a running daemon
read, so a change made while the daemon runs is seen by it: every edit bumps
a generation counter in ``meta`` that the daemon polls.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from archiver.capture.http import check_url
from archiver.capture.userinfo import split_userinfo, strip_userinfo
from archiver.config import read_toml
from archiver.daemon.durations import MAX_DURATION, format_duration
from archiver.daemon.schedule import Every, stamp
from archiver.errors import CaptureError, ConfigError, UsageError
from store.index import Index

log = logging.getLogger(__name__)

PAGE, FEED = "page", "feed"
GENERATION_KEY = "sources_generation"


@dataclass(frozen=True)
class Source:
    """One row of the ``sources`` table."""

    url: str
    kind: str
    every: str
    notify: str | None
    language: str | None
    origin: str | None
    added_at: str
    next_due: str | None
    last_attempt_at: str | None
    last_capture_at: str | None
    last_change_at: str | None
    last_status: int | None
    last_error: str | None
    failures: int
    etag: str | None
    last_modified: str | None
    last_snapshot_id: str | None
    active: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Source":
        d = dict(row)
        d["active"] = bool(d["active"])
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]

    @property
    def schedule(self) -> Every:
        return _schedule(self.url, self.every)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Plan(NamedTuple):
    """The columns the daemon plans a source from: a narrow, unordered read
    keeps a start with 100,000 sources to a fraction of a second (the whole
    row, sorted, costs five times as much)."""

    url: str
    kind: str
    every: str
    next_due: str | None
    last_change_at: str | None
    last_attempt_at: str | None

    @property
    def schedule(self) -> Every:
        return _schedule(self.url, self.every)


@functools.lru_cache(maxsize=1024)  # a few distinct intervals among 100,000 sources
def every_text(text: str) -> str:
    """An interval as stored: parsed (raises ConfigError) and written canonically."""
    return str(Every.parse(text))


def _schedule(url: str, every: str) -> Every:
    try:
        return Every.parse(every)
    except ConfigError:  # stored by an older version that had no maximum
        log.warning("source %s: interval %r is out of range; using %s", url, every, format_duration(MAX_DURATION))
        return Every(float(MAX_DURATION))


_COLUMNS = ", ".join(Source.__dataclass_fields__)  # "active" last


@dataclass(frozen=True)
class SourceSpec:
    """A source as a user asks for it (command line or sources file)."""

    url: str
    kind: str = PAGE
    every: str | None = None  # None: keep a watched source's, else the default
    notify: str | None = None  # None: keep a watched source's webhook
    language: str | None = None


def validate_url(url: str, what: str = "URL") -> str:
    try:
        check_url(url)
    except CaptureError as exc:
        raise UsageError(f"{what}: {exc}") from exc
    if what == "URL" and split_userinfo(url)[1] is not None:
        raise UsageError(f"{strip_userinfo(url)}: a watched URL may not carry credentials (user:password@): "
                         "the sources table would keep them")
    return url


def validate_every(text: str) -> Every:
    try:
        return Every.parse(text)
    except ConfigError as exc:
        raise UsageError(f"--every: {exc}") from exc


class Sources:
    """Watch, unwatch and list sources; record what each attempt found."""

    def __init__(self, index: Index, clock: Callable[[], datetime]) -> None:
        self.index = index
        self.clock = clock

    # -- edits by the user ----------------------------------------------------
    def watch(self, spec: SourceSpec, default_every: str = "adaptive") -> tuple[Source, bool]:
        """Add or update a source; returns it and whether it is new.

        Updating changes only what ``spec`` names (every, notify, language).
        """
        validate_url(spec.url)
        if spec.notify:
            validate_url(spec.notify, "--notify")
        with self.index.write() as conn:
            created = self._upsert(conn, spec, default_every, stamp(self.clock()))
            self._bump(conn)
        source = self.get(spec.url)
        assert source is not None
        return source, created

    def watch_many(
        self, specs: Sequence[SourceSpec], default_every: str = "adaptive", *, checked: bool = False
    ) -> tuple[int, int]:
        """Add or update many sources in one transaction (one fsync for a
        100,000-line sources file); returns (sources, new). All or nothing.
        ``checked``: the specs come from :func:`load_sources_file`, which
        has validated every URL already."""
        for spec in specs if not checked else ():
            validate_url(spec.url)
            if spec.notify:
                validate_url(spec.notify, "--notify")
        count = new = 0
        now = stamp(self.clock())
        with self.index.write() as conn:
            for spec in specs:
                new += self._upsert(conn, spec, default_every, now)
                count += 1
            if count:
                self._bump(conn)
        return count, new

    @staticmethod
    def _upsert(conn: sqlite3.Connection, spec: SourceSpec, default_every: str, now: str) -> bool:
        old = conn.execute("SELECT every, notify, language FROM sources WHERE url=?", (spec.url,)).fetchone()
        if old is None:
            every = every_text(spec.every or default_every)
            conn.execute(
                "INSERT INTO sources(url, kind, added_at, every, notify, language) VALUES(?,?,?,?,?,?)",
                (spec.url, spec.kind, now, every, spec.notify, spec.language),
            )
            return True
        every = every_text(spec.every) if spec.every else old["every"]
        # A new interval is planned afresh (from the last attempt) by the daemon.
        reset_due = old["every"] != every
        conn.execute(
            "UPDATE sources SET kind=?, every=?, notify=?, language=?, active=1"
            + (", next_due=NULL" if reset_due else "")
            + " WHERE url=?",
            (spec.kind, every, spec.notify or old["notify"], spec.language or old["language"], spec.url),
        )
        return False

    def enrol(self, urls: Iterable[str], *, origin: str, notify: str | None, every: str = "adaptive",
              limit: int | None = None) -> list[str]:
        """Add article URLs found in a feed; existing sources are left alone."""
        added: list[str] = []
        now = stamp(self.clock())
        with self.index.write() as conn:
            for url in urls:
                if limit is not None and len(added) >= limit:
                    log.warning("feed %s: more than %d new articles in one poll; the rest wait for the next", origin, limit)
                    break
                try:
                    check_url(url)
                except CaptureError:
                    continue
                cur = conn.execute(
                    "INSERT OR IGNORE INTO sources(url, kind, added_at, every, notify, origin) VALUES(?,?,?,?,?,?)",
                    (url, PAGE, now, every, notify, origin),
                )
                if cur.rowcount:
                    added.append(url)
            if added:
                self._bump(conn)
        return added

    def unwatch(self, url: str) -> bool:
        """Stop watching ``url``; its snapshots stay in the archive."""
        with self.index.write() as conn:
            cur = conn.execute("DELETE FROM sources WHERE url=?", (url,))
            if cur.rowcount:
                self._bump(conn)
            return bool(cur.rowcount)

    # -- reading --------------------------------------------------------------
    def get(self, url: str) -> Source | None:
        rows = self.index.query("SELECT * FROM sources WHERE url=?", (url,))
        return Source.from_row(rows[0]) if rows else None

    def list(self, *, active_only: bool = True) -> list[Source]:
        # Columns in field order, built positionally: 100,000 sources in a fraction of a second.
        sql = (f"SELECT {_COLUMNS} FROM sources" + (" WHERE active=1" if active_only else "")
               + " ORDER BY kind DESC, url")
        return [Source(*r[:-1], bool(r[-1])) for r in self.index.query(sql)]  # type: ignore[call-arg]

    def plans(self) -> Sequence[Plan]:
        """The active sources, as the scheduler needs them (in no particular order)."""
        sql = f"SELECT {', '.join(Plan._fields)} FROM sources WHERE active=1"
        return [Plan(*r) for r in self.index.query(sql)]

    def search(self, needle: str, *, limit: int, offset: int = 0) -> tuple[Sequence[Source], int]:
        """One page of the sources whose URL contains ``needle`` (literally), and how many match."""
        like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = " WHERE url LIKE ? ESCAPE '\\'"
        total = int(self.index.query("SELECT COUNT(*) FROM sources" + where, (like,))[0][0])
        rows = self.index.query(
            f"SELECT {_COLUMNS} FROM sources{where} ORDER BY kind DESC, url LIMIT ? OFFSET ?", (like, limit, offset)
        )
        return [Source(*r[:-1], bool(r[-1])) for r in rows], total  # type: ignore[call-arg]

    def generation(self) -> int:
        value = self.index.meta(GENERATION_KEY)
        return int(value) if value else 0

    def _bump(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (GENERATION_KEY,)).fetchone()
        self.index.set_meta(conn, GENERATION_KEY, (int(row[0]) if row else 0) + 1)


# -- the sources file ---------------------------------------------------------
_SPEC_KEYS = {"url", "every", "notify", "language"}


def load_sources_file(path: Path, default_every: str) -> list[SourceSpec]:
    """Read a sources TOML file (see config/sources.example.toml)."""
    data = read_toml(path, "sources file")
    unknown = set(data) - {"defaults", "source", "feed"}
    if unknown:
        raise ConfigError(f"{path}: unknown table {sorted(unknown)[0]!r} (expected [defaults], [[source]], [[feed]])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - (_SPEC_KEYS - {"url"}):
        bad = sorted(set(defaults) - (_SPEC_KEYS - {"url"})) if isinstance(defaults, dict) else ["(not a table)"]
        raise ConfigError(f"{path}: [defaults]: unknown key {bad[0]!r}")
    specs: list[SourceSpec] = []
    for kind, table in ((PAGE, "source"), (FEED, "feed")):
        entries = data.get(table, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: {table} must be an array of tables ([[{table}]])")
        for i, entry in enumerate(entries, 1):
            where = f"{path}: [[{table}]] #{i}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: not a table")
            extra = set(entry) - _SPEC_KEYS
            if extra:
                raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r}")
            merged = {**defaults, **entry}
            url = merged.get("url")
            if not isinstance(url, str) or not url:
                raise ConfigError(f"{where}: needs url = \"https://...\"")
            try:
                check_url(url)
                if split_userinfo(url)[1] is not None:
                    raise ConfigError(f"{strip_userinfo(url)}: a watched URL may not carry credentials (user:password@)")
                every = every_text(str(merged.get("every", default_every)))
                if merged.get("notify"):
                    check_url(str(merged["notify"]))
            except (CaptureError, ConfigError) as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            specs.append(SourceSpec(url, kind, every, merged.get("notify") or None, merged.get("language") or None))
    return specs
