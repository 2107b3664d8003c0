"""Spelled-out numbers ("zehntausend", "twenty-five", "drei Millionen").

Kept apart from :mod:`archiver.figures` because it is word-level work: find runs
of number words, then let ``text2num`` (a strict parser) decide their value, so
"one of the" or a German article "ein" never becomes a figure by accident.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Iterator

from text_to_num import text2num

log = logging.getLogger(__name__)

_DE_PARTS = (
    "null|eins|ein|zwei|zwan|drei|dreißig|dreissig|vier|fünf|sechs|sech|sieben|sieb|acht|neun|"
    "zehn|elf|zwölf|zig|und|hundert|tausend"
)
#: A single German number word; compounds ("dreiundzwanzigtausend") are one word.
_DE_WORD = re.compile(rf"(?:{_DE_PARTS})+", re.IGNORECASE)
_DE_SCALE = {"million", "millionen", "milliarde", "milliarden", "billion", "billionen"}
#: Words that look numeric but are articles, nouns or too ambiguous alone.
_DE_EXCLUDE = {"ein", "und", "zig", "sech", "sieb", "zwan"}
#: nouns ("außer Acht", "die Elf", "eine Null") unless they start a sentence
_DE_EXCLUDE_CAPITALIZED = {"Acht", "Elf", "Null"}

_EN_UNITS = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
    "eighty", "ninety", "hundred", "thousand",
}
_EN_SCALE = {"million", "billion", "trillion"}
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)?", re.UNICODE)


def _de_value(word: str, sentence_start: bool = False) -> int | None:
    """Value of one German number word, or None."""
    if (word in _DE_EXCLUDE_CAPITALIZED and not sentence_start) or word.lower() in _DE_EXCLUDE:
        return None
    if not _DE_WORD.fullmatch(word):
        return None
    try:
        return int(text2num(word.lower(), "de"))
    except Exception:  # text2num signals "not a number" in several ways
        return None


def _en_is_number_word(word: str) -> bool:
    parts = word.lower().split("-")
    return all(p in _EN_UNITS or p in _EN_SCALE for p in parts)


def iter_number_words(text: str, language: str) -> Iterator[tuple[int, int, Decimal]]:
    """Yield (start, end, value) for each run of spelled-out number words.

    A lone scale word ("Millionen", "million") is not a number; it only scales
    a preceding number word or digit (the digit case is handled in figures).
    """
    words = list(_WORD.finditer(text))
    i = 0
    while i < len(words):
        w = words[i]
        if language == "de":
            k = w.start() - 1
            while k >= 0 and text[k].isspace():  # the character before the word (not a copy of the text)
                k -= 1
            val = _de_value(w.group(), k < 0 or text[k] in ".!?:\"„“»«")
            if val is None or w.group().lower() in _DE_SCALE:
                i += 1
                continue
            end = w.end()
            j = i + 1
            if j < len(words) and words[j].group().lower() in _DE_SCALE and _only_space(text, end, words[j].start()):
                val *= _DE_SCALE_VALUE[words[j].group().lower()]
                end = words[j].end()
                j += 1
            yield w.start(), end, Decimal(val)
            i = j
            continue
        # English: runs such as "two hundred and twenty-five thousand"
        if not _en_is_number_word(w.group()) or w.group().lower() in _EN_SCALE:
            i += 1
            continue
        j = i + 1
        while j < len(words):
            gap = text[words[j - 1].end():words[j].start()]
            nxt = words[j].group()
            if gap.strip() == "" and _en_is_number_word(nxt):
                j += 1
                continue
            if nxt.lower() == "and" and gap.strip() == "" and j + 1 < len(words) and _en_is_number_word(words[j + 1].group()):
                j += 2
                continue
            break
        # shrink from the right until text2num accepts the run
        while j > i:
            run = text[w.start():words[j - 1].end()]
            try:
                val = int(text2num(run.lower().replace("-", " ") if " " in run else run.lower(), "en"))
            except Exception:  # text2num signals "not a number" in several ways
                j -= 1
                continue
            yield w.start(), words[j - 1].end(), Decimal(val)
            break
        else:
            j = i + 1
        i = max(j, i + 1)


_DE_SCALE_VALUE = {
    "million": 10**6, "millionen": 10**6, "milliarde": 10**9, "milliarden": 10**9,
    "billion": 10**12, "billionen": 10**12,
}


def _only_space(text: str, a: int, b: int) -> bool:
    return text[a:b].strip() == ""
