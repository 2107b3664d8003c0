"""One edit, one report: a figure changed in the headline, the lead and the
text is one "Figure changed" line saying where and how often -- in the
snapshot output, history, diff and the JSON -- and the headline appears once
in a diff even when the page repeats it as ``<h1>`` below a dateline."""

from __future__ import annotations

from archiver.changes.diff import diff_articles, render_terminal
from archiver.changes.extract import Article, extract_article
from archiver.changes.result import DiffResult


def page(n: str) -> str:
    return (
        '<!doctype html><html lang="de"><head><meta charset="utf-8">'
        f"<title>Nordallianz verlegt {n} Soldaten – Tagesblick</title></head><body><main><article>"
        '<p class="dateline">Brüssel, 29.11.2026</p>'
        f"<h1>Nordallianz verlegt {n} Soldaten</h1>"
        f'<p class="lead">Das Bündnis verlegt {n} Soldaten an die Ostgrenze, teilte das Ministerium mit.</p>'
        f"<p>Insgesamt sollen {n} Soldatinnen und Soldaten verlegt werden. Bislang waren es 12.000.</p>"
        "<p>Die Kosten liegen bei 1,8 Milliarden Euro im ersten Jahr, sagte ein Sprecher.</p>"
        "</article></main></body></html>"
    )


def article(n: str) -> Article:
    return extract_article(page(n).encode(), content_type="text/html; charset=utf-8", url="http://x/")


def test_one_edit_repeated_in_headline_lead_and_body_is_one_figure_change():
    result = diff_articles(article("50.000"), article("60.000"))
    assert result.significance == "substantive"
    (fig,) = result.figures
    assert (fig.before, fig.after, fig.noun) == ("50.000", "60.000", "Soldaten")
    assert fig.where == ("headline", "lead", "body") and fig.count == 3
    j = result.to_json()["figures"][0]
    assert j["where"] == ["headline", "lead", "body"] and j["count"] == 3
    text = render_terminal(result, color=False)
    assert text.count("Figure changed") == 1
    assert "Figure changed: 50.000 → 60.000 (Soldaten) in the headline, the lead and the body (3 times)" in text


def test_the_headline_is_shown_once_though_the_page_repeats_it_as_h1():
    text = render_terminal(diff_articles(article("50.000"), article("60.000")), color=False)
    assert text.count("Nordallianz verlegt [-50.000-] {+60.000+} Soldaten") == 1


def test_distinct_changes_stay_distinct():
    before = Article("Bilanz", ("Es gab 50 Tote und 50 Verletzte bei dem Unglück am Montag.",
                                "Die Feuerwehr war mit 50 Kräften im Einsatz, hieß es."), "de")
    after = Article("Bilanz", ("Es gab 60 Tote und 60 Verletzte bei dem Unglück am Montag.",
                               "Die Feuerwehr war mit 70 Kräften im Einsatz, hieß es."), "de")
    figs = diff_articles(before, after).figures
    assert [(f.after, f.noun, f.count) for f in figs] == [("60", "Tote", 1), ("60", "Verletzte", 1), ("70", "Kräften", 1)]
    assert all(f.where == ("lead",) for f in figs[:2]) and figs[2].where == ("body",)


def test_stored_diffs_from_before_still_read_and_render():
    old = {"significance": "substantive", "figures": [
        {"before": "5", "after": "6", "before_value": 5, "after_value": 6, "context": "c", "noun": None, "unit": None}],
        "changes": []}
    result = DiffResult.from_json(old)
    assert result.figures[0].where == () and result.figures[0].count == 1
    assert "Figure changed: 5 → 6\n" in render_terminal(result, color=False)


def test_cli_reports_the_change_once_everywhere(site, cli):
    url = site.page("/nordallianz", page("50.000"))
    assert cli("snapshot", url).code == 0
    site.page("/nordallianz", page("60.000"))
    snap = cli("snapshot", url)
    assert snap.code == 0 and snap.out.count("Figure changed") == 1
    assert "in the headline, the lead and the body (3 times)" in snap.out
    assert cli("history", url).out.count("Figure changed") == 1
    diff = cli("diff", url, "--color", "never")
    assert diff.out.count("Figure changed") == 1
    assert diff.out.count("Nordallianz verlegt [-50.000-] {+60.000+} Soldaten") == 1
    (fig,) = cli("diff", url, "--json").json()["figures"]
    assert fig["where"] == ["headline", "lead", "body"] and fig["count"] == 3
    (line,) = [x for x in cli("snapshot", url, "--json").lines()]  # unchanged: no figures
    assert line["figures"] == []
    assert len(cli("history", url, "--json").json()) == 3
