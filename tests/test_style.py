"""Import order stays sorted over the whole tree (ruff's isort rules; settings
in pyproject.toml), so merges of concurrent work never fight over it; and the
product's code imports nothing it does not use (what a module imports is what
it depends on: the layering test reads it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ["archiver", "store", "tests", "bench"]


def ruff_imports(*paths: str | Path, rule: str = "I") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", rule, *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_imports_are_sorted() -> None:
    run = ruff_imports(*TREES)
    assert run.returncode == 0, "run `ruff check --select I --fix archiver store tests bench`\n" + run.stdout[-4000:] + run.stderr[-2000:]


def test_the_product_imports_nothing_it_does_not_use() -> None:
    run = ruff_imports("archiver", "store", rule="F401")
    assert run.returncode == 0, "run `ruff check --select F401 --fix archiver store`\n" + run.stdout[-4000:] + run.stderr[-2000:]


def test_the_check_catches_an_unused_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    run = ruff_imports("--config", ROOT / "pyproject.toml", bad, rule="F401")
    assert run.returncode == 1 and "F401" in run.stdout, run.stdout + run.stderr


def test_the_check_catches_an_unsorted_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nimport os\n\nfrom store import warc\nimport archiver\n")
    run = ruff_imports("--config", ROOT / "pyproject.toml", bad)
    assert run.returncode == 1 and "I001" in run.stdout, run.stdout + run.stderr
