"""memquota and redisquota count alike: one table of cases against both backends.

The Redis backend runs against a real ``redis-server``; both take the caller's clock, so
window edges are exact here (the process tests check them with real time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from services.mixer.adapters.redis_quota import RedisClients, RedisQuotaBackend, redis_url
from services.mixer.core.errors import QuotaBackendError
from services.mixer.core.memory_quota import MemoryQuotaBackend
from services.mixer.ports import QuotaBackend, QuotaRequest

pytestmark = pytest.mark.slow


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[QuotaBackend]:
    if request.param == "memory":
        yield MemoryQuotaBackend()
        return
    server = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(server.url)
    yield RedisQuotaBackend(client, prefix=f"test:{tmp_path.name}:")
    await client.aclose()


def ask(
    now: float,
    *,
    algorithm: str = "FIXED_WINDOW",
    key: str = "k",
    amount: int = 1,
    best_effort: bool = False,
    dedup: str = "",
    window: float = 10.0,
) -> QuotaRequest:
    return QuotaRequest(
        key=key,
        max_amount=4,
        window=window,
        algorithm=algorithm,  # type: ignore[arg-type]
        bucket=1.0,
        amount=amount,
        best_effort=best_effort,
        dedup_id=dedup,
        dedup_ttl=5.0,
        now=now,
    )


async def granted(backend: QuotaBackend, *requests: QuotaRequest) -> list[int]:
    return [(await backend.allocate(request)).granted for request in requests]


async def test_fixed_window_resets_at_the_aligned_edge(backend: QuotaBackend) -> None:
    assert await granted(backend, *(ask(1001.0) for _ in range(5))) == [1, 1, 1, 1, 0]
    grant = await backend.allocate(ask(1009.5))
    assert (grant.granted, grant.remaining, grant.reset_after) == (0, 0, pytest.approx(0.5))
    assert await granted(backend, ask(1010.0), ask(1010.0)) == [1, 1]


async def test_rolling_window_frees_quota_as_buckets_age_out(backend: QuotaBackend) -> None:
    rolling = "ROLLING_WINDOW"
    assert await granted(
        backend, ask(1000.5, algorithm=rolling), ask(1000.5, algorithm=rolling)
    ) == [1, 1]
    assert await granted(backend, *(ask(1005.5, algorithm=rolling) for _ in range(3))) == [1, 1, 0]
    # At 1010.0 the fixed window would be fresh; the rolling one only lost t=1000.5.
    assert await granted(backend, *(ask(1010.0, algorithm=rolling) for _ in range(3))) == [1, 1, 0]
    grant = await backend.allocate(ask(1012.0, algorithm=rolling))
    assert (grant.granted, grant.reset_after) == (0, pytest.approx(3.0))  # t=1005.5 ages out


async def test_amounts_best_effort_and_separate_keys(backend: QuotaBackend) -> None:
    assert await granted(backend, ask(1000, amount=3), ask(1000, amount=3)) == [3, 0]
    assert await granted(backend, ask(1000, amount=3, best_effort=True)) == [1]
    assert await granted(backend, ask(1000, key="other", amount=4)) == [4]


async def test_a_deduplication_id_repeats_the_first_answer(backend: QuotaBackend) -> None:
    first = await backend.allocate(ask(1000, dedup="req-1"))
    assert first.granted == 1
    for _ in range(5):
        assert await backend.allocate(ask(1000, dedup="req-1")) == first
    assert await granted(backend, *(ask(1000) for _ in range(4))) == [1, 1, 1, 0]


async def test_memquota_forgets_deduplication_ids_after_their_ttl() -> None:
    # Redis forgets by its own clock (a key with an expiry), so only memquota runs here.
    backend = MemoryQuotaBackend()
    assert await granted(backend, ask(1000, dedup="req-1")) == [1]
    assert await granted(backend, ask(1004, key="other", amount=2, dedup="req-1")) == [1]
    assert await granted(backend, ask(1006, key="other", amount=2, dedup="req-1")) == [2]


async def test_a_window_of_zero_never_resets(backend: QuotaBackend) -> None:
    assert await granted(
        backend, *(ask(t, window=0.0) for t in (1, 100, 10_000, 99_999, 10**6))
    ) == [1, 1, 1, 1, 0]


async def test_an_unreachable_redis_raises_a_backend_error(redis_server) -> None:
    redis_server.stop()
    clients = RedisClients(override_url=None, timeout=0.2)
    try:
        with pytest.raises(QuotaBackendError, match="redis"):
            await clients.backend(f"127.0.0.1:{redis_server.port}").allocate(ask(1000))
    finally:
        await clients.stop()


def test_the_mixer_wide_redis_url_overrides_handlers() -> None:
    assert redis_url("redis-master:6379", None) == "redis://redis-master:6379"
    assert redis_url("redis-master:6379", "redis://127.0.0.1:7000") == "redis://127.0.0.1:7000"
