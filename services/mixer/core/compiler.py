"""From the collections' snapshots to a :class:`CompiledConfig`, once per config version.

:func:`parse_snapshots` reads each MCP resource body into its typed spec (a body that
does not fit is an issue, the object skipped). :func:`compile_config` then builds:
handlers (``adapter_params_model`` reads their params; a handler whose object did not
change since the previous version is reused, not rebuilt), instances (params compiled
by :mod:`.instances`), rules (``match`` compiled; each action resolved to its handler
and instances; actions split by template variety), AuthorizationPolicies, the mesh
config (the first MeshConfig object, or Istio's defaults) and the fail policy.

Compiling never fails as a whole: every problem is an issue string naming the object
(``rule shop/deny: spec.match: position 3: ...``) and only that object (or action) is
left out, as Istio's Mixer did. Galley validates the same things first, so issues here
mean a Galley that validated less, or objects that are fine alone but not together.
Pure, apart from building handlers (which may open files); not task-safe during a call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.mixer.core.authz import compile_policies
from services.mixer.core.compiled import Action, CompiledConfig, HandlerEntry, Rule
from services.mixer.core.errors import ConfigError
from services.mixer.core.handlers.base import (
    CHECK_TEMPLATES,
    QUOTA_TEMPLATES,
    REPORT_TEMPLATES,
    HandlerBuilder,
)
from services.mixer.core.instances import ExpressionCompiler, InstanceBuilder, compile_params
from services.mixer.core.names import candidates, qualified, split_full_name
from services.mixer.ports import (
    AUTHORIZATION_POLICIES,
    HANDLERS,
    INSTANCES,
    MESH_CONFIG,
    RULES,
)
from shared.config import kinds_by_collection
from shared.config.mesh import MeshConfigSpec
from shared.config.policy import HandlerSpec, InstanceSpec, RuleSpec
from shared.config.policy_adapters import adapter_params_model
from shared.config.security import AuthorizationPolicySpec
from shared.contracts.mcp.snapshot import CollectionSnapshot

_VARIETIES = (("check", CHECK_TEMPLATES), ("quota", QUOTA_TEMPLATES), ("report", REPORT_TEMPLATES))


@dataclass(frozen=True, slots=True)
class Versioned:
    """A typed spec and the version of its object."""

    version: str
    spec: Any


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    """Typed specs by ``namespace/name``, per collection, and the collections' versions."""

    specs: Mapping[str, Mapping[str, Versioned]]
    versions: Mapping[str, str]
    issues: tuple[str, ...] = ()

    def of(self, collection: str) -> Mapping[str, Versioned]:
        """The specs of one collection (empty when it has not arrived)."""
        return self.specs.get(collection, {})


@dataclass(frozen=True, slots=True)
class CompileOptions:
    """Settings that shape compilation.

    ``check_fail_open`` overrides MeshConfig ``policyCheckFailOpen`` when not None;
    ``extra``, given the root namespace, makes built-in objects (the standard telemetry)
    that are added to Galley's, which win on a name clash.
    """

    check_fail_open: bool | None = None
    extra: Callable[[str], Mapping[str, Mapping[str, Versioned]]] | None = None


def parse_snapshots(snapshots: Mapping[str, CollectionSnapshot]) -> ParsedConfig:
    """Read every resource of ``snapshots`` into its typed spec."""
    kinds = kinds_by_collection()
    specs: dict[str, dict[str, Versioned]] = {}
    issues: list[str] = []
    for collection, snapshot in sorted(snapshots.items()):
        info = kinds[collection]
        parsed: dict[str, Versioned] = {}
        for name, resource in sorted(snapshot.resources.items()):
            try:
                spec = info.spec_model.model_validate(dict(resource.body))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                issues.append(f"{info.kind} {name}: spec.{where}: {first['msg']}")
                continue
            parsed[name] = Versioned(resource.version, spec)
        specs[collection] = parsed
    versions = {collection: snapshot.version for collection, snapshot in snapshots.items()}
    return ParsedConfig(specs, versions, tuple(issues))


def compile_config(
    parsed: ParsedConfig,
    *,
    builders: Mapping[str, HandlerBuilder],
    previous: Mapping[str, HandlerEntry],
    options: CompileOptions,
) -> CompiledConfig:
    """Compile one version (see the module docstring)."""
    return _Compilation(parsed, builders, previous, options).run()


class _Compilation:
    def __init__(
        self,
        parsed: ParsedConfig,
        builders: Mapping[str, HandlerBuilder],
        previous: Mapping[str, HandlerEntry],
        options: CompileOptions,
    ) -> None:
        self._parsed = parsed
        self._builders = builders
        self._previous = previous
        self._options = options
        self._issues = list(parsed.issues)
        self._expressions = ExpressionCompiler()
        self._handlers: dict[str, HandlerEntry] = {}
        self._handler_templates: dict[str, frozenset[str]] = {}
        self._instances: dict[str, InstanceBuilder] = {}
        self._extra: Mapping[str, Mapping[str, Versioned]] = {}

    def _objects(self, collection: str) -> dict[str, Versioned]:
        merged = dict(self._extra.get(collection, {}))
        merged.update(self._parsed.of(collection))
        return merged

    def run(self) -> CompiledConfig:
        mesh = self._mesh()
        if self._options.extra is not None:
            self._extra = self._options.extra(mesh.root_namespace)
        for full_name, item in sorted(self._objects(HANDLERS).items()):
            self._guard(self._handler, full_name, item)
        for full_name, item in sorted(self._objects(INSTANCES).items()):
            self._guard(self._instance, full_name, item.spec)
        rules: dict[str, list[Rule]] = {"check": [], "quota": [], "report": []}
        for full_name, item in sorted(self._objects(RULES).items()):
            self._guard(self._rule, full_name, item.spec, mesh.root_namespace, rules)
        policies = {
            name: item.spec
            for name, item in self._objects(AUTHORIZATION_POLICIES).items()
            if isinstance(item.spec, AuthorizationPolicySpec)
        }
        authz, authz_issues = compile_policies(policies, root_namespace=mesh.root_namespace)
        self._issues.extend(authz_issues)
        quota_rules: dict[str, list[Rule]] = {}
        for rule in rules["quota"]:
            for action in rule.actions:
                for instance in action.instances:
                    scoped = Rule(
                        rule.name,
                        rule.namespace,
                        rule.match,
                        (Action(action.handler_name, action.handler, (instance,)),),
                    )
                    quota_rules.setdefault(instance.name, []).append(scoped)
        fail_open = self._options.check_fail_open
        return CompiledConfig(
            version=self._version(),
            authz=authz,
            mesh=mesh,
            fail_open=mesh.policy_check_fail_open if fail_open is None else fail_open,
            check_rules=tuple(rules["check"]),
            report_rules=tuple(rules["report"]),
            quota_rules={name: tuple(found) for name, found in quota_rules.items()},
            handlers=self._handlers,
            issues=tuple(self._issues),
        )

    def _guard(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except ConfigError as exc:
            self._issues.append(str(exc))

    def _version(self) -> str:
        text = ";".join(f"{k}={v}" for k, v in sorted(self._parsed.versions.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def _mesh(self) -> MeshConfigSpec:
        for _, item in sorted(self._parsed.of(MESH_CONFIG).items()):
            if isinstance(item.spec, MeshConfigSpec):
                return item.spec
        return MeshConfigSpec()

    def _handler(self, full_name: str, item: Versioned) -> None:
        spec: HandlerSpec = item.spec
        namespace, name = split_full_name(full_name)
        fqn = qualified(name, "handler", namespace)
        subject = f"handler {full_name}"
        adapter = spec.adapter_name
        builder = self._builders.get(adapter)
        model = adapter_params_model(adapter)
        if builder is None or model is None:
            raise ConfigError(subject, f"spec.compiledAdapter: unknown adapter {adapter!r}")
        self._handler_templates[fqn] = builder.templates
        version = f"{adapter}/{item.version}"
        reused = self._previous.get(fqn)
        if reused is not None and reused.version == version:
            self._handlers[fqn] = reused
            return
        try:
            params = model.model_validate(dict(spec.params or {}))
        except ValidationError as exc:
            raise ConfigError(subject, f"spec.params: {_first_error(exc)}") from exc
        try:
            handler = builder.build(fqn, params)
        except ConfigError as exc:
            raise ConfigError(subject, exc.message) from exc
        except Exception as exc:  # an adapter's own failure must not reject the version
            raise ConfigError(subject, f"cannot build the {adapter} adapter: {exc}") from exc
        self._handlers[fqn] = HandlerEntry(version, handler)

    def _instance(self, full_name: str, spec: InstanceSpec) -> None:
        namespace, name = split_full_name(full_name)
        fqn = qualified(name, "instance", namespace)
        template = spec.template_name
        if not any(template in templates for _, templates in _VARIETIES):
            raise ConfigError(f"instance {full_name}", f"unknown template {template!r}")
        params = compile_params(spec.params, self._expressions, subject=f"instance {full_name}")
        self._instances[fqn] = InstanceBuilder(fqn, template, params)

    def _rule(self, full_name: str, spec: RuleSpec, root: str, out: dict[str, list[Rule]]) -> None:
        namespace, _ = split_full_name(full_name)
        subject = f"rule {full_name}"
        match = self._expressions.match(spec.match, subject=subject)
        actions: dict[str, list[Action]] = {variety: [] for variety, _ in _VARIETIES}
        for index, action in enumerate(spec.actions or ()):
            path = f"spec.actions[{index}]"
            handler_name = self._resolve(action.handler, "handler", namespace, self._handlers)
            if handler_name is None:
                self._issues.append(f"{subject}: {path}.handler: {action.handler!r} not found")
                continue
            accepted = self._handler_templates[handler_name]
            grouped: dict[str, list[InstanceBuilder]] = {}
            for reference in action.instances or ():
                instance_name = self._resolve(reference, "instance", namespace, self._instances)
                if instance_name is None:
                    self._issues.append(f"{subject}: {path}.instances: {reference!r} not found")
                    continue
                instance = self._instances[instance_name]
                if instance.template not in accepted:
                    self._issues.append(
                        f"{subject}: {path}: handler {handler_name} does not accept "
                        f"{instance.template} instance {reference!r}"
                    )
                    continue
                variety = next(v for v, templates in _VARIETIES if instance.template in templates)
                grouped.setdefault(variety, []).append(instance)
            entry = self._handlers[handler_name]
            for variety, instances in grouped.items():
                actions[variety].append(Action(handler_name, entry.handler, tuple(instances)))
        scope = None if namespace == root else namespace
        for variety, found in actions.items():
            if found:
                out[variety].append(Rule(full_name, scope, match, tuple(found)))

    @staticmethod
    def _resolve(
        reference: str, kind: str, namespace: str, known: Mapping[str, object]
    ) -> str | None:
        return next(
            (name for name in candidates(reference, kind, namespace) if name in known), None
        )


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
