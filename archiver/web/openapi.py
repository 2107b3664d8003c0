"""The OpenAPI 3.1 document of ``/api/v1/`` (the tests validate real
responses against it). Shapes may gain keys, never rename, so objects allow
additional properties."""

from __future__ import annotations

from typing import Any

from archiver import __version__

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_NUM = {"type": ["number", "null"]}
_SIG = {"type": "string", "enum": ["first", "none", "cosmetic", "substantive", "unverified"]}  # unverified: a listing's snapshot that does not verify


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _STR, "detail": _STR}),
    "Figure": _obj({"before": _NSTR, "after": _NSTR, "before_value": _NUM, "after_value": _NUM, "context": _STR,
                    "where": {"type": "array", "items": {"type": "string", "enum": ["headline", "lead", "body"]}},
                    "count": _INT},
                   ["before", "after", "before_value", "after_value"]),
    "Snapshot": _obj({
        "id": _STR, "url": _STR, "final_url": _STR, "captured_at": _STR, "status": _INT,
        "payload_sha256": _STR, "warc_file": _STR, "warc_offset": _INT, "significance": _SIG,
        "revisit": {"type": "boolean"}, "log_index": _NINT, "figures": {"type": "array", "items": _ref("Figure")},
        "verified": {"type": "boolean"},  # in /changes listings
    }, ["id", "url", "final_url", "captured_at", "status", "payload_sha256", "warc_file", "warc_offset",
        "significance", "revisit", "log_index", "figures"]),
    "HistoryItem": _obj({
        "id": _STR, "captured_at": _STR, "status": _INT, "payload_sha256": _STR, "significance": _SIG,
        "revisit": {"type": "boolean"}, "figures": {"type": "array", "items": _ref("Figure")},
        "verified": {"type": "boolean"}, "problem": _STR,
    }, ["id", "captured_at", "status", "payload_sha256", "significance", "revisit", "figures", "verified"]),
    "Change": _obj({"op": _STR, "before": _NSTR, "after": _NSTR}, ["op", "before", "after"]),
    "Diff": _obj({
        "from": _STR, "to": _STR, "url": _STR,
        "significance": {"type": "string", "enum": ["none", "cosmetic", "substantive"]},
        "figures": {"type": "array", "items": _ref("Figure")}, "changes": {"type": "array", "items": _ref("Change")},
    }),
    "Source": _obj({
        "url": _STR, "kind": _STR, "every": _STR, "notify": _NSTR, "language": _NSTR, "next_due": _NSTR,
        "last_capture_at": _NSTR, "last_change_at": _NSTR, "last_status": _NINT, "last_error": _NSTR,
        "failures": _INT, "active": {"type": "boolean"},
    }),
    "Problem": _obj({"snapshot": _NSTR, "kind": _STR, "detail": _STR}),
    "VerifyReport": _obj({
        "ok": {"type": "boolean"}, "checked": _INT, "problems": {"type": "array", "items": _ref("Problem")},
    }),
}
SCHEMAS["SnapshotWithManifest"] = {
    "allOf": [_ref("Snapshot"), _obj({"manifest": {"type": ["object", "null"]},
                                      "extraction": {"type": ["object", "null"]}})]  # {method, notes}
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {str(code): _json(_ref("Error"), text) for code, text in (
    (400, "Bad request"), (404, "Not found"), (413, "Request too large"), (414, "Query too long"),
)}
_WRITE_ERRORS = {**_ERRORS, **{str(code): _json(_ref("Error"), text) for code, text in (
    (401, "No or unknown token"), (403, "Writes disabled or read-only token"), (422, "Invalid input or capture failed"),
)}}


def _param(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string"}, "description": description}


_URL = _param("url", "the page URL as captured", True)
_BODY_URL = {"required": True, "content": {"application/json": {"schema": _obj({"url": _STR}, ["url"])}}}


def document(base: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "archiver API", "version": __version__,
                 "description": "The archiver command line's JSON shapes over HTTP. Writes need --allow-writes and a "
                                "token of scope 'write' (archiver tokens create NAME --scope write)."},
        "servers": [{"url": f"{base}/api/v1"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/snapshot": {
                "get": {"summary": "One snapshot with its manifest (archiver show --json)",
                        "parameters": [_URL, _param("at", "snapshot id or unique prefix (default: newest)")],
                        "responses": {"200": _json(_ref("SnapshotWithManifest")), **_ERRORS}},
                "post": {"summary": "Capture a URL now (archiver snapshot --json)", "security": [{"bearer": []}],
                         "requestBody": _BODY_URL,
                         "responses": {"201": _json(_ref("Snapshot"), "Captured"), **_WRITE_ERRORS}},
            },
            "/history": {"get": {"summary": "Every snapshot of a URL, oldest first (archiver history --json)",
                                 "parameters": [_URL],
                                 "responses": {"200": _json({"type": "array", "items": _ref("HistoryItem")}), **_ERRORS}}},
            "/diff": {"get": {"summary": "What changed between two snapshots (archiver diff --json)",
                              "parameters": [_URL, _param("from", "snapshot id"), _param("to", "snapshot id")],
                              "responses": {"200": _json(_ref("Diff")), **_ERRORS}}},
            "/sources": {"get": {"summary": "The watched sources (archiver sources --json)",
                                 "responses": {"200": _json({"type": "array", "items": _ref("Source")})}}},
            "/verify": {"get": {"summary": "Run the archive audit (archiver verify --json)",
                                "responses": {"200": _json(_ref("VerifyReport")),
                                              "409": _json(_ref("Error"), "An audit is already running")}}},
            "/changes": {"get": {"summary": "Newest changes across all URLs",
                                 "parameters": [_param("significance", "substantive (default), cosmetic or all"),
                                                _param("source", "URL substring"), _param("page", "1-based page")],
                                 "responses": {"200": _json({"type": "array", "items": _ref("Snapshot")}), **_ERRORS}}},
            "/watch": {"post": {"summary": "Watch a URL (archiver watch)", "security": [{"bearer": []}],
                                "requestBody": {"required": True, "content": {"application/json": {"schema": _obj(
                                    {"url": _STR, "every": _STR, "notify": _STR, "language": _STR}, ["url"])}}},
                                "responses": {"200": _json(_ref("Source"), "Updated"),
                                              "201": _json(_ref("Source"), "Watching"), **_WRITE_ERRORS}}},
            "/unwatch": {"post": {"summary": "Stop watching a URL (archiver unwatch)", "security": [{"bearer": []}],
                                  "requestBody": _BODY_URL,
                                  "responses": {"200": _json(_obj({"url": _STR, "unwatched": {"type": "boolean"}})),
                                                **_WRITE_ERRORS}}},
        },
    }
