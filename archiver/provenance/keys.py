"""Private key storage: the one module that reads or writes private keys.

Ed25519 signs manifests and checkpoints; ECDSA P-384 signs WACZ packages.
Keys live in a 0700 directory as 0600 PKCS#8 PEM files (optionally
passphrase-encrypted), are created race-free across processes, and leave
this module only as signatures.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from archiver.errors import SigningError, VerificationError
from archiver.provenance.files import fsync_dir, open_private, ownership_problem, write_new
from archiver.provenance.keyring import (
    _KEY_FILES,
    _LOCK_FILE,
    ALGORITHMS,
    ECDSA_P384,
    ED25519,
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    KeyRecord,
    Keyring,
    _format_time,
    _PrivateKey,
    _spki,
    _valid_key_name,
    key_id_for,
)
from archiver.provenance.signatures import Signer, WaczSigner

log = logging.getLogger(__name__)

def passphrase_from_env(environ: Mapping[str, str]) -> bytes | None:
    """The key passphrase from ARCHIVER_KEY_PASSPHRASE or the file named by
    ARCHIVER_KEY_PASSPHRASE_FILE (one trailing newline stripped); None when
    neither is set. Setting both is refused rather than guessing."""
    value = environ.get(PASSPHRASE_ENV)
    file_name = environ.get(PASSPHRASE_FILE_ENV)
    if value is not None and file_name:
        raise SigningError(f"set only one of {PASSPHRASE_ENV} and {PASSPHRASE_FILE_ENV}")
    if value is not None:
        secret = value.encode("utf-8")
    elif file_name:
        try:
            secret = Path(file_name).read_bytes()
        except OSError as exc:
            raise SigningError(
                f"cannot read passphrase file {file_name}: {exc.strerror or exc}"
            ) from exc
        if secret.endswith(b"\r\n"):
            secret = secret[:-2]
        elif secret.endswith(b"\n"):
            secret = secret[:-1]
    else:
        return None
    if not secret:
        raise SigningError("the key passphrase is empty")
    return secret


# --------------------------------------------------------------------------


@dataclass
class _Loaded:
    key: _PrivateKey
    key_id: str
    name: str
    stamp: tuple[int, int, int, int]  # (dev, ino, mtime_ns, size) of the file read


def _generate(algorithm: str) -> _PrivateKey:
    """A fresh private key (module-level so tests can stage a creation race)."""
    if algorithm == ED25519:
        return Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP384R1())


class KeyStore:
    """Private keys on disk, created on first use, plus the archive keyring.

    ``keys_dir`` is private (0700, files 0600) and must not be shipped with
    the archive; ``keyring_path`` is public and must be. ``clock`` stamps
    validity windows. Processes may share a KeyStore directory: creation
    races are settled by O_EXCL-style no-clobber publishing (the loser
    re-reads the winner's key) and keyring updates by a file lock.
    """

    def __init__(
        self,
        keys_dir: Path,
        *,
        keyring_path: Path,
        clock: Callable[[], datetime],
        passphrase: bytes | None = None,
        key_name: str = "archiver",
    ) -> None:
        if not _valid_key_name(key_name):
            raise SigningError(f"invalid key name {key_name!r}: no spaces or '+' allowed")
        if passphrase is not None and not 0 < len(passphrase) < 1024:
            raise SigningError("the key passphrase must be 1 to 1023 bytes")
        self._dir = Path(keys_dir)
        self._keyring_path = Path(keyring_path)
        self._clock = clock
        self._passphrase = passphrase
        self._key_name = key_name
        self._loaded: dict[str, _Loaded] = {}

    def __repr__(self) -> str:
        return f"KeyStore({str(self._dir)!r}, encrypted={self._passphrase is not None})"

    # -- public API -------------------------------------------------------

    def signer(self) -> Signer:
        """The current Ed25519 signer (created on first use).

        Cheap to call per snapshot; it notices a rotation by another
        process, so don't hold on to the result across snapshots.
        """
        loaded = self._current(ED25519)
        assert isinstance(loaded.key, Ed25519PrivateKey)
        return Signer(loaded.key_id, loaded.name, loaded.key)

    def wacz_signer(self) -> WaczSigner:
        """The current ECDSA P-384 WACZ signer (created on first use)."""
        loaded = self._current(ECDSA_P384)
        assert isinstance(loaded.key, ec.EllipticCurvePrivateKey)
        public_b64 = base64.b64encode(_spki(loaded.key)).decode("ascii")
        return WaczSigner(loaded.key_id, loaded.name, public_b64, loaded.key)

    def ensure(self) -> None:
        """Create both keys now (e.g. at daemon start) rather than at the
        first signature, so the keys' validity starts before any capture."""
        self._current(ED25519)
        self._current(ECDSA_P384)

    def keyring(self) -> Keyring:
        """The archive keyring, freshly loaded."""
        try:
            return Keyring(self._keyring_path).load()
        except VerificationError as exc:
            raise SigningError(str(exc)) from exc

    def rotate(self) -> dict[str, str]:
        """Replace both keys; returns ``{algorithm: new key id}``.

        Old private keys are deleted (replaced in place); their public keys
        stay in the keyring with ``valid_until`` set to now, so signatures
        they made before remain verifiable and any dated later are refused.
        """
        self._ensure_dir()
        new_ids: dict[str, str] = {}
        with self._lock():
            ring = self.keyring()
            records = list(ring.keys)
            now = self._now()
            for algorithm in ALGORITHMS:
                key = _generate(algorithm)
                self._publish(self._key_path(algorithm), self._serialize(key), replace_existing=True)
                spki = _spki(key)
                key_id = key_id_for(spki)
                records = [
                    replace(r, valid_until=now)
                    if r.algorithm == algorithm and r.valid_until is None
                    else r
                    for r in records
                ]
                records.append(KeyRecord(key_id, algorithm, spki, now, None, self._key_name))
                new_ids[algorithm] = key_id
            ring.save(records)
            self._loaded.clear()
        log.info(
            "rotated keys: %s",
            ", ".join(f"{alg} {kid[:16]}" for alg, kid in new_ids.items()),
        )
        return new_ids

    # -- internals --------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise SigningError("the clock must return timezone-aware datetimes")
        return now.astimezone(timezone.utc)

    def _key_path(self, algorithm: str) -> Path:
        return self._dir / _KEY_FILES[algorithm]

    def _ensure_dir(self) -> None:
        """The key directory, created 0700; a symlink or another user's is refused
        (someone who planted it could read our keys or swap in theirs)."""
        try:
            try:
                st = os.lstat(self._dir)
            except FileNotFoundError:
                self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(self._dir, 0o700)
                st = os.lstat(self._dir)
            why = ownership_problem(self._dir, st)
            if why is not None:
                raise SigningError(f"key directory {why}")
            if not stat.S_ISDIR(st.st_mode):
                raise SigningError(f"key directory {self._dir} is not a directory")
            if st.st_mode & 0o077:
                os.chmod(self._dir, 0o700)
                log.warning("key directory %s was accessible to others; set to 0700", self._dir)
        except OSError as exc:
            raise SigningError(f"cannot prepare key directory {self._dir}: {exc.strerror or exc}") from exc

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive lock (flock) serialising keyring updates across processes."""
        path = self._dir / _LOCK_FILE
        try:
            fd = open_private(path, os.O_CREAT | os.O_RDWR, 0o600)
        except PermissionError as exc:
            raise SigningError(f"key lock file {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _serialize(self, key: _PrivateKey) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase)
            if self._passphrase is not None
            else serialization.NoEncryption()
        )
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def _publish(self, path: Path, data: bytes, *, replace_existing: bool) -> None:
        """Put a complete 0600 key file at ``path``.

        The bytes go to a fresh O_EXCL temp file first, so nobody ever reads
        a half-written key. Without ``replace_existing`` the final step is a
        hard link, which like O_EXCL fails when ``path`` exists: the loser
        of a creation race gets FileExistsError and reads the winner's key.
        """
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            write_new(tmp, data, 0o600)
            if replace_existing:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                        raise
                    self._publish_exclusive(path, data)  # filesystem without hard links
            fsync_dir(self._dir)
        except FileExistsError:
            raise
        except OSError as exc:
            raise SigningError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _publish_exclusive(path: Path, data: bytes) -> None:
        write_new(path, data, 0o600)

    def _read_key_file(self, path: Path) -> tuple[bytes, tuple[int, int, int, int]]:
        """Read a key file, refusing symlinks and files others can read."""
        try:
            fd = open_private(path, os.O_RDONLY)
        except PermissionError as exc:
            raise SigningError(f"key file {exc}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SigningError(f"key file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise SigningError(
                    f"key file {path} is accessible to others (mode {stat.S_IMODE(st.st_mode):04o}); "
                    "run chmod 600 on it"
                )
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks), (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        finally:
            os.close(fd)

    def _load_key(self, path: Path, algorithm: str) -> tuple[_PrivateKey, tuple[int, int, int, int]]:
        data, stamp = self._read_key_file(path)
        try:
            key = serialization.load_pem_private_key(data, password=self._passphrase)
        except TypeError as exc:
            if self._passphrase is None:
                raise SigningError(
                    f"key file {path} is encrypted; set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}"
                ) from exc
            # A passphrase was given but this key was stored without one.
            log.warning("key file %s is not encrypted although a passphrase is set", path)
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc2:
                raise SigningError(f"cannot load key file {path}: not a valid private key") from exc2
        except ValueError as exc:
            if self._passphrase is not None and b"ENCRYPTED" in data[:64]:
                raise SigningError(f"cannot decrypt key file {path}: wrong passphrase") from exc
            raise SigningError(f"cannot load key file {path}: not a valid private key") from exc
        except UnsupportedAlgorithm as exc:
            raise SigningError(f"cannot load key file {path}: unsupported key type") from exc
        if algorithm == ED25519 and isinstance(key, Ed25519PrivateKey):
            return key, stamp
        if (
            algorithm == ECDSA_P384
            and isinstance(key, ec.EllipticCurvePrivateKey)
            and isinstance(key.curve, ec.SECP384R1)
        ):
            return key, stamp
        raise SigningError(f"key file {path} does not hold an {algorithm} key")

    def _load_or_create(self, algorithm: str) -> tuple[_PrivateKey, tuple[int, int, int, int]]:
        path = self._key_path(algorithm)
        try:
            return self._load_key(path, algorithm)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
        key = _generate(algorithm)
        try:
            self._publish(path, self._serialize(key), replace_existing=False)
        except FileExistsError:
            log.info("%s key was created concurrently; using the existing one", algorithm)
        else:
            log.info("created %s key %s in %s", algorithm, key_id_for(_spki(key))[:16], self._dir)
        try:
            return self._load_key(path, algorithm)
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc

    def _current(self, algorithm: str) -> _Loaded:
        """The current key, reloaded when its file changed (rotation elsewhere)."""
        path = self._key_path(algorithm)
        cached = self._loaded.get(algorithm)
        if cached is not None:
            try:
                st = os.stat(path, follow_symlinks=False)
                if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == cached.stamp:
                    return cached
            except FileNotFoundError:
                pass
        self._ensure_dir()
        key, stamp = self._load_or_create(algorithm)
        spki = _spki(key)
        key_id = key_id_for(spki)
        name = self._register(algorithm, key_id, spki)
        loaded = _Loaded(key, key_id, name, stamp)
        self._loaded[algorithm] = loaded
        return loaded

    def _register(self, algorithm: str, key_id: str, spki: bytes) -> str:
        """Make sure the keyring lists this key as current; returns its name.

        A key file missing from the keyring (first use, or a crash during
        rotation) is added now and closes any other open key of the same
        algorithm. A key the keyring has retired is refused.
        """
        with self._lock():
            ring = self.keyring()
            record = ring.find(key_id)
            if record is not None:
                if record.valid_until is not None:
                    raise SigningError(
                        f"{algorithm} key {key_id[:16]} was retired at "
                        f"{_format_time(record.valid_until)}; refusing to sign with it"
                    )
                if record.algorithm != algorithm:
                    raise SigningError(f"keyring lists key {key_id[:16]} as {record.algorithm}")
                return record.name
            now = self._now()
            records = [
                replace(r, valid_until=now) if r.algorithm == algorithm and r.valid_until is None else r
                for r in ring.keys
            ]
            records.append(KeyRecord(key_id, algorithm, spki, now, None, self._key_name))
            try:
                ring.save(records)
            except OSError as exc:
                raise SigningError(
                    f"cannot write keyring {self._keyring_path}: {exc.strerror or exc}"
                ) from exc
            log.info("keyring %s: added %s key %s", self._keyring_path, algorithm, key_id[:16])
            return self._key_name
