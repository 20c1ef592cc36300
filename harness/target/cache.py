"""The plan cache: an in-process TTL map standing in for Redis (the default), or a real
Redis (``--redis-url``). Both count nothing themselves: the app counts hits and misses the
same way for either (``payments_cache_hits_total``, ``payments_cache_misses_total``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import ConfigError
from harness.target.db import redact

if TYPE_CHECKING:
    import redis.asyncio

REDIS_KEY_PREFIX = "paybench:target:"
REDIS_TIMEOUT_S = 2.0


class PlanCache(Protocol):
    """What the app asks of its cache, in-process or Redis."""

    kind: str

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl_s: float) -> None: ...

    async def size(self) -> int: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class TTLCache:
    """Key -> value for ``ttl_s`` seconds, in this process. Used on the event loop only."""

    kind = "in-process cache standing in for Redis"

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Any]] = {}

    async def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is not None and item[0] > time.monotonic():
            return item[1]
        if item is not None:
            del self._items[key]
        return None

    async def set(self, key: str, value: Any, ttl_s: float) -> None:
        if ttl_s > 0:
            self._items[key] = (time.monotonic() + ttl_s, value)

    async def size(self) -> int:
        now = time.monotonic()
        return sum(1 for expires, _ in self._items.values() if expires > now)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._items.clear()


class RedisCache:
    """The same over Redis: JSON values under ``paybench:target:<key>``, expiring by TTL.

    Built before the event loop runs; redis-py's asyncio client connects on first use, in
    the loop that serves.
    """

    kind = "redis"

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self.url = url
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )

    async def get(self, key: str) -> Any | None:
        raw = await self._client.get(REDIS_KEY_PREFIX + key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl_s: float) -> None:
        if ttl_s > 0:
            await self._client.set(
                REDIS_KEY_PREFIX + key, json.dumps(value), px=max(1, round(ttl_s * 1000))
            )

    async def size(self) -> int:
        """The keys of this Redis database (DBSIZE: unlike a read of the keys, it leaves
        Redis's own keyspace hits and misses as the plan reads made them)."""
        return int(await self._client.dbsize())

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


def check_redis(url: str) -> None:
    """ConfigError unless Redis at ``url`` answers PING (checked once, before serving)."""
    import redis

    where = f"target --redis-url {redact(url)}"
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: not a Redis URL ({exc}); give redis://HOST:PORT/DB") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(
            f"{where}: no answer to PING ({exc}); start Redis or fix the URL"
        ) from None
    finally:
        client.close()
