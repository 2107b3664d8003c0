"""The audit desk in real headless Chromium (Debian's package, driven by
Playwright) against `archiver serve` over an archive the real CLI built:
Changes -> Compare -> the figure edit highlighted -> the previous version ->
the Snapshot page's live checks -> the Archived view in its sandbox ->
a WARC record tampered on disk shows ✘.

Screenshots go to docs/ when ARCHIVER_UPDATE_SCREENSHOTS=1 (the README's
pictures), else to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import REPO
from web_support import NewsSite, Server, build_archive, make_cli

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert CHROMIUM, "chromium is required (apt-get install chromium chromium-driver)"
    news = NewsSite()
    work = tmp_path_factory.mktemp("browser")
    cli = make_cli(work / "archive")
    rows = build_archive(cli, news)
    cli("watch", news.url, "--every", "6h")
    server = Server(cli)
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(work / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield {"browser": browser, "server": server, "news": news, "rows": rows, "cli": cli, "work": work}
        finally:
            browser.close()
            server.stop()
            news.close()


def shot(page: Page, desk: Any, name: str) -> None:
    target = REPO / "docs" if os.environ.get("ARCHIVER_UPDATE_SCREENSHOTS") == "1" else desk["work"]
    target.mkdir(exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)
    assert (target / name).stat().st_size > 10_000


def test_timeline_sources_and_verify_pages(desk: Any) -> None:
    """Runs before the tamper test below (file order): the untouched archive audits OK."""
    server, news = desk["server"], desk["news"]
    page = desk["browser"].new_page()
    page.goto(server.base + "/sources?q=nordallianz")
    expect(page.locator("table.grid tbody tr")).to_have_count(1)
    expect(page.locator("table.grid tbody td").nth(1)).to_have_text("6h")
    page.locator("table.grid tbody a").first.click()
    expect(page.locator("svg.strip rect")).to_have_count(3)
    expect(page.locator("svg.strip rect.mark-substantive")).to_have_count(1)
    expect(page.locator("table.timeline tbody tr")).to_have_count(3)
    expect(page.locator("table.timeline mark.figure").first).to_contain_text("50.000 → 60.000")
    page.goto(server.base + "/verify")
    page.get_by_role("button", name="Run the audit").click()
    expect(page.locator("h2")).to_contain_text("Last result", timeout=60_000)
    expect(page.locator("h2 .ok")).to_have_text("✔ OK")
    page.close()


def test_changes_compare_snapshot_archived_and_tamper(desk: Any) -> None:
    server, news, rows = desk["server"], desk["news"], desk["rows"]
    origin = server.base
    page = desk["browser"].new_page()
    requests_seen: list[str] = []
    responses: list[str] = []
    failed: dict[str, str] = {}
    page.on("request", lambda req: requests_seen.append(req.url))
    page.on("response", lambda resp: responses.append(resp.url))
    page.on("requestfailed", lambda req: failed.__setitem__(req.url, req.failure or ""))

    # Changes: the edit is listed with its figure change.
    page.goto(origin + "/")
    expect(page.locator("ol.changes > li")).to_have_count(1)
    expect(page.locator("ol.changes mark.figure").first).to_contain_text("50.000 → 60.000 Soldaten")
    shot(page, desk, "changes.png")

    # Follow it to Compare: the figure change is highlighted at the top and in the text.
    page.locator("ol.changes a.compare").first.click()
    expect(page).to_have_title(f"Compare {news.url} · archiver")
    summary = page.locator("section.summary mark.figure").first
    expect(summary).to_have_text("50.000 → 60.000 Soldaten")
    assert summary.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    expect(page.locator("article.inline del.fig").first).to_have_text("50.000")
    expect(page.locator("article.inline ins.fig").first).to_have_text("60.000")
    expect(page.locator("section.summary .sig")).to_have_text("substantive")
    shot(page, desk, "compare.png")
    page.locator("nav.views a", has_text="Side by side").click()
    expect(page.locator("table.side ins.fig").first).to_have_text("60.000")

    # Step to the previous version: only the page around the article changed.
    page.locator("nav.stepper a.prev").click()
    expect(page.locator("section.summary .sig")).to_have_text("none")
    expect(page.locator("nav.stepper a.prev")).to_have_count(0)  # the first pair has no previous
    page.locator("nav.stepper a.next").click()
    expect(page.locator("section.summary .sig")).to_have_text("substantive")

    # The Snapshot page verifies on the server when opened: signature ✔, inclusion ✔.
    page.locator("nav.stepper span a").nth(1).click()
    expect(page).to_have_url(origin + f"/snapshot/{rows[2]['id']}")
    for name in ("signature", "inclusion", "records", "chain"):
        row = page.locator(f"tr.check-{name}")
        expect(row).to_have_attribute("data-ok", "true")
        expect(row.locator(".ok")).to_have_text("✔")
    expect(page.locator("tr.check-signature td")).to_contain_text("Ed25519")
    expect(page.locator(".verdict")).to_have_text("✔ verified")
    shot(page, desk, "snapshot.png")

    # The Archived view: the page as captured, in a sandbox, nothing from outside the app.
    requests_seen.clear()
    responses.clear()
    before = news.live_hits()
    page.get_by_role("link", name="Archived view").click()
    frame = page.frame_locator("iframe.archived")
    expect(frame.locator("h1")).to_have_text("Nordallianz verlegt 60.000 Soldaten an die Ostgrenze")
    page.wait_for_load_state("networkidle")
    assert requests_seen, "the browser's network log is empty"
    def outside(urls: list[str]) -> list[str]:
        return [u for u in urls if urlsplit(u)._replace(path="", query="", fragment="").geturl() != origin]

    # The archived page names its live stylesheet and image: the captured copies
    # are served from the archive (links rewritten), nothing else is asked for.
    assert not outside(requests_seen), f"requests left the app's origin: {outside(requests_seen)}"
    # Only the image the site never had (captured as a 404) is absent.
    assert [u.rsplit("/", 1)[1] for u in failed] == ["pixel-relative.png"], failed
    # The captured stylesheet applies, from the archive.
    assert frame.locator("h1").evaluate("e => getComputedStyle(e).color") == "rgb(200, 0, 0)"
    assert frame.locator("img[alt=Karte]").evaluate("e => e.complete && e.naturalWidth") == 1
    served = {urlsplit(u).path.split("/", 3)[3] for u in responses if "/archived/" in u}
    assert {f"http/{urlsplit(news.url).netloc}/static/site.css", f"http/{urlsplit(news.url).netloc}/pixel.png"} <= served
    assert news.live_hits() == before  # the live site saw nothing
    assert frame.locator("html").get_attribute("data-pwned") is None  # the archived <script> never ran
    assert page.locator("body").get_attribute("data-pwned") is None
    assert page.frames[1].title() != "PWNED"
    # Opened on its own (top level), the archived page still runs no script (CSP sandbox).
    src = page.locator("iframe.archived").get_attribute("src")
    page.goto(origin + src)
    expect(page.locator("h1")).to_contain_text("60.000")
    assert page.locator("html").get_attribute("data-pwned") is None and page.title() != "PWNED"
    assert news.live_hits() == before

    # Tamper with the snapshot's response record on disk: its page shows ✘.
    data = desk["cli"].data_dir
    snap = desk["cli"]("show", news.url, "--json").json()
    warc = data / "warcs" / snap["warc_file"]
    record = next(r for r in snap["manifest"]["records"] if r["type"] == "response")
    with open(warc, "r+b") as fh:
        fh.seek(record["offset"] + record["length"] // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    page.goto(origin + f"/snapshot/{rows[2]['id']}")
    expect(page.locator("tr.check-records")).to_have_attribute("data-ok", "false")
    expect(page.locator("tr.check-records .bad")).to_have_text("✘")
    expect(page.locator(".verdict")).to_have_text("✘ problems")
    # The earlier snapshots are untouched and still verify.
    page.goto(origin + f"/snapshot/{rows[0]['id']}")
    expect(page.locator(".verdict")).to_have_text("✔ verified")
    page.close()
