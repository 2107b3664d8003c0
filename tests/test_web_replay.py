"""Link rewriting for the Archived view: every http(s) link of the page and
its stylesheets points into /archived/<id>/..., nothing else survives."""

from __future__ import annotations

from archiver.web.replay import archived_url, rewrite_css, rewrite_html

SID = "01m8m7zk9409cyqnhtfe4pxh7x"


def test_links_of_every_kind_point_into_the_archive() -> None:
    html = ("<html><head><meta charset='utf-8'><base href='http://ex.org/dir/'>"
            "<link rel=stylesheet href='/s.css'><style>body{background:url('bg.png')} @import \"x.css\";</style></head>"
            "<body style='background:url(a.png)'><img src='i.png' srcset='a.png 1x, https://cdn.ex/b.png 2x'>"
            "<img data-src='lazy.png'><a href='javascript:alert(1)'>x</a><a href='mailto:a@b'>m</a>"
            "<img src='data:image/png;base64,AA'><p>Grüße</p></body></html>").encode("utf-8")
    out = rewrite_html(html, "text/html; charset=utf-8", SID, "http://ex.org/page").decode("utf-8")
    root = f"/archived/{SID}/http/ex.org"
    for link in (f"{root}/s.css", f"{root}/dir/bg.png", f"{root}/dir/x.css", f"{root}/dir/a.png", f"{root}/dir/i.png",
                 f"{root}/dir/a.png 1x", f"/archived/{SID}/https/cdn.ex/b.png 2x", f"{root}/dir/lazy.png"):
        assert link in out, link
    assert "javascript:" not in out and "mailto:" not in out and "<base" not in out
    assert "data:image/png;base64,AA" in out and "Grüße" in out
    assert "http://ex.org" not in out and "https://cdn.ex" not in out


def test_stylesheets_are_rewritten_relative_to_themselves() -> None:
    css = "a{background:url( 'x.png' )} @import url(y.css); @import 'z.css'; b{src:url(data:font/woff2;base64,AA)}"
    out = rewrite_css(css, SID, "http://ex.org/css/m.css")
    assert f'url("/archived/{SID}/http/ex.org/css/x.png")' in out
    assert f'url("/archived/{SID}/http/ex.org/css/y.css")' in out and f'@import "/archived/{SID}/http/ex.org/css/z.css"' in out
    assert "data:font/woff2;base64,AA" in out


def test_archived_url_keeps_query_and_fragment() -> None:
    assert archived_url(SID, "https://ex.org/a/b?c=1#d") == f"/archived/{SID}/https/ex.org/a/b?c=1#d"
    assert archived_url(SID, "http://ex.org") == f"/archived/{SID}/http/ex.org/"


def test_unparseable_or_huge_documents_are_left_alone() -> None:
    assert rewrite_html(b"x" * (9 * 1024 * 1024), "text/html", SID, "http://ex.org/") is None
