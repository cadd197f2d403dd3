"""The policy side of Mixer: Check (with its cache) and Quota, with load shedding.

:meth:`PolicyService.check` answers from the check cache when a stored decision matches
the request's referenced attributes, else dispatches against the current config version
through a :class:`~services.mixer.core.references.RecordingBag` and stores the decision
for what it read. The cache is cleared whenever the config version changes.
:meth:`PolicyService.quota` dispatches within ``quota_timeout`` seconds; when the quota
store fails or is too slow, ``quota_fail_open`` grants the request, otherwise it is
refused with UNAVAILABLE. Both raise :class:`~services.mixer.core.errors.OverloadedError`
while the load shedder says so, and feed it their latency.

Task safety: event loop only. ``check`` never awaits, so cache lookup and store see the
same config version.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.mixer.core.check_cache import CheckCache
from services.mixer.core.compiled import CompiledConfig
from services.mixer.core.dispatcher import CheckDecision, Dispatcher, QuotaDecision
from services.mixer.core.errors import OverloadedError, QuotaBackendError
from services.mixer.core.handlers.base import QuotaArgs
from services.mixer.core.loadshed import LoadShedder
from services.mixer.core.references import RecordingBag
from services.mixer.core.runtime import ConfigRuntime
from services.mixer.core.self_metrics import MixerMetrics
from services.mixer.core.status import Code, Status
from shared.policy_expr import AttributeBag

_log = logging.getLogger(__name__)
_HIT = {"result": "hit"}
_MISS = {"result": "miss"}


class PolicyService:
    """Check and Quota (see the module docstring)."""

    def __init__(
        self,
        *,
        runtime: ConfigRuntime,
        dispatcher: Dispatcher,
        cache: CheckCache[CheckDecision],
        shedder: LoadShedder,
        metrics: MixerMetrics,
        quota_timeout: float,
        quota_fail_open: bool,
    ) -> None:
        self._runtime = runtime
        self._dispatcher = dispatcher
        self._cache = cache
        self._shedder = shedder
        self._metrics = metrics
        self._quota_timeout = quota_timeout
        self._quota_fail_open = quota_fail_open
        self._cached_version: CompiledConfig | None = None

    def check(self, bag: AttributeBag) -> CheckDecision:
        """The decision for ``bag``; :class:`OverloadedError` when shedding."""
        self._admit("check")
        started = time.perf_counter()
        config = self._runtime.current
        if config is not self._cached_version:
            self._cache.clear()
            self._cached_version = config
        decision = self._cache.lookup(bag)
        if decision is not None:
            self._metrics.check_cache.add(1, _HIT)
        else:
            self._metrics.check_cache.add(1, _MISS)
            recorder = RecordingBag(bag)
            decision = self._dispatcher.check(config, recorder)
            self._cache.store(
                recorder.references,
                bag,
                decision,
                ttl=decision.valid_duration,
                uses=decision.valid_use_count,
            )
        self._metrics.checks.add(1, {"code": decision.status.code.name})
        self._shedder.observe(time.perf_counter() - started)
        return decision

    async def quota(self, bag: AttributeBag, quota: str, args: QuotaArgs) -> QuotaDecision:
        """Allocate ``args.amount`` of ``quota``; :class:`OverloadedError` when shedding."""
        self._admit("quota")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._quota_timeout):
                decision = await self._dispatcher.quota(self._runtime.current, bag, quota, args)
        except (QuotaBackendError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {self._quota_timeout} s"
            _log.warning("quota %s: the quota store failed: %s", quota, reason)
            if self._quota_fail_open:
                decision = QuotaDecision(Status(), args.amount)
                self._metrics.quotas.add(1, {"result": "error_fail_open"})
            else:
                decision = QuotaDecision(Status(Code.UNAVAILABLE, f"quota store: {reason}"), 0)
                self._metrics.quotas.add(1, {"result": "error_fail_closed"})
        else:
            result = "granted" if decision.status.ok else "exhausted"
            self._metrics.quotas.add(1, {"result": result})
        self._shedder.observe(time.perf_counter() - started)
        return decision

    def _admit(self, api: str) -> None:
        if self._shedder.overloaded():
            self._metrics.shed.add(1, {"api": api})
            # A refused call costs nothing; observing it lets the average recover.
            self._shedder.observe(0.0)
            raise OverloadedError(
                f"over the latency budget ({self._shedder.average * 1000:.2f} ms > "
                f"{self._shedder.budget * 1000:.2f} ms)"
            )
