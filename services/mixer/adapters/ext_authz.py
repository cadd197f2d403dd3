"""Envoy's ext_authz v3 ``Authorization.Check``, answered by Mixer's policy checks.

The servicer builds the request's bag (:mod:`.check_bag`), asks the
:class:`~services.mixer.core.policy.PolicyService`, and answers: OK with an empty
``ok_response``, or the decision's status with a ``denied_response`` whose HTTP status
comes from :data:`HTTP_STATUS` (Istio's mapping: PERMISSION_DENIED → 403,
UNAUTHENTICATED → 401, RESOURCE_EXHAUSTED → 429, INTERNAL → 500, UNAVAILABLE → 503…)
and whose body is ``<CODE>:<who decided>:<message>`` as Istio's Mixer filter wrote it.
Over the latency budget the call fails with gRPC UNAVAILABLE, so Envoy applies its
``failure_mode_allow`` (MeshConfig ``policyCheckFailOpen``). Any unexpected error is
logged and answered with gRPC INTERNAL. Stateless; task-safe on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import status_pb2

from services.mixer.adapters.check_bag import check_bag
from services.mixer.core.dispatcher import CheckDecision
from services.mixer.core.errors import OverloadedError
from services.mixer.core.policy import PolicyService
from services.mixer.core.status import Code

_log = logging.getLogger(__name__)

HTTP_STATUS: Mapping[Code, int] = {
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
"""A denial's gRPC code → the HTTP status Envoy answers with."""


class ExtAuthzServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """Answers Envoy's checks (see the module docstring)."""

    def __init__(self, policy: PolicyService) -> None:
        self._policy = policy
        self._allowed = external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=0), ok_response=external_auth_pb2.OkHttpResponse()
        )

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        """Decide one request."""
        try:
            decision = self._policy.check(check_bag(request))
        except OverloadedError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception:
            _log.exception("check failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, "mixer: check failed")
        if decision.status.ok:
            return self._allowed
        return _denied(decision)


def _denied(decision: CheckDecision) -> external_auth_pb2.CheckResponse:
    status = decision.status
    body = f"{status.code.name}:{decision.decided_by}:{status.message}"
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=int(status.code), message=status.message),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=HTTP_STATUS.get(status.code, 403)),
            body=body,
        ),
    )


def register(server: Any, policy: PolicyService) -> None:
    """Add the ext_authz servicer to ``server`` (a ``grpc.aio.Server``)."""
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(ExtAuthzServicer(policy), server)
