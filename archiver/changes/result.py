"""The outcome of a diff: text changes, figure changes, significance (the CLI's JSON shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SIGNIFICANCES = ("none", "cosmetic", "substantive")
_COSMETIC_KINDS = {"contraction", "punctuation", "case", "spelling", "figure-format", "whitespace", "typo", "doubled-word", "move"}


PLACES = ("headline", "lead", "body")


@dataclass
class FigureChange:
    """A figure whose value changed (a side is None when added/removed).

    ``where`` lists the parts of the article it changed in (headline, lead,
    body, in that order) and ``count`` how often: one edit that repeats the
    figure in the headline and the text is one change, not several.
    """

    before: str | None
    after: str | None
    before_value: Decimal | None
    after_value: Decimal | None
    context: str
    noun: str | None = None
    unit: str | None = None
    where: tuple[str, ...] = ()
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before, "after": self.after,
            "before_value": _num(self.before_value), "after_value": _num(self.after_value),
            "context": self.context, "noun": self.noun, "unit": self.unit,
            "where": list(self.where), "count": self.count,
        }

    def same_change(self, other: "FigureChange") -> bool:
        """The same edit seen again: equal values and unit, and a noun of the same stem
        ("Soldaten" and "Soldatinnen und Soldaten" are one troop figure)."""
        return (
            (self.before_value, self.after_value, self.unit) == (other.before_value, other.after_value, other.unit)
            and _same_stem(self.noun, other.noun)
        )


def merge_figures(figures: list[FigureChange]) -> list[FigureChange]:
    """One entry per distinct figure change, in order of first appearance."""
    out: list[FigureChange] = []
    for f in figures:
        seen = next((o for o in out if o.same_change(f)), None)
        if seen is None:
            out.append(f)
            continue
        seen.where = tuple(p for p in PLACES if p in seen.where or p in f.where)
        seen.count += f.count
    return out


def _same_stem(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    a, b = a.casefold(), b.casefold()
    n = min(len(a), len(b), 5)
    return a[:n] == b[:n]


@dataclass
class TextChange:
    """One textual change; ``kind`` says why it is (or is not) substantive."""

    op: str  # replace | insert | delete | move
    before: str | None
    after: str | None
    kind: str = "word"
    substantive: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "before": self.before, "after": self.after, "kind": self.kind}


@dataclass
class DiffResult:
    """The outcome of :func:`diff_articles`; ``to_json`` is the CLI contract shape."""

    significance: str
    figures: list[FigureChange] = field(default_factory=list)
    changes: list[TextChange] = field(default_factory=list)
    hunks: list[list[tuple[str, str]]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "significance": self.significance,
            "figures": [f.to_json() for f in self.figures],
            "changes": [c.to_json() for c in self.changes],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "DiffResult":
        """Rebuild a stored result (no word-level hunks: rendering falls back to the changes)."""

        def dec(v: Any) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        figures = [
            FigureChange(f.get("before"), f.get("after"), dec(f.get("before_value")), dec(f.get("after_value")),
                         f.get("context") or "", f.get("noun"), f.get("unit"),
                         tuple(p for p in f.get("where") or () if p in PLACES), int(f.get("count") or 1))
            for f in d.get("figures") or []
        ]
        changes = [
            TextChange(c["op"], c.get("before"), c.get("after"), c.get("kind") or "word",
                       (c.get("kind") or "word") not in _COSMETIC_KINDS)
            for c in d.get("changes") or []
        ]
        return cls(d.get("significance") or "none", figures, changes)


def _num(v: Decimal | None) -> int | float | None:
    if v is None:
        return None
    if v == v.to_integral_value():
        return int(v)
    return float(v)
