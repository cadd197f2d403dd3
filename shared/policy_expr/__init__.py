"""Istio 1.4's attribute vocabulary and expression language (Mixer's CEXL), compiled.

Galley validates rule ``match`` expressions and instance params with it; Mixer evaluates
them per request. Compile once per config version with :func:`compile_expression` (or
:func:`compile_match` for a rule's ``match``: empty means true, the result must be BOOL);
evaluate the :class:`Expression` against an :class:`AttributeBag` as often as needed.

Errors (see :mod:`shared.policy_expr.errors`): :class:`ExpressionError` at compile time,
with a 1-based ``position``; :class:`EvaluationError` (and :class:`MissingAttributeError`)
at evaluation time. Everything here is immutable and task-safe; nothing runs at import.

Example::

    expr = compile_match('request.headers["x-user"] | "" == "admin" && '
                         'source.ip == ip("10.0.0.1")')
    expr.evaluate(DictBag({"request.headers": {"x-user": "admin"},
                           "source.ip": ip_address("10.0.0.1")}))   # True
    expr.referenced   # frozenset({"request.headers", "source.ip"})
"""

from shared.policy_expr.bag import AttributeBag, DictBag
from shared.policy_expr.compiler import Expression, compile_expression, compile_match
from shared.policy_expr.errors import (
    EvaluationError,
    ExpressionError,
    MissingAttributeError,
    PolicyExprError,
)
from shared.policy_expr.functions import FUNCTIONS
from shared.policy_expr.types import IPAddress, Value, ValueType
from shared.policy_expr.vocabulary import ATTRIBUTES

__all__ = [
    "ATTRIBUTES",
    "FUNCTIONS",
    "AttributeBag",
    "DictBag",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "IPAddress",
    "MissingAttributeError",
    "PolicyExprError",
    "Value",
    "ValueType",
    "compile_expression",
    "compile_match",
]
