"""Numbers and quantities in article text, read per language.

Why: an edit to a figure ("50.000 Soldaten" -> "60.000 Soldaten") is the
headline change archiver must never miss, while a figure written another way
with the same value ("50.000" -> "50 000" -> "fünfzigtausend") must not alarm.
So every figure is normalised to a :class:`~decimal.Decimal` value plus a
canonical unit ("%", "EUR", "USD", "GBP", "pp" for percentage points).

Rules:
- German groups with "." (or a space/thin/no-break space) and uses "," for
  decimals; English groups with "," and uses "." for decimals. A separator
  followed by exactly three digits is a group separator when the language
  allows it; otherwise it is read as the decimal mark (so "1,5" in English
  text is 1.5 and "1.5" in German text is 1.5).
- Scale words multiply: Tausend, Mio., Million(en), Mrd., Milliarde(n),
  Bio./Billion(en); thousand, million, billion, trillion, bn, m/k glued to a
  currency figure ("$5m").
- Spelled-out numbers come from :mod:`archiver.numberwords`.
- kind: "number", "year" (1800..2199 written without separators), "date"
  (numeric dates: 14.03.2024, 2024-03-14, 3/14/2024; value = yyyymmdd),
  "time" (14:30; value = hhmm). Dates and years are kept: a changed date is a
  substantive edit.
- Digits glued to letters on the left ("G20", "A380", "MH17") are names, not
  figures.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from archiver.changes.numberwords import iter_number_words

log = logging.getLogger(__name__)

__all__ = ["Figure", "find_figures", "guess_language", "value_key"]


@dataclass(frozen=True)
class Figure:
    """One figure found in text. ``start``/``end`` index the original text."""

    text: str
    value: Decimal
    unit: str | None
    noun: str | None
    start: int
    end: int
    kind: str = "number"


_SP = "[ \u00a0\u202f\u2009]"
_NUM = r"\d+(?:[.,\u00a0\u202f\u2009 ]\d+)*"
_DATE_RE = re.compile(
    r"(?<![\w.])(?:(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})|(\d{4})-(\d{2})-(\d{2})|(\d{1,2})/(\d{1,2})/(\d{4}))(?![\w])"
)
_TIME_RE = re.compile(r"(?<![\w.,:])([01]?\d|2[0-3])[:.]([0-5]\d)(?=\s*(?:Uhr|h\b|a\.?m\.?|p\.?m\.?))|(?<![\w.,:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")

_CURRENCY_PREFIX = re.compile(r"(US-?\$|US\$|€|\$|£|EUR|USD|GBP)\s?$")

_SCALES_DE = [
    (r"Tausend", Decimal(10) ** 3),
    (r"Mio\.?|Millionen|Million", Decimal(10) ** 6),
    (r"Mrd\.?|Milliarden|Milliarde", Decimal(10) ** 9),
    (r"Bio\.?|Billionen|Billion", Decimal(10) ** 12),
]
_SCALES_EN = [
    (r"thousand", Decimal(10) ** 3),
    (r"million|mn", Decimal(10) ** 6),
    (r"billion|bn", Decimal(10) ** 9),
    (r"trillion|tn", Decimal(10) ** 12),
]
_UNITS = [
    (r"%|Prozent\b|percent\b|per\s+cent\b", "%"),
    (r"Prozentpunkte\b|Prozentpunkten\b|percentage\s+points?\b", "pp"),
    (r"€|Euro\b|EUR\b", "EUR"),
    (r"US-Dollar\b|Dollar\b|dollars?\b|USD\b|\$", "USD"),
    (r"£|Pfund\b|pounds?\b|GBP\b", "GBP"),
]
_UNIT_RE = re.compile("|".join(f"(?P<u{i}>{p})" for i, (p, _) in enumerate(_UNITS)), re.IGNORECASE)
_PREFIX_UNIT = {"€": "EUR", "EUR": "EUR", "$": "USD", "US$": "USD", "US-$": "USD", "USD": "USD", "£": "GBP", "GBP": "GBP"}

_DE_STOP = {"der", "die", "das", "und", "nicht", "ist", "ein", "eine", "mit", "von", "den", "dem", "sich", "auf", "für", "auch", "wird", "wurde", "sagte", "nach", "bei", "zu", "im", "des", "sie", "es"}
_EN_STOP = {"the", "and", "not", "is", "a", "an", "of", "to", "in", "for", "on", "was", "were", "said", "that", "with", "by", "it", "he", "she", "has", "have", "be"}
_NOUN_SKIP = {
    "weitere", "weiteren", "mehr", "zusätzliche", "zusätzlichen", "neue", "neuen", "rund", "etwa",
    "more", "additional", "new", "extra", "further", "of", "the", "some", "about", "around",
}
_WORD_RE = re.compile(r"[^\W\d_][\w\-]*", re.UNICODE)


def guess_language(text: str) -> str | None:
    """Cheap de/en guess by stopword counts; None when there is no signal."""
    words = re.findall(r"[a-zäöüß]+", text[:20000].lower())
    de = sum(1 for w in words if w in _DE_STOP)
    en = sum(1 for w in words if w in _EN_STOP)
    if de == en == 0:
        if re.search(r"\d\.\d{3}\b|\d,\d{1,2}\b", text):
            return "de"
        return None
    return "de" if de >= en else "en"


def _parse_number(raw: str, language: str) -> Decimal | None:
    """Digits with separators -> Decimal, resolving '.'/',' by language."""
    s = re.sub(r"[\u00a0\u202f\u2009 ]", " ", raw)
    group, dec = (".", ",") if language == "de" else (",", ".")
    parts = re.split(r"([., ])", s)
    nums = parts[0::2]
    seps = parts[1::2]
    out = nums[0]
    for i, sep in enumerate(seps):
        nxt = nums[i + 1]
        is_last = i == len(seps) - 1
        if sep == " " or sep == group:
            if len(nxt) != 3 or (i == 0 and len(nums[0]) > 3):
                if sep == " " or not is_last:
                    return None
                out += "." + nxt  # foreign decimal mark ("1.5" in German text)
                continue
            out += nxt
        elif sep == dec:
            if not is_last:
                return None
            out += "." + nxt
        else:
            return None
    try:
        return Decimal(out)
    except InvalidOperation:
        return None


_CORE_RE = re.compile(
    r"(?<![\w.,\-/])(?P<sign>[-−+](?=\d))?(?P<num>\d{1,3}(?:(?:[.,]|" + _SP + r")\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![\d])"
)


def _scale_re(language: str) -> re.Pattern[str]:
    scales = _SCALES_DE if language == "de" else _SCALES_EN
    return re.compile(r"\s?(" + "|".join(f"(?:{p})" for p, _ in scales) + r")(?![\w])", re.IGNORECASE if language == "en" else 0)


_SCALE_CACHE = {lang: _scale_re(lang) for lang in ("de", "en")}


def _scale_value(word: str, language: str) -> Decimal:
    scales = _SCALES_DE if language == "de" else _SCALES_EN
    for p, v in scales:
        if re.fullmatch(p, word, re.IGNORECASE if language == "en" else 0):
            return v
    return Decimal(1)


NOUN_WINDOW = 200  # characters after a figure searched for its noun
_CLAUSE_END = re.compile(r"[.,;:!?()\[\]\n]")


def _noun_after(text: str, pos: int, language: str) -> str | None:
    """The counted noun: the first content word after the figure (German: capitalised).

    Stops at punctuation so a noun is never taken from the next clause; a German
    ordinal dot ("12. März") is allowed.
    """
    if language == "de" and text[pos:pos + 1] == "." and text[pos + 1:pos + 2] == " ":
        pos += 1
    # Within NOUN_WINDOW characters: searching on to the end of the text for a
    # word, from every figure of "1 1 1 ...", was n**2 (hours at the text cap).
    window = min(len(text), pos + NOUN_WINDOW)
    for i, m in enumerate(_WORD_RE.finditer(text, pos, window)):
        if i >= 3 or _CLAUSE_END.search(text, pos, m.start()):
            return None
        if m.end() == window:  # the word may go on past the window: the whole word
            m = _WORD_RE.match(text, m.start()) or m
        w = m.group().strip("-")
        if w.lower() in _NOUN_SKIP or (language == "de" and not w[0].isupper()):
            pos = m.end()
            continue
        return w
    return None


def _unit_after(text: str, pos: int) -> tuple[str, int, str] | None:
    m = re.compile(r"\s?").match(text, pos)
    p = m.end() if m else pos
    um = _UNIT_RE.match(text, p)
    if not um:
        return None
    for i, (_, unit) in enumerate(_UNITS):
        if um.group(f"u{i}") is not None:
            return unit, um.end(), um.group()
    return None


def find_figures(text: str, language: str | None) -> list[Figure]:
    """All figures in ``text`` in order; ``language`` 'de'/'en' (None: guessed)."""
    lang = (language or "").split("-")[0].lower() or (guess_language(text) or "en")
    if lang not in ("de", "en"):
        lang = guess_language(text) or "en"
    found: list[Figure] = []
    # The characters figures took, one byte each: a span is free when none of
    # its bytes is set. (Comparing with every figure found so far was n**2 in
    # the figures: minutes for a page of numbers within the text cap.)
    taken = bytearray(len(text))

    def free(a: int, b: int) -> bool:
        return taken.find(1, a, b) < 0

    def add(fig: Figure) -> None:
        found.append(fig)
        taken[fig.start:fig.end] = b"\x01" * (fig.end - fig.start)

    for m in _DATE_RE.finditer(text):
        g = m.groups()
        if g[0]:
            d, mo, y = int(g[0]), int(g[1]), int(g[2])
            y = y + 2000 if y < 100 else y
        elif g[3]:
            y, mo, d = int(g[3]), int(g[4]), int(g[5])
        else:
            a, b, y = int(g[6]), int(g[7]), int(g[8])
            mo, d = (b, a) if lang == "de" else (a, b)
        if 1 <= d <= 31 and 1 <= mo <= 12:
            add(Figure(m.group(), Decimal(y * 10000 + mo * 100 + d), None, None, m.start(), m.end(), "date"))
    for m in _TIME_RE.finditer(text):
        if not free(m.start(), m.end()):
            continue
        h, mi = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        add(Figure(m.group(), Decimal(int(h) * 100 + int(mi)), None, None, m.start(), m.end(), "time"))

    scale_re = _SCALE_CACHE[lang]
    for m in _CORE_RE.finditer(text):
        start, end = m.start(), m.end()
        if not free(start, end):
            continue
        value = _parse_number(m.group("num"), lang)
        if value is None:
            value = _parse_number(m.group("num"), "en" if lang == "de" else "de")
        if value is None:
            continue
        if m.group("sign") in ("-", "−"):
            value = -value
        unit: str | None = None
        kind = "number"
        pre = _CURRENCY_PREFIX.search(text, max(0, start - 5), start)
        if pre:
            unit = _PREFIX_UNIT.get(pre.group(1).replace(" ", ""), None)
            start = pre.start()
        sm = scale_re.match(text, end)
        if sm:
            value *= _scale_value(sm.group(1).rstrip(".") if sm.group(1).lower() in ("mio.", "mrd.", "bio.") else sm.group(1), lang)
            end = sm.end()
        elif unit and re.match(r"[mk](?![\w])", text[end:end + 2]):
            value *= Decimal(10) ** (6 if text[end] == "m" else 3)
            end += 1
        ua = _unit_after(text, end)
        noun_word: str | None = None
        if ua:
            unit = ua[0] if unit is None or ua[0] == unit else unit
            noun_word = ua[2] if ua[2][0].isalpha() else None
            end = ua[1]
        raw_num = m.group("num")
        if unit is None and not sm and re.fullmatch(r"1[89]\d\d|2[01]\d\d", raw_num):
            kind = "year"
        add(Figure(text[start:end], value, unit, noun_word or _noun_after(text, end, lang), start, end, kind))

    for a, b, value in iter_number_words(text, lang):
        if not free(a, b):
            continue
        end = b
        unit = None
        ua = _unit_after(text, end)
        noun_word = None
        if ua and ua[2][0].isalpha():
            unit, end, noun_word = ua
        add(Figure(text[a:end], value, unit, noun_word or _noun_after(text, end, lang), a, end))

    found.sort(key=lambda f: f.start)
    return found


def value_key(fig: Figure) -> str:
    """A comparable key: same key == same fact, however it was written."""
    v = fig.value.normalize()
    s = format(v, "f")
    return f"{s}{fig.unit or ''}"
