"""Page requisites against a real loopback site: stylesheets with @import and
url(), srcset, lazy-load images, a font, an icon -- each captured once as
request+response records, revisits on re-capture, failures recorded in the
signed manifest without failing the snapshot, limits respected, verify and
the WACZ export covering them."""

from __future__ import annotations

import gzip
import time
import zipfile
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from archiver.capture.requisites import css_references, page_references, parse_srcset
from test_daemon import daemons  # noqa: F401 - a fixture
from tests.conftest import article_html, send, signed_manifests, warc_files

CSS = (
    '@import url("/static/base.css");\n'
    "/* url(/commented-out.png) is not fetched */\n"
    "body { background: url(bg.png) }\n"
    '@font-face { font-family: Serif; src: url("/fonts/serif.woff2") format("woff2") }\n'
)
BASE_CSS = "@import 'print.css';\nh1 { color: #900 }\n"
PRINT_CSS = ".logo { background-image: url('../img/a.png') }\n"  # already named by the page: fetched once

PAGE_HEAD = (
    '<link rel="stylesheet" href="/static/site.css">'
    '<link rel="icon" href="/favicon.png">'
    "<style>.hero { background: url('/img/hero.jpg') }</style>"
    '<script src="/app.js"></script>'
)
PAGE_BODY = (
    '<img src="/img/a.png" srcset="/img/a-1x.png 1x, /img/a-2x.png 2x">'
    '<img data-src="/img/lazy.jpg" data-srcset="/img/lazy-480.jpg 480w, /img/lazy-960.jpg 960w">'
    '<img data-lazy-src="/img/lazy2.jpg">'
    '<picture><source srcset="/img/pic.webp" type="image/webp"><img src="/img/pic.jpg"></picture>'
    '<img src="/img/missing.png">'
    '<img src="data:image/png;base64,AAAA">'
)
ASSETS = {
    "/static/site.css": (CSS, "text/css"),
    "/static/base.css": (BASE_CSS, "text/css"),
    "/static/print.css": (PRINT_CSS, "text/css"),
    "/static/bg.png": ("PNG-bg", "image/png"),
    "/fonts/serif.woff2": ("wOF2-font", "font/woff2"),
    "/favicon.png": ("PNG-icon", "image/png"),
    "/img/hero.jpg": ("JPG-hero", "image/jpeg"),
    "/img/a.png": ("PNG-a", "image/png"),
    "/img/a-1x.png": ("PNG-a1", "image/png"),
    "/img/a-2x.png": ("PNG-a2", "image/png"),
    "/img/lazy.jpg": ("JPG-lazy", "image/jpeg"),
    "/img/lazy-480.jpg": ("JPG-480", "image/jpeg"),
    "/img/lazy-960.jpg": ("JPG-960", "image/jpeg"),
    "/img/lazy2.jpg": ("JPG-lazy2", "image/jpeg"),
    "/img/pic.webp": ("WEBP-pic", "image/webp"),
    "/img/pic.jpg": ("JPG-pic", "image/jpeg"),
    "/app.js": ("alert(1)", "application/javascript"),
}
FETCHED = sorted(set(ASSETS) - {"/app.js"} | {"/img/missing.png"})


def styled_page(site, paragraphs=("Die Armee verlegt 50.000 Soldaten an die Grenze.",), head=PAGE_HEAD, body=PAGE_BODY,
                headers=None):
    for path, (content, ctype) in ASSETS.items():
        site.page(path, content, content_type=ctype)
    html = article_html("Truppen an der Grenze", list(paragraphs))
    html = html.replace("</head>", head + "</head>").replace("<footer>", body + "<footer>")
    return site.page("/article", html, headers=headers)


def manifest_of(cli, url, at=None):
    r = cli("show", url, "--provenance", *(["--at", at] if at else []))
    assert r.code == 0, r.err
    return r.json()["manifest"]


def records(where: Any) -> list[tuple[str, str, Any, bytes]]:
    """(type, target URI, WARC headers, payload) of every record, read with warcio;
    ``where`` is a data dir or a CLI (whose WARCs may be objects in S3)."""
    if not isinstance(where, Path):
        with where.warcs() as paths:
            return _read(paths)
    return _read(warc_files(where))


def _read(paths: list[Path]) -> list[tuple[str, str, Any, bytes]]:
    out = []
    for path in paths:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                out.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"), rec.rec_headers,
                            rec.content_stream().read()))
    return out


def test_finding_requisites_in_html_css_and_srcset():
    assert parse_srcset("a.png 1x, b,c.png 2x,d.png") == ["a.png", "b,c.png", "d.png"]
    assert parse_srcset(" x.jpg 480w,\n y.jpg 960w ") == ["x.jpg", "y.jpg"]
    refs = css_references(CSS, "http://h/static/site.css")
    assert refs == [("http://h/static/base.css", "stylesheet"), ("http://h/static/bg.png", "image"),
                    ("http://h/fonts/serif.woff2", "font")]
    html = ('<base href="http://other/x/"><img src="i.png"><div style="background:url(d.png)"></div>'
            '<link rel="alternate stylesheet" href="alt.css"><link rel="preload" as="font" href="f.woff2">'
            '<img src="http://u:p@h/secret.png"><source srcset="outside-picture.png">')
    assert page_references(html.encode(), "http://h/page") == [
        ("http://other/x/i.png", "image"), ("http://other/x/d.png", "image"), ("http://other/x/f.woff2", "font")]


def test_the_tag_cap_falls_on_the_same_node_with_or_without_the_fast_path(monkeypatch):
    import archiver.capture.requisites as requisites

    html = ("<html><head><!-- a comment counts --><link rel=stylesheet href=a.css></head><body>"
            + "<p>text</p>" * 20 + '<img src="late.png"><div style="background:url(bg.png)"></div></body></html>')
    everything = [("http://h/a.css", "stylesheet"), ("http://h/late.png", "image"), ("http://h/bg.png", "image")]
    assert page_references(html.encode(), "http://h/page") == everything
    monkeypatch.setattr(requisites, "MAX_TAGS", 24)  # html, head, the comment, link, body, 20 p: the img is the 26th
    assert page_references(html.encode(), "http://h/page") == everything[:1]
    monkeypatch.setattr(requisites, "MAX_TAGS", 26)
    assert page_references(html.encode(), "http://h/page") == everything[:2]


def test_snapshot_captures_every_requisite_once_and_signs_them(site, cli):
    url = styled_page(site)
    r = cli("snapshot", url, "--json")
    assert r.code == 0, r.err
    assert r.lines()[0]["requisites"] == {"found": len(FETCHED), "captured": len(FETCHED) - 1, "failed": 1,
                                          "not_fetched": 0, "limit": None}
    for path in FETCHED:
        assert site.hits.get(path) == 1, path
    assert "/app.js" not in site.hits  # scripts are not requisites
    assert site.hits.get("/commented-out.png") is None

    got = {(t, u) for t, u, _, _ in records(cli.data_dir)}
    for path in FETCHED:
        assert ("response", site.url(path)) in got and ("request", site.url(path)) in got, path

    req = manifest_of(cli, url)["requisites"]
    by_url = {i["url"]: i for i in req["items"]}
    assert set(by_url) == {site.url(p) for p in FETCHED}
    assert by_url[site.url("/img/missing.png")]["outcome"] == "failed"
    assert by_url[site.url("/img/missing.png")]["status"] == 404
    assert by_url[site.url("/img/missing.png")]["records"]  # the 404 exchange is evidence too
    assert by_url[site.url("/fonts/serif.woff2")]["kind"] == "font"
    assert by_url[site.url("/static/print.css")]["kind"] == "stylesheet"
    assert all(i["outcome"] == "captured" for u, i in by_url.items() if not u.endswith("missing.png"))
    assert req["found"] == len(FETCHED) and req["limit"] is None
    # Stylesheets are fetched before images, so limits spend on the look first.
    kinds = [i["kind"] for i in req["items"]]
    assert kinds.index("image") > max(i for i, k in enumerate(kinds) if k == "stylesheet" and i < kinds.index("image"))
    # The requisite requests say what they want and where they come from.
    css_req = next(h for h in site.request_headers if h.get("Accept", "").startswith("text/css"))
    assert css_req["Referer"] == url

    v = cli("verify", "--json")
    assert v.code == 0 and v.json()["ok"], v.out


def test_recapture_stores_unchanged_requisites_as_revisits(site, bcli):
    cli = bcli  # embedded and shared (PostgreSQL + S3) alike
    url = styled_page(site)
    assert cli("snapshot", url).code == 0
    site.page("/static/base.css", BASE_CSS + "h2 { color: #090 }\n", content_type="text/css")  # one stylesheet changes
    r = cli("snapshot", url, "--json")
    assert r.code == 0, r.err
    assert r.lines()[0]["significance"] == "none"  # requisites are not article text
    assert r.lines()[0]["requisites"] == {"found": len(FETCHED), "captured": 1, "revisit": len(FETCHED) - 2,
                                          "failed": 1, "not_fetched": 0, "limit": None}
    text = cli("snapshot", url).out
    assert f"requisites: {len(FETCHED)} found — {len(FETCHED) - 1} revisit, 1 failed" in text

    second = manifest_of(cli, url, r.lines()[0]["id"])["requisites"]["items"]
    outcome = {i["url"]: i["outcome"] for i in second}
    assert outcome[site.url("/static/base.css")] == "captured"
    assert outcome[site.url("/static/site.css")] == "revisit"
    assert outcome[site.url("/fonts/serif.woff2")] == "revisit"
    responses = [u for t, u, _, _ in records(cli) if t == "response"]
    revisits = {u: h for t, u, h, _ in records(cli) if t == "revisit"}
    assert responses.count(site.url("/static/site.css")) == 1
    assert responses.count(site.url("/static/base.css")) == 2
    rv = revisits[site.url("/fonts/serif.woff2")]
    assert rv.get_header("WARC-Refers-To-Target-URI") == site.url("/fonts/serif.woff2")
    assert rv.get_header("WARC-Profile").endswith("identical-payload-digest")

    v = cli("verify", "--json")
    assert v.code == 0 and v.json()["ok"], v.out


def test_a_refused_requisite_is_recorded_and_never_contacted(site, cli):
    url = styled_page(site, head='<link rel="stylesheet" href="http://169.254.169.254/latest/meta-data.css">'
                      '<link rel="stylesheet" href="/static/site.css">')
    r = cli("snapshot", url, "--json")
    assert r.code == 0, r.err
    items = {i["url"]: i for i in manifest_of(cli, url)["requisites"]["items"]}
    refused = items["http://169.254.169.254/latest/meta-data.css"]
    assert refused["outcome"] == "refused" and "link-local" in refused["error"] and refused["records"] == []
    assert items[site.url("/static/site.css")]["outcome"] == "captured"
    assert "169.254.169.254" not in {u.split("/")[2] for _, u, _, _ in records(cli.data_dir) if u and u.startswith("http")}


def test_limits_on_count_bytes_and_time(site, cli, tmp_path):
    cfg = tmp_path / "limits.toml"
    cfg.write_text("[capture]\nrequisites_max_count = 3\n")
    url = styled_page(site)
    assert cli("--config", str(cfg), "snapshot", url).code == 0
    req = manifest_of(cli, url)["requisites"]
    assert len(req["items"]) == 3 and req["limit"] == "count" and req["not_fetched"] > 0
    assert [i["kind"] for i in req["items"]] == ["stylesheet"] * 3  # the look first
    assert sum(site.hits.get(p, 0) for p in FETCHED) == 3

    big = b"x" * 200_000
    for i in range(4):
        site.routes[f"/big{i}.png"] = lambda h, b=big: send(h, 200, b, content_type="image/png")
    head = "".join(f'<link rel="icon" href="/big{i}.png">' for i in range(4))
    url = styled_page(site, head=head, body="")
    cfg.write_text("[capture]\nrequisites_max_bytes = 500000\nrequisites_workers = 1\n")
    assert cli("--config", str(cfg), "snapshot", url).code == 0
    req = manifest_of(cli, url)["requisites"]
    kept = [i for i in req["items"] if i["outcome"] == "captured"]
    assert len(kept) == 2 and req["limit"] == "bytes"
    assert [i["outcome"] for i in req["items"]] == ["captured", "captured", "skipped", "skipped"]
    assert sum(len(b) for t, u, _, b in records(cli.data_dir) if t == "response" and "big" in u) == 400_000

    def slow(h):
        time.sleep(3)
        send(h, 200, b"late", content_type="image/png")

    site.routes["/slow.png"] = slow
    url = styled_page(site, head='<link rel="icon" href="/slow.png">', body="")
    cfg.write_text("[capture]\nrequisites_timeout = 1.0\n")
    start = time.monotonic()
    assert cli("--config", str(cfg), "snapshot", url).code == 0
    assert time.monotonic() - start < 2.8
    (item,) = manifest_of(cli, url)["requisites"]["items"]
    assert item["outcome"] == "failed" and item["records"] == [] and item["error"]
    assert manifest_of(cli, url)["requisites"]["limit"] == "time"


def test_no_requisites_flag_and_setting(site, cli, tmp_path):
    url = styled_page(site)
    assert cli("snapshot", "--no-requisites", url).code == 0
    assert set(site.hits) == {"/article"}
    assert "requisites" not in manifest_of(cli, url)
    cfg = tmp_path / "off.toml"
    cfg.write_text("[capture]\nrequisites = false\n")
    assert cli("--config", str(cfg), "snapshot", url).code == 0
    assert set(site.hits) == {"/article"}


def test_wacz_export_carries_the_requisites(site, cli, tmp_path):
    url = styled_page(site)
    assert cli("snapshot", url).code == 0
    assert cli("snapshot", url).code == 0  # revisits: their originals must travel too
    out = tmp_path / "export.wacz"
    r = cli("export", url, "--wacz", str(out))
    assert r.code == 0, r.err
    from archiver.audit.wacz_format import INDEX_PATH

    with zipfile.ZipFile(out) as z:
        index = gzip.decompress(z.read(INDEX_PATH)).decode()  # ZipNum: concatenated gzip blocks
    for path in FETCHED:
        assert site.url(path).split("//", 1)[1].split("/", 1)[1] in index, path
    v = cli("verify", "--wacz", str(out), "--json")
    assert v.code == 0, v.out + v.err


def test_repair_commits_a_page_and_its_requisites_written_before_the_crash(site, cli):
    """Records and their intent written, then the process died before signing:
    repair commits one snapshot of the page with the requisites in its manifest."""
    from archiver.archive import Archive
    from archiver.capture.records import exchange_records
    from archiver.capture.requisite_records import plan_records
    from archiver.config import load

    url = styled_page(site)
    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        capture = archive.capturer.capture(url)
        plan = plan_records(archive.requisites(capture), archive.index, archive.c.new_uuid)
        page = [r for hop in capture.hops for r in exchange_records(hop, archive.c.new_uuid)]
        archive.append_sealed(page, plan.records)
    assert cli("repair").code == 0
    history = cli("history", url, "--json").json()
    assert len(history) == 1  # the requisites did not become snapshots of their own
    items = {i["url"]: i for i in manifest_of(cli, url)["requisites"]["items"]}
    assert set(items) == {site.url(p) for p in FETCHED}
    assert items[site.url("/img/missing.png")]["outcome"] == "failed"
    v = cli("verify", "--json")
    assert v.code == 0 and v.json()["ok"], v.out


def test_private_requisites_are_refused_while_the_page_host_is_allowed(site, strict_cli, tmp_path, monkeypatch):
    """Only the page's address is opened (capture.allow_networks = 127.0.0.1/32):
    requisites on another loopback address, on a name that resolves to one, and
    on a private 10.x address are refused and never contacted; the page and its
    own stylesheet are captured."""
    import socket

    from tests.nethelpers import PageServer, Rebinder

    internal = PageServer(("127.0.0.2", 0), b"INTERNAL SECRET")
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("intranet.test", ["127.0.0.2"]))
        head = (f'<link rel="stylesheet" href="http://127.0.0.2:{internal.port}/x.css">'
                f'<link rel="icon" href="http://intranet.test:{internal.port}/y.png">'
                '<link rel="stylesheet" href="http://10.1.2.3/z.css">'
                '<link rel="stylesheet" href="/static/base.css">')
        url = styled_page(site, head=head, body="")
        cfg = tmp_path / "allow.toml"
        cfg.write_text('[capture]\nallow_networks = ["127.0.0.1/32"]\n')
        r = strict_cli("--config", str(cfg), "snapshot", "--json", url)
        assert r.code == 0, r.err
        assert internal.hits == 0
        items = {i["url"]: i for i in manifest_of(strict_cli, url)["requisites"]["items"]}
        for bad in (f"http://127.0.0.2:{internal.port}/x.css", f"http://intranet.test:{internal.port}/y.png",
                    "http://10.1.2.3/z.css"):
            assert items[bad]["outcome"] == "refused" and items[bad]["records"] == [], items[bad]
        assert "loopback" in items[f"http://127.0.0.2:{internal.port}/x.css"]["error"]
        assert "private" in items["http://10.1.2.3/z.css"]["error"]
        assert items[site.url("/static/base.css")]["outcome"] == "captured"
        assert not any(b"INTERNAL SECRET" in body for _, _, _, body in records(strict_cli.data_dir))
    finally:
        internal.close()


def test_prov_view_names_the_requisite_records(site, cli):
    url = styled_page(site)
    assert cli("snapshot", url).code == 0
    doc = cli("show", url, "--prov").json()
    manifest = manifest_of(cli, url)
    ids = {r["record_id"].strip("<>") for i in manifest["requisites"]["items"] for r in i["records"]}
    assert ids and all(any(rid in key for key in doc["entity"]) for rid in ids)


def test_the_daemon_captures_requisites_even_when_the_page_is_not_modified(site, cli, tmp_path, daemons):  # noqa: F811
    """On by default in the daemon; a 304 answer to its conditional request
    still gets the requisites (named by the stored page), as revisits."""
    from test_daemon import snapshots, wait_for, write_config

    url = styled_page(site, headers={"ETag": '"v1"'})
    page = site.routes["/article"]

    def etagged(h: Any) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            h.send_response(304)
            h.send_header("ETag", '"v1"')
            h.end_headers()
            return
        page(h)

    site.routes["/article"] = etagged
    assert cli("watch", url, "--every", "1s").code == 0
    d = daemons(cli, write_config(tmp_path))
    rows = wait_for("2 captures", lambda: len(snapshots(cli, url)) >= 2 and snapshots(cli, url), d)
    assert d.stop()[0] == 0
    first, second = (m["requisites"] for m in signed_manifests(cli.data_dir, url)[:2])
    assert first["captured"] == len(FETCHED) - 1 and first["failed"] == 1
    assert rows[1]["status"] == 304
    assert second["found"] == len(FETCHED) and second.get("revisit") == len(FETCHED) - 1
