"""Messages shared by several networking.istio.io/v1alpha3 kinds.

:class:`StringMatch`, :class:`Destination`, :class:`PortSelector`, :class:`Percent`,
:class:`Port` and :class:`WorkloadSelector`, typed as in Istio's API reference. Like every
:class:`~shared.config.base.SpecModel` they are immutable values, safe to share between
tasks. The models check types only; Istio's semantic rules (one of ``exact``/``prefix``/
``regex``, port ranges, host syntax) are Galley's validation, which reports every problem
with its field path instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from shared.config.base import SpecModel


class StringMatch(SpecModel):
    """Match a string exactly, by prefix, or by (RE2) regex; valid with exactly one set."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    def kinds_set(self) -> tuple[str, ...]:
        """The names of the match kinds that are set (valid when exactly one)."""
        return tuple(
            name
            for name, value in (
                ("exact", self.exact),
                ("prefix", self.prefix),
                ("regex", self.regex),
            )
            if value is not None
        )


class PortSelector(SpecModel):
    """A port of the destination service, by number."""

    number: int | None = None


class Destination(SpecModel):
    """Where traffic goes: a service host, optionally one subset and one port of it."""

    host: str
    subset: str | None = None
    port: PortSelector | None = None


class Percent(SpecModel):
    """A percentage in the range 0.0-100.0."""

    value: float = 0.0


class Port(SpecModel):
    """A named port with a protocol (Gateway servers, ServiceEntry and Sidecar listeners)."""

    number: int
    protocol: str | None = None
    name: str | None = None
    target_port: int | None = None


class WorkloadSelector(SpecModel):
    """Selects workloads (pods or endpoints) by label."""

    labels: Mapping[str, str] = Field(default_factory=dict)
