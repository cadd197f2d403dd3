"""Validation of Mixer's adapter model: handler, instance and rule (Istio 1.4).

Per object only: a handler names a known adapter and its params read as that adapter's
typed params (:mod:`.adapter_params`); an instance names a known template and the params
its template reads as expressions (quota and metric ``dimensions``, metric and listentry
``value``, logentry ``variables``) compile; a rule's actions name a handler and at least
one instance, and its ``match`` compiles to a BOOL. Expressions compile with
:mod:`shared.policy_expr` against Istio's attribute vocabulary; an error reads
``spec.match: position 17: unknown attribute 'foo.bar'``. Whether the handlers and
instances a rule names exist is the cross-resource analyzer's job. Validators record
into the :class:`Report` and never raise on a parsed resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.galley.core.validation.adapter_params import check_handler_params
from services.galley.core.validation.common import check_host_port, check_positive_duration
from services.galley.core.validation.report import Report
from shared.config import Resource
from shared.config.errors import format_path
from shared.config.policy import (
    KNOWN_TEMPLATES,
    HandlerSpec,
    HeaderOperation,
    InstanceSpec,
    RuleAction,
    RuleSpec,
    Sampling,
)
from shared.config.policy_adapters import KNOWN_ADAPTERS
from shared.policy_expr import ExpressionError, compile_expression, compile_match

_DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}
_EXPRESSION_PARAMS: Mapping[str, tuple[tuple[str, bool], ...]] = {
    "quota": (("dimensions", True),),
    "metric": (("value", False), ("dimensions", True)),
    "logentry": (("variables", True),),
    "listentry": (("value", False),),
}
"""Per template: the params that are expressions, and whether each is a name → expression map."""


def validate_handler(resource: Resource, report: Report) -> None:
    """One adapter, known, with params that fit it; a connection address is host:port."""
    spec = resource.spec
    if not isinstance(spec, HandlerSpec):
        return
    if not _check_one_of(report, spec.compiled_adapter, spec.adapter, "Adapter", KNOWN_ADAPTERS):
        return
    check_handler_params(report, "spec.params", spec.adapter_name, spec.params)
    if spec.connection is not None:
        if spec.connection.address:
            check_host_port(report, "spec.connection.address", spec.connection.address)
        else:
            report.error("spec.connection.address", "required when a connection is set")
        if spec.connection.timeout is not None:
            check_positive_duration(report, "spec.connection.timeout", spec.connection.timeout)


def validate_instance(resource: Resource, report: Report) -> None:
    """One template, known; the params it reads as expressions compile."""
    spec = resource.spec
    if not isinstance(spec, InstanceSpec):
        return
    if _check_one_of(report, spec.compiled_template, spec.template, "Template", KNOWN_TEMPLATES):
        _check_expression_params(report, spec.template_name, spec.params or {})


def validate_rule(resource: Resource, report: Report) -> None:
    """Actions complete, header operations named, sampling sane, ``match`` a BOOL expression."""
    spec = resource.spec
    if not isinstance(spec, RuleSpec):
        return
    try:
        compile_match(spec.match)
    except ExpressionError as exc:
        report.error("spec.match", str(exc))
    if (
        not spec.actions
        and not spec.request_header_operations
        and not (spec.response_header_operations)
    ):
        report.warning("spec.actions", "the rule has no actions and no header operations")
    seen: dict[str, int] = {}
    for index, action in enumerate(spec.actions or ()):
        _check_action(report, f"spec.actions[{index}]", action)
        if action.name and action.name in seen:
            report.error(
                f"spec.actions[{index}].name",
                f"duplicate action name {action.name!r} (also spec.actions[{seen[action.name]}])",
            )
        seen.setdefault(action.name or "", index)
    for field, operations in (
        ("requestHeaderOperations", spec.request_header_operations),
        ("responseHeaderOperations", spec.response_header_operations),
    ):
        _check_header_operations(report, f"spec.{field}", operations)
    if spec.sampling is not None:
        _check_sampling(report, "spec.sampling", spec.sampling)


def _check_expression_params(report: Report, template: str, params: Mapping[str, Any]) -> None:
    for field, is_map in _EXPRESSION_PARAMS.get(template, ()):
        if field not in params:
            continue
        value = params[field]
        path = format_path(("spec.params", field))
        if not is_map:
            _check_expression(report, path, value)
        elif not isinstance(value, Mapping):
            report.error(path, "must be a map of names to expressions")
        else:
            for name, text in value.items():
                _check_expression(report, format_path((path, str(name))), text)


def _check_expression(report: Report, path: str, value: object) -> None:
    """``value`` compiles as an expression (a YAML number or boolean reads as its literal)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        report.error(path, "must be an expression (a string)")
        return
    try:
        compile_expression(text)
    except ExpressionError as exc:
        report.error(path, str(exc))


def _check_one_of(
    report: Report, compiled: str | None, plain: str | None, what: str, known: Sequence[str]
) -> bool:
    """``compiled<What>`` or ``<what>``: exactly one set, naming a known one."""
    compiled_field, plain_field = f"compiled{what}", what.lower()
    if compiled and plain and compiled != plain:
        report.error(
            f"spec.{plain_field}", f"set either {compiled_field} or {plain_field}, not both"
        )
        return False
    name, field = (compiled, compiled_field) if compiled else (plain, plain_field)
    if not name:
        report.error(f"spec.{compiled_field}", f"required: name the {plain_field}")
        return False
    if name not in known:
        report.error(
            f"spec.{field}",
            f"unknown {plain_field} {name!r} in {field}; known: {', '.join(known)}",
        )
        return False
    return True


def _check_action(report: Report, path: str, action: RuleAction) -> None:
    if not action.handler:
        report.error(f"{path}.handler", "required: an action must name a handler")
    if not action.instances:
        report.error(f"{path}.instances", "an action needs at least one instance")
    for index, instance in enumerate(action.instances or ()):
        if not instance:
            report.error(f"{path}.instances[{index}]", "empty instance name")


def _check_header_operations(
    report: Report, path: str, operations: Sequence[HeaderOperation] | None
) -> None:
    for index, operation in enumerate(operations or ()):
        if not operation.name:
            report.error(f"{path}[{index}].name", "required: the header to change")
        elif operation.operation != "REMOVE" and not operation.values:
            report.error(f"{path}[{index}].values", f"{operation.operation} needs values")


def _check_sampling(report: Report, path: str, sampling: Sampling) -> None:
    random = sampling.random
    if random is not None and random.percent_sampled is not None:
        fraction = random.percent_sampled
        denominator = _DENOMINATORS[fraction.denominator]
        if not 0 <= fraction.numerator <= denominator:
            report.error(
                f"{path}.random.percentSampled.numerator",
                f"{fraction.numerator} must be between 0 and {denominator} "
                f"(denominator {fraction.denominator})",
            )
    limit = sampling.rate_limit
    if limit is None:
        return
    if limit.sampling_duration is not None:
        check_positive_duration(
            report, f"{path}.rateLimit.samplingDuration", limit.sampling_duration
        )
    for field, value in (
        ("maxUnsampledEntries", limit.max_unsampled_entries),
        ("samplingRate", limit.sampling_rate),
    ):
        if value < 0:
            report.error(f"{path}.rateLimit.{field}", f"{value} must not be negative")


POLICY_VALIDATORS: Mapping[str, Callable[[Resource, Report], None]] = {
    "handler": validate_handler,
    "instance": validate_instance,
    "rule": validate_rule,
}
