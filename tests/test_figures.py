"""Figures: numbers read per language, scale words, spelled-out numbers, units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from archiver.changes.figures import find_figures, guess_language, value_key


def one(text: str, lang: str | None):
    figs = find_figures(text, lang)
    assert len(figs) == 1, figs
    return figs[0]


@pytest.mark.parametrize(
    ("text", "lang", "value", "unit"),
    [
        ("Es kamen 50.000 Soldaten.", "de", Decimal(50000), None),
        ("It sent 50,000 troops.", "en", Decimal(50000), None),
        ("Die Quote liegt bei 8,5 Prozent.", "de", Decimal("8.5"), "%"),
        ("The rate is 8.5 percent.", "en", Decimal("8.5"), "%"),
        ("Es kamen 50 000 Menschen.", "de", Decimal(50000), None),
        ("Es kamen 50\u202f000 Menschen.", "de", Decimal(50000), None),
        ("Es kamen 50\u00a0000 Menschen.", "de", Decimal(50000), None),
        ("Das kostet 1,5 Millionen Euro.", "de", Decimal(1500000), "EUR"),
        ("Das kostet 1,5 Mio. Euro.", "de", Decimal(1500000), "EUR"),
        ("Das kostet 3 Mrd. Euro.", "de", Decimal(3000000000), "EUR"),
        ("Das kostet 2 Milliarden Euro.", "de", Decimal(2000000000), "EUR"),
        ("Es geht um 20 Tausend Stellen.", "de", Decimal(20000), None),
        ("Das kostet 1.500.000 Euro.", "de", Decimal(1500000), "EUR"),
        ("It costs 2 million dollars.", "en", Decimal(2000000), "USD"),
        ("It costs 2.5 million.", "en", Decimal(2500000), None),
        ("It costs $1.2 billion.", "en", Decimal(1200000000), "USD"),
        ("It costs $2.5bn.", "en", Decimal(2500000000), "USD"),
        ("It costs £5m.", "en", Decimal(5000000), "GBP"),
        ("It costs €40.", "en", Decimal(40), "EUR"),
        ("Die Quote sank um 2,5 Prozentpunkte.", "de", Decimal("2.5"), "pp"),
        ("Die Quote liegt bei 10 %.", "de", Decimal(10), "%"),
        ("Es kamen zehntausend Menschen.", "de", Decimal(10000), None),
        ("Es kamen zwölftausend Menschen.", "de", Decimal(12000), None),
        ("Es kamen drei Menschen.", "de", Decimal(3), None),
        ("Es kamen drei Millionen Menschen.", "de", Decimal(3000000), None),
        ("Es kamen einundzwanzig Menschen.", "de", Decimal(21), None),
        ("Three people came.", "en", Decimal(3), None),
        ("There were twenty-five tanks.", "en", Decimal(25), None),
        ("There were two hundred and twenty thousand people.", "en", Decimal(220000), None),
        ("There were two million people.", "en", Decimal(2000000), None),
        ("Es ist -3,5 Grad kalt.", "de", Decimal("-3.5"), None),
    ],
)
def test_values(text: str, lang: str, value: Decimal, unit: str | None) -> None:
    fig = one(text, lang)
    assert fig.value == value
    assert fig.unit == unit
    assert text[fig.start:fig.end] == fig.text


@pytest.mark.parametrize(
    ("text", "lang", "value"),
    [
        ("Es waren 1.500 Menschen.", "de", Decimal(1500)),
        ("There were 1.500 people.", "en", Decimal("1.5")),
        ("Es waren 1,5 Tonnen.", "de", Decimal("1.5")),
        ("There were 1,500 people.", "en", Decimal(1500)),
        ("There were 1,5 tonnes.", "en", Decimal("1.5")),  # not a valid English group: decimal comma
        ("Es waren 1.5 Tonnen.", "de", Decimal("1.5")),  # not a valid German group: decimal point
    ],
)
def test_ambiguity_resolved_by_language(text: str, lang: str, value: Decimal) -> None:
    assert one(text, lang).value == value


def test_unknown_language_is_guessed() -> None:
    assert one("Die Regierung schickt 1.500 Soldaten an die Grenze.", None).value == 1500
    assert one("The government sends 1,500 troops to the border.", None).value == 1500
    assert guess_language("Die Regierung hat nicht zugestimmt und das ist ein Problem.") == "de"
    assert guess_language("The government did not agree and it is a problem.") == "en"


@pytest.mark.parametrize(
    ("text", "lang", "noun"),
    [
        ("Es kamen 50.000 Soldaten.", "de", "Soldaten"),
        ("Es kamen 50.000 weitere Soldaten.", "de", "Soldaten"),
        ("They sent 50,000 more troops.", "en", "troops"),
        ("Die Quote liegt bei 8,5 Prozent.", "de", "Prozent"),
        ("Am 12. März kam es zum Streit.", "de", "März"),
        ("Es kamen 300, dann 400.", "de", None),
    ],
)
def test_noun(text: str, lang: str, noun: str | None) -> None:
    assert find_figures(text, lang)[0].noun == noun


@pytest.mark.parametrize(
    ("text", "lang", "kind", "value"),
    [
        ("Im Jahr 2023 stieg die Zahl.", "de", "year", Decimal(2023)),
        ("Am 14.03.2024 wurde entschieden.", "de", "date", Decimal(20240314)),
        ("On 2024-03-14 it was decided.", "en", "date", Decimal(20240314)),
        ("On 3/14/2024 it was decided.", "en", "date", Decimal(20240314)),
        ("Um 14:30 Uhr begann die Sitzung.", "de", "time", Decimal(1430)),
    ],
)
def test_dates_and_years_are_kept_with_kind(text: str, lang: str, kind: str, value: Decimal) -> None:
    fig = one(text, lang)
    assert (fig.kind, fig.value) == (kind, value)


@pytest.mark.parametrize(
    "text",
    ["Der G20-Gipfel beginnt.", "Ein Airbus A380 landete.", "Flug MH17 wurde abgeschossen.", "Ein Mann und eine Frau kamen.", "Die Elf gewann das Spiel."],
)
def test_not_figures(text: str) -> None:
    assert find_figures(text, "de") == []


@pytest.mark.parametrize(
    ("a", "la", "b", "lb"),
    [
        ("50.000 Soldaten", "de", "50 000 Soldaten", "de"),
        ("10.000 Menschen", "de", "zehntausend Menschen", "de"),
        ("1,5 Millionen Euro", "de", "1.500.000 Euro", "de"),
        ("1,5 Mio. Euro", "de", "1,5 Millionen Euro", "de"),
        ("10 Prozent", "de", "10 %", "de"),
        ("50.000 Soldaten", "de", "50,000 soldiers", "en"),
        ("2 million dollars", "en", "$2,000,000", "en"),
        ("three", "en", "3", "en"),
    ],
)
def test_same_value_same_key(a: str, la: str, b: str, lb: str) -> None:
    assert value_key(one(a, la)) == value_key(one(b, lb))


@pytest.mark.parametrize(
    ("a", "b"),
    [("50.000 Soldaten", "60.000 Soldaten"), ("8,5 Prozent", "9,5 Prozent"), ("1,5 Millionen", "2 Millionen"), ("drei", "vier"), ("10 Prozent", "10 Euro")],
)
def test_different_value_different_key(a: str, b: str) -> None:
    assert value_key(one(a, "de")) != value_key(one(b, "de"))


def test_several_figures_in_order() -> None:
    figs = find_figures("Von 50.000 Soldaten kehrten 1.200 zurück, 8,5 Prozent davon verletzt.", "de")
    assert [f.value for f in figs] == [50000, 1200, Decimal("8.5")]
    assert [f.start for f in figs] == sorted(f.start for f in figs)
