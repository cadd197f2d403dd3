"""Splits an expression's text into tokens, each with its 1-based character position.

The token set is the slice of Go's expression syntax Istio's language uses: identifiers,
``.``, double- or single-quoted strings (Go escapes; Istio wrote double quotes, YAML
users often write single ones) and back-quoted raw strings, integer and
floating-point numbers, ``( ) [ ] ,`` and the operators ``== != < <= > >= && || ! | + -``.
:func:`tokenize` raises :class:`ExpressionError` at the first character that starts no
token; it never raises anything else. Pure function, task-safe.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from shared.policy_expr.errors import ExpressionError


class Kind(enum.Enum):
    """What a token is."""

    IDENT = "identifier"
    STRING = "string"
    INT = "integer"
    DOUBLE = "number"
    OPERATOR = "operator"
    END = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its source ``text``, its 1-based ``position``."""

    kind: Kind
    text: str
    position: int

    def describe(self) -> str:
        """How an error message names this token."""
        return self.kind.value if self.kind is Kind.END else repr(self.text)


_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "|", "+", "-")
_PUNCTUATION = "()[],."
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?P<fraction>\.[0-9]+)?(?P<exponent>[eE][+-]?[0-9]+)?")
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with one :attr:`Kind.END` token."""
    tokens: list[Token] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
            continue
        token, index = _next_token(text, index)
        tokens.append(token)
    tokens.append(Token(Kind.END, "", length + 1))
    return tokens


def decode_string(token: Token) -> str:
    """The value of a :attr:`Kind.STRING` token (quotes removed, escapes applied)."""
    body = token.text[1:-1]
    if token.text[0] == "`":
        return body
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            out.append(_ESCAPES.get(body[index + 1], ""))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _next_token(text: str, index: int) -> tuple[Token, int]:
    char = text[index]
    position = index + 1
    if char in "\"'`":
        end = _string_end(text, index)
        return Token(Kind.STRING, text[index : end + 1], position), end + 1
    ident = _IDENT.match(text, index)
    if ident is not None:
        return Token(Kind.IDENT, ident.group(), position), ident.end()
    number = _NUMBER.match(text, index)
    if number is not None:
        kind = Kind.DOUBLE if number.group("fraction") or number.group("exponent") else Kind.INT
        return Token(kind, number.group(), position), number.end()
    for operator in _OPERATORS:
        if text.startswith(operator, index):
            return Token(Kind.OPERATOR, operator, position), index + len(operator)
    if char in _PUNCTUATION:
        return Token(Kind.OPERATOR, char, position), index + 1
    if char in "=&":
        raise ExpressionError(position, f"unexpected {char!r}: did you mean {char * 2!r}?")
    raise ExpressionError(position, f"unexpected character {char!r}")


def _string_end(text: str, start: int) -> int:
    """Index of the closing quote of the string opened at ``start``."""
    quote = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if quote != "`" and char == "\\":
            escape = text[index + 1 : index + 2]
            if not escape:
                break
            if escape not in _ESCAPES:
                raise ExpressionError(index + 1, f"unknown escape sequence \\{escape}")
            index += 2
            continue
        if quote != "`" and char == "\n":
            break
        if char == quote:
            return index
        index += 1
    raise ExpressionError(start + 1, f"unterminated string starting with {quote}")
