"""A small bounded LRU for results that never change: a Compare between two
snapshots depends only on their (immutable, signed) contents, a change
linked from a feed is opened by many readers, the figures between two
signed texts (checkedreads.py) are the same each time they are listed, and
what a manifest signs is checked once per process (signedreads.py). A
``make`` that raises stores nothing."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: two misses may both compute; both results are equal
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value
