"""The bounds on one page's extraction (:class:`ExtractLimits`) and the cuts
that keep a page within them.

Why its own module: :mod:`archiver.changes.extract` reads the article; this
decides how much of a hostile or oversized page it gets to read -- the
markup cut at a number of elements and a size before parsing, the tree cut
at a nesting depth and a text size after, a deadline checked between steps.
Each cut is recorded in the notes it is handed ("extraction: truncated ..."),
and every cut depends on the page and the limits alone, so the result stays
deterministic for given bytes and limits.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

import lxml.etree as etree

from archiver.errors import ExtractError


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on the work for one page (see ``[diff]`` in config/archiver.toml)."""

    max_elements: int = 30_000  # real article pages have 300-2,000
    max_depth: int = 200
    max_text: int = 2_000_000  # characters of text in the parsed page
    timeout: float = 10.0  # seconds; checked between steps


class Deadline:
    """The time limit of one page's extraction, checked between steps."""

    def __init__(self, at: float, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.at = at

    def passed(self) -> bool:
        return self.clock() > self.at

    def check(self) -> None:
        if self.passed():
            raise ExtractError("extraction took longer than the time limit")


_START_TAG = re.compile(r"<[A-Za-z]")


def cap_markup(html: str, limits: ExtractLimits, notes: list[str]) -> str:
    """Cut the markup before the element past ``max_elements``, then at 4x ``max_text`` characters.

    Cheap (no parse), and it keeps libxml2 below its own 10 MB text-node
    limit, past which it would silently read nothing at all.
    """
    if html.count("<") > limits.max_elements:
        for i, m in enumerate(_START_TAG.finditer(html)):
            if i == limits.max_elements:
                notes.append(f"extraction: truncated at {limits.max_elements} elements")
                html = html[: m.start()]
                break
    max_chars = 4 * limits.max_text
    if len(html) > max_chars:
        notes.append(f"extraction: truncated at {max_chars} characters of markup")
        html = html[:max_chars]
    return html


def cap_tree(doc: Any, limits: ExtractLimits, notes: list[str], markup_chars: int) -> None:
    """Drop subtrees nested deeper than ``max_depth``; cut the page where its text passes ``max_text``.

    Most pages need neither, and that is known without a walk over every
    element in Python: a page's text is never longer than its markup
    (``markup_chars``), and libxml2 finds an element below ``max_depth``.
    """
    if markup_chars <= limits.max_text and not _deeper_than(doc, limits.max_depth):
        return
    depth = total = 0
    deep: list[Any] = []
    cut: Any = None
    for event, el in etree.iterwalk(doc, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth == limits.max_depth + 1:
            deep.append(el)  # the top of a too-deep subtree; what is below it goes with it
        if depth > limits.max_depth:
            continue
        size = len(el.text or "") + len(el.tail or "")
        if total + size > limits.max_text:
            cut = el
            break
        total += size
    for el in deep:
        if el.getparent() is not None:
            el.getparent().remove(el)
    if deep:
        notes.append(f"extraction: truncated at depth {limits.max_depth}")
    if cut is not None:
        _truncate_after(doc, cut)
        for child in list(cut):
            cut.remove(child)
        cut.text = (cut.text or "")[: max(0, limits.max_text - total)]
        cut.tail = None
        notes.append(f"extraction: truncated at {limits.max_text} characters of text")


@functools.lru_cache(maxsize=4)
def _depth_probe(max_depth: int) -> Any:
    return etree.XPath("boolean(" + "*/" * (max_depth - 1) + "*)")


def _deeper_than(doc: Any, max_depth: int) -> bool:
    """Whether an element of ``doc`` (itself at depth 1) is deeper than ``max_depth``."""
    if not 1 <= max_depth <= 1000:  # odd settings: the caller walks the tree
        return True
    return bool(_depth_probe(max_depth)(doc))


def _truncate_after(doc: Any, el: Any) -> None:
    """Remove every following sibling of ``el`` and of each of its ancestors."""
    node = el
    while node is not None and node is not doc:
        parent = node.getparent()
        if parent is None:
            break
        for sib in list(node.itersiblings()):
            parent.remove(sib)
        node = parent
