"""Instances: template params compiled once, filled per request.

An ``instance`` object maps request attributes onto a template's fields. Every string
leaf of its ``params`` is an expression (``'"literal"'`` for a literal, as in Istio);
numbers and booleans are constants; nested mappings (``dimensions``, ``variables``) keep
their keys. Top-level field names are normalised to snake_case (``monitoredResourceType``
→ ``monitored_resource_type``). :class:`ExpressionCompiler` compiles each distinct text
once per config version, so equal expressions share one :class:`Expression`, and
:class:`BagEvaluator` evaluates each of them at most once per request (the four standard
metrics share most of their dimensions).

An :class:`InstanceBuilder` is immutable and task-safe; a :class:`BagEvaluator` belongs
to one request on one task. Errors: :class:`~services.mixer.core.errors.ConfigError`
when params do not compile, ``EvaluationError`` when a request cannot fill them.
Instance ``fields`` may share mappings with other instances of the same request: adapters
must treat them as read-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.mixer.core.errors import ConfigError
from services.mixer.core.handlers.base import Instance
from shared.policy_expr import (
    AttributeBag,
    EvaluationError,
    Expression,
    ExpressionError,
    Value,
    compile_expression,
    compile_match,
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_MISS = object()

ParamNode = Expression | str | int | float | bool | Mapping[str, "ParamNode"]
"""A compiled param: an expression, a constant, or a mapping of params."""


class ExpressionCompiler:
    """Compiles expressions for one config version, sharing equal texts (and equal
    mappings of params, so a request fills a shared ``dimensions`` mapping once)."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, bool], Expression | ExpressionError] = {}
        self.mappings: dict[str, Mapping[str, ParamNode]] = {}
        """Compiled param mappings by their canonical JSON text."""

    def expression(self, text: str, *, subject: str, field: str) -> Expression:
        """``text`` compiled; :class:`ConfigError` naming ``subject`` and ``field``."""
        return self._compile(text, match=False, subject=subject, field=field)

    def match(self, text: str, *, subject: str) -> Expression:
        """A rule's ``match`` (empty means true); :class:`ConfigError` when it fails."""
        return self._compile(text, match=True, subject=subject, field="spec.match")

    def _compile(self, text: str, *, match: bool, subject: str, field: str) -> Expression:
        key = (text, match)
        found = self._compiled.get(key)
        if found is None:
            try:
                found = compile_match(text) if match else compile_expression(text)
            except ExpressionError as exc:
                found = exc
            self._compiled[key] = found
        if isinstance(found, ExpressionError):
            raise ConfigError(subject, f"{field}: {found}")
        return found


class BagEvaluator:
    """Evaluates expressions against one bag, each at most once (errors included), and
    fills each shared param mapping at most once (the filled dict is shared: read-only)."""

    __slots__ = ("_filled", "_memo", "bag")

    def __init__(self, bag: AttributeBag) -> None:
        self.bag = bag
        self._memo: dict[Expression, Value | EvaluationError] = {}
        self._filled: dict[int, dict[str, Any]] = {}

    def evaluate(self, expression: Expression) -> Value:
        """The expression's value for this bag; raises its ``EvaluationError``."""
        found = self._memo.get(expression, _MISS)
        if found is _MISS:
            try:
                found = expression.evaluate(self.bag)
            except EvaluationError as exc:
                found = exc
            self._memo[expression] = found
        if isinstance(found, EvaluationError):
            raise found
        return found  # type: ignore[return-value]

    def fill(self, params: Mapping[str, ParamNode]) -> dict[str, Any]:
        """``params`` with every expression evaluated; ``EvaluationError`` if one fails."""
        filled = self._filled.get(id(params))
        if filled is None:
            filled = {}
            bag = self.bag
            for key, node in params.items():
                kind = type(node)  # compiled params hold plain dicts and Expressions only
                if kind is Expression:
                    filled[key] = node.evaluate(bag)  # type: ignore[union-attr]
                elif kind is dict:
                    filled[key] = self.fill(node)  # type: ignore[arg-type]
                else:
                    filled[key] = node
            self._filled[id(params)] = filled
        return filled


@dataclass(frozen=True, slots=True)
class InstanceBuilder:
    """Fills one instance's template from a request."""

    name: str
    template: str
    params: Mapping[str, ParamNode]

    def build(self, evaluator: BagEvaluator) -> Instance:
        """The instance for this request; ``EvaluationError`` when a param fails."""
        return Instance(self.name, self.template, evaluator.fill(self.params))


def compile_params(
    params: Mapping[str, Any] | None, compiler: ExpressionCompiler, *, subject: str
) -> Mapping[str, ParamNode]:
    """Compile an instance's ``params`` (see the module docstring)."""
    compiled: dict[str, ParamNode] = {}
    for key, value in (params or {}).items():
        field = _CAMEL.sub("_", key).lower()
        compiled[field] = _compile_node(value, compiler, subject=subject, path=f"spec.params.{key}")
    return compiled


def _compile_node(
    value: Any, compiler: ExpressionCompiler, *, subject: str, path: str
) -> ParamNode:
    if isinstance(value, str):
        return compiler.expression(value, subject=subject, field=path)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        canonical = json.dumps(value, sort_keys=True, default=str)
        shared = compiler.mappings.get(canonical)
        if shared is None:
            shared = {
                str(key): _compile_node(item, compiler, subject=subject, path=f"{path}.{key}")
                for key, item in value.items()
            }
            compiler.mappings[canonical] = shared
        return shared
    raise ConfigError(subject, f"{path}: expected an expression or a mapping, got {value!r}")
