"""Rendering a diff for a terminal: a word diff and figure summary lines."""

from __future__ import annotations

from typing import Any

from archiver.changes.result import DiffResult, TextChange

_RED, _GREEN, _YELLOW, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[0m"


def _fmt_value(fc_text: str | None) -> str:
    return fc_text if fc_text is not None else "—"


def _change_hunk(c: TextChange) -> list[tuple[str, str]]:
    if c.op == "move":
        return [("move", c.after or c.before or "")]
    out: list[tuple[str, str]] = []
    if c.before:
        out.append(("del", c.before))
    if c.after:
        out.append(("ins", c.after))
    return out


def figure_line(f: dict[str, Any]) -> str:
    """One figure change in words, from its JSON: what changed, where, how often.

    ``Figure changed: 50.000 → 60.000 (Soldaten) in the headline and the body (2 times)``
    """
    noun = f" ({f['noun']})" if f.get("noun") else ""
    if f.get("before") is None:
        line = f"Figure added: {f.get('after')}{noun}"
    elif f.get("after") is None:
        line = f"Figure removed: {f.get('before')}{noun}"
    else:
        line = f"Figure changed: {f['before']} → {f['after']}{noun}"
    where = [f"the {p}" for p in f.get("where") or ()]
    if where:
        line += " in " + (" and ".join(where) if len(where) <= 2 else ", ".join(where[:-1]) + " and " + where[-1])
    count = f.get("count") or 1
    if count > 1:
        line += f" ({count} times)"
    return line


def render_terminal(result: DiffResult, *, color: bool) -> str:
    """A readable word diff ([-removed-] {+added+}, coloured when asked) and figure summary lines."""

    def paint(s: str, c: str) -> str:
        return f"{c}{s}{_RESET}" if color else s

    lines = [f"Significance: {result.significance}"]
    lines.extend(figure_line(fc.to_json()) for fc in result.figures)
    hunks = result.hunks or [_change_hunk(c) for c in result.changes]
    for hunk in hunks:
        out: list[str] = []
        eq_run: list[str] = []

        def flush_eq(final: bool = False) -> None:
            if len(eq_run) > 12:
                keep = eq_run[:6] + ["…"] + eq_run[-6:] if out and not final else (["…"] + eq_run[-6:] if not out else eq_run[:6] + ["…"])
                out.extend(keep)
            else:
                out.extend(eq_run)
            eq_run.clear()

        for op, text in hunk:
            if op == "eq":
                eq_run.append(text)
                continue
            flush_eq()
            if op == "del":
                out.append(paint(f"[-{text}-]", _RED))
            elif op == "ins":
                out.append(paint(f"{{+{text}+}}", _GREEN))
            else:
                out.append(paint(f"[moved] {text}", _YELLOW))
        flush_eq(final=True)
        if out:
            lines.append(" ".join(out))
    return "\n".join(lines) + "\n"
