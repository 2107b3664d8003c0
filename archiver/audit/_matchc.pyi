"""Types of a scanning task's native bookkeeping (archiver/audit/_matchc.c); see its source for the contract."""

from typing import Any

def settle(found: list[Any], i: int, name: str, index: dict[str, Any], waiting: dict[str, Any],
           pending: dict[str, list[Any]], located: set[str], seen_type: type,
           books: tuple[Any, ...] = ..., /) -> int: ...
