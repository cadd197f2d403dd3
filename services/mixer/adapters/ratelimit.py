"""Envoy's RLS v3 ``RateLimitService.ShouldRateLimit``, answered by Mixer's quotas.

Each descriptor becomes a quota call (:mod:`.quota_request`) answered by the
:class:`~services.mixer.core.policy.PolicyService`; descriptors are answered in order.
A descriptor whose quota was not granted (exhausted, or the quota store failed and the
quota fails closed) is OVER_LIMIT, and then so is the whole answer (Envoy replies 429).
Statuses carry the limit that applied (``requests_per_unit`` and the window as a
unit when it is a whole second, minute, hour or day), what remains and the time until
the window resets. Over the latency budget the call fails with gRPC UNAVAILABLE (Envoy's
``failure_mode_deny`` decides); an unexpected error is logged and answered with INTERNAL.
Stateless; task-safe on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import duration_pb2

from services.mixer.adapters.quota_request import quota_calls
from services.mixer.core.dispatcher import QuotaDecision
from services.mixer.core.errors import OverloadedError
from services.mixer.core.policy import PolicyService

_log = logging.getLogger(__name__)
_Response = rls_pb2.RateLimitResponse
_UNITS: Mapping[float, int] = {
    1.0: _Response.RateLimit.SECOND,
    60.0: _Response.RateLimit.MINUTE,
    3600.0: _Response.RateLimit.HOUR,
    86400.0: _Response.RateLimit.DAY,
}


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """Answers Envoy's rate-limit requests (see the module docstring)."""

    def __init__(self, policy: PolicyService) -> None:
        self._policy = policy

    async def ShouldRateLimit(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Allocate every descriptor's quota."""
        try:
            statuses = [
                _Response.DescriptorStatus(code=_Response.OK)
                if call is None
                else _status(call.quota, await self._policy.quota(call.bag, call.quota, call.args))
                for call in quota_calls(request)
            ]
        except OverloadedError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception:
            _log.exception("rate limit failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, "mixer: quota failed")
        over = any(status.code == _Response.OVER_LIMIT for status in statuses)
        return _Response(
            overall_code=_Response.OVER_LIMIT if over else _Response.OK, statuses=statuses
        )


def _status(quota: str, decision: QuotaDecision) -> Any:
    status = _Response.DescriptorStatus(
        code=_Response.OK if decision.status.ok else _Response.OVER_LIMIT
    )
    if decision.limit is not None:
        status.current_limit.CopyFrom(
            _Response.RateLimit(
                name=quota,
                requests_per_unit=decision.limit,
                unit=_UNITS.get(decision.window, _Response.RateLimit.UNKNOWN),
            )
        )
    if decision.remaining is not None:
        status.limit_remaining = decision.remaining
    if decision.reset_after > 0:
        reset = duration_pb2.Duration()
        reset.FromNanoseconds(int(decision.reset_after * 1e9))
        status.duration_until_reset.CopyFrom(reset)
    return status


def register(server: Any, policy: PolicyService) -> None:
    """Add the RLS servicer to ``server`` (a ``grpc.aio.Server``)."""
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitServicer(policy), server)
