"""Archives written by earlier versions stay auditable.

tests/data/archive-0.1.0 was written by archiver 0.1.0 (see its README):
every later version must verify it, read its history and diffs, and verify
its WACZ export — evidence outlives the software that made it.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from archiver.cli import main
from conftest import auditors_pem

OLD = Path(__file__).parent / "data" / "archive-0.1.0"
URL = "http://127.0.0.1:44081/politik/nordallianz-verlegung"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def old_archive(tmp_path: Path) -> Path:
    dest = tmp_path / "archive"
    shutil.copytree(OLD, dest)
    return dest


def test_an_archive_written_by_0_1_0_verifies(old_archive: Path) -> None:
    code, out, err = run("--data-dir", str(old_archive), "verify", "--json")
    report = json.loads(out)
    assert code == 0, (out, err)
    assert report["ok"] is True and report["checked"] == 3


def test_its_history_and_figure_edit_read_back(old_archive: Path) -> None:
    code, out, err = run("--data-dir", str(old_archive), "history", URL, "--json")
    assert code == 1 and all("--public-key" in h["problem"] for h in json.loads(out)), err
    pin = ("--public-key", str(auditors_pem(old_archive)))
    code, out, _ = run("--data-dir", str(old_archive), "history", URL, "--json", *pin)
    assert code == 0
    assert [h["significance"] for h in json.loads(out)] == ["first", "none", "substantive"]
    code, out, _ = run("--data-dir", str(old_archive), "diff", URL, "--json", *pin)
    assert code == 0
    figures = json.loads(out)["figures"]
    assert any(f["before"] == "50.000" and f["after"] == "60.000" for f in figures), figures


def test_its_wacz_export_verifies_and_a_new_export_does_too(old_archive: Path) -> None:
    code, out, err = run("--data-dir", str(old_archive), "verify", "--wacz", str(old_archive / "demo.wacz"))
    assert code == 0, (out, err)
    new = old_archive / "new.wacz"
    code, out, err = run("--data-dir", str(old_archive), "export", URL, "--wacz", str(new),
                         "--public-key", str(auditors_pem(old_archive)))
    assert code == 0, (out, err)
    code, out, err = run("--data-dir", str(old_archive), "verify", "--wacz", str(new))
    assert code == 0, (out, err)


def test_a_tampered_copy_of_it_does_not_verify(old_archive: Path) -> None:
    import gzip

    warc = next((old_archive / "warcs").glob("*.warc.gz"))
    data = gzip.decompress(warc.read_bytes())
    assert b"60.000" in data
    warc.write_bytes(gzip.compress(data.replace(b"60.000", b"70.000")))
    code, out, _ = run("--data-dir", str(old_archive), "verify", "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False
