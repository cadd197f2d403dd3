"""Typing rules and closure builders for operators, calls and attribute reads.

Each ``compile_*`` function takes already-compiled operands (:class:`Typed`: a static
type plus an evaluator closure), checks the operator's typing rule, raising
:class:`ExpressionError` at the offending position, and returns the combined
:class:`Typed`. :func:`fold` runs a node whose operands are all constants once, at
compile time. Rules, as in Istio 1.4:

* ``&&`` ``||`` ``!`` take BOOL; ``&&`` and ``||`` short-circuit.
* ``==`` ``!=`` compare two values of one type (INT64 and DOUBLE mix).
* ``<`` ``<=`` ``>`` ``>=`` order numbers, DURATIONs or TIMESTAMPs.
* ``a | b`` is ``a`` when present, else ``b`` (same type); only an absent attribute or map
  key falls through, never another error.
* ``+`` adds numbers or DURATIONs and concatenates STRINGs; ``-x`` negates a number.
* A STRING literal next to a DURATION is read as a Go duration (``response.duration >
  "10ms"``).

Evaluators are pure functions of the bag; they raise only :class:`EvaluationError`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.policy_expr.ast import Binary, Call, Node, Unary
from shared.policy_expr.bag import AttributeBag, DictBag
from shared.policy_expr.errors import EvaluationError, ExpressionError, MissingAttributeError
from shared.policy_expr.functions import Function, parse_duration
from shared.policy_expr.types import NUMERIC_TYPES, ORDERED_TYPES, Value, ValueType

Evaluator = Callable[[AttributeBag], Value]
"""A compiled (sub-)expression: bag in, value out."""

_B = ValueType.BOOL
_EMPTY = DictBag()
_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ADDABLE = NUMERIC_TYPES | {ValueType.STRING, ValueType.DURATION}


@dataclass(frozen=True, slots=True)
class Typed:
    """A compiled operand: its static type, its evaluator, and its value if constant.

    ``foldable`` marks a node whose operands are all constant: :func:`fold` evaluates it
    once at compile time.
    """

    type: ValueType
    run: Evaluator
    is_constant: bool = False
    value: Value | None = None
    foldable: bool = False


def constant(value: Value, kind: ValueType) -> Typed:
    """A constant operand."""
    return Typed(kind, lambda _bag: value, is_constant=True, value=value)


def fold(position: int, typed: Typed) -> Typed:
    """``typed`` evaluated now if it is foldable; a failure is an error at ``position``.

    A constant map without the key asked for stays unfolded: ``|`` may supply a default.
    """
    if not typed.foldable:
        return typed
    try:
        value = typed.run(_EMPTY)
    except MissingAttributeError:
        return typed
    except EvaluationError as exc:
        raise ExpressionError(position, str(exc)) from None
    return constant(value, typed.type)


def index_reader(label: str, target: Typed, key: Typed) -> Typed:
    """``target[key]``: absent keys raise :class:`MissingAttributeError` (so ``|`` applies)."""
    read_map, read_key = target.run, key.run

    def lookup(bag: AttributeBag) -> Value:
        mapping: Mapping[str, object] = read_map(bag)  # type: ignore[assignment]
        name = str(read_key(bag))
        value = mapping.get(name)
        if type(value) is str:
            return value
        if value is None:
            raise MissingAttributeError(label, name)
        raise EvaluationError(f"{label}[{name!r}] is {type(value).__name__}, not STRING")

    return _candidate(ValueType.STRING, lookup, (target, key))


def compile_unary(node: Unary, operand: Typed) -> Typed:
    """``!x`` on BOOL; ``-x`` on a number or a DURATION."""
    run = operand.run
    if node.operator == "!":
        _require(node.operand, operand, (_B,), "'!' needs a BOOL operand")

        def negate(bag: AttributeBag) -> Value:
            return not run(bag)

        return _candidate(_B, negate, (operand,))
    _require(node.operand, operand, (*NUMERIC_TYPES, ValueType.DURATION), "'-' needs a number")

    def minus(bag: AttributeBag) -> Value:
        try:
            return -run(bag)  # type: ignore[operator]
        except OverflowError:
            raise EvaluationError(f"{operand.type} overflow in '-'") from None

    return _candidate(operand.type, minus, (operand,))


def compile_binary(node: Binary, left: Typed, right: Typed) -> Typed:
    """One binary operator, typed by the rules in the module docstring."""
    if node.operator in ("&&", "||"):
        return _logical(node, left, right)
    left = _as_duration(node.left, left, right)
    right = _as_duration(node.right, right, left)
    if node.operator in _COMPARE:
        return _comparison(node, left, right)
    if node.operator == "|":
        return _default(node, left, right)
    return _add(node, left, right)


def compile_call(
    node: Call, function: Function, arg_nodes: Sequence[Node], args: Sequence[Typed]
) -> Typed:
    """A call of a registered function: arity, argument types, constant checks."""
    method = node.receiver is not None
    _check_arity(node, len(function.params) - method, len(args) - method)
    for index, (arg_node, arg, want) in enumerate(
        zip(arg_nodes, args, function.params, strict=True)
    ):
        if arg.type is want:
            continue
        if method and index == 0:
            message = f"{node.name}() is a method of {want}, not of {arg.type}"
        else:
            message = (
                f"argument {index + 1 - method} of {node.name}() must be {want}, not {arg.type}"
            )
        raise ExpressionError(arg_node.position, message)
    for index, check in function.constant_checks.items():
        arg = args[index]
        if arg.is_constant and arg.value is not None:
            try:
                check(arg.value)
            except EvaluationError as exc:
                raise ExpressionError(arg_nodes[index].position, str(exc)) from None
    return _candidate(function.result, _caller(function.impl, [arg.run for arg in args]), args)


def compile_conditional(node: Call, arg_nodes: Sequence[Node], args: Sequence[Typed]) -> Typed:
    """``conditional(c, a, b)``: ``a`` when ``c`` holds, else ``b``; evaluates one branch."""
    _check_arity(node, 3, len(args))
    _require(arg_nodes[0], args[0], (_B,), "the condition of conditional() must be BOOL")
    kind = _common_type(node, args[1], args[2], "conditional() branches")
    test, when_true, when_false = args[0].run, _widen(args[1], kind), _widen(args[2], kind)

    def choose(bag: AttributeBag) -> Value:
        return when_true(bag) if test(bag) else when_false(bag)

    return _candidate(kind, choose, args)


def compile_size(node: Call, arg_nodes: Sequence[Node], args: Sequence[Typed]) -> Typed:
    """``size(x)`` (or ``x.size()``): characters of a STRING, entries of a STRING_MAP."""
    _check_arity(node, 1, len(args))
    kinds = (ValueType.STRING, ValueType.STRING_MAP)
    _require(arg_nodes[0], args[0], kinds, "size() needs a STRING or a STRING_MAP")
    run = args[0].run

    def size(bag: AttributeBag) -> Value:
        return len(run(bag))  # type: ignore[arg-type]

    return _candidate(ValueType.INT64, size, args)


def _candidate(kind: ValueType, run: Evaluator, operands: Sequence[Typed]) -> Typed:
    return Typed(kind, run, foldable=all(operand.is_constant for operand in operands))


def _logical(node: Binary, left: Typed, right: Typed) -> Typed:
    message = f"{node.operator!r} needs BOOL operands"
    _require(node.left, left, (_B,), message)
    _require(node.right, right, (_B,), message)
    first, second = left.run, right.run
    if node.operator == "&&":

        def both(bag: AttributeBag) -> Value:
            return first(bag) and second(bag)

        return _candidate(_B, both, (left, right))

    def either(bag: AttributeBag) -> Value:
        return first(bag) or second(bag)

    return _candidate(_B, either, (left, right))


def _comparison(node: Binary, left: Typed, right: Typed) -> Typed:
    numeric = left.type in NUMERIC_TYPES and right.type in NUMERIC_TYPES
    if left.type is not right.type and not numeric:
        hint = ""
        if ValueType.IP_ADDRESS in (left.type, right.type):
            hint = '; write the address as ip("10.0.0.1")'
        raise ExpressionError(node.position, f"cannot compare {left.type} with {right.type}{hint}")
    if node.operator not in ("==", "!=") and left.type not in ORDERED_TYPES:
        raise ExpressionError(
            node.position,
            f"{node.operator!r} orders numbers, durations or timestamps, not {left.type}",
        )
    compare, first, second = _COMPARE[node.operator], left.run, right.run

    def run(bag: AttributeBag) -> Value:
        return compare(first(bag), second(bag))

    return _candidate(_B, run, (left, right))


def _default(node: Binary, left: Typed, right: Typed) -> Typed:
    kind = _common_type(node, left, right, "both sides of '|'")
    if left.is_constant:
        return constant(_widen(left, kind)(_EMPTY), kind)
    first, second = _widen(left, kind), _widen(right, kind)

    def run(bag: AttributeBag) -> Value:
        try:
            return first(bag)
        except MissingAttributeError:
            return second(bag)

    return _candidate(kind, run, (left, right))


def _add(node: Binary, left: Typed, right: Typed) -> Typed:
    kind = _common_type(node, left, right, "both sides of '+'")
    if kind not in _ADDABLE:
        raise ExpressionError(
            node.position, f"'+' adds numbers or durations and joins strings, not {kind}"
        )
    first, second = _widen(left, kind), _widen(right, kind)

    def run(bag: AttributeBag) -> Value:
        try:
            return first(bag) + second(bag)  # type: ignore[operator]
        except OverflowError:
            raise EvaluationError(f"{kind} overflow in '+'") from None

    return _candidate(kind, run, (left, right))


def _common_type(node: Node, left: Typed, right: Typed, what: str) -> ValueType:
    if left.type is right.type:
        return left.type
    if left.type in NUMERIC_TYPES and right.type in NUMERIC_TYPES:
        return ValueType.DOUBLE
    raise ExpressionError(
        node.position, f"{what} must have one type, not {left.type} and {right.type}"
    )


def _widen(typed: Typed, kind: ValueType) -> Evaluator:
    run = typed.run
    if kind is ValueType.DOUBLE and typed.type is ValueType.INT64:

        def to_double(bag: AttributeBag) -> Value:
            return float(run(bag))  # type: ignore[arg-type]

        return to_double
    return run


def _as_duration(node: Node, typed: Typed, other: Typed) -> Typed:
    """A STRING constant beside a DURATION, parsed as a duration."""
    if other.type is not ValueType.DURATION or typed.type is not ValueType.STRING:
        return typed
    if not typed.is_constant:
        return typed
    try:
        return constant(parse_duration(str(typed.value)), ValueType.DURATION)
    except EvaluationError as exc:
        raise ExpressionError(node.position, str(exc)) from None


def _require(node: Node, typed: Typed, allowed: Sequence[ValueType], message: str) -> None:
    if typed.type not in allowed:
        raise ExpressionError(node.position, f"{message}, not {typed.type}")


def _check_arity(node: Call, want: int, got: int) -> None:
    if want != got:
        plural = "" if want == 1 else "s"
        raise ExpressionError(
            node.position, f"{node.name}() takes {want} argument{plural}, got {got}"
        )


def _caller(impl: Callable[..., Value], runs: Sequence[Evaluator]) -> Evaluator:
    """A closure calling ``impl`` on the evaluated arguments, unrolled for small arities."""
    if not runs:
        return lambda _bag: impl()
    if len(runs) == 1:
        (only,) = runs
        return lambda bag: impl(only(bag))
    if len(runs) == 2:
        first, second = runs
        return lambda bag: impl(first(bag), second(bag))
    return lambda bag: impl(*(run(bag) for run in runs))
