"""Typed settings: built-in defaults (documented one-for-one in
config/archiver.toml, a test keeps the two equal), then a user TOML file,
then environment variables. Unknown keys are errors, so a typo never
silently leaves a default in force."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from archiver.errors import ConfigError
from store.backends import StorageConfig
from store.s3deadline import DEFAULT_DEADLINE
from store.warcrecord import GZIP_MODES


@dataclass
class ArchiveSettings:
    data_dir: str = ""  # empty: the platform's user data dir
    warc_prefix: str = "archiver"
    warc_max_size: int = 1_000_000_000
    warc_gzip: str = "fast"  # each record's gzip member: "fast" (ISA-L) or "small" (zlib level 6)
    operator: str = ""
    origin: str = ""  # log origin line for checkpoints; empty: "archiver/<hostname>"
    index: str = ""  # empty: SQLite in the data dir; or postgresql://... (shared mode)
    warcs: str = ""  # empty: <data_dir>/warcs; or s3://bucket/prefix (shared mode)
    index_pool: int = 10  # PostgreSQL connections per process


@dataclass
class S3Settings:
    endpoint_url: str = ""  # empty: AWS; else MinIO, SeaweedFS, Ceph RGW, ...
    region: str = ""  # empty: boto3's default chain
    deadline: float = DEFAULT_DEADLINE  # seconds one request (ranged read, listing page, HEAD, PUT) may take in all


@dataclass
class CaptureSettings:
    user_agent: str = "archiver/{version} (+https://github.com/archiver-project/archiver; {contact})"
    contact: str = "operator not configured"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_body_bytes: int = 52_428_800
    max_decoded_bytes: int = 104_857_600
    max_redirects: int = 10
    allow_private: bool = False
    allow_networks: list[str] = field(default_factory=list)  # CIDR ranges opened without allow_private
    deny_networks: list[str] = field(default_factory=list)  # CIDR ranges always refused
    workers: int = 8
    commit_group_max: int = 32  # captures signed and indexed in one transaction, at most
    requisites: bool = True  # also capture stylesheets, images, fonts, icons
    requisites_max_count: int = 100
    requisites_max_bytes: int = 26_214_400
    requisites_timeout: float = 60.0
    requisites_workers: int = 4
    ca_bundle: str = ""  # empty: the system/certifi default
    fetch_processes: int = 0  # fetch in processes of their own: 0 none; -1 parallel captures, one per worker; N always


@dataclass
class DiffSettings:
    default_language: str = ""  # empty: detect from the page
    extract_max_elements: int = 30_000
    extract_max_depth: int = 200
    extract_max_text: int = 2_000_000
    extract_timeout: float = 10.0
    extract_processes: int = -1  # parallel captures read pages in worker processes; -1: one per core, 0: none
    extract_kill_after: float = 30.0  # seconds a worker process may spend on one page before it is killed


@dataclass
class SigningSettings:
    key_dir: str = ""  # empty: <data_dir>/keys
    tsa_urls: list[str] = field(default_factory=list)
    tsa_roots: list[str] = field(default_factory=list)  # PEM files; empty: the certifi bundle
    tsa_timeout: float = 10.0
    role: str = "root"  # shared archives: "root" (holds the root key) or "worker" (enrolled key)
    worker_name: str = ""  # shared archives: this machine's key name; empty: from the hostname


@dataclass
class DaemonSettings:
    default_every: str = "adaptive"
    workers: int = 8
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    jitter: float = 0.1
    politeness_minimum: str = "5m"
    max_backoff: str = "1d"
    shutdown_grace: float = 8.0
    feed_every: str = "15m"
    feed_max_new: int = 200
    worker_name: str = ""  # shared mode: this daemon's name among the workers; empty: "<hostname>-<pid>"
    lease: float = 60.0  # shared mode: seconds a claimed source stays this worker's without a heartbeat


@dataclass
class NotifySettings:
    threshold: str = "substantive"
    timeout: float = 10.0
    retries: int = 5
    backoff: float = 2.0
    workers: int = 8
    per_receiver: int = 2
    max_reply_bytes: int = 65536


@dataclass
class WebSettings:
    bind: str = "127.0.0.1:8080"
    page_size: int = 50
    max_request_bytes: int = 65_536
    max_query_bytes: int = 8_192
    public_url: str = ""  # empty: links use the request's own scheme and host
    proxy_headers: bool = False
    trusted_proxies: str = "127.0.0.1"


@dataclass
class Settings:
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    diff: DiffSettings = field(default_factory=DiffSettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    web: WebSettings = field(default_factory=WebSettings)
    s3: S3Settings = field(default_factory=S3Settings)

    @property
    def data_path(self) -> Path:
        if self.archive.data_dir:
            return Path(self.archive.data_dir).expanduser()
        import platformdirs  # only when no data directory is given (every command's start-up pays an import)

        return Path(platformdirs.user_data_dir("archiver", appauthor=False))

    @property
    def storage(self) -> StorageConfig:
        """Where the index and the WARC files are (embedded or shared)."""
        return StorageConfig(
            data_dir=self.data_path,
            index=self.archive.index,
            warcs=self.archive.warcs,
            s3_endpoint_url=self.s3.endpoint_url,
            s3_region=self.s3.region,
            s3_deadline=self.s3.deadline,
            pool_size=self.archive.index_pool,
        )

    @property
    def key_path(self) -> Path:
        return Path(self.signing.key_dir).expanduser() if self.signing.key_dir else self.data_path / "keys"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(value: Any, like: Any, where: str) -> Any:
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(like, int):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from exc
    if isinstance(like, float):
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
    if isinstance(like, list):
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [str(v) for v in value]
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def apply(settings: Settings, data: Mapping[str, Any], source: str) -> None:
    """Overlay a parsed TOML mapping onto settings, rejecting unknown keys."""
    for section, values in data.items():
        target = getattr(settings, section, None)
        if target is None or not dataclasses.is_dataclass(target) or not isinstance(values, dict):
            raise ConfigError(f"{source}: unknown section [{section}]")
        for key, value in values.items():
            if key not in {f.name for f in dataclasses.fields(target)}:
                raise ConfigError(f"{source}: unknown setting {section}.{key}")
            setattr(target, key, _coerce(value, getattr(target, key), f"{source}: {section}.{key}"))


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """Parse a TOML file; every failure is a one-line ConfigError naming ``what``."""
    import tomllib

    from archiver.given import MAX_LIST_BYTES, read_given_text

    if not os.path.lexists(path):
        raise ConfigError(f"{what} {path} does not exist")
    text = read_given_text(path, what, MAX_LIST_BYTES, ConfigError)  # a sources file may list 100,000 sources
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


# Environment variables understood, each mapping onto one setting.
ENV = {
    "ARCHIVER_DATA_DIR": ("archive", "data_dir"),
    "ARCHIVER_ALLOW_PRIVATE": ("capture", "allow_private"),
    "ARCHIVER_CONTACT": ("capture", "contact"),
    "ARCHIVER_OPERATOR": ("archive", "operator"),
    "ARCHIVER_TSA_URLS": ("signing", "tsa_urls"),
    "ARCHIVER_INDEX": ("archive", "index"),
    "ARCHIVER_WARCS": ("archive", "warcs"),
    "ARCHIVER_S3_ENDPOINT_URL": ("s3", "endpoint_url"),
    "ARCHIVER_S3_DEADLINE": ("s3", "deadline"),
    "ARCHIVER_SIGNING_ROLE": ("signing", "role"),
    "ARCHIVER_WORKER_NAME": ("daemon", "worker_name"),
    "ARCHIVER_FETCH_PROCESSES": ("capture", "fetch_processes"),
}


def load(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the user file (``--config`` or ``ARCHIVER_CONFIG``), then env."""
    environ = os.environ if environ is None else environ
    settings = Settings()
    path = config_file or (Path(environ["ARCHIVER_CONFIG"]) if environ.get("ARCHIVER_CONFIG") else None)
    if path is not None:
        apply(settings, read_toml(path), str(path))
    overlay: dict[str, dict[str, Any]] = {}
    for var, (section, key) in ENV.items():
        if var in environ:
            overlay.setdefault(section, {})[key] = environ[var]
    apply(settings, overlay, "environment")
    if not settings.s3.deadline > 0:
        raise ConfigError(f"s3.deadline: expected a number of seconds above 0, got {settings.s3.deadline!r}")
    if settings.archive.warc_gzip not in GZIP_MODES:
        raise ConfigError(f"archive.warc_gzip: expected one of {', '.join(GZIP_MODES)}, got {settings.archive.warc_gzip!r}")
    return settings


def defaults_as_dict() -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(Settings())
