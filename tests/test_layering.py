"""The house rules, enforced: which package may import which.

DESIGN.md's layering (store never imports archiver; changes and provenance
never reach the daemon, the web layer or the CLI; nothing imports the CLI)
is checked over the real tree, and the checker itself is tested on a tree
that breaks each rule, so a rule that silently stopped matching would fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package prefix -> module prefixes it must never import
RULES: dict[str, tuple[str, ...]] = {
    "store": ("archiver",),
    "archiver.capture": ("archiver.changes", "archiver.provenance", "archiver.audit", "archiver.daemon",
                         "archiver.web", "archiver.cli", "archiver.archive"),
    "archiver.changes": ("archiver.capture", "archiver.provenance", "archiver.audit", "archiver.daemon",
                         "archiver.web", "archiver.cli", "archiver.archive"),
    "archiver.provenance": ("archiver.changes", "archiver.audit", "archiver.daemon", "archiver.web",
                            "archiver.cli", "archiver.archive"),
    "archiver.audit": ("archiver.daemon", "archiver.web", "archiver.cli"),
    "archiver.daemon": ("archiver.web", "archiver.cli"),
    "archiver.web": ("archiver.cli",),
    "archiver": ("archiver.cli",),  # nothing imports the CLI ...
}
ALLOWED_CLI_IMPORTERS = ("archiver.cli", "archiver.__main__")  # ... but itself and `python -m archiver`


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_statements(path: Path, module: str) -> list[tuple[int, list[str]]]:
    """Each import statement's line and the modules it names, relative imports resolved."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from archiver import cli` names the module archiver.cli
            found.append((node.lineno, [base] + [f"{base}.{alias.name}" for alias in node.names]))
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _broken_rule(module: str, targets: list[str]) -> str | None:
    for owner, forbidden in RULES.items():
        if not _within(module, owner):
            continue
        if owner == "archiver" and any(_within(module, a) for a in ALLOWED_CLI_IMPORTERS):
            continue
        for bad in forbidden:
            for target in targets:
                if _within(target, bad):
                    return f"{module} imports {target} ({owner} must not import {bad})"
    return None


def violations(root: Path) -> list[str]:
    """One line per import statement that breaks a rule."""
    out = []
    for top in ("archiver", "store"):
        for path in sorted((root / top).rglob("*.py")):
            module = module_name(path, root)
            for lineno, targets in import_statements(path, module):
                broken = _broken_rule(module, targets)
                if broken:
                    out.append(f"{path.relative_to(root)}:{lineno}: {broken}")
    return out


def test_the_tree_keeps_the_layering() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("where", "source", "rule"),
    [
        ("store/x.py", "from archiver.archive import Archive\n", "store must not import archiver"),
        ("archiver/changes/y.py", "import archiver.daemon.scheduler\n", "archiver.changes must not import archiver.daemon"),
        ("archiver/provenance/z.py", "from archiver import cli\n", "must not import archiver.cli"),
        ("archiver/audit/w.py", "from ..cli.main import main\n", "must not import archiver.cli"),
        ("archiver/daemon/v.py", "from archiver.web import app\n", "archiver.daemon must not import archiver.web"),
        ("archiver/capture/u.py", "if True:\n    from archiver.provenance.keys import KeyStore\n", "archiver.capture must not import archiver.provenance"),
    ],
)
def test_the_checker_catches_a_forbidden_import(tmp_path: Path, where: str, source: str, rule: str) -> None:
    for package in ("archiver", "store", "archiver/changes", "archiver/provenance", "archiver/audit",
                    "archiver/daemon", "archiver/capture", "archiver/cli"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "archiver/cli/main.py").write_text("from archiver.archive import Archive\n")  # the CLI may import anything
    (tmp_path / where).write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and rule in found[0], found


def test_the_cli_and_main_may_import_the_cli(tmp_path: Path) -> None:
    for package in ("archiver", "archiver/cli", "store"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
    (tmp_path / "archiver/__main__.py").write_text("from archiver.cli import entry\n")
    (tmp_path / "archiver/cli/__init__.py").write_text("from archiver.cli.main import entry\n")
    assert violations(tmp_path) == []
