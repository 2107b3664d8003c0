"""PROV-JSON view of real manifests: round-trips through prov's own
deserializer and carries the capture times, the URL and the hash chain."""

from __future__ import annotations

import json
from datetime import datetime

from prov.model import ProvDocument

from archiver.canonical import canonical_json, sha256_hex
from archiver.provenance.prov import to_prov, to_prov_document
from conftest import article_html, signed_manifests


def manifests(cli, url: str) -> list[dict]:
    return signed_manifests(cli.data_dir, url)


def without_blank_ids(doc: dict) -> dict:
    """Relations get fresh blank-node ids (_:idN) on every serialisation."""
    return {
        kind: sorted(json.dumps(v, sort_keys=True) for v in items.values())
        if all(k.startswith("_:") for k in items) else items
        for kind, items in doc.items()
    }


def test_round_trip_and_content(site, cli):
    url = site.page("/bericht?id=7", article_html("Bericht", ["Es waren 5000 Menschen."]))
    assert cli("snapshot", url).code == 0
    site.page("/bericht", article_html("Bericht", ["Es waren 50000 Menschen."]))
    assert cli("snapshot", url).code == 0
    first, second = manifests(cli, url)

    doc = to_prov(second)
    text = json.dumps(doc)
    back = ProvDocument.deserialize(content=text, format="json")
    assert back == to_prov_document(second)
    assert without_blank_ids(json.loads(back.serialize(format="json"))) == without_blank_ids(doc)

    (capture,) = doc["activity"].values()
    assert datetime.fromisoformat(capture["prov:startTime"]) == datetime.fromisoformat(second["fetch_started_at"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(capture["prov:endTime"]) == datetime.fromisoformat(second["fetch_ended_at"].replace("Z", "+00:00"))
    assert url in text
    assert any(v.get("archiver:url") == url for v in doc["entity"].values())

    digest = sha256_hex(canonical_json(second))
    assert f"archiver:manifest/{digest}" in doc["entity"]
    records = [k for k, v in doc["entity"].items() if k.startswith("archiver:record/")]
    assert len(records) == len(second["records"])
    agents = doc["agent"]
    assert any(a["prov:type"]["$"] == "prov:SoftwareAgent" for a in agents.values())
    assert any(k.startswith("archiver:host/") for k in agents)
    assert len(doc["wasAssociatedWith"]) == 2 and doc["used"] and doc["wasGeneratedBy"]

    revisions = [d for d in doc["wasDerivedFrom"].values() if d.get("prov:type", {}).get("$") == "prov:Revision"]
    assert revisions == [
        {
            "prov:generatedEntity": f"archiver:manifest/{digest}",
            "prov:usedEntity": f"archiver:manifest/{sha256_hex(canonical_json(first))}",
            "prov:type": {"$": "prov:Revision", "type": "xsd:QName"},
        }
    ]
    # The first snapshot has no previous manifest, hence no revision.
    assert not [d for d in to_prov(first).get("wasDerivedFrom", {}).values() if "prov:type" in d]


def test_redirect_chain_urls_are_used(site, cli):
    target = site.page("/ziel", article_html("Ziel", ["Text."]))
    site.routes["/alt"] = lambda h: (
        h.send_response(301), h.send_header("Location", "/ziel"), h.send_header("Content-Length", "0"), h.end_headers()
    )
    url = site.url("/alt")
    assert cli("snapshot", url).code == 0
    (manifest,) = manifests(cli, url)
    doc = to_prov(manifest)
    used = {u["prov:entity"] for u in doc["used"].values()}
    assert len(used) == 2
    assert {v["archiver:url"] for v in doc["entity"].values() if "archiver:url" in v} == {url, target}
