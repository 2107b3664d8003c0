"""Template helpers: how times, figures and links read on a page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode


def figure_line(f: dict[str, Any]) -> str:
    noun = f" {f['noun']}" if f.get("noun") else ""
    if f.get("before") is None:
        return f"added {f.get('after')}{noun}"
    if f.get("after") is None:
        return f"removed {f.get('before')}{noun}"
    return f"{f['before']} → {f['after']}{noun}"


def when(value: str | None) -> str:
    """``2026-11-29T02:46:37.059859Z`` -> ``2026-11-29 02:46:37 UTC``."""
    if not value:
        return "—"
    return value[:19].replace("T", " ") + " UTC"


def short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


def q(**params: Any) -> str:
    """A query string from the non-empty parameters."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def path_url(url: str) -> str:
    """A URL as it goes into a path (Memento's /timegate/<URL>): reserved characters kept."""
    return quote(url, safe=":/?&=%#@!$'()*+,;~")


FILTERS = {"figure_line": figure_line, "when": when, "short": short, "path_url": path_url}
GLOBALS = {"q": q}
