"""What an audit reports: one shape for every check (archive or WACZ), as
the verify contract defines it: ``{snapshot, kind, detail}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong; ``snapshot`` is None for file- or package-level problems."""

    snapshot: str | None
    kind: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "kind": self.kind, "detail": self.detail}
