"""`archiver serve`'s JSON API, feeds, Memento and hostile input, against the
real server process over an archive built by the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import feedparser
import pytest
import requests
from openapi_schema_validator import OAS31Validator

from web_support import NewsSite, Server, build_archive, make_cli


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    news = NewsSite()
    cli = make_cli(tmp_path_factory.mktemp("web") / "archive")
    rows = build_archive(cli, news)
    cli("watch", news.url, "--every", "1h")
    write = cli("tokens", "create", "editor", "--scope", "write").out.strip()
    read = cli("tokens", "create", "reader").out.strip()
    rw = Server(cli, "--allow-writes")
    ro = Server(cli)
    yield {"cli": cli, "news": news, "rows": rows, "rw": rw, "ro": ro, "write": write, "read": read}
    rw.stop()
    ro.stop()
    news.close()


def get(env: Any, path: str, **kw: Any) -> requests.Response:
    return requests.get(env["ro"].url(path), timeout=30, **kw)


def raw_get(server: Server, target: bytes) -> tuple[int, bytes, dict[str, str]]:
    """A request line sent byte for byte over a socket (no client-side normalisation)."""
    parts = urlsplit(server.base)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + parts.netloc.encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), body, {k.lower(): v for k, v in headers.items()}


# -- the CLI's JSON, over HTTP ---------------------------------------------------
def test_endpoints_equal_the_cli(env: Any) -> None:
    cli, url, rows = env["cli"], env["news"].url, env["rows"]
    q = {"url": url}
    assert get(env, "/api/v1/history", params=q).json() == cli("history", url, "--json").json()
    assert get(env, "/api/v1/snapshot", params=q).json() == cli("show", url, "--json").json()
    first = rows[0]["id"]
    assert get(env, "/api/v1/snapshot", params={**q, "at": first[:12]}).json() == cli("show", url, "--at", first[:12], "--json").json()
    assert get(env, "/api/v1/diff", params=q).json() == cli("diff", url, "--json").json()
    assert (get(env, "/api/v1/diff", params={**q, "from": rows[0]["id"], "to": rows[1]["id"]}).json()
            == cli("diff", url, "--from", rows[0]["id"], "--to", rows[1]["id"], "--json").json())
    assert get(env, "/api/v1/sources").json() == cli("sources", "--json").json()
    api_verify = get(env, "/api/v1/verify").json()
    assert api_verify == cli("verify", "--json").json()
    assert api_verify["ok"] is True and api_verify["checked"] == 3


def test_changes_lists_the_edit_newest_first(env: Any) -> None:
    items = get(env, "/api/v1/changes").json()
    assert [i["id"] for i in items] == [env["rows"][2]["id"]]
    assert items[0]["figures"][0]["before"] == "50.000" and items[0]["figures"][0]["after"] == "60.000"
    assert get(env, "/api/v1/changes", params={"significance": "all", "source": "nordallianz"}).json()[0]["id"] == env["rows"][2]["id"]
    assert get(env, "/api/v1/changes", params={"source": "no-such-site"}).json() == []


def _validator(doc: dict[str, Any], path: str, method: str, status: str) -> OAS31Validator:
    schema = doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    return OAS31Validator({**schema, "components": doc["components"]})


def test_openapi_describes_the_real_responses(env: Any) -> None:
    doc = get(env, "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    url = env["news"].url
    for path, params in [("/history", {"url": url}), ("/snapshot", {"url": url}), ("/diff", {"url": url}),
                         ("/sources", {}), ("/verify", {}), ("/changes", {"significance": "all"})]:
        resp = get(env, "/api/v1" + path, params=params)
        assert resp.status_code == 200
        errors = list(_validator(doc, path, "get", "200").iter_errors(resp.json()))
        assert not errors, (path, errors[:3])
    bad = get(env, "/api/v1/history", params={"url": "javascript:alert(1)"})
    assert not list(_validator(doc, "/history", "get", "400").iter_errors(bad.json()))
    # The validator is not a rubber stamp: a renamed key fails.
    broken = get(env, "/api/v1/history", params={"url": url}).json()
    broken[0]["captured"] = broken[0].pop("captured_at")
    assert list(_validator(doc, "/history", "get", "200").iter_errors(broken))


# -- writes --------------------------------------------------------------------
def post(env: Any, server: str, path: str, body: Any, token: str | None = None, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(env[server].url(path), json=body, headers=headers, timeout=60, **kw)


def test_writes_need_a_write_token(env: Any) -> None:
    url = env["news"].url
    r = post(env, "rw", "/api/v1/snapshot", {"url": url})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized" and "Bearer" in r.headers["WWW-Authenticate"]
    assert post(env, "rw", "/api/v1/snapshot", {"url": url}, "arc_not-a-real-token").status_code == 401
    r = post(env, "rw", "/api/v1/snapshot", {"url": url}, env["read"])
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = post(env, "ro", "/api/v1/watch", {"url": url}, env["write"])
    assert r.status_code == 403 and "--allow-writes" in r.json()["detail"]
    # Whoever can write the data directory (not keys/) cannot add a token of their own there.
    forged = "arc_" + "x" * 43
    planted = env["cli"].data_dir / "tokens.json"
    planted.write_text(json.dumps({"tokens": [{"name": "intruder", "scope": "write", "created_at": "2026-01-01",
                                               "sha256": hashlib.sha256(forged.encode()).hexdigest()}]}))
    try:
        assert post(env, "rw", "/api/v1/watch", {"url": url}, forged).status_code == 401
        assert "intruder" not in env["cli"]("tokens", "list").out
    finally:
        planted.unlink()


def test_write_token_snapshots_watches_and_unwatches(env: Any) -> None:
    news, write = env["news"], env["write"]
    other = news.site.page("/politik/zweiter-artikel", "<html lang=de><body><article><p>Heute 3 Minister.</p></article></body></html>")
    r = post(env, "rw", "/api/v1/snapshot", {"url": other}, write)
    assert r.status_code == 201, r.text
    assert r.json()["url"] == other and r.json()["significance"] == "first"
    assert get(env, "/api/v1/history", params={"url": other}).json()[0]["id"] == r.json()["id"]
    r = post(env, "rw", "/api/v1/watch", {"url": other, "every": "2h"}, write)
    assert r.status_code == 201 and r.json()["every"] == "2h"
    assert post(env, "rw", "/api/v1/watch", {"url": other, "every": "3h"}, write).status_code == 200
    assert post(env, "rw", "/api/v1/watch", {"url": other, "every": "often"}, write).status_code == 422
    assert post(env, "rw", "/api/v1/unwatch", {"url": other}, write).json() == {"url": other, "unwatched": True}
    assert post(env, "rw", "/api/v1/unwatch", {"url": "http://127.0.0.1:9/never"}, write).status_code == 404


def test_write_input_errors_are_json(env: Any) -> None:
    write = env["write"]
    url = env["rw"].url("/api/v1/snapshot")
    auth = {"Authorization": f"Bearer {write}", "Content-Type": "application/json"}
    cases = [
        (b"{not json", 400), (b"[1, 2]", 422), (b'{"url": 5}', 422), (b"{}", 422),
        (b'{"url": "javascript:alert(1)"}', 400), (b'{"url": "file:///etc/passwd"}', 400),
        (b"\xff\xfe", 400), (b'{"url": "' + b"a" * 70_000 + b'"}', 413),
    ]
    for body, status in cases:
        r = requests.post(url, data=body, headers=auth, timeout=30)
        assert r.status_code == status, (body[:30], r.status_code, r.text[:200])
        assert set(r.json()) == {"error", "detail"}


def test_form_posts_need_csrf_and_a_token(env: Any) -> None:
    session = requests.Session()
    page = session.get(env["rw"].url("/sources"), timeout=30)
    assert page.status_code == 200
    csrf = session.cookies.get("archiver_csrf")
    assert csrf and f'value="{csrf}"' in page.text
    url = env["news"].site.url("/politik/form-watch")
    target = env["rw"].url("/actions/watch")
    # No CSRF token: refused, even with a valid write token.
    r = requests.post(target, data={"url": url, "token": env["write"]}, allow_redirects=False, timeout=30)
    assert r.status_code == 403 and "CSRF" in r.text
    # A CSRF field that does not match the cookie: refused.
    r = session.post(target, data={"url": url, "token": env["write"], "csrf": "x" * 43}, allow_redirects=False, timeout=30)
    assert r.status_code == 403
    # Another origin: refused.
    r = session.post(target, data={"url": url, "token": env["write"], "csrf": csrf}, allow_redirects=False,
                     headers={"Origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403
    # CSRF right, read token: 403; write token: done.
    r = session.post(target, data={"url": url, "token": env["read"], "csrf": csrf}, allow_redirects=False, timeout=30)
    assert r.status_code == 403
    r = session.post(target, data={"url": url, "token": env["write"], "csrf": csrf}, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert any(s["url"] == url for s in get(env, "/api/v1/sources").json())


# -- hostile input -----------------------------------------------------------------
@pytest.mark.parametrize("target, statuses", [
    (b"/snapshot/../../../../etc/passwd", {400, 404}),
    (b"/snapshot/%2e%2e%2f%2e%2e%2fetc%2fpasswd", {400, 404}),
    (b"/snapshot/ZZZZ", {400}),
    (b"/snapshot/01m8m7zk9409cyqnhtfe4pxh7x", {404}),
    (b"/archived/01m8m7zk9409cyqnhtfe4pxh7x/http/../../../etc/passwd", {400, 404}),
    (b"/api/v1/history?url=..%2F..%2Fetc%2Fpasswd", {400}),
    (b"/api/v1/history?url=javascript%3Aalert(document.cookie)", {400}),
    (b"/timeline?url=javascript%3Aalert(1)", {400}),
    (b"/api/v1/history?url=http%3A%2F%2Fexample.org%2F%FF%FE", {400}),
    (b"/api/v1/history?url=%00", {400}),
    (b"/api/v1/snapshot?url=http%3A%2F%2Fa.example%2F&at=%27%20OR%201%3D1", {400}),
    (b"/api/v1/changes?page=-1", {400}),
    (b"/api/v1/changes?significance=%3Cscript%3E", {400}),
    (b"/compare?url=http%3A%2F%2Fa.example%2F&from=ZZ%21", {400}),
    (b"/log/tile/0/../../index.sqlite3", {400}),
    (b"/log/tile/0/x001", {400}),
    (b"/log/tile/99/000", {400}),
    (b"/log/tile/0/000.p/256", {400}),
    (b"/timegate/javascript:alert(1)", {400}),
    (b"/api/v1/no-such-endpoint", {404}),
    (b"/api/v1/history?url=" + b"a" * 1_000_000, {400, 413, 414, 431}),
    (b"/%FF%FE/\xff", {400, 404}),
])
def test_hostile_requests_get_a_clean_4xx(env: Any, target: bytes, statuses: set[int]) -> None:
    status, body, headers = raw_get(env["ro"], target)
    assert status in statuses, (target[:80], status, body[:200])
    assert b"Traceback" not in body
    if target.startswith((b"/api/", b"/log/", b"/timegate/")) and status != 400 or target.startswith(b"/api/v1/history?url=j"):
        if len(target) < 10_000:
            assert set(json.loads(body)) == {"error", "detail"}


def test_pages_escape_what_they_show(env: Any) -> None:
    evil = "http://127.0.0.1:9/<script>alert(1)</script>"
    r = get(env, "/timeline", params={"url": evil})
    assert r.status_code == 404
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;" in r.text
    r = get(env, "/sources", params={"q": '"><img src=x onerror=alert(1)>'})
    assert "<img src=x" not in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


# -- archived content ----------------------------------------------------------------
def test_archived_content_is_sandboxed_and_a_memento(env: Any) -> None:
    newest = env["rows"][2]
    page = get(env, f"/snapshot/{newest['id']}/view")
    assert 'sandbox=""' in page.text
    src = page.text.split('<iframe class="archived" src="', 1)[1].split('"', 1)[0]
    r = get(env, src)
    assert r.status_code == 200 and "60.000" in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp.split(";")[-1] and "script-src" not in csp
    assert r.headers["Memento-Datetime"].endswith("GMT")
    assert 'rel="original"' in r.headers["Link"] and 'rel="timegate"' in r.headers["Link"]
    missing = get(env, src.rsplit("/", 1)[0] + "/pixel-relative.png")
    assert missing.status_code == 404 and "sandbox" in missing.headers["Content-Security-Policy"]


# -- feeds -------------------------------------------------------------------------
def test_atom_feeds_parse_and_link_to_compare(env: Any) -> None:
    url = env["news"].url
    for path, params in [("/feeds/changes.atom", {}), ("/feeds/url.atom", {"url": url})]:
        r = get(env, path, params=params)
        assert r.headers["Content-Type"].startswith("application/atom+xml")
        feed = feedparser.parse(r.content)
        assert not feed.bozo, feed.bozo_exception
        assert feed.version == "atom10"
        entry = feed.entries[0]
        assert "50.000 → 60.000" in entry.title
        assert entry.link.startswith(env["ro"].url("/compare?"))
        page = requests.get(entry.link, timeout=30)
        assert page.status_code == 200 and "60.000" in page.text
    assert get(env, "/feeds/url.atom", params={"url": "http://127.0.0.1:9/unknown"}).status_code == 404


# -- Memento -----------------------------------------------------------------------
def test_timegate_redirects_to_the_nearest_memento(env: Any) -> None:
    url, rows = env["news"].url, env["rows"]
    gate = env["ro"].url("/timegate/" + url)
    r = requests.get(gate, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Vary"].lower() == "accept-datetime"
    assert f"/archived/{rows[2]['id']}/" in r.headers["Location"]
    assert f"<{url}>; rel=\"original\"" in r.headers["Link"]
    r = requests.get(gate, headers={"Accept-Datetime": "Thu, 01 Jan 1970 00:00:00 GMT"}, allow_redirects=False, timeout=30)
    assert f"/archived/{rows[0]['id']}/" in r.headers["Location"]
    followed = requests.get(r.headers["Location"], timeout=30)
    assert followed.status_code == 200 and "50.000" in followed.text
    r = requests.get(gate, headers={"Accept-Datetime": "yesterday-ish"}, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert requests.get(env["ro"].url("/timegate/http://127.0.0.1:9/none"), allow_redirects=False, timeout=30).status_code == 404
    encoded = env["ro"].url("/timegate/" + quote(url, safe=""))
    assert requests.get(encoded, allow_redirects=False, timeout=30).status_code == 302


def test_timemaps_list_every_memento(env: Any) -> None:
    url, rows = env["news"].url, env["rows"]
    r = get(env, "/timemap/link/" + url)
    assert r.headers["Content-Type"].startswith("application/link-format")
    links = [line.strip().rstrip(",") for line in r.text.strip().splitlines()]
    assert links[0] == f'<{url}>; rel="original"'
    mementos = [line for line in links if 'memento"' in line]
    assert len(mementos) == 3
    assert 'rel="first memento"' in mementos[0] and 'rel="last memento"' in mementos[-1]
    assert all('datetime="' in m and m.rstrip('"').endswith("GMT") for m in mementos)
    tm = get(env, "/timemap/json/" + url).json()
    assert tm["original_uri"] == url
    assert [m["id"] for m in tm["mementos"]["list"]] == [r["id"] for r in rows]
    assert tm["mementos"]["first"]["uri"].startswith(env["ro"].url("/archived/"))


# -- tokens and serve options ------------------------------------------------------------
def test_tokens_are_shown_once_and_stored_as_hashes(tmp_path: Path) -> None:
    cli = make_cli(tmp_path / "archive")
    r = cli("tokens", "create", "ci", "--scope", "write")
    assert r.code == 0
    token = r.out.strip()
    assert token.startswith("arc_") and len(token) > 40
    path = tmp_path / "archive" / "keys" / "tokens.json"  # beside the private key, out of a data-dir writer's reach
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = path.read_text()
    assert token not in stored and json.loads(stored)["tokens"][0]["scope"] == "write"
    listed = cli("tokens", "list").out
    assert "ci" in listed and token not in listed
    assert cli("tokens", "create", "ci").code == 2
    assert cli("tokens", "create", "bad name!").code == 2
    assert cli("tokens", "revoke", "ci").code == 0
    assert cli("tokens", "revoke", "ci").code == 1
    path.unlink()
    target = tmp_path / "elsewhere.json"
    target.write_text('{"tokens": []}')
    os.symlink(target, path)
    r = cli("tokens", "list")
    assert r.code == 1 and "symlink" in r.err


def test_tokens_kept_in_the_data_directory_by_an_older_version_move_once(tmp_path: Path) -> None:
    cli = make_cli(tmp_path / "archive")
    cli("tokens", "create", "old", "--scope", "write")
    keys = tmp_path / "archive" / "keys" / "tokens.json"
    legacy = tmp_path / "archive" / "tokens.json"
    os.replace(keys, legacy)  # where versions before kept it
    assert "old" in cli("tokens", "list").out
    assert keys.exists() and not legacy.exists()
    legacy.write_text('{"tokens": [{"name": "late", "scope": "write", "sha256": "00", "created_at": "x"}]}')
    assert "late" not in cli("tokens", "list").out and legacy.exists()  # never read once keys/ has the file


def test_serve_refuses_bad_binds_and_warns_on_open_ones(tmp_path: Path) -> None:
    cli = make_cli(tmp_path / "archive")
    r = cli("serve")
    assert r.code == 1 and "no archive" in r.err
    cli.data_dir.mkdir(parents=True)
    (cli.data_dir / "index.sqlite3").touch()
    assert cli("serve", "--bind", "localhost").code == 2
    assert cli("serve", "--bind", "127.0.0.1:99999").code == 2
    proc = cli.popen("serve", "--bind", "0.0.0.0:0")
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert "warning" in line and "no tokens" in line
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_compare_marks_cosmetic_changes_quieter_than_substantive(env: Any) -> None:
    news, write = env["news"], env["write"]
    path = "/politik/komma"
    versions = ["Der Rat tagte am Montag, und beschloss 300 Stellen.", "Der Rat tagte am Montag und beschloss 300 Stellen.",
                "Der Rat tagte am Montag und beschloss 350 Stellen."]
    ids = []
    for text in versions:
        url = news.site.page(path, f"<html lang=de><body><article><h1>Rat</h1><p>{text}</p></article></body></html>")
        r = post(env, "rw", "/api/v1/snapshot", {"url": url}, write)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    cosmetic = get(env, "/compare", params={"url": url, "from": ids[0], "to": ids[1]}).text
    assert re.search(r'<del class="[^"]*\bcosmetic">[^<]*,', cosmetic)
    assert 'class="sig sig-cosmetic"' in cosmetic and "substantive\">" not in cosmetic.split("<article", 1)[1]
    substantive = get(env, "/compare", params={"url": url, "from": ids[1], "to": ids[2]}).text
    assert re.search(r'<ins class="fig substantive">350</ins>', substantive)
    assert "<mark class=\"figure\">300 → 350 Stellen</mark>" in substantive
