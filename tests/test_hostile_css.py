"""A captured site cannot make the requisite scan or the desk's rewriting take hours.

Each CSS pattern used to scan on to the end of the sheet from every place a
match could start: "url(url(url(...", "@import url(@import url(...",
"@font-face{@font-face{...", "/*a/*a..." cost n**2 -- hours for one 2 MiB
stylesheet or <style> block, in the capture (before anything is signed) and
in the web desk at every view of the page (lxml's own url() pattern has the
same flaw). The spans of imports and font faces were also looked up one by
one for each url(). On the old code each case below ran past the timeout
(hours); now it is one scan."""

from __future__ import annotations

import pytest

from archiver.capture.requisites import MAX_CSS_REFS, MAX_CSS_SCAN, css_references
from archiver.web.replay import rewrite_css, rewrite_html

SID = "01m8m7zk9409cyqnhtfe4pxh7x"
HOSTILE = ["url(", "@import url(", "@font-face{", "/*a", '@import "";url()']


def _sheet(unit: str) -> str:
    return (unit * (MAX_CSS_SCAN // len(unit) + 1))[:MAX_CSS_SCAN]


def test_a_page_with_hostile_css_is_captured_with_its_real_requisites(site, cli) -> None:
    site.page("/evil.css", _sheet("@import url(") + "\n", content_type="text/css")
    site.page("/fine.css", "h1{background:url(bg.png)}", content_type="text/css")
    site.page("/bg.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    html = ("<html><head><title>T</title><link rel=stylesheet href=/evil.css><link rel=stylesheet href=/fine.css>"
            "<style>" + _sheet("url(") + "</style></head><body><article><h1>T</h1><p>Ein Satz.</p>"
            "</article></body></html>")
    url = site.page("/a", html)
    r = cli.process("snapshot", "--json", url, timeout=120)
    assert r.code == 0, r.err
    assert r.lines()[0]["requisites"]["captured"] == 3  # evil.css, fine.css and what fine.css names
    assert site.hits.get("/bg.png") == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("unit", HOSTILE)
def test_hostile_stylesheets_are_scanned_once(unit: str) -> None:
    assert css_references(_sheet(unit), "http://h/s.css") == []
    rewrite_css(_sheet(unit), SID, "http://h/s.css")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("unit", ["url(", "url(a"])
def test_the_desk_rewrites_a_page_with_a_hostile_style_block_once(unit: str) -> None:
    html = ("<html><head><style>" + _sheet(unit) + "</style></head><body style='" + _sheet(unit)[:200_000]
            + "'><p style='background:url(x.png)'>x</p></body></html>")
    out = rewrite_html(html.encode(), "text/html", SID, "http://h/page")
    assert out is not None and f'url("/archived/{SID}/http/h/x.png")'.encode() in out


def test_what_css_names_is_found_as_before() -> None:
    css = ("/* url(commented.png) */ @import url('a.css'); @import \"b.css\";"
           "@font-face{font-family:x;src:url(f.woff2)} p{background:url( \"p.png\" )} q{background:url(q(1).png)}"
           " /* unclosed url(never.png)")
    assert css_references(css, "http://h/s/") == [
        ("http://h/s/a.css", "stylesheet"), ("http://h/s/b.css", "stylesheet"),
        ("http://h/s/f.woff2", "font"), ("http://h/s/p.png", "image")]


@pytest.mark.parametrize("unit", ['@import "x{}";', "a{{background:url(i{}.png)}}"])
def test_a_sheet_names_at_most_max_css_refs(unit: str) -> None:
    """Every reference is resolved against the sheet's URL: a 2 MiB sheet of
    imports named over 100,000 (seconds of CPU per sheet, a dozen sheets per
    page); the scan stops at MAX_CSS_REFS, in the sheet's order."""
    sheet = "".join(unit.format(i) for i in range(MAX_CSS_REFS + 500))
    found = css_references(sheet, "http://ex.org/css/site.css")
    assert len(found) == MAX_CSS_REFS
    assert found[0][0].endswith(("/css/x0", "/css/i0.png")) and found[-1][0].endswith(
        (f"/css/x{MAX_CSS_REFS - 1}", f"/css/i{MAX_CSS_REFS - 1}.png"))
