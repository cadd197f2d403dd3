"""Runs one compiled config version against requests: Check, Quota and Report.

- :meth:`Dispatcher.check` (sync): AuthorizationPolicies first (a DENY, or no matching
  ALLOW, answers PERMISSION_DENIED), then every check rule in scope whose match holds,
  each instance sent to its handler; the first non-OK status is the answer. The answer
  may be reused for the smallest ``valid_duration``/``valid_use_count`` any handler
  gave (the defaults when none did).
- :meth:`Dispatcher.quota`: the rules that send the named quota instance to a handler;
  the smallest grant wins. Not granting the full amount (unless best effort) is
  RESOURCE_EXHAUSTED. With no rule for the quota, the amount is granted.
- :meth:`Dispatcher.report`: every report rule in scope for each bag; instances are
  batched per handler, one ``handle_report`` call per handler per batch.

Bad input: as in Istio, a ``match`` that reads an attribute the request does not carry
(and has no ``|`` default) does not hold. Any other failure to evaluate a match (a
runtime type mismatch) or an instance (a missing attribute too) fails that rule: it is
counted (``mixer_rule_errors_total``) and the config's fail policy decides — fail open
skips the rule, fail closed answers INTERNAL (never cached). In reports the rule is
skipped and counted. A handler that raises fails its own work only.

Errors: :meth:`quota` lets :class:`~services.mixer.core.errors.QuotaBackendError`
through (the caller applies the quota fail policy). Task safety: stateless apart from
the metrics; one dispatcher serves every task of the process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from services.mixer.core.compiled import Action, CompiledConfig, Rule
from services.mixer.core.errors import HandlerError
from services.mixer.core.handlers.base import (
    CheckHandler,
    Instance,
    QuotaArgs,
    QuotaHandler,
    ReportHandler,
)
from services.mixer.core.instances import BagEvaluator
from services.mixer.core.names import candidates
from services.mixer.core.self_metrics import MixerMetrics
from services.mixer.core.status import OK, Code, Status
from shared.policy_expr import AttributeBag, EvaluationError, MissingAttributeError

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckDecision:
    """A check's answer, how long and how often it may be reused, and who decided."""

    status: Status
    valid_duration: float
    valid_use_count: int
    decided_by: str = ""


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """A quota's answer: the status, what was granted, and the limit that applied."""

    status: Status
    granted: int
    limit: int | None = None
    remaining: int | None = None
    reset_after: float = 0.0
    window: float = 0.0


class _RuleFailedError(Exception):
    def __init__(self, rule: str, error: EvaluationError) -> None:
        super().__init__(f"rule {rule}: {error}")
        self.rule = rule


class Dispatcher:
    """See the module docstring. ``default_ttl``/``default_uses`` bound cached answers."""

    def __init__(self, *, metrics: MixerMetrics, default_ttl: float, default_uses: int) -> None:
        self._metrics = metrics
        self._default_ttl = default_ttl
        self._default_uses = default_uses

    def check(self, config: CompiledConfig, bag: AttributeBag) -> CheckDecision:
        """Answer a check for ``bag`` (read only through ``bag``)."""
        ttl, uses = self._default_ttl, self._default_uses
        if len(config.authz):
            decision = config.authz.evaluate(bag)
            if decision is not None and not decision.allowed:
                status = Status(Code.PERMISSION_DENIED, f"RBAC: access denied ({decision.reason})")
                return CheckDecision(status, ttl, uses, decision.policy)
        evaluator = BagEvaluator(bag)
        for rule in config.check_rules:
            try:
                instances = self._instances(rule, evaluator, "check")
            except _RuleFailedError as failed:
                if config.fail_open:
                    continue
                return CheckDecision(Status(Code.INTERNAL, str(failed)), 0.0, 0, rule.name)
            for action, instance in instances:
                result = cast(CheckHandler, action.handler).handle_check(instance)
                ttl = min(ttl, result.valid_duration)
                uses = min(uses, result.valid_use_count)
                if not result.status.ok:
                    return CheckDecision(result.status, ttl, uses, action.handler_name)
        return CheckDecision(OK, ttl, uses)

    async def quota(
        self, config: CompiledConfig, bag: AttributeBag, quota: str, args: QuotaArgs
    ) -> QuotaDecision:
        """Allocate ``args.amount`` of ``quota`` (an instance name, qualified or not)."""
        namespace = quota.rsplit(".", 1)[-1]
        rules: tuple[Rule, ...] = ()
        for name in candidates(quota, "instance", namespace):
            rules = config.quota_rules.get(name, ())
            if rules:
                break
        evaluator = BagEvaluator(bag)
        granted, decision = args.amount, QuotaDecision(OK, args.amount)
        for rule in rules:
            try:
                instances = self._instances(rule, evaluator, "quota")
            except _RuleFailedError as failed:
                if config.fail_open:
                    continue
                return QuotaDecision(Status(Code.INTERNAL, str(failed)), 0)
            for action, instance in instances:
                result = await cast(QuotaHandler, action.handler).handle_quota(instance, args)
                if result.granted <= granted:
                    granted = result.granted
                    decision = QuotaDecision(
                        OK,
                        granted,
                        limit=result.limit,
                        remaining=result.remaining,
                        reset_after=result.reset_after,
                        window=result.window,
                    )
        if granted < args.amount and not (args.best_effort and granted > 0):
            status = Status(Code.RESOURCE_EXHAUSTED, f"quota {quota} exhausted")
            return QuotaDecision(
                status,
                granted,
                limit=decision.limit,
                remaining=decision.remaining,
                reset_after=decision.reset_after,
                window=decision.window,
            )
        return decision

    async def report(self, config: CompiledConfig, bags: Sequence[AttributeBag]) -> None:
        """Dispatch the report rules for every bag (see the module docstring)."""
        batches: dict[str, tuple[Action, list[Instance]]] = {}
        for bag in bags:
            evaluator = BagEvaluator(bag)
            for rule in config.report_rules:
                try:
                    instances = self._instances(rule, evaluator, "report")
                except _RuleFailedError:
                    continue
                for action, instance in instances:
                    batch = batches.get(action.handler_name)
                    if batch is None:
                        batch = batches[action.handler_name] = (action, [])
                    batch[1].append(instance)
        for name, (action, batch_instances) in batches.items():
            try:
                await cast(ReportHandler, action.handler).handle_report(batch_instances)
            except HandlerError as exc:
                self._metrics.handler_errors.add(1, {"handler": name})
                _log.warning("report handler %s failed: %s", name, exc)
            except Exception:
                self._metrics.handler_errors.add(1, {"handler": name})
                _log.exception("report handler %s failed unexpectedly", name)

    def _instances(
        self, rule: Rule, evaluator: BagEvaluator, variety: str
    ) -> list[tuple[Action, Instance]]:
        """The instances ``rule`` sends for this request ([] when it does not apply)."""
        try:
            if not rule.applies(evaluator):
                return []
        except MissingAttributeError:
            return []  # Istio: a match that reads an absent attribute does not hold
        except EvaluationError as exc:
            self._metrics.rule_errors.add(1, {"rule": rule.name, "variety": variety})
            raise _RuleFailedError(rule.name, exc) from exc
        try:
            return [
                (action, builder.build(evaluator))
                for action in rule.actions
                for builder in action.instances
            ]
        except EvaluationError as exc:
            self._metrics.rule_errors.add(1, {"rule": rule.name, "variety": variety})
            raise _RuleFailedError(rule.name, exc) from exc
