"""``redisquota``: quota counted in Redis, shared by every Mixer replica.

:class:`RedisQuotaBackend` implements :class:`~services.mixer.ports.QuotaBackend` with
one Lua script per algorithm, so each allocation is atomic in Redis whatever the number
of Mixers:

- FIXED_WINDOW: one counter per window, the window aligned to the epoch
  (``floor(now / window)``) so replicas agree on its edges; the key expires with it.
- ROLLING_WINDOW: a hash of bucket index → count; buckets older than the window are
  deleted and the rest summed on each allocation.

A non-empty deduplication id stores the answer under its own key for ``dedup_ttl``
(measured by Redis's clock, as a key expiry):
a retried allocation gets the first answer again and allocates nothing. Times come
from the caller (:attr:`QuotaRequest.now`), so replicas must keep their clocks in sync
(as Istio's redisquota required).

:class:`RedisClients` is a Component owning one connection pool per Redis URL (a
handler names ``redisServerUrl``, ``host:port`` or ``redis://…``, unless Mixer's
``redis_url`` setting overrides every handler's). Pools survive config versions;
``stop`` closes them.
:class:`RedisquotaBuilder` plugs the backend into the shared quota handler.

Errors: any Redis or socket failure (refused, reset, timed out after ``timeout``
seconds) raises :class:`~services.mixer.core.errors.QuotaBackendError`. Task safety:
event loop only; redis-py's asyncio pool serves concurrent allocations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from services.mixer.core.errors import QuotaBackendError
from services.mixer.core.handlers.quota import QuotaCounter, dedup_ttl, redisquota_limits
from services.mixer.ports import QuotaGrant, QuotaRequest

_DEDUP = """
if KEYS[2] ~= '' then
  local seen = redis.call('GET', KEYS[2])
  if seen then return seen end
end
"""
_GRANT = """
local max, amount = tonumber(ARGV[1]), tonumber(ARGV[2])
local available = max - used
local granted = amount
if amount > available then
  if ARGV[3] == '1' then granted = math.max(available, 0) else granted = 0 end
end
"""
_ANSWER = """
local answer = granted .. ':' .. math.max(available - granted, 0) .. ':' .. reset
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], answer, 'PX', ARGV[5]) end
return answer
"""
FIXED_WINDOW_SCRIPT = (
    "-- KEYS: counter of this window, dedup key ('' for none)\n"
    "-- ARGV: max, amount, best effort (0/1), expire ms (0: never), dedup ttl ms, reset ms\n"
    + _DEDUP
    + "local used = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    + _GRANT
    + """
if granted > 0 then
  redis.call('INCRBY', KEYS[1], granted)
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
end
local reset = ARGV[6]
"""
    + _ANSWER
)
ROLLING_WINDOW_SCRIPT = (
    "-- KEYS: hash of bucket index -> count, dedup key ('' for none)\n"
    "-- ARGV: max, amount, best effort (0/1), now ms, dedup ttl ms, window ms, bucket ms\n"
    + _DEDUP
    + """
local now, window, bucket = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local current = math.floor(now / bucket)
local count = math.max(math.ceil(window / bucket), 1)
local oldest = current - count + 1
local used, first = 0, current
local data = redis.call('HGETALL', KEYS[1])
for i = 1, #data, 2 do
  local index = tonumber(data[i])
  if index < oldest then
    redis.call('HDEL', KEYS[1], data[i])
  else
    used = used + tonumber(data[i + 1])
    if index < first then first = index end
  end
end
"""
    + _GRANT
    + """
if granted > 0 then redis.call('HINCRBY', KEYS[1], string.format('%d', current), granted) end
redis.call('PEXPIRE', KEYS[1], window + bucket)
local reset = string.format('%d', math.max((first + count) * bucket - now, 0))
"""
    + _ANSWER
)


class RedisQuotaBackend:
    """Allocates quota with the scripts above on one Redis."""

    def __init__(self, client: redis.Redis, *, prefix: str = "splitmesh:quota:") -> None:
        self._prefix = prefix
        self._fixed = client.register_script(FIXED_WINDOW_SCRIPT)
        self._rolling = client.register_script(ROLLING_WINDOW_SCRIPT)

    async def allocate(self, request: QuotaRequest) -> QuotaGrant:
        """Allocate atomically in Redis; :class:`QuotaBackendError` when Redis fails."""
        dedup = f"{self._prefix}dedup:{request.dedup_id}" if request.dedup_id else ""
        common = [request.max_amount, request.amount, 1 if request.best_effort else 0]
        dedup_ms = max(int(request.dedup_ttl * 1000), 1)
        now_ms = int(request.now * 1000)
        try:
            if request.algorithm == "ROLLING_WINDOW" and request.window > 0:
                window_ms = max(int(request.window * 1000), 1)
                bucket_ms = max(int(request.bucket * 1000), 1)
                answer = await self._rolling(
                    keys=[f"{self._prefix}{request.key}", dedup],
                    args=[*common, now_ms, dedup_ms, window_ms, bucket_ms],
                )
            else:
                index, expire_ms, reset_ms = _fixed_window(request.window, request.now)
                answer = await self._fixed(
                    keys=[f"{self._prefix}{request.key}:{index}", dedup],
                    args=[*common, expire_ms, dedup_ms, reset_ms],
                )
        except (RedisError, OSError) as exc:
            raise QuotaBackendError(f"redis: {exc}") from exc
        return _parse(answer)


def _fixed_window(window: float, now: float) -> tuple[int, int, int]:
    """``(window index, key expiry ms, ms until the window ends)``; zeros when no window."""
    if window <= 0:
        return 0, 0, 0
    index = math.floor(now / window)
    reset_ms = max(int(((index + 1) * window - now) * 1000), 1)
    return index, reset_ms + 1000, reset_ms


def _parse(answer: Any) -> QuotaGrant:
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    granted, remaining, reset_ms = (int(float(part)) for part in text.split(":"))
    return QuotaGrant(granted, remaining, reset_ms / 1000)


def redis_url(address: str, override: str | None) -> str:
    """The redis-py URL to use for a handler's ``redisServerUrl`` (``host:port`` or a URL)."""
    address = (override or address).strip()
    return address if "://" in address else f"redis://{address}"


class RedisClients:
    """One connection pool per Redis URL (a Component; see the module docstring)."""

    name = "mixer-redis-clients"

    def __init__(self, *, override_url: str | None, timeout: float, pool_size: int = 64) -> None:
        self._override_url = override_url
        self._timeout = timeout
        self._pool_size = pool_size
        self._backends: dict[str, RedisQuotaBackend] = {}
        self._clients: list[redis.Redis] = []

    def backend(self, address: str) -> RedisQuotaBackend:
        """The backend for ``address`` (created on first use; connects lazily)."""
        url = redis_url(address, self._override_url)
        found = self._backends.get(url)
        if found is None:
            client = redis.Redis.from_url(
                url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                max_connections=self._pool_size,
            )
            self._clients.append(client)
            found = self._backends[url] = RedisQuotaBackend(client)
        return found

    async def start(self) -> None:
        """Nothing to do: pools connect on first use."""

    async def stop(self) -> None:
        """Close every pool. Idempotent."""
        clients, self._clients = self._clients, []
        self._backends.clear()
        for client in clients:
            await client.aclose()


class RedisquotaBuilder:
    """Builds redisquota handlers: the shared quota handler over Redis."""

    templates = frozenset({"quota"})

    def __init__(self, clients: RedisClients, clock: Callable[[], float]) -> None:
        self._clients = clients
        self._clock = clock

    def build(self, name: str, params: Any) -> QuotaCounter:
        """A redisquota handler from :class:`RedisquotaParams`."""
        return QuotaCounter(
            limits=redisquota_limits(params, name),
            backend=self._clients.backend(params.redis_server_url),
            clock=self._clock,
            dedup_ttl=dedup_ttl(None),
        )
