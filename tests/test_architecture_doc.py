"""docs/architecture.md matches the tree: every package and module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

# Packages the map announces before they land; each names the issue that brings it.
ANNOUNCED = {"archiver/web/": "issue 13", "cli/serve.py": "issue 13"}


def _named_paths(text: str) -> set[str]:
    return set(re.findall(r"`((?:archiver|store)/[\w/]*?(?:/|\.py))`", text)) | {
        f"archiver/{m}" for m in re.findall(r"`((?:capture|changes|provenance|audit|daemon|web|cli)/[\w/]*?(?:/|\.py))`", text)
    }


def test_every_path_the_architecture_names_exists() -> None:
    text = DOC.read_text("utf-8")
    named = _named_paths(text)
    assert len(named) > 15, named  # the doc really names the tree
    missing = sorted(p for p in named if not (ROOT / p).exists() and not any(p.endswith(a) for a in ANNOUNCED))
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_package_is_on_the_map() -> None:
    text = DOC.read_text("utf-8")
    packages = sorted(
        p.parent.relative_to(ROOT).as_posix() + "/" for p in (ROOT / "archiver").glob("*/__init__.py")
    )
    assert packages, "no subpackages found"
    absent = [p for p in packages if f"`{p}`" not in text]
    assert absent == [], f"packages missing from docs/architecture.md: {absent}"


def test_modules_in_the_table_exist() -> None:
    text = DOC.read_text("utf-8")
    checked = 0
    for package, owns in re.findall(r"^\| `archiver/(\w+)/` \| (.*?) \|", text, re.M):
        for module in re.findall(r"`([a-z_0-9]+)`", owns):
            assert (ROOT / "archiver" / package / f"{module}.py").exists(), f"archiver/{package}/{module}.py"
            checked += 1
    assert checked > 25, checked
