"""The cache that stands in for Redis: an in-process TTL map with hit and miss counts."""

from __future__ import annotations

import time
from typing import Any

from harness.target.metrics import Metrics


class TTLCache:
    """Key -> value for ``ttl_s`` seconds. Used on the event loop thread only."""

    def __init__(self, metrics: Metrics) -> None:
        self._items: dict[str, tuple[float, Any]] = {}
        self._metrics = metrics

    def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is not None and item[0] > time.monotonic():
            self._metrics.cache_hits += 1
            return item[1]
        if item is not None:
            del self._items[key]
        self._metrics.cache_misses += 1
        return None

    def set(self, key: str, value: Any, ttl_s: float) -> None:
        if ttl_s > 0:
            self._items[key] = (time.monotonic() + ttl_s, value)

    def size(self) -> int:
        now = time.monotonic()
        return sum(1 for expires, _ in self._items.values() if expires > now)
