"""ReplayWeb.page, the player an auditor opens a WACZ in, replays every
version -- first capture, revisit, figure edit, each with its stylesheet --
byte for byte what the loopback server sent: from the WACZ export and from the archive's own WARC
file (which it indexes itself, manifests included: they must not shadow the
page). Its real bundle (ui.js + service worker sw.js, from the npm package,
tests/players.py) runs in Debian's headless Chromium driven by Playwright,
served from 127.0.0.1 like any self-hosted copy."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import warc_files
from players import ensure_replaywebpage
from test_pywb import CSS_PATH, pywb_timestamp, three_versions  # noqa: F401 - a fixture

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed"),
]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def player(tmp_path):
    """A self-hosted ReplayWeb.page on a loopback port; files put in its root are loadable."""
    root = tmp_path / "rwp"
    shutil.copytree(ensure_replaywebpage(), root, ignore=shutil.ignore_patterns(".*"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield root, f"http://127.0.0.1:{server.server_port}", browser
        finally:
            browser.close()
            server.shutdown()
            server.server_close()


def replayed(browser: Any, base: str, source: str, url: str, ts: str, extra: tuple[str, ...] = ()) -> list[str]:
    """``status content-type\nbody`` of the original (``id_``) responses ReplayWeb.page's
    service worker serves at ``ts``: the page ``url`` it replays, then each of ``extra``."""
    page = browser.new_page()
    try:
        page.goto(f"{base}/?source={base}/{source}#view=replay&url={url}&ts={ts}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            frame = None
            if page.locator("iframe").count():  # inside the app's shadow DOM
                handle = page.locator("iframe").first.element_handle()
                frame = handle.content_frame() if handle else None
            if frame is not None and f"{ts}mp_/" in frame.url:
                prefix = frame.url.split(f"{ts}mp_/")[0] + f"{ts}id_/"
                return [str(frame.evaluate(
                    "async (u) => { const r = await fetch(u);"
                    " return r.status + ' ' + (r.headers.get('content-type') || '') + '\\n' + await r.text(); }",
                    prefix + target,
                )) for target in (url, *extra)]
            time.sleep(0.3)
        raise AssertionError(f"ReplayWeb.page did not replay {url} at {ts} from {source}")
    finally:
        page.close()


def assert_plays(browser: Any, base: str, source: str, url: str, versions: list) -> None:
    """Each version's page (and, when the fixture sends one, its stylesheet) as sent."""
    css_url = url.split("/politik/")[0] + CSS_PATH
    for snap, sent in versions:
        body, css = sent if isinstance(sent, tuple) else (sent, None)
        got = replayed(browser, base, source, url, pywb_timestamp(snap["captured_at"]), (css_url,) if css else ())
        head, _, text = got[0].partition("\n")
        assert head.startswith("200 text/html"), (snap["significance"], head)  # the page, not the manifest
        assert text == body.decode("utf-8"), snap["significance"]
        if css is not None:
            head, _, text = got[1].partition("\n")
            assert head.startswith("200 text/css") and text == css.decode("utf-8"), (snap["significance"], head)


def test_replaywebpage_replays_every_version_from_the_wacz(three_versions, player, cli):  # noqa: F811
    url, versions = three_versions
    root, base, browser = player
    assert cli("export", url, "--wacz", str(root / "evidence.wacz")).code == 0
    assert_plays(browser, base, "evidence.wacz", url, versions)


def test_replaywebpage_replays_every_version_from_the_warc_file(three_versions, player, cli):  # noqa: F811
    url, versions = three_versions
    root, base, browser = player
    # one file per CLI run; ReplayWeb.page loads one source, and gzip members concatenate
    (root / "archive.warc.gz").write_bytes(b"".join(p.read_bytes() for p in warc_files(cli.data_dir)))
    assert_plays(browser, base, "archive.warc.gz", url, versions)


_VERIFICATION = """async () => {
  const out = [];
  for (const d of await indexedDB.databases()) {
    const db = await new Promise((ok, no) => { const q = indexedDB.open(d.name); q.onsuccess = () => ok(q.result); q.onerror = no; });
    if ([...db.objectStoreNames].includes('verification')) {
      const rows = await new Promise((ok) => {
        const q = db.transaction('verification').objectStore('verification').getAll(); q.onsuccess = () => ok(q.result); });
      out.push(...rows);
    }
    db.close();
  }
  return out;
}"""


def test_replaywebpage_verifies_the_package_signature(three_versions, player, cli):  # noqa: F811
    """What the player's integrity panel is built from: the anonymous-mode
    signature checks out. The files it reads whole (the page list, the
    block index) it reports as not matching -- for py-wacz's own output too:
    the documented quirk, and nothing else may be flagged."""
    url, versions = three_versions
    root, base, browser = player
    assert cli("export", url, "--wacz", str(root / "evidence.wacz")).code == 0
    page = browser.new_page()
    try:
        page.goto(f"{base}/?source={base}/evidence.wacz#view=pages")
        deadline = time.monotonic() + 60
        rows: dict[str, Any] = {}
        while time.monotonic() < deadline and not {"signature", "defaultpages/pages.jsonl"} <= rows.keys():
            time.sleep(0.5)
            rows = {r["id"]: r for r in page.evaluate(_VERIFICATION)}
    finally:
        page.close()
    assert rows["signature"]["matched"] is True
    assert rows["software"]["expected"].startswith("archiver ")
    flagged = {rid for rid, r in rows.items() if r.get("matched") is False and rid != "datapackageHash"}
    assert flagged <= {"defaultpages/pages.jsonl", "defaultindexes/index.idx"}, flagged
