"""One config version, compiled: what the dispatcher runs per request.

A :class:`Rule` is one ``rule`` object restricted to one variety (check, quota or
report): its scope (``namespace``: the rule applies only when ``destination.namespace``
equals it; ``None`` for rules of the root namespace, which apply to every request), its
compiled ``match`` and its actions, each a built handler with the instances it gets.
:class:`CompiledConfig` is the whole version: rules by variety, quota rules by the
fully qualified name of their quota instance, the AuthorizationPolicies, the mesh
config, the live handlers, the fail policy and the issues found while compiling.

Everything here is immutable once built and shared by every request of the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from services.mixer.core.authz import AuthorizationPolicies
from services.mixer.core.handlers.base import Handler
from services.mixer.core.instances import BagEvaluator, InstanceBuilder
from shared.config.mesh import MeshConfigSpec
from shared.policy_expr import Expression


@dataclass(frozen=True, slots=True)
class Action:
    """Send ``instances`` to ``handler`` (named ``handler_name``, fully qualified)."""

    handler_name: str
    handler: Handler
    instances: tuple[InstanceBuilder, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule of one variety (see the module docstring). ``name`` is ``namespace/name``."""

    name: str
    namespace: str | None
    match: Expression
    actions: tuple[Action, ...]

    def applies(self, evaluator: BagEvaluator) -> bool:
        """Whether the rule is in scope and its match holds; ``EvaluationError`` if the
        match cannot be evaluated for this request."""
        if self.namespace is not None and (
            evaluator.bag.get("destination.namespace") != self.namespace
        ):
            return False
        return evaluator.evaluate(self.match) is True


@dataclass(frozen=True, slots=True)
class HandlerEntry:
    """A built handler and the version of the object it was built from."""

    version: str
    handler: Handler


def _empty_rules() -> Mapping[str, tuple[Rule, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    """One compiled config version (see the module docstring)."""

    version: str
    authz: AuthorizationPolicies
    mesh: MeshConfigSpec
    fail_open: bool
    check_rules: tuple[Rule, ...] = ()
    report_rules: tuple[Rule, ...] = ()
    quota_rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=_empty_rules)
    handlers: Mapping[str, HandlerEntry] = field(default_factory=dict)
    issues: tuple[str, ...] = ()
