"""Parses an expression's text into a syntax tree (:mod:`shared.policy_expr.ast`).

Grammar (Go's precedence, lowest first; binary operators associate to the left)::

    expression  = or
    or          = and { "||" and }
    and         = compare { "&&" compare }
    compare     = additive { ("==" | "!=" | "<" | "<=" | ">" | ">=") additive }
    additive    = unary { ("|" | "+") unary }
    unary       = ("!" | "-") unary | postfix
    postfix     = primary { "[" expression "]" | "." IDENT "(" args ")" }
    primary     = literal | path [ "(" args ")" ] | "(" expression ")"
    path        = IDENT { "." IDENT }

A dotted path followed by ``(`` is a call: ``match(a, b)`` is a function,
``request.path.startsWith("/a")`` a method on the attribute ``request.path``. Anything
else is an attribute name. :func:`parse` raises :class:`ExpressionError` with the
position of the first token that does not fit, and refuses input nested deeper than
:data:`MAX_NESTING` or trees deeper than :data:`MAX_DEPTH`, so no later pass can exhaust
the stack. Pure function, task-safe.
"""

from __future__ import annotations

from shared.policy_expr import lexer
from shared.policy_expr.ast import Attribute, Binary, Call, Index, Literal, Node, Unary
from shared.policy_expr.errors import ExpressionError
from shared.policy_expr.lexer import Kind, Token
from shared.policy_expr.types import ValueType

MAX_NESTING = 50
"""How deeply parentheses, calls, indexes and unary operators may nest."""

MAX_DEPTH = 250
"""The deepest syntax tree (nesting plus chained binary operators) an expression may have."""

_INT64_MAX = 2**63 - 1
_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"==", "!=", "<", "<=", ">", ">="}),
    frozenset({"|", "+"}),
)


def parse(text: str) -> Node:
    """The syntax tree of ``text``; :class:`ExpressionError` when it is not an expression."""
    return _Parser(lexer.tokenize(text)).parse_all()


class _Parser:
    """One pass over one token list."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0
        self._nesting = 0

    def parse_all(self) -> Node:
        if self._peek().kind is Kind.END:
            raise ExpressionError(self._peek().position, "empty expression")
        node = self._expression()
        token = self._peek()
        if token.kind is not Kind.END:
            raise ExpressionError(token.position, f"unexpected {token.describe()}")
        return node

    def _expression(self) -> Node:
        self._nesting += 1
        if self._nesting > MAX_NESTING:
            raise ExpressionError(self._peek().position, "expression nested too deeply")
        node = self._binary(0)
        self._nesting -= 1
        return node

    def _binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self._unary()
        node = self._binary(level + 1)
        while self._peek().kind is Kind.OPERATOR and self._peek().text in _LEVELS[level]:
            operator = self._advance()
            right = self._binary(level + 1)
            node = self._checked(Binary(operator.position, operator.text, node, right))
        return node

    def _unary(self) -> Node:
        token = self._peek()
        if token.kind is Kind.OPERATOR and token.text in ("!", "-"):
            self._advance()
            self._nesting += 1
            if self._nesting > MAX_NESTING:
                raise ExpressionError(token.position, "expression nested too deeply")
            operand = self._unary()
            self._nesting -= 1
            return self._checked(Unary(token.position, token.text, operand))
        return self._postfix(self._primary())

    def _postfix(self, node: Node) -> Node:
        while True:
            token = self._peek()
            if self._is(token, "["):
                self._advance()
                key = self._expression()
                self._expect("]", token)
                node = self._checked(Index(token.position, node, key))
            elif self._is(token, "."):
                self._advance()
                name = self._expect_ident("a method name after '.'")
                if not self._is(self._peek(), "("):
                    raise ExpressionError(
                        self._peek().position, f"expected '(' to call method {name.text!r}"
                    )
                node = self._call(name, receiver=node)
            else:
                return node

    def _primary(self) -> Node:
        token = self._advance()
        if token.kind is Kind.STRING:
            return Literal(token.position, lexer.decode_string(token), ValueType.STRING)
        if token.kind is Kind.INT:
            value = int(token.text)
            if value > _INT64_MAX:
                raise ExpressionError(token.position, f"integer {token.text} overflows INT64")
            return Literal(token.position, value, ValueType.INT64)
        if token.kind is Kind.DOUBLE:
            return self._double(token)
        if self._is(token, "("):
            node = self._expression()
            self._expect(")", token)
            return node
        if token.kind is Kind.IDENT:
            return self._path(token)
        raise ExpressionError(token.position, f"unexpected {token.describe()}")

    def _path(self, first: Token) -> Node:
        if first.text in ("true", "false"):
            return Literal(first.position, first.text == "true", ValueType.BOOL)
        parts = [first]
        while self._is(self._peek(), ".") and self._peek(1).kind is Kind.IDENT:
            self._advance()
            parts.append(self._advance())
        if not self._is(self._peek(), "("):
            return Attribute(first.position, ".".join(part.text for part in parts))
        name = parts.pop()
        receiver = Attribute(first.position, ".".join(p.text for p in parts)) if parts else None
        return self._call(name, receiver=receiver)

    def _call(self, name: Token, *, receiver: Node | None) -> Node:
        opening = self._advance()
        args: list[Node] = []
        if not self._is(self._peek(), ")"):
            args.append(self._expression())
            while self._is(self._peek(), ","):
                self._advance()
                args.append(self._expression())
        self._expect(")", opening)
        return self._checked(Call(name.position, name.text, tuple(args), receiver))

    def _double(self, token: Token) -> Literal:
        value = float(token.text)
        if value == float("inf"):
            raise ExpressionError(token.position, f"number {token.text} overflows DOUBLE")
        return Literal(token.position, value, ValueType.DOUBLE)

    def _checked(self, node: Node) -> Node:
        if node.depth > MAX_DEPTH:
            raise ExpressionError(node.position, "expression too deep (too many operators)")
        return node

    def _expect(self, text: str, opening: Token) -> None:
        token = self._peek()
        if not self._is(token, text):
            raise ExpressionError(
                token.position,
                f"expected {text!r} to close {opening.text!r} at position {opening.position}, "
                f"found {token.describe()}",
            )
        self._advance()

    def _expect_ident(self, what: str) -> Token:
        token = self._peek()
        if token.kind is not Kind.IDENT:
            raise ExpressionError(token.position, f"expected {what}, found {token.describe()}")
        return self._advance()

    def _peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _advance(self) -> Token:
        token = self._peek()
        if token.kind is not Kind.END:
            self._index += 1
        return token

    @staticmethod
    def _is(token: Token, text: str) -> bool:
        return token.kind is Kind.OPERATOR and token.text == text
