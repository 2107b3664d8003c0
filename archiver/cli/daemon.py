"""Commands for watching: watch, unwatch, sources, watch-feed, daemon, status."""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

from archiver.cli.common import EXIT_FAIL, EXIT_OK
from archiver.daemon.durations import format_duration, parse_duration
from archiver.daemon.schedule import Every, utc
from archiver.daemon.sources import (
    FEED,
    PAGE,
    Sources,
    SourceSpec,
    load_sources_file,
    validate_every,
    validate_url,
)
from archiver.errors import ConfigError, NotFoundError, UsageError

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.config import Settings

log = logging.getLogger(__name__)

# The whole daemon package logs at INFO (a module list missed the claim loop's
# "index reachable again" after an outage).
DAEMON_LOGGERS = ("archiver.daemon",)


def register(sub: Any) -> None:
    s = sub.add_parser("watch", help="watch a URL (re-captured by `archiver daemon`)")
    s.add_argument("url", nargs="?", metavar="URL", help="the page to re-capture (or use --file)")
    s.add_argument("--every", metavar="DURATION", help="90s, 30m, 6h, 1d or 'adaptive' (default: daemon.default_every)")
    s.add_argument("--notify", metavar="WEBHOOK_URL", help="POST a JSON message here on a substantive change")
    s.add_argument("--language", metavar="LANG", help="article language hint (de, en)")
    s.add_argument("--file", type=Path, metavar="FILE", help="watch every source in a sources TOML file")

    s = sub.add_parser("unwatch", help="stop watching a URL (its snapshots stay)")
    s.add_argument("url", metavar="URL", help="a watched URL")

    s = sub.add_parser("sources", help="the watched sources and their schedule")
    s.add_argument("--json", action="store_true", help="a JSON array")

    s = sub.add_parser("watch-feed", help="follow an RSS/Atom feed or sitemap; enrol its articles")
    s.add_argument("url", metavar="FEED_URL", help="the RSS/Atom feed's or sitemap's URL")
    s.add_argument("--every", metavar="DURATION", help="how often to poll the feed (default: daemon.feed_every)")
    s.add_argument("--notify", metavar="WEBHOOK_URL", help="webhook for the enrolled articles")
    s.add_argument("--no-check", action="store_true", help="register without fetching the feed now")

    s = sub.add_parser("daemon", help="run the scheduler in the foreground until SIGTERM/SIGINT")
    s.add_argument("--sources", type=Path, metavar="FILE", help="also load this sources file (again on SIGHUP)")

    s = sub.add_parser("status", help="is the daemon running, and how is it doing")
    s.add_argument("--json", action="store_true", help="the status report as JSON")


# -- watch / unwatch / sources -------------------------------------------------
def _clock(archive: Archive) -> Callable[[], datetime]:
    return archive.c.clock


def _warn_if_impolite(every: Every, settings: Settings, err: TextIO) -> None:
    minimum = parse_duration(settings.daemon.politeness_minimum)
    if every.seconds is not None and every.seconds < minimum:
        err.write(
            f"archiver: warning: every {every} is below daemon.politeness_minimum "
            f"({settings.daemon.politeness_minimum}); only do this with sites that allow it\n"
        )


def cmd_watch(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = archive.settings
    sources = Sources(archive.index, _clock(archive))
    if args.file:
        if args.url:
            raise UsageError("watch takes a URL or --file FILE, not both")
        if args.every or args.notify or args.language:
            raise UsageError("--every/--notify/--language go into the sources file with --file")
        try:
            specs = load_sources_file(args.file, settings.daemon.default_every)
        except ConfigError as exc:
            raise UsageError(str(exc)) from exc
        _, new = sources.watch_many(specs, settings.daemon.default_every, checked=True)
        for every_text in sorted({spec.every or settings.daemon.default_every for spec in specs}):
            _warn_if_impolite(Every.parse(every_text), settings, err)
        out.write(f"watching {len(specs)} source(s) from {args.file} ({new} new)\n")
        return EXIT_OK
    if not args.url:
        raise UsageError("watch needs a URL (or --file FILE)")
    validate_url(args.url)
    every = validate_every(args.every) if args.every else None
    if args.notify:
        validate_url(args.notify, "--notify")
    spec = SourceSpec(args.url, PAGE, str(every) if every else None, args.notify, args.language)
    source, created = sources.watch(spec, settings.daemon.default_every)
    _warn_if_impolite(source.schedule, settings, err)
    verb = "watching" if created else "updated"
    note = f", notify {source.notify}" if source.notify else ""
    out.write(f"{verb} {source.url} every {source.every}{note}\n")
    return EXIT_OK


def cmd_unwatch(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not Sources(archive.index, _clock(archive)).unwatch(args.url):
        raise NotFoundError(f"{args.url} is not watched (see `archiver sources`)")
    out.write(f"unwatched {args.url} (its snapshots stay in the archive)\n")
    return EXIT_OK


def cmd_sources(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Only reads: with no archive yet there are no sources, and none is created."""
    from store.backends import index_exists

    if not index_exists(settings.storage):
        return _print_sources([], args, out, datetime.now(timezone.utc))
    from archiver.archive import Archive

    with Archive(settings) as archive:
        rows = Sources(archive.index, _clock(archive)).list(active_only=False)
        return _print_sources(rows, args, out, _clock(archive)())


def _print_sources(rows: list[Any], args: argparse.Namespace, out: TextIO, now: datetime) -> int:
    if args.json:
        out.write(json.dumps([s.to_json() for s in rows], ensure_ascii=False) + "\n")
        return EXIT_OK
    if not rows:
        out.write("no sources watched (add one with `archiver watch URL --every 30m`)\n")
        return EXIT_OK
    for s in rows:
        kind = "feed " if s.kind == FEED else ""
        out.write(f"{kind}{s.url}\n")
        out.write(
            f"    every {s.every}; last capture {_ago(s.last_capture_at, now)}; next due {_until(s.next_due, now)}"
            f"; status {s.last_status if s.last_status is not None else '-'}; failures {s.failures}\n"
        )
        if s.last_error:
            out.write(f"    last error: {s.last_error}\n")
        if s.notify or s.origin:
            extras = [f"notify {s.notify}" if s.notify else "", f"from feed {s.origin}" if s.origin else ""]
            out.write("    " + "; ".join(e for e in extras if e) + "\n")
    return EXIT_OK


def _ago(value: str | None, now: datetime) -> str:
    when = utc(value)
    if when is None:
        return "never"
    return f"{value} ({format_duration(max(0, round((now - when).total_seconds())))} ago)"


def _until(value: str | None, now: datetime) -> str:
    when = utc(value)
    if when is None:
        return "when the daemon starts"
    secs = round((when - now).total_seconds())
    return f"{value} (in {format_duration(secs)})" if secs > 0 else f"{value} (now)"


# -- feeds ---------------------------------------------------------------------
def cmd_watch_feed(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.daemon.feeds import capturer_fetch, read_feed

    settings = archive.settings
    validate_url(args.url, "FEED_URL")
    every = validate_every(args.every or settings.daemon.feed_every)
    if args.notify:
        validate_url(args.notify, "--notify")
    items = None
    if not args.no_check:
        items = read_feed(args.url, capturer_fetch(archive.capturer))  # fails before registering
    sources = Sources(archive.index, _clock(archive))
    sources.watch(SourceSpec(args.url, FEED, str(every), args.notify))
    _warn_if_impolite(every, settings, err)
    if items is None:
        out.write(f"watching feed {args.url} every {every}\n")
        return EXIT_OK
    added = sources.enrol(items.urls, origin=args.url, notify=args.notify, limit=settings.daemon.feed_max_new)
    out.write(
        f"watching {items.kind} feed {args.url} every {every}: {len(items.urls)} article(s) listed, "
        f"{len(added)} newly enrolled\n"
    )
    return EXIT_OK


# -- daemon and status ---------------------------------------------------------
def cmd_daemon(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.archive import Archive
    from archiver.capture import requisite_records  # noqa: F401 - loaded before the first claim: a first capture is as quick as the rest
    from archiver.daemon.lock import DaemonLock, check_private_files
    from archiver.daemon.scheduler import Daemon, install_signals, status_paths

    if args.sources is not None:
        load_sources_file(args.sources, settings.daemon.default_every)  # fail early on a bad file
    lock = DaemonLock(settings.data_path)
    lock.acquire()
    _daemon_logging()
    try:
        check_private_files(*status_paths(settings.data_path))
        archive = Archive(settings)
        # A shared archive takes any number of daemons (they claim due sources
        # with leases); the lock above is per data directory, i.e. per machine.
        daemon = Daemon(archive, settings, clock=archive.c.clock, sources_file=args.sources)
        restore = install_signals(daemon)
        try:
            abandoned = daemon.run()
        finally:
            restore()
        if abandoned:
            # Captures still running are abandoned: their WARC appends are whole
            # (one write + fsync each) and nothing of theirs is indexed yet.
            if archive._writer is not None:
                archive._writer.close()
            logging.shutdown()
            err.flush()
            lock.release()
            os._exit(EXIT_OK)
        archive.close()
    finally:
        lock.release()
    return EXIT_OK


def _daemon_logging() -> None:
    for name in DAEMON_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)


def cmd_status(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.daemon.claims import list_workers
    from archiver.daemon.lock import holder_pid, is_locked
    from archiver.daemon.notify import queue_counts
    from archiver.daemon.scheduler import read_status
    from store.backends import index_exists, open_index

    data = settings.data_path
    running = is_locked(data)
    status = read_status(data) or {}
    report: dict[str, Any] = {"running": running, "pid": holder_pid(data / "daemon.lock") if running else None,
                              "daemon": status}
    if index_exists(settings.storage):
        index = open_index(settings.storage)
        try:
            # Aggregates, not rows: status stays instant with a million sources.
            counts = index.query(
                "SELECT COUNT(*), SUM(CASE WHEN kind=? THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN failures > 0 THEN 1 ELSE 0 END) FROM sources WHERE active=1", (FEED,))
            first_due = index.query(
                "SELECT next_due, url FROM sources WHERE active=1 AND next_due IS NOT NULL "
                "ORDER BY next_due, url LIMIT 1")
            q = queue_counts(index)
            if index.shared:  # every daemon on every machine, from its heartbeat row
                workers = list_workers(index, datetime.now(timezone.utc), settings.daemon.lease)
                report["workers"] = [w.to_json() for w in workers]
                report["live_workers"] = sum(w.state == "running" for w in workers)
        finally:
            index.close()
        watched, feeds, failing = counts[0]
        report["sources"] = {
            "watched": int(watched),
            "feeds": int(feeds or 0),
            "failing": int(failing or 0),
            "next_due": first_due[0][0] if first_due else None,
            "next_url": first_due[0][1] if first_due else None,
        }
        report["notifications"] = {"pending": q.pending, "sent": q.sent, "failed": q.failed}
    live = running or bool(report.get("live_workers"))
    if args.json:
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
        return EXIT_OK if live else EXIT_FAIL
    now = datetime.now(timezone.utc)
    if running:
        beat = utc(status.get("heartbeat_at"))
        age = f", heartbeat {format_duration(max(0, round((now - beat).total_seconds())))} ago" if beat else ""
        out.write(f"daemon: running (pid {report['pid']}) since {status.get('started_at', '?')}{age}\n")
        out.write(
            f"captures: {status.get('captures', 0)} ({status.get('failures', 0)} failed) since start; "
            f"queued {status.get('queued', 0)}, running {status.get('running', 0)}\n"
        )
        last = status.get("last") or {}
        if last:
            out.write(f"last: {last.get('url')} {last.get('status') or '-'} "
                      f"{last.get('error') or last.get('significance')} at {last.get('at')}\n")
    else:
        seen = f" (last seen {status['heartbeat_at']})" if status.get("heartbeat_at") else ""
        out.write(f"daemon: not running{seen}\n")
    src = report.get("sources")
    if src:
        nxt = f"; next due {src['next_due']} ({src['next_url']})" if src["next_due"] else ""
        out.write(f"sources: {src['watched']} watched ({src['feeds']} feed(s)), {src['failing']} failing{nxt}\n")
        n = report["notifications"]
        out.write(f"notifications: {n['sent']} sent, {n['pending']} pending, {n['failed']} failed\n")
    if "workers" in report:
        out.write(f"workers: {report['live_workers']} running of {len(report['workers'])} known\n")
        for w in report["workers"]:
            beat = utc(w["heartbeat_at"])
            ago = format_duration(max(0, round((now - beat).total_seconds()))) if beat else "?"
            out.write(f"  {w['name']} ({w['host']} pid {w['pid']}): {w['state']}, heartbeat {ago} ago, "
                      f"{w.get('captures') or 0} capture(s) ({w.get('failures') or 0} failed), "
                      f"holding {w.get('leases') or 0}\n")
    return EXIT_OK if live else EXIT_FAIL


COMMANDS: dict[str, Callable[..., int]] = {
    "watch": cmd_watch,
    "unwatch": cmd_unwatch,
    "watch-feed": cmd_watch_feed,
}
NO_ARCHIVE: dict[str, Callable[..., int]] = {
    "sources": cmd_sources,
    "daemon": cmd_daemon,
    "status": cmd_status,
}
