"""What an audit reports: one shape for every check (archive or WACZ), as
the verify contract defines it: ``{snapshot, kind, detail}``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DIFF_MISMATCH = "diff-mismatch"
"""A snapshot whose index row stores a diff (the figures listings show) that
does not hash to the ``diff_sha256`` its signed manifest states: the index
was written after the capture. Readers refuse the snapshot as they refuse
any row that differs from its manifest."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong; ``snapshot`` is None for file- or package-level problems."""

    snapshot: str | None
    kind: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "kind": self.kind, "detail": self.detail}


@dataclass
class Findings:
    """The problems an audit collected; ``ok`` when there are none."""

    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, snapshot: str | None, kind: str, detail: str) -> None:
        self.problems.append(Problem(snapshot, kind, detail))

    def problems_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.problems]
