"""AuthorizationPolicy (security.istio.io/v1beta1) evaluated in Check.

A policy applies to a request when it lives in the mesh's root namespace or in the
destination's namespace (``destination.namespace``), and its selector's labels are all
among ``destination.labels``. Evaluation is Istio's: if any applicable DENY policy
matches, the request is denied; otherwise, if there is no applicable ALLOW policy it is
allowed; otherwise it is allowed only when one of them matches. A policy matches when
any of its rules matches; a rule matches when each of ``from``, ``to`` and ``when``
matches (an absent one matches everything; within ``from`` and ``to`` any entry; within
an entry every field given; a field matches when its value matches one of ``values``
and none of ``notValues``). A policy without rules matches nothing. AUDIT and CUSTOM
policies do not take part.

Compiling never fails as a whole: a field splitmesh cannot evaluate is recorded as an
issue and, like Istio, makes a DENY rule broader (the field is ignored) and an ALLOW
rule never match. Compiled policies are immutable and task-safe; evaluation reads the
request only through the bag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.mixer.core import authz_match as m
from services.mixer.core.errors import ConfigError
from shared.config.security import (
    AuthorizationPolicySpec,
    AuthorizationRule,
    Condition,
    Operation,
    Source,
)
from shared.policy_expr import AttributeBag

Test = Callable[[AttributeBag], bool]


@dataclass(frozen=True, slots=True)
class AuthzDecision:
    """The outcome when at least one policy applied: allowed or not, and by which policy."""

    allowed: bool
    policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Policy:
    name: str
    namespace: str
    selector: Mapping[str, str]
    rules: tuple[Test, ...]

    def applies(self, bag: AttributeBag, root_namespace: str) -> bool:
        if self.namespace != root_namespace and bag.get("destination.namespace") != (
            self.namespace
        ):
            return False
        if not self.selector:
            return True
        labels = bag.get("destination.labels")
        if not isinstance(labels, Mapping):
            return False
        return all(labels.get(key) == value for key, value in self.selector.items())

    def matches(self, bag: AttributeBag) -> bool:
        return any(rule(bag) for rule in self.rules)


class AuthorizationPolicies:
    """The compiled policies of one config version."""

    def __init__(
        self, *, deny: Sequence[_Policy], allow: Sequence[_Policy], root_namespace: str
    ) -> None:
        self._deny = tuple(deny)
        self._allow = tuple(allow)
        self._root = root_namespace

    def __len__(self) -> int:
        return len(self._deny) + len(self._allow)

    def evaluate(self, bag: AttributeBag) -> AuthzDecision | None:
        """The decision, or None when no ALLOW or DENY policy applies to the request."""
        for policy in self._deny:
            if policy.applies(bag, self._root) and policy.matches(bag):
                return AuthzDecision(False, policy.name, f"denied by policy {policy.name}")
        applicable = [policy for policy in self._allow if policy.applies(bag, self._root)]
        if not applicable:
            return None
        for policy in applicable:
            if policy.matches(bag):
                return AuthzDecision(True, policy.name, f"allowed by policy {policy.name}")
        names = ", ".join(policy.name for policy in applicable)
        return AuthzDecision(False, names, f"no rule of ALLOW policy {names} matched")


def compile_policies(
    specs: Mapping[str, AuthorizationPolicySpec], *, root_namespace: str
) -> tuple[AuthorizationPolicies, tuple[str, ...]]:
    """Compile policies keyed by ``namespace/name``; also the issues found."""
    deny: list[_Policy] = []
    allow: list[_Policy] = []
    issues: list[str] = []
    for full_name, spec in sorted(specs.items()):
        if spec.action not in ("ALLOW", "DENY"):
            continue
        namespace = full_name.split("/", 1)[0]
        subject = f"AuthorizationPolicy {full_name}"
        rules = tuple(
            _compile_rule(rule, deny=spec.action == "DENY", subject=subject, issues=issues)
            for rule in spec.rules or ()
        )
        selector = dict(spec.selector.match_labels or {}) if spec.selector else {}
        policy = _Policy(full_name, namespace, selector, rules)
        (deny if spec.action == "DENY" else allow).append(policy)
    return AuthorizationPolicies(deny=deny, allow=allow, root_namespace=root_namespace), tuple(
        issues
    )


def _compile_rule(rule: AuthorizationRule, *, deny: bool, subject: str, issues: list[str]) -> Test:
    try:
        tests = _rule_tests(rule, subject=subject, lenient=deny, issues=issues)
    except ConfigError as exc:
        issues.append(f"{exc}; the rule never matches")
        return lambda _bag: False
    return lambda bag: all(test(bag) for test in tests)


def _rule_tests(
    rule: AuthorizationRule, *, subject: str, lenient: bool, issues: list[str]
) -> list[Test]:
    tests: list[Test] = []
    if rule.from_ is not None:
        sources = [_source_test(entry.source, subject) for entry in rule.from_ if entry.source]
        tests.append(_any(sources))
    if rule.to is not None:
        operations = [
            _operation_test(entry.operation, subject) for entry in rule.to if entry.operation
        ]
        tests.append(_any(operations))
    for condition in rule.when or ():
        try:
            tests.append(_condition_test(condition, subject))
        except ConfigError as exc:
            if not lenient:
                raise
            issues.append(f"{exc}; ignored in this DENY rule")
    return tests


def _any(tests: Sequence[Test]) -> Test:
    return lambda bag: any(test(bag) for test in tests)


def _field(
    getter: m.Getter,
    values: Sequence[str] | None,
    not_values: Sequence[str] | None,
    pattern: Callable[[str], m.Pattern],
) -> Test | None:
    if values is None and not_values is None:
        return None
    positive = tuple(pattern(text) for text in values or ())
    negative = tuple(pattern(text) for text in not_values or ())

    def test(bag: AttributeBag) -> bool:
        value = getter(bag)
        if values is not None and not any(p(value) for p in positive):
            return False
        return not any(p(value) for p in negative)

    return test


def _all(tests: Sequence[Test | None]) -> Test:
    present = tuple(test for test in tests if test is not None)
    return lambda bag: all(test(bag) for test in present)


def _source_test(source: Source, subject: str) -> Test:
    def ip(text: str) -> m.Pattern:
        return m.ip_pattern(text, subject=subject)

    return _all(
        [
            _field(
                m.principal("source.principal"),
                source.principals,
                source.not_principals,
                m.string_pattern,
            ),
            _field(
                m.attribute("request.auth.principal"),
                source.request_principals,
                source.not_request_principals,
                m.string_pattern,
            ),
            _field(
                m.attribute("source.namespace"),
                source.namespaces,
                source.not_namespaces,
                m.string_pattern,
            ),
            _field(m.attribute("source.ip"), source.ip_blocks, source.not_ip_blocks, ip),
        ]
    )


def _operation_test(operation: Operation, subject: str) -> Test:
    def port(text: str) -> m.Pattern:
        return m.port_pattern(text, subject=subject)

    return _all(
        [
            _field(
                m.attribute("request.host"), operation.hosts, operation.not_hosts, m.host_pattern
            ),
            _field(m.attribute("destination.port"), operation.ports, operation.not_ports, port),
            _field(
                m.attribute("request.method"),
                operation.methods,
                operation.not_methods,
                m.string_pattern,
            ),
            _field(m.path_without_query, operation.paths, operation.not_paths, m.string_pattern),
        ]
    )


def _condition_test(condition: Condition, subject: str) -> Test:
    getter, pattern = m.condition_key(condition.key, subject=subject)
    test = _field(getter, condition.values, condition.not_values, pattern)
    if test is None:
        raise ConfigError(subject, f"condition {condition.key!r} has no values")
    return test
