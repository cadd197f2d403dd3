"""Typed specs of Mixer's adapter model (config.istio.io/v1alpha2, Istio 1.4).

A ``handler`` configures an adapter (``compiledAdapter``, or ``adapter`` for the same
name), an ``instance`` maps request attributes onto a template (``compiledTemplate`` or
``template``), and a ``rule`` sends instances to handlers when its ``match`` expression
holds. ``params`` stay free-form mappings here: :mod:`shared.config.policy_adapters`
reads a handler's params typed. Whether the names a rule uses exist is a cross-resource
question (Galley's analyzer), not the model's. Instances are immutable and task-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from shared.config.base import Duration, SpecModel

KNOWN_TEMPLATES: tuple[str, ...] = (
    "authorization",
    "checknothing",
    "listentry",
    "logentry",
    "metric",
    "quota",
    "reportnothing",
    "tracespan",
    "apikey",
)
"""The compiled-in templates an instance may name."""


class Connection(SpecModel):
    """Where an out-of-process adapter listens."""

    address: str = ""
    timeout: Duration | None = None


class HandlerSpec(SpecModel):
    """An adapter configured with ``params``."""

    compiled_adapter: str | None = None
    adapter: str | None = None
    params: Mapping[str, Any] | None = None
    connection: Connection | None = None

    @property
    def adapter_name(self) -> str:
        """The adapter this handler configures (``compiledAdapter`` wins over ``adapter``)."""
        return self.compiled_adapter or self.adapter or ""


class InstanceSpec(SpecModel):
    """Request attributes mapped onto a template's fields (``params`` are expressions)."""

    compiled_template: str | None = None
    template: str | None = None
    params: Mapping[str, Any] | None = None
    attribute_bindings: Mapping[str, str] | None = None

    @property
    def template_name(self) -> str:
        """The template this instance fills (``compiledTemplate`` wins over ``template``)."""
        return self.compiled_template or self.template or ""


class RuleAction(SpecModel):
    """Send ``instances`` to ``handler``; ``name`` lets headers refer to the output."""

    handler: str = ""
    instances: tuple[str, ...] | None = None
    name: str | None = None


class HeaderOperation(SpecModel):
    """Change one request or response header when the rule matches."""

    name: str = ""
    values: tuple[str, ...] | None = None
    operation: Literal["REPLACE", "REMOVE", "APPEND"] = "REPLACE"


class FractionalPercent(SpecModel):
    """``numerator`` out of a denominator of 100, 10 000 or 1 000 000."""

    numerator: int = 0
    denominator: Literal["HUNDRED", "TEN_THOUSAND", "MILLION"] = "HUNDRED"


class RandomSampling(SpecModel):
    """Keep a random fraction of the requests."""

    attribute_expression: str = ""
    percent_sampled: FractionalPercent | None = None
    use_independent_randomness: bool = False


class RateLimitSampling(SpecModel):
    """Keep every request up to ``maxUnsampledEntries`` per window, then 1 in ``samplingRate``."""

    sampling_duration: Duration | None = None
    max_unsampled_entries: int = 0
    sampling_rate: int = 0


class Sampling(SpecModel):
    """How a rule samples the requests it dispatches."""

    random: RandomSampling | None = None
    rate_limit: RateLimitSampling | None = None


class RuleSpec(SpecModel):
    """When ``match`` holds, run ``actions`` and the header operations."""

    match: str = ""
    actions: tuple[RuleAction, ...] | None = None
    request_header_operations: tuple[HeaderOperation, ...] | None = None
    response_header_operations: tuple[HeaderOperation, ...] | None = None
    sampling: Sampling | None = None
