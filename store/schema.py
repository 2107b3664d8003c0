"""The index's schema: every migration from version 1 to the current one.

One list serves SQLite and PostgreSQL (``store.pg`` translates the dialect).
A migration runs inside the index's write transaction (``Index._migrate``),
DDL included, so an upgrade that dies midway leaves the previous version.
Kept apart from ``store.index`` (the queries) because it only grows.
"""

from __future__ import annotations

SCHEMA_VERSION = 12


def _log_schema(version: int) -> str:
    from store.logdb import LOG_SCHEMA_V1, LOG_SCHEMA_V6

    return {1: LOG_SCHEMA_V1, 6: LOG_SCHEMA_V6}.get(version, "")


_V1 = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    url TEXT PRIMARY KEY,
    added_at TEXT NOT NULL,
    every TEXT NOT NULL DEFAULT 'adaptive',
    notify TEXT,
    language TEXT,
    origin TEXT,
    next_due TEXT,
    last_capture_at TEXT,
    last_change_at TEXT,
    last_status INTEGER,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    etag TEXT,
    last_modified TEXT,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS snapshots(
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    seq INTEGER NOT NULL,
    final_url TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    content_type TEXT,
    payload_sha256 TEXT NOT NULL,
    revisit INTEGER NOT NULL DEFAULT 0,
    original_id TEXT,
    warc_file TEXT NOT NULL,
    warc_offset INTEGER NOT NULL,
    warc_length INTEGER NOT NULL,
    response_record_id TEXT NOT NULL,
    text_sha256 TEXT,
    prev_id TEXT,
    significance TEXT NOT NULL,
    diff_json TEXT,
    manifest_json TEXT,
    manifest_sha256 TEXT,
    signature TEXT,
    key_id TEXT,
    log_index INTEGER,
    UNIQUE(url, seq)
);
CREATE INDEX IF NOT EXISTS snapshots_payload ON snapshots(url, payload_sha256);
CREATE TABLE IF NOT EXISTS records(
    record_id TEXT PRIMARY KEY,
    snapshot_id TEXT NOT NULL,
    hop INTEGER NOT NULL,
    type TEXT NOT NULL,
    target_uri TEXT NOT NULL,
    date TEXT NOT NULL,
    warc_file TEXT NOT NULL,
    warc_offset INTEGER NOT NULL,
    warc_length INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    payload_digest TEXT
);
CREATE INDEX IF NOT EXISTS records_snapshot ON records(snapshot_id);
CREATE INDEX IF NOT EXISTS records_file ON records(warc_file, warc_offset);
CREATE TABLE IF NOT EXISTS texts(
    sha256 TEXT PRIMARY KEY,
    language TEXT,
    article_json TEXT NOT NULL
);
"""

# Schema 2 (the daemon): what a source is (page or feed), when it was last
# tried and which snapshot it last saw, and the webhook delivery queue, so a
# restart neither loses nor repeats a notification.
_V2 = """
ALTER TABLE sources ADD COLUMN kind TEXT NOT NULL DEFAULT 'page';
ALTER TABLE sources ADD COLUMN last_attempt_at TEXT;
ALTER TABLE sources ADD COLUMN last_snapshot_id TEXT;
CREATE TABLE IF NOT EXISTS notifications(
    id INTEGER PRIMARY KEY,
    snapshot_id TEXT NOT NULL,
    webhook TEXT NOT NULL,
    url TEXT NOT NULL,
    significance TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    sent_at TEXT,
    UNIQUE(snapshot_id, webhook)
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, next_attempt_at);
"""

# Schema 3 (the web desk): the newest changes of one significance, newest
# first, read from an index instead of a scan of every snapshot.
_V3 = """
CREATE INDEX IF NOT EXISTS snapshots_recent ON snapshots(significance, captured_at, id);
"""

# Schema 4 (page requisites): a requisite is deduplicated against earlier
# responses of its URL, so records are looked up by target URI. Requisite
# records carry hop -1 (the page's own exchanges are hops 0..n).
_V4 = """
CREATE INDEX IF NOT EXISTS records_target ON records(target_uri, type);
"""

# Schema 5 (several daemons on one shared archive): a source is claimed by
# one worker with a lease (lease_owner, lease_until, and the due time the
# claim is for), due sources are found through an index on next_due (2 s ->
# 0.35 ms at 1M sources), a webhook delivery is leased the same way, every
# daemon heartbeats a row in ``workers``, and ``hosts`` holds each host's
# next allowed request time across all workers (politeness).
_V5 = """
ALTER TABLE sources ADD COLUMN lease_owner TEXT;
ALTER TABLE sources ADD COLUMN lease_until TEXT;
ALTER TABLE sources ADD COLUMN claimed_due TEXT;
CREATE INDEX IF NOT EXISTS sources_due ON sources(next_due);
ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
ALTER TABLE notifications ADD COLUMN lease_until TEXT;
CREATE TABLE IF NOT EXISTS workers(
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    state TEXT NOT NULL,
    status_json TEXT
);
CREATE TABLE IF NOT EXISTS hosts(
    host TEXT PRIMARY KEY,
    next_allowed_at TEXT NOT NULL
);
"""

# Schema 6 (a compact index): manifest, diff and article JSON are stored
# compressed (store.compact) in new BLOB columns; rows written before keep
# their text columns and are read in either form, so the upgrade rewrites
# nothing (crash-safe by doing nothing). A re-logged manifest's predecessor is
# a column, so repair finds it without reading manifests. Checkpoints carry
# why they are kept (store.logdb.LOG_SCHEMA_V6).
_V6 = """
ALTER TABLE snapshots ADD COLUMN manifest_z BLOB;
ALTER TABLE snapshots ADD COLUMN diff_z BLOB;
ALTER TABLE snapshots ADD COLUMN relogged_from TEXT;
ALTER TABLE texts ADD COLUMN article_z BLOB;
"""

# Schema 7 (a compact index, continued): the two lookups that only ever ask
# for stored originals get partial indexes -- a URL's earlier payload among
# its non-revisits, a URL's responses among all records -- so revisits,
# requests and manifests (most rows) take no entry. Each carries its query's
# order, so SQLite's planner picks it (snapshots_payload, without seq, was
# never used: the (url, seq) key won). The newest changes are listed per
# significance from a partial index each (LISTED_SIGNIFICANCES), so the
# unchanged captures take none. The leaf -> snapshot index goes: nothing looks
# a leaf up by snapshot but tests (the snapshot row has its log_index).
# Rebuilt inside the migration's transaction, so a crash leaves the old
# indexes or the new ones.
_V7 = """
DROP INDEX IF EXISTS snapshots_payload;
CREATE INDEX IF NOT EXISTS snapshots_original ON snapshots(url, payload_sha256, seq) WHERE revisit=0;
DROP INDEX IF EXISTS records_target;
CREATE INDEX IF NOT EXISTS records_response ON records(target_uri, date, record_id) WHERE type='response';
DROP INDEX IF EXISTS snapshots_recent;
CREATE INDEX IF NOT EXISTS snapshots_substantive ON snapshots(captured_at, id) WHERE significance='substantive';
CREATE INDEX IF NOT EXISTS snapshots_cosmetic ON snapshots(captured_at, id) WHERE significance='cosmetic';
DROP INDEX IF EXISTS log_leaves_snapshot;
"""

# Schema 8 (politeness measured where the host sees it): a host's last
# request start across all workers, set by the worker at the moment it sends
# (``hosts.next_allowed_at`` stays the claim-time reservation), so a capture
# that starts late cannot crowd the next one.
_V8 = """
ALTER TABLE hosts ADD COLUMN last_sent_at TEXT;
"""

# Schema 9 (a compact index, continued): a new snapshot row no longer holds a
# copy of its signed manifest (about 480 of its ~1,250 bytes, compressed). The
# manifest is in the WARC, in the metadata record its record rows locate; the
# row keeps the manifest's digest, signature and key id, which bind that copy
# (``ArchiveReads.manifest`` reads it and checks the digest; verify always
# read it there). No DDL: rows written before keep their copy, read as
# before, until ``archiver compact`` drops each copy that the WARC's matches.
# The version still changes, so that an older archiver, which would take a
# row without a copy for an unsigned snapshot, refuses to open the index.
_V9 = ""

# Schema 10 (a compact index, continued): a record or snapshot row names its
# WARC file by an integer id into ``warc_files`` instead of repeating the
# ~52-character name (in the row and in the file index: ~350 bytes per
# snapshot). ``warc_file`` stays, '' in new rows (its NOT NULL is from schema
# 1); rows written before keep the name and are read in either form
# (``store.index.in_file``) until ``archiver compact`` rewrites them. The
# file index becomes two partial ones, one per form, so neither holds an
# entry for the other's rows (rebuilt inside the migration's transaction:
# a crash leaves the old index or the new ones). Every file already named is
# registered, so ids exist for every name the index holds.
_V10 = """
CREATE TABLE IF NOT EXISTS warc_files(file_id INTEGER PRIMARY KEY, warc_name TEXT NOT NULL UNIQUE);
INSERT OR IGNORE INTO warc_files(warc_name) SELECT DISTINCT warc_file FROM records WHERE warc_file > '' ORDER BY warc_file;
ALTER TABLE records ADD COLUMN file_id INTEGER;
ALTER TABLE snapshots ADD COLUMN file_id INTEGER;
DROP INDEX IF EXISTS records_file;
CREATE INDEX IF NOT EXISTS records_file ON records(warc_file, warc_offset) WHERE warc_file > '';
CREATE INDEX IF NOT EXISTS records_at ON records(file_id, warc_offset) WHERE file_id IS NOT NULL;
"""

# Schema 11 (a compact index, continued): a record's SHA-256 is stored as its
# 32 bytes (``digest``) instead of 64 hex characters; ``sha256`` stays, ''
# in new rows (NOT NULL from schema 1). Rows written before keep the hex and
# are read in either form; a partial index lists them (and only them), so
# ``archiver compact`` finds them in batches without a scan, then none.
_V11 = """
ALTER TABLE records ADD COLUMN digest BLOB;
CREATE INDEX IF NOT EXISTS records_hex ON records(record_id) WHERE sha256 > '';
"""

# Schema 12 (no extraction for an unchanged page): a snapshot records the
# reading its text came from (``reader``: a digest of the extraction code,
# the libraries' versions and the extraction settings;
# ``archiver.changes.extract.reader_id``). A re-capture whose payload and
# Content-Type equal its previous snapshot's, read the same way, takes that
# snapshot's stored text instead of extracting it again. Rows written before
# have none, so their next capture extracts (nothing is reused on a guess).
_V12 = """
ALTER TABLE snapshots ADD COLUMN reader TEXT;
"""

# The significances the newest-changes listing reads through an index of
# their own (schema 7); others ("none", "first": most rows) have none.
LISTED_SIGNIFICANCES = ("substantive", "cosmetic")

MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7, 8: _V8, 9: _V9, 10: _V10, 11: _V11,
                              12: _V12}


def migration_statements(version: int) -> list[str]:
    """The statements that take an index from ``version - 1`` to ``version``."""
    script = MIGRATIONS[version] + _log_schema(version)
    return [s.strip() for s in script.split(";") if s.strip()]
