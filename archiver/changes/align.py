"""difflib alignment within bounds, so a hostile page cannot make a diff take hours.

Why: difflib's cost grows with the square of the items and with how often each
repeats (its longest-match search visits, for every item before, every place
after holding the same item). A page of one sentence, word or paragraph
repeated -- within the extraction caps -- kept the capture that signs the
diff, every reader and the web desk's Compare page busy for hours. Within
the bounds callers give (far above what articles need) difflib aligns
exactly as always, in well under a second whatever the order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from difflib import SequenceMatcher

Opcode = tuple[str, int, int, int, int]


def alignable(a: Sequence[Hashable], b: Sequence[Hashable], units: int, pairs: int,
              junk: Callable[[Hashable], bool] | None = None) -> bool:
    """Whether difflib may align ``a`` with ``b``: at most ``units`` items in all
    and ``pairs`` pairs of equal items (one from each; ``junk`` items, which
    difflib never starts a match on, not counted)."""
    if len(a) + len(b) > units:
        return False
    count_b = Counter(x for x in b if junk is None or not junk(x))
    return sum(count_b.get(x, 0) for x in a) <= pairs


def bounded_opcodes(a: Sequence[Hashable], b: Sequence[Hashable], units: int, pairs: int) -> list[Opcode]:
    """difflib's opcodes for ``a`` -> ``b`` when :func:`alignable`; else the
    equal start and end, and between them difflib's opcodes if that part is
    alignable, or one replace (delete, insert) of it."""
    if alignable(a, b, units, pairs):
        return list(SequenceMatcher(None, a, b, autojunk=False).get_opcodes())
    na, nb = len(a), len(b)
    head = 0
    while head < min(na, nb) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(na, nb) - head and a[na - 1 - tail] == b[nb - 1 - tail]:
        tail += 1
    out: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    ma, mb = a[head:na - tail], b[head:nb - tail]
    if alignable(ma, mb, units, pairs):
        out.extend((op, head + i1, head + i2, head + j1, head + j2)
                   for op, i1, i2, j1, j2 in SequenceMatcher(None, ma, mb, autojunk=False).get_opcodes())
    elif ma or mb:
        op = "replace" if ma and mb else ("delete" if ma else "insert")
        out.append((op, head, na - tail, head, nb - tail))
    if tail:
        out.append(("equal", na - tail, na, nb - tail, nb))
    return out
