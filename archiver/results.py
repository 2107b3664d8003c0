"""What a snapshot command returns, one URL at a time (the CLI and API print these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store.index import SnapshotRow


@dataclass(frozen=True)
class SnapshotResult:
    """What ``archiver snapshot --json`` prints for one URL."""

    row: SnapshotRow
    response_headers: dict[str, str] = field(default_factory=dict)  # final hop, lower-case names
    requisites: dict[str, Any] | None = None  # the manifest's requisite counts; None when not fetched

    def to_json(self) -> dict[str, Any]:
        r = self.row
        diff = r.diff or {}
        return {
            "id": r.id,
            "url": r.url,
            "final_url": r.final_url,
            "captured_at": r.captured_at,
            "status": r.status,
            "payload_sha256": r.payload_sha256,
            "warc_file": r.warc_file,
            "warc_offset": r.warc_offset,
            "significance": r.significance,
            "revisit": r.revisit,
            "log_index": r.log_index,
            "figures": diff.get("figures", []),
            **({"requisites": self.requisites} if self.requisites is not None else {}),
        }


@dataclass(frozen=True)
class SnapshotFailure:
    url: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "error": self.error}
