"""The private key directory: key files created, published, read and locked.

Split out of ``keys`` (which decides which key signs) so the file handling
-- 0700 directory, 0600 PKCS#8 PEM files written race-free, symlinks and
readable files refused, optional passphrase -- is one small module. Only
``keys`` uses it; private keys leave the two only as signatures.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver.errors import SigningError
from archiver.provenance.files import fsync_dir, open_private, ownership_problem, read_key_file, write_new
from archiver.provenance.keyring import (
    _KEY_FILES,
    _LOCK_FILE,
    ECDSA_P384,
    ED25519,
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    _PrivateKey,
)

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int]  # (dev, ino, mtime_ns, size) of a key file read


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


class KeyDir:
    """One archive's private key directory (``keys/``), optionally encrypted."""

    def __init__(self, directory: Path, passphrase: bytes | None) -> None:
        self.directory = Path(directory)
        self.passphrase = passphrase

    def path(self, algorithm: str) -> Path:
        return self.directory / _KEY_FILES[algorithm]

    def ensure(self) -> None:
        """The key directory, created 0700; a symlink or another user's is refused
        (someone who planted it could read our keys or swap in theirs)."""
        try:
            try:
                st = os.lstat(self.directory)
            except FileNotFoundError:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(self.directory, 0o700)
                st = os.lstat(self.directory)
            why = ownership_problem(self.directory, st)
            if why is not None:
                raise SigningError(f"key directory {why}")
            if not stat.S_ISDIR(st.st_mode):
                raise SigningError(f"key directory {self.directory} is not a directory")
            if st.st_mode & 0o077:
                os.chmod(self.directory, 0o700)
                log.warning("key directory %s was accessible to others; set to 0700", self.directory)
        except OSError as exc:
            raise SigningError(f"cannot prepare key directory {self.directory}: {exc.strerror or exc}") from exc

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock (flock) serialising keyring updates across processes."""
        path = self.directory / _LOCK_FILE
        try:
            fd = open_private(path, os.O_CREAT | os.O_RDWR, 0o600)
        except PermissionError as exc:
            raise SigningError(f"key lock file {exc}") from exc
        except OSError as exc:
            raise SigningError(f"cannot open key lock file {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def serialize(self, key: _PrivateKey) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self.passphrase)
            if self.passphrase is not None
            else serialization.NoEncryption()
        )
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def publish(self, path: Path, data: bytes, *, replace_existing: bool) -> None:
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
            fsync_dir(self.directory)
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

    def read(self, path: Path) -> tuple[bytes, Stamp]:
        """Read a key file, refusing symlinks and files others can read."""
        return read_key_file(path)

    def load(self, path: Path, algorithm: str) -> tuple[_PrivateKey, Stamp]:
        data, stamp = self.read(path)
        try:
            key = serialization.load_pem_private_key(data, password=self.passphrase)
        except TypeError as exc:
            if self.passphrase is None:
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
            if self.passphrase is not None and b"ENCRYPTED" in data[:64]:
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
