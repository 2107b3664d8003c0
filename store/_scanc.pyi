"""Types of the native scanner (store/_scanc.c); see its source for the contract."""

from typing import Any

def scan(buf: bytes | bytearray | memoryview, pos: int, base: int, stop: int, cap: int, /) -> tuple[list[tuple[Any, ...]], int, bool]: ...
