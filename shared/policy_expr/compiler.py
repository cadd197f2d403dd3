"""Type-checks a syntax tree against the vocabulary and compiles it into closures.

:func:`compile_expression` parses once, checks every operator and call against the
attribute types (an unknown attribute or a type mismatch is an :class:`ExpressionError`
at the offending character), folds constant sub-expressions (so ``ip("10.0.0.1")`` is
converted, and a bad literal rejected, at compile time) and returns an
:class:`Expression` whose :meth:`~Expression.evaluate` is a tree of Python closures: no
parsing, no type dispatch per request. Operator typing lives in
:mod:`shared.policy_expr.operators`, attribute reads in :mod:`shared.policy_expr.bag`.

An :class:`Expression` is immutable and may be evaluated from many tasks or threads at
once; it holds no reference to any bag it was evaluated against.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType

from shared.policy_expr import parser
from shared.policy_expr.ast import Attribute, Binary, Call, Index, Literal, Node, Unary
from shared.policy_expr.bag import AttributeBag, attribute_reader
from shared.policy_expr.errors import ExpressionError
from shared.policy_expr.functions import FUNCTIONS, Function
from shared.policy_expr.operators import (
    Evaluator,
    Typed,
    compile_binary,
    compile_call,
    compile_conditional,
    compile_size,
    compile_unary,
    constant,
    fold,
    index_reader,
)
from shared.policy_expr.types import Value, ValueType
from shared.policy_expr.vocabulary import ATTRIBUTES

_BUILTINS = ("conditional", "size")


class Expression:
    """A compiled expression: evaluate it against any number of bags.

    ``referenced`` names every attribute the expression may read (a superset of what one
    evaluation reads, so it is safe as a cache key). ``referenced_keys`` narrows map
    attributes: for each map attribute read only through constant keys
    (``request.headers["x"]``), the keys; ``None`` when the whole map may matter.
    """

    __slots__ = ("_run", "referenced", "referenced_keys", "result_type", "text")

    def __init__(
        self,
        *,
        text: str,
        result_type: ValueType,
        referenced: frozenset[str],
        referenced_keys: Mapping[str, frozenset[str] | None],
        run: Evaluator,
    ) -> None:
        self.text = text
        self.result_type = result_type
        self.referenced = referenced
        self.referenced_keys = referenced_keys
        self._run = run

    def evaluate(self, bag: AttributeBag) -> Value:
        """The value for ``bag``; :class:`EvaluationError` (or its subclass
        :class:`MissingAttributeError`) when an attribute is absent with no ``|`` default
        or a value cannot be converted."""
        return self._run(bag)

    def __repr__(self) -> str:
        return f"Expression({self.text!r}: {self.result_type})"


def compile_expression(
    text: str,
    *,
    expected: ValueType | None = None,
    attributes: Mapping[str, ValueType] | None = None,
) -> Expression:
    """Compile ``text`` (once per config version, never per request).

    ``expected`` demands a result type (INT64 is accepted where DOUBLE is expected);
    ``attributes`` replaces Istio's :data:`ATTRIBUTES` vocabulary. Raises
    :class:`ExpressionError` with the 1-based position of the problem.
    """
    compiler = _Compiler(ATTRIBUTES if attributes is None else attributes)
    typed = compiler.compile(parser.parse(text))
    widened = expected is ValueType.DOUBLE and typed.type is ValueType.INT64
    if expected is not None and typed.type is not expected and not widened:
        start = len(text) - len(text.lstrip()) + 1
        raise ExpressionError(
            start, f"the expression is {typed.type}, but {expected} is required here"
        )
    return Expression(
        text=text,
        result_type=typed.type,
        referenced=frozenset(compiler.referenced),
        referenced_keys=MappingProxyType(
            {
                name: None if keys is None else frozenset(keys)
                for name, keys in sorted(compiler.keys.items())
            }
        ),
        run=typed.run,
    )


def compile_match(text: str, *, attributes: Mapping[str, ValueType] | None = None) -> Expression:
    """A rule's ``match``: empty (or blank) means always true, otherwise a BOOL expression."""
    if not text.strip():
        return Expression(
            text=text,
            result_type=ValueType.BOOL,
            referenced=frozenset(),
            referenced_keys=MappingProxyType({}),
            run=constant(True, ValueType.BOOL).run,
        )
    return compile_expression(text, expected=ValueType.BOOL, attributes=attributes)


class _Compiler:
    """Walks one tree; records the attributes it reads."""

    def __init__(self, attributes: Mapping[str, ValueType]) -> None:
        self._attributes = attributes
        self.referenced: set[str] = set()
        self.keys: dict[str, set[str] | None] = {}

    def compile(self, node: Node) -> Typed:
        match node:
            case Literal():
                return constant(node.value, node.type)
            case Attribute():
                return self._attribute(node, whole_map=True)
            case Index():
                return self._index(node)
            case Unary():
                return fold(node.position, compile_unary(node, self.compile(node.operand)))
            case Binary():
                left, right = self.compile(node.left), self.compile(node.right)
                return fold(node.position, compile_binary(node, left, right))
            case Call():
                return self._call(node)

    def _attribute(self, node: Attribute, *, whole_map: bool) -> Typed:
        kind = self._attributes.get(node.name)
        if kind is None:
            raise ExpressionError(node.position, self._unknown_attribute(node.name))
        self.referenced.add(node.name)
        if whole_map and kind is ValueType.STRING_MAP:
            self.keys[node.name] = None
        return Typed(kind, attribute_reader(node.name, kind))

    def _index(self, node: Index) -> Typed:
        target_node = node.target
        if isinstance(target_node, Attribute):
            target = self._attribute(target_node, whole_map=False)
        else:
            target = self.compile(target_node)
        key = self.compile(node.key)
        if target.type is not ValueType.STRING_MAP:
            raise ExpressionError(node.position, f"cannot index a {target.type} with [ ]")
        if key.type is not ValueType.STRING:
            raise ExpressionError(node.key.position, f"a map key must be STRING, not {key.type}")
        label = target_node.name if isinstance(target_node, Attribute) else "map"
        if isinstance(target_node, Attribute):
            self._record_key(target_node.name, key)
        return fold(node.position, index_reader(label, target, key))

    def _record_key(self, name: str, key: Typed) -> None:
        known = self.keys.get(name, set())
        if known is None or not key.is_constant:
            self.keys[name] = None
        else:
            known.add(str(key.value))
            self.keys[name] = known

    def _call(self, node: Call) -> Typed:
        function = self._function(node)
        arg_nodes = (*(() if node.receiver is None else (node.receiver,)), *node.args)
        args = tuple(self.compile(arg) for arg in arg_nodes)
        if node.name == "conditional":
            return fold(node.position, compile_conditional(node, arg_nodes, args))
        if function is None:
            return fold(node.position, compile_size(node, arg_nodes, args))
        typed = compile_call(node, function, arg_nodes, args)
        return fold(arg_nodes[0].position if arg_nodes else node.position, typed)

    def _function(self, node: Call) -> Function | None:
        """The registered function ``node`` calls (None for the built-in ``size``), checked
        for its call form: ``name(...)`` or ``receiver.name(...)``."""
        if node.name == "size":
            return None
        if node.name == "conditional":
            is_function, is_method = True, False
            function = None
        else:
            function = FUNCTIONS.get(node.name)
            if function is None:
                raise ExpressionError(node.position, self._unknown_function(node.name))
            is_function, is_method = function.function, function.method
        if node.receiver is not None and not is_method:
            raise ExpressionError(
                node.position,
                f"{node.name}() is a function, not a method: call it as {node.name}(...)",
            )
        if node.receiver is None and not is_function:
            raise ExpressionError(
                node.position, f"{node.name}() is a method: call it as x.{node.name}(...)"
            )
        return function

    def _unknown_attribute(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._attributes), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown attribute {name!r}{hint}"

    @staticmethod
    def _unknown_function(name: str) -> str:
        close = difflib.get_close_matches(name, [*FUNCTIONS, *_BUILTINS], n=1)
        hint = f"; did you mean {close[0]}()?" if close else ""
        return f"unknown function {name!r}{hint}"
