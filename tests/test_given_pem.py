"""The PEM files an operator names -- ``--public-key`` (verify, show, serve,
verify --wacz), ``keys keep-rotated`` -- are read through one bounded reader
(``pinning.read_given``): at most 64 KiB, a regular file; anything else is
one line and a non-zero exit, never a hang or a whole file read into memory.
A symlink is followed: the operator names the path (keys/ files, which
someone else could plant, are refused as symlinks elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from conftest import CLI

MAX_PEM_BYTES = 64 * 1024


def exported(cli: CLI, tmp_path: Path) -> Path:
    pem = tmp_path / "archive-key.pem"
    assert cli("keys", "export-public", str(pem)).code == 0
    return pem


def one_line_refusal(code: int, err: str, says: str) -> None:
    assert code == 2, err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_verify_refuses_a_1_mib_public_key_file(cli: CLI, tmp_path: Path) -> None:
    """A genuine key followed by a MiB of padding: before the bound it was
    read whole and accepted."""
    big = tmp_path / "big.pem"
    big.write_bytes(exported(cli, tmp_path).read_bytes() + b"\n" * (1 << 20))
    r = cli.process("verify", "--public-key", str(big), timeout=60)
    one_line_refusal(r.code, r.err, f"over {MAX_PEM_BYTES} bytes")


def test_verify_refuses_a_fifo_instead_of_waiting_on_it(cli: CLI, tmp_path: Path) -> None:
    """Opening a FIFO nobody writes blocked verify for ever."""
    exported(cli, tmp_path)
    fifo = tmp_path / "key.pem"
    os.mkfifo(fifo)
    r = cli.process("verify", "--public-key", str(fifo), timeout=60)
    one_line_refusal(r.code, r.err, "not a regular file")


def test_verify_follows_a_symlink_the_operator_names(cli: CLI, tmp_path: Path) -> None:
    link = tmp_path / "link.pem"
    link.symlink_to(exported(cli, tmp_path))
    r = cli.process("verify", "--public-key", str(link), timeout=60)
    assert r.code == 0 and r.out.startswith("OK"), r.out + r.err


def test_verify_names_a_missing_file_in_one_line(cli: CLI, tmp_path: Path) -> None:
    exported(cli, tmp_path)
    r = cli("verify", "--public-key", str(tmp_path / "absent.pem"))
    one_line_refusal(r.code, r.err, "cannot read public key file")


WHERE: dict[str, Callable[[Path, Path], list[str]]] = {
    "show": lambda pem, _: ["show", "http://127.0.0.1:9/", "--public-key", str(pem)],
    "verify --wacz": lambda pem, wacz: ["verify", "--wacz", str(wacz), "--public-key", str(pem)],
    "keys keep-rotated": lambda pem, _: ["keys", "keep-rotated", str(pem)],
}


@pytest.mark.parametrize("command", sorted(WHERE))
def test_every_command_bounds_the_file_it_is_given(cli: CLI, tmp_path: Path, command: str) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(exported(cli, tmp_path).read_bytes() + b"\n" * (1 << 20))
    wacz = tmp_path / "some.wacz"
    wacz.write_bytes(b"not read: the key file is refused first")
    r = cli(*WHERE[command](big, wacz))
    one_line_refusal(r.code, r.err, f"over {MAX_PEM_BYTES} bytes")
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    r = cli(*WHERE[command](fifo, wacz))
    one_line_refusal(r.code, r.err, "not a regular file")


def test_one_pem_parser_strict_for_archivers_files_lenient_for_given_ones(cli: CLI, tmp_path: Path) -> None:
    """``publickeys.pem_ders``: a file archiver wrote holds blocks only (else
    None: read with OpenSSL instead); a file an operator gives may carry text
    around them. Either way a block that does not decode is None."""
    from archiver.provenance.publickeys import pem_ders

    key = exported(cli, tmp_path).read_bytes()
    der = pem_ders(key, "PUBLIC KEY")
    assert der is not None and len(der) == 1
    noted = b"# the archive's key, exported 2026-11-30\n" + key + key.replace(b"\n", b"\r\n") + b"thanks\n"
    assert pem_ders(noted, "PUBLIC KEY") is None
    assert pem_ders(noted, "PUBLIC KEY", strict=False) == der * 2
    broken = key.replace(b"MCow", b"M!ow")
    assert pem_ders(broken, "PUBLIC KEY") is None and pem_ders(broken, "PUBLIC KEY", strict=False) is None
    assert pem_ders(b"", "PUBLIC KEY") == [] and pem_ders(b"hello", "PUBLIC KEY", strict=False) == []
