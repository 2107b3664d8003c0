"""Rendering a diff for a terminal: a word diff and figure summary lines."""

from __future__ import annotations

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


def render_terminal(result: DiffResult, *, color: bool) -> str:
    """A readable word diff ([-removed-] {+added+}, coloured when asked) and figure summary lines."""

    def paint(s: str, c: str) -> str:
        return f"{c}{s}{_RESET}" if color else s

    lines = [f"Significance: {result.significance}"]
    for fc in result.figures:
        noun = f" ({fc.noun})" if fc.noun else ""
        if fc.before is not None and fc.after is not None:
            lines.append(f"Figure changed: {fc.before} → {fc.after}{noun}")
        elif fc.after is not None:
            lines.append(f"Figure added: {fc.after}{noun}")
        else:
            lines.append(f"Figure removed: {fc.before}{noun}")
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
