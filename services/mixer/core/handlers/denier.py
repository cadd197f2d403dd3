"""``denier``: answers every check with its configured status (and grants no quota).

Without a configured status it denies with PERMISSION_DENIED. Its answer may be cached
for ``validDuration`` (default 5 s) and ``validUseCount`` (default 1000) checks, like
Istio's. Immutable; task-safe.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.mixer.core.handlers.base import (
    CheckResult,
    Instance,
    QuotaArgs,
    QuotaResult,
    StatelessHandler,
)
from services.mixer.core.status import Code, Status
from shared.config.policy_adapters import DenierParams

_DEFAULT_DURATION = timedelta(seconds=5)
_DEFAULT_USES = 1000


class Denier(StatelessHandler):
    """A configured denier."""

    def __init__(self, name: str, params: DenierParams) -> None:
        configured = params.status
        if configured is None:
            self.status = Status(Code.PERMISSION_DENIED, f"denied by {name}")
        else:
            self.status = Status.of(configured.code, configured.message or f"denied by {name}")
        duration = params.valid_duration or _DEFAULT_DURATION
        uses = params.valid_use_count if params.valid_use_count is not None else _DEFAULT_USES
        self._result = CheckResult(self.status, duration.total_seconds(), uses)

    def handle_check(self, instance: Instance) -> CheckResult:
        """The configured status."""
        return self._result

    async def handle_quota(self, instance: Instance, args: QuotaArgs) -> QuotaResult:
        """Nothing is granted (everything when the configured status is OK)."""
        return QuotaResult(granted=args.amount if self.status.ok else 0)


class DenierBuilder:
    """Builds :class:`Denier` handlers."""

    templates = frozenset({"checknothing", "listentry", "quota"})

    def build(self, name: str, params: Any) -> Denier:
        """A denier from :class:`DenierParams`."""
        return Denier(name, params)
