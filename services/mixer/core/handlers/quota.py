"""``memquota`` and ``redisquota``: one quota handler over a :class:`QuotaBackend`.

A handler holds the quotas of its params, keyed by the fully qualified name of the
``quota`` instance they limit (``requestcount.instance.shop``; Istio's older
``requestcount.quota.shop`` means the same). For a request it picks the first override
whose dimensions all equal the instance's, else the quota's own ``maxAmount``, and asks
the backend to allocate under a key made of the instance name and its dimensions, so
every distinct set of dimensions is counted separately. An instance the handler has no
quota for is granted in full. memquota counts in a rolling window of ten buckets;
redisquota in its configured fixed or rolling window (``bucketDuration`` defaults to a
tenth of the window).

Immutable after construction; task-safe on the event loop. Errors: the backend's
:class:`~services.mixer.core.errors.QuotaBackendError` propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.mixer.core.handlers.base import Instance, QuotaArgs, QuotaResult, StatelessHandler
from services.mixer.core.names import candidates
from services.mixer.ports import QuotaAlgorithm, QuotaBackend, QuotaRequest
from shared.config.policy_adapters import MemquotaParams, QuotaLimit, RedisquotaParams

_DEFAULT_DEDUP = timedelta(seconds=1)
_MIN_BUCKET = 0.001


@dataclass(frozen=True, slots=True)
class _Override:
    dimensions: Mapping[str, str]
    max_amount: int
    window: float


@dataclass(frozen=True, slots=True)
class Limit:
    """One quota: ``max_amount`` per ``window`` seconds, with overrides."""

    max_amount: int
    window: float
    algorithm: QuotaAlgorithm
    bucket: float
    overrides: tuple[_Override, ...] = ()

    def for_dimensions(self, dimensions: Mapping[str, str]) -> tuple[int, float]:
        """``(max_amount, window)`` for these dimensions (first matching override)."""
        for override in self.overrides:
            if all(dimensions.get(k) == v for k, v in override.dimensions.items()):
                return override.max_amount, override.window
        return self.max_amount, self.window


class QuotaCounter(StatelessHandler):
    """A configured memquota or redisquota handler."""

    def __init__(
        self,
        *,
        limits: Mapping[str, Limit],
        backend: QuotaBackend,
        clock: Callable[[], float],
        dedup_ttl: float,
    ) -> None:
        self._limits = dict(limits)
        self._backend = backend
        self._clock = clock
        self._dedup_ttl = dedup_ttl

    async def handle_quota(self, instance: Instance, args: QuotaArgs) -> QuotaResult:
        """Allocate ``args.amount`` for ``instance``; see the module docstring."""
        limit = self._limits.get(instance.name)
        if limit is None:
            return QuotaResult(granted=args.amount)
        raw = instance.fields.get("dimensions") or {}
        dimensions = {str(key): str(value) for key, value in raw.items()}
        max_amount, window = limit.for_dimensions(dimensions)
        key = ";".join([instance.name, *(f"{k}={dimensions[k]}" for k in sorted(dimensions))])
        grant = await self._backend.allocate(
            QuotaRequest(
                key=key,
                max_amount=max_amount,
                window=window,
                algorithm=limit.algorithm,
                bucket=min(limit.bucket, window) if window > 0 else limit.bucket,
                amount=args.amount,
                best_effort=args.best_effort,
                dedup_id=args.dedup_id,
                dedup_ttl=self._dedup_ttl,
                now=self._clock(),
            )
        )
        return QuotaResult(
            granted=grant.granted,
            limit=max_amount,
            remaining=grant.remaining,
            reset_after=grant.reset_after,
            window=window,
        )


def _seconds(duration: timedelta | None) -> float:
    return duration.total_seconds() if duration is not None else 0.0


def _limit(quota: QuotaLimit, algorithm: QuotaAlgorithm, bucket: timedelta | None) -> Limit:
    window = _seconds(quota.valid_duration)
    overrides = tuple(
        _Override(
            dict(override.dimensions or {}),
            override.max_amount,
            _seconds(getattr(override, "valid_duration", None)) or window,
        )
        for override in quota.overrides or ()
    )
    bucket_seconds = _seconds(bucket) or max(window / 10, _MIN_BUCKET)
    return Limit(quota.max_amount, window, algorithm, bucket_seconds, overrides)


def _keyed(name: str, limit: Limit, handler: str) -> dict[str, Limit]:
    # A quota name is an instance reference, resolved in the handler's namespace.
    namespace = handler.rsplit(".", 1)[-1]
    return {qualified: limit for qualified in candidates(name, "instance", namespace)}


def memquota_limits(params: MemquotaParams, handler: str) -> dict[str, Limit]:
    """The limits of memquota ``handler`` (rolling windows of ten buckets)."""
    limits: dict[str, Limit] = {}
    for quota in params.quotas or ():
        limits.update(_keyed(quota.name, _limit(quota, "ROLLING_WINDOW", None), handler))
    return limits


def redisquota_limits(params: RedisquotaParams, handler: str) -> dict[str, Limit]:
    """The limits of redisquota ``handler`` (fixed or rolling, as configured)."""
    limits: dict[str, Limit] = {}
    for quota in params.quotas or ():
        limit = _limit(quota, quota.rate_limit_algorithm, quota.bucket_duration)
        limits.update(_keyed(quota.name, limit, handler))
    return limits


def dedup_ttl(params: MemquotaParams | None) -> float:
    """How long deduplication ids are remembered (memquota's minDeduplicationDuration)."""
    configured = params.min_deduplication_duration if params is not None else None
    return (configured or _DEFAULT_DEDUP).total_seconds()


class MemquotaBuilder:
    """Builds memquota handlers over one shared in-memory backend."""

    templates = frozenset({"quota"})

    def __init__(self, backend: QuotaBackend, clock: Callable[[], float]) -> None:
        self._backend = backend
        self._clock = clock

    def build(self, name: str, params: Any) -> QuotaCounter:
        """A memquota handler from :class:`MemquotaParams`."""
        return QuotaCounter(
            limits=memquota_limits(params, name),
            backend=self._backend,
            clock=self._clock,
            dedup_ttl=dedup_ttl(params),
        )
