"""What adapters consume and return, and the protocols they implement.

An :class:`Instance` is a template filled from one request's attributes (its ``fields``
are evaluated instance params). A handler is an adapter configured by one ``handler``
object; it implements any of :class:`CheckHandler` (sync, pure: denier, listchecker),
:class:`QuotaHandler` (async: memquota, redisquota) and :class:`ReportHandler` (async:
prometheus, stdio, opentelemetry), and always :class:`Handler` (``close``).
A :class:`HandlerBuilder` makes a handler from typed params once per config version;
the config runtime reuses it while the handler object is unchanged.

Values are immutable and task-safe. Handlers are called from the event loop only.
Errors: a handler raises :class:`~services.mixer.core.errors.HandlerError` (or a
subclass) for a failure on one request; anything else is a bug, logged and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.mixer.core.status import OK, Status

CHECK_TEMPLATES = frozenset({"checknothing", "listentry", "authorization", "apikey"})
QUOTA_TEMPLATES = frozenset({"quota"})
REPORT_TEMPLATES = frozenset({"metric", "logentry", "tracespan", "reportnothing"})


@dataclass(frozen=True, slots=True)
class Instance:
    """One filled template: ``name`` is fully qualified (``requestcount.instance.shop``)."""

    name: str
    template: str
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """An adapter's answer to a check, and how long (and how often) it may be reused."""

    status: Status = OK
    valid_duration: float = 0.0
    valid_use_count: int = 0


@dataclass(frozen=True, slots=True)
class QuotaArgs:
    """What a quota call asks for. ``dedup_id`` makes a retried call idempotent."""

    amount: int = 1
    best_effort: bool = False
    dedup_id: str = ""


@dataclass(frozen=True, slots=True)
class QuotaResult:
    """What a quota adapter granted; ``reset_after`` is seconds until more is available."""

    granted: int
    limit: int | None = None
    remaining: int | None = None
    reset_after: float = 0.0
    window: float = 0.0


class Handler(Protocol):
    """A configured adapter. ``close`` releases what it holds; idempotent."""

    async def close(self) -> None: ...


class CheckHandler(Handler, Protocol):
    """Answers checks synchronously (no I/O)."""

    def handle_check(self, instance: Instance) -> CheckResult: ...


class QuotaHandler(Handler, Protocol):
    """Allocates quota."""

    async def handle_quota(self, instance: Instance, args: QuotaArgs) -> QuotaResult: ...


class ReportHandler(Handler, Protocol):
    """Consumes a batch of report instances."""

    async def handle_report(self, instances: Sequence[Instance]) -> None: ...


class HandlerBuilder(Protocol):
    """Makes one adapter's handlers. ``templates`` are the templates it accepts."""

    @property
    def templates(self) -> frozenset[str]: ...

    def build(self, name: str, params: Any) -> Handler:
        """A handler named ``name`` (``deny.handler.shop``) from its typed params.

        Raises :class:`~services.mixer.core.errors.ConfigError` for params it cannot use.
        """
        ...


class StatelessHandler:
    """Mixin for handlers that hold nothing to release."""

    async def close(self) -> None:
        """Nothing to release."""
