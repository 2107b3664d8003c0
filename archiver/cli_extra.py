"""Commands beyond capture and reading: audit, export, keys, watching."""

from __future__ import annotations

import argparse
from typing import Any, Callable

COMMANDS: dict[str, Callable[..., int]] = {}
NO_ARCHIVE: dict[str, Callable[..., int]] = {}


def register(sub: Any) -> None:
    """Add the sub-commands defined here to the parser."""
