"""Keys, keyring, rotation and WACZ signatures (archiver.signing)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import multiprocessing
import os
import stat
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from archiver.errors import SigningError, VerificationError
from archiver.provenance import keyring, keys, notes, signatures
from archiver.provenance.keyring import ECDSA_P384, ED25519, Keyring
from archiver.provenance.keys import KeyStore

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    """A settable clock so validity windows are exact."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def make_store(tmp_path: Path, clock: FakeClock | None = None, **kw) -> KeyStore:
    return KeyStore(
        tmp_path / "keys",
        keyring_path=tmp_path / "archive" / "keyring.json",
        clock=clock or FakeClock(),
        **kw,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- files


def test_permissions_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ks = make_store(tmp_path)
        ks.signer()
        ks.wacz_signer()
    finally:
        os.umask(old)
    keys = tmp_path / "keys"
    assert mode(keys) == 0o700
    for name in ("ed25519.pem", "ecdsa-p384.pem"):
        assert mode(keys / name) == 0o600
    assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]
    assert mode(tmp_path / "archive" / "keyring.json") == 0o644


def test_existing_open_directory_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    os.chmod(tmp_path / "keys", 0o755)
    make_store(tmp_path).signer()
    assert mode(tmp_path / "keys") == 0o700


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    make_store(tmp_path).signer()
    os.chmod(tmp_path / "keys" / "ed25519.pem", 0o644)
    with pytest.raises(SigningError, match="chmod 600"):
        make_store(tmp_path).signer()


def test_keys_are_reused_across_instances(tmp_path: Path) -> None:
    a = make_store(tmp_path)
    b = make_store(tmp_path)
    assert a.signer().key_id == b.signer().key_id
    assert a.wacz_signer().key_id == b.wacz_signer().key_id
    assert a.signer().key_id != a.wacz_signer().key_id


def test_key_id_is_sha256_of_spki_der(tmp_path: Path) -> None:
    ks = make_store(tmp_path)
    s = ks.signer()
    pem = (tmp_path / "keys" / "ed25519.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert s.public_key_spki() == spki
    # Ed25519 SPKI DER is a fixed 12-byte header plus the raw key.
    assert spki == bytes.fromhex("302a300506032b6570032100") + s.public_key_raw()
    assert s.key_id == hashlib.sha256(spki).hexdigest() == keyring.key_id_for(spki)
    w = ks.wacz_signer()
    assert w.key_id == hashlib.sha256(base64.b64decode(w.public_key_b64)).hexdigest()


# ---------------------------------------------------------------- races


def test_creation_race_loser_rereads_winner(tmp_path: Path, monkeypatch) -> None:
    """Another process writes the key between our check and our create."""
    winner = Ed25519PrivateKey.generate()
    real_generate = keys._generate

    def generate_after_competitor(algorithm: str):
        if algorithm == ED25519 and not (tmp_path / "keys" / "ed25519.pem").exists():
            path = tmp_path / "keys" / "ed25519.pem"
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.write(
                fd,
                winner.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            os.close(fd)
        return real_generate(algorithm)

    monkeypatch.setattr(keys, "_generate", generate_after_competitor)
    s = make_store(tmp_path).signer()
    spki = winner.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert s.key_id == keyring.key_id_for(spki)
    ring = Keyring(tmp_path / "archive" / "keyring.json").load()
    assert [r.key_id for r in ring.keys] == [s.key_id]


def test_threads_creating_at_once_agree(tmp_path: Path) -> None:
    n = 8
    barrier = threading.Barrier(n)
    ids: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            ks = make_store(tmp_path)
            barrier.wait()
            ids.append(ks.signer().key_id + "/" + ks.wacz_signer().key_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ids) == n and len(set(ids)) == 1
    ring = Keyring(tmp_path / "archive" / "keyring.json").load()
    assert sorted(r.algorithm for r in ring.keys) == [ECDSA_P384, ED25519]


def _process_worker(tmp: str, barrier, queue) -> None:
    ks = KeyStore(
        Path(tmp) / "keys",
        keyring_path=Path(tmp) / "archive" / "keyring.json",
        clock=lambda: T0,
    )
    barrier.wait()
    queue.put(ks.signer().key_id)


def test_processes_creating_at_once_agree(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path), barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    ids = {queue.get(timeout=5) for _ in range(n)}
    assert len(ids) == 1
    ring = Keyring(tmp_path / "archive" / "keyring.json").load()
    assert [r.key_id for r in ring.keys] == list(ids)


# ---------------------------------------------------------------- passphrase


def test_passphrase_round_trip(tmp_path: Path) -> None:
    a = make_store(tmp_path, passphrase=b"correct horse")
    key_id = a.signer().key_id
    a.wacz_signer()
    for name in ("ed25519.pem", "ecdsa-p384.pem"):
        assert (tmp_path / "keys" / name).read_bytes().startswith(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
        )
    assert make_store(tmp_path, passphrase=b"correct horse").signer().key_id == key_id


@pytest.mark.parametrize("passphrase", [b"wrong", None])
def test_bad_passphrase_is_a_one_line_signing_error(tmp_path: Path, passphrase) -> None:
    make_store(tmp_path, passphrase=b"correct horse").signer()
    with pytest.raises(SigningError) as info:
        make_store(tmp_path, passphrase=passphrase).signer()
    message = str(info.value)
    assert "\n" not in message and "ed25519.pem" in message
    assert ("wrong passphrase" in message) if passphrase else ("ARCHIVER_KEY_PASSPHRASE" in message)
    assert info.value.__cause__ is not None


def test_passphrase_from_env(tmp_path: Path) -> None:
    f = tmp_path / "pass"
    f.write_bytes(b"s3cret\n")
    assert keys.passphrase_from_env({}) is None
    assert keys.passphrase_from_env({"ARCHIVER_KEY_PASSPHRASE": "pw"}) == b"pw"
    assert keys.passphrase_from_env({"ARCHIVER_KEY_PASSPHRASE_FILE": str(f)}) == b"s3cret"
    with pytest.raises(SigningError):
        keys.passphrase_from_env(
            {"ARCHIVER_KEY_PASSPHRASE": "pw", "ARCHIVER_KEY_PASSPHRASE_FILE": str(f)}
        )
    with pytest.raises(SigningError):
        keys.passphrase_from_env({"ARCHIVER_KEY_PASSPHRASE": ""})
    with pytest.raises(SigningError, match="cannot read passphrase file"):
        keys.passphrase_from_env({"ARCHIVER_KEY_PASSPHRASE_FILE": str(tmp_path / "nope")})


# ---------------------------------------------------------------- rotation


def test_rotation_keeps_old_signatures_valid(tmp_path: Path) -> None:
    clock = FakeClock()
    ks = make_store(tmp_path, clock)
    old = ks.signer()
    old_wacz = ks.wacz_signer()
    data = b"manifest bytes"
    signed_at = clock.advance(hours=1)
    old_sig = old.sign(data)

    rotated_at = clock.advance(days=1)
    new_ids = ks.rotate()
    assert set(new_ids) == {ED25519, ECDSA_P384}
    new = ks.signer()
    assert new.key_id == new_ids[ED25519] != old.key_id
    assert ks.wacz_signer().key_id == new_ids[ECDSA_P384] != old_wacz.key_id

    ring = Keyring(tmp_path / "archive" / "keyring.json").load()
    assert len(ring.keys) == 4
    assert ring.key(old.key_id).valid_until == rotated_at
    assert ring.key(new.key_id).valid_from == rotated_at
    assert ring.current(ED25519).key_id == new.key_id

    # The old signature, dated before rotation, still verifies...
    ring.verify(old.key_id, data, old_sig, signed_at)
    # ...but the same key claiming a signature after rotation is refused.
    with pytest.raises(VerificationError, match="not valid at"):
        ring.verify(old.key_id, data, old_sig, rotated_at + timedelta(seconds=1))
    with pytest.raises(VerificationError):
        ring.verify(old.key_id, data, old_sig, rotated_at)  # the window is half-open
    later = clock.advance(minutes=5)
    new_sig = new.sign(data)
    ring.verify(new.key_id, data, new_sig, later)
    with pytest.raises(VerificationError, match="not valid at"):
        ring.verify(new.key_id, data, new_sig, signed_at)  # backdated
    with pytest.raises(VerificationError, match="bad signature"):
        ring.verify(new.key_id, data + b"!", new_sig, later)
    with pytest.raises(VerificationError, match="not in the keyring"):
        ring.verify("00" * 32, data, new_sig, later)

    # The old private key is gone from disk; its public half is kept (what export-public pins).
    keys = sorted(p.name for p in (tmp_path / "keys").iterdir() if not p.name.startswith("."))
    assert keys == ["ecdsa-p384.pem", "ed25519.pem", "previous-public.pem"]
    assert b"PRIVATE" not in (tmp_path / "keys" / "previous-public.pem").read_bytes()
    pem = (tmp_path / "keys" / "ed25519.pem").read_bytes()
    assert keyring.key_id_for(
        serialization.load_pem_private_key(pem, None).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ) == new.key_id


def test_rotation_by_another_process_is_noticed(tmp_path: Path) -> None:
    clock = FakeClock()
    daemon = make_store(tmp_path, clock)
    before = daemon.signer().key_id
    clock.advance(hours=1)
    new_ids = make_store(tmp_path, clock).rotate()
    assert daemon.signer().key_id == new_ids[ED25519] != before


def test_restored_retired_key_is_refused(tmp_path: Path) -> None:
    ks = make_store(tmp_path)
    ks.signer()
    saved = (tmp_path / "keys" / "ed25519.pem").read_bytes()
    ks.rotate()
    path = tmp_path / "keys" / "ed25519.pem"
    path.unlink()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, saved)
    os.close(fd)
    with pytest.raises(SigningError, match="retired"):
        make_store(tmp_path).signer()


def test_naive_clock_is_refused(tmp_path: Path) -> None:
    ks = KeyStore(
        tmp_path / "keys",
        keyring_path=tmp_path / "keyring.json",
        clock=lambda: datetime(2025, 1, 1),
    )
    with pytest.raises(SigningError, match="timezone"):
        ks.signer()


# ---------------------------------------------------------------- keyring


def test_keyring_format_and_export(tmp_path: Path) -> None:
    ks = make_store(tmp_path)
    s = ks.signer()
    doc = json.loads((tmp_path / "archive" / "keyring.json").read_text())
    (entry,) = [e for e in doc["keys"] if e["algorithm"] == ED25519]
    assert entry == {
        "key_id": s.key_id,
        "algorithm": "ed25519",
        "public_key": base64.b64encode(s.public_key_spki()).decode(),
        "valid_from": "2025-03-01T12:00:00.000000Z",
        "valid_until": None,
        "name": "archiver",
    }
    out = tmp_path / "public.pem"
    from archiver.provenance.pinning import export_public

    assert export_public(ks, out) == s.key_id
    exported = serialization.load_pem_public_key(out.read_bytes())
    assert (
        exported.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == s.public_key_spki()
    )


def test_tampered_keyring_is_rejected(tmp_path: Path) -> None:
    ks = make_store(tmp_path)
    ks.signer()
    path = tmp_path / "archive" / "keyring.json"
    doc = json.loads(path.read_text())
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc["keys"][0]["public_key"] = base64.b64encode(other).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(VerificationError, match="key id does not match"):
        Keyring(path).load()
    path.write_text("{not json")
    with pytest.raises(VerificationError):
        Keyring(path).load()
    with pytest.raises(SigningError):
        make_store(tmp_path).signer()


def test_signer_works_as_checkpoint_note_signer(tmp_path: Path) -> None:
    ks = make_store(tmp_path, key_name="archiver.example/log")
    s = ks.signer()
    body = notes.make_checkpoint("archiver.example/log", 1, bytes(32))
    note = notes.sign_note(body, s)
    rec = ks.keyring().key(s.key_id)
    verifier = notes.NoteVerifier.from_spki(rec.name, rec.public_key)
    assert notes.open_note(note, [verifier.vkey()]) == body


def test_libsodium_signs_the_very_bytes_openssl_signs_and_never_shows_the_key(tmp_path: Path, monkeypatch) -> None:
    """Signing goes through libsodium (less than half of OpenSSL's time, three
    signatures per capture), giving byte for byte OpenSSL's signatures
    (Ed25519 is deterministic); a libsodium that signed otherwise is caught
    at load and OpenSSL signs instead."""
    ks = make_store(tmp_path)
    s = ks.signer()
    assert s._sodium_key is not None  # pynacl is a dependency: the fast path is taken
    key = serialization.load_pem_private_key((tmp_path / "keys" / "ed25519.pem").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    for data in (b"", b"x", os.urandom(3000), "Bürgermeister: 50.000".encode()):
        assert s.sign(data) == key.sign(data)
        key.public_key().verify(s.sign(data), data)
    assert s._sodium_key.hex() not in repr(s) and "sodium" not in repr(s)

    real = signatures._sodium_sign
    monkeypatch.setattr(signatures, "_sodium_sign", lambda sk, data: bytes(64) if data == signatures._SELF_CHECK
                        else real(sk, data))
    other = make_store(tmp_path)  # a new store loads the key again and checks libsodium again
    slow = other.signer()
    assert slow._sodium_key is None and slow.sign(b"x") == key.sign(b"x")


def test_invalid_key_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SigningError):
        make_store(tmp_path, key_name="has space")
    with pytest.raises(SigningError):
        make_store(tmp_path, key_name="a+b")


# ---------------------------------------------------------------- WACZ


def _replayweb_verify(hash_string: str, signature_b64: str, public_key_b64: str) -> None:
    """What ReplayWeb.page does with WebCrypto, redone with cryptography:
    importKey("spki", P-384) and verify({ECDSA, SHA-256}) over
    TextEncoder().encode(hash), the signature being raw r||s."""
    key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP384R1)
    raw = base64.b64decode(signature_b64)
    assert len(raw) == 96
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    key.verify(der, hash_string.encode("utf-8"), ec.ECDSA(hashes.SHA256()))


def test_wacz_signature_verifies_like_replayweb(tmp_path: Path) -> None:
    w = make_store(tmp_path).wacz_signer()
    hash_string = "sha256:" + hashlib.sha256(b"datapackage.json bytes").hexdigest()
    sig = w.sign_wacz(hash_string)
    _replayweb_verify(hash_string, sig, w.public_key_b64)
    signatures.verify_wacz_signature(hash_string, sig, w.public_key_b64)
    assert base64.b64decode(w.public_key_b64) == w.public_key_spki()

    with pytest.raises(VerificationError):
        signatures.verify_wacz_signature(hash_string.replace("sha256:", "sha256:0"), sig, w.public_key_b64)
    raw = bytearray(base64.b64decode(sig))
    raw[5] ^= 1
    with pytest.raises(VerificationError):
        signatures.verify_wacz_signature(hash_string, base64.b64encode(bytes(raw)).decode(), w.public_key_b64)
    with pytest.raises(VerificationError):
        signatures.verify_wacz_signature(hash_string, "not base64!", w.public_key_b64)
    ed = make_store(tmp_path).signer()
    with pytest.raises(VerificationError, match="P-384"):
        signatures.verify_wacz_signature(hash_string, sig, base64.b64encode(ed.public_key_spki()).decode())
    with pytest.raises(SigningError):
        w.sign_wacz("sha256:\u00e9")


def test_wacz_key_verifies_through_keyring(tmp_path: Path) -> None:
    clock = FakeClock()
    ks = make_store(tmp_path, clock)
    w = ks.wacz_signer()
    sig = w.sign(b"sha256:00")
    ks.keyring().verify(w.key_id, b"sha256:00", sig, clock.advance(seconds=1))


# ---------------------------------------------------------------- secrets


def test_no_secret_material_in_logs(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase = b"very-secret-passphrase"
    clock = FakeClock()
    ks = make_store(tmp_path, clock, passphrase=passphrase)
    s = ks.signer()
    w = ks.wacz_signer()
    s.sign(b"x")
    w.sign_wacz("sha256:00")
    clock.advance(hours=1)
    ks.rotate()
    ks.signer().sign(b"y")
    with pytest.raises(SigningError) as info:
        make_store(tmp_path, passphrase=b"wrong").signer()

    secrets_seen: list[bytes] = [passphrase]
    for name in ("ed25519.pem", "ecdsa-p384.pem"):
        pem = (tmp_path / "keys" / name).read_bytes()
        key = serialization.load_pem_private_key(pem, password=passphrase)
        plain = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        secrets_seen += [pem, plain]
        secrets_seen += [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
        if isinstance(key, Ed25519PrivateKey):
            seed = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            secrets_seen.append(seed)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            secrets_seen.append(key.private_numbers().private_value.to_bytes(48, "big"))

    assert caplog.records, "expected creation/rotation to be logged"
    text = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [caplog.text, str(info.value), repr(ks), repr(ks.signer()), repr(ks.wacz_signer())]
    )
    assert "PRIVATE KEY" not in text
    for secret in secrets_seen:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form.decode("latin-1") not in text
