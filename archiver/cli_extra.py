"""Registry of the command modules beyond capture and reading.

Each module listed here defines ``register(sub)`` to add its sub-commands,
``COMMANDS`` (handlers that get the Archive) and ``NO_ARCHIVE`` (handlers
that get the settings and build what they need themselves).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

MODULES = ("archiver.cli_audit", "archiver.cli_daemon")

COMMANDS: dict[str, Callable[..., int]] = {}
NO_ARCHIVE: dict[str, Callable[..., int]] = {}


def _modules() -> list[Any]:
    found = []
    for name in MODULES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


def register(sub: Any) -> None:
    for module in _modules():
        module.register(sub)
        COMMANDS.update(getattr(module, "COMMANDS", {}))
        NO_ARCHIVE.update(getattr(module, "NO_ARCHIVE", {}))
