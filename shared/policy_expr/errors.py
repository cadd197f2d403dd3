"""The exceptions of the expression language.

::

    PolicyExprError                 base of everything this package raises
    ├── ExpressionError             compile time: syntax, unknown attribute, type mismatch;
    │                               carries a 1-based character ``position``
    └── EvaluationError             run time: a value could not be produced
        └── MissingAttributeError   an attribute (or map key) is absent from the bag

``position`` counts characters from 1; ``len(text) + 1`` means "at the end of the text"
(an expression that stops too early). ``str(ExpressionError)`` is
``"position N: message"``, which Galley prefixes with the field path.
"""

from __future__ import annotations


class PolicyExprError(Exception):
    """Base of the expression language's errors."""


class ExpressionError(PolicyExprError, ValueError):
    """An expression that does not compile, with where (``position``) and why (``message``)."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(position, message)
        self.position = position
        self.message = message

    def __str__(self) -> str:
        return f"position {self.position}: {self.message}"


class EvaluationError(PolicyExprError):
    """A compiled expression could not produce a value for this bag."""


class MissingAttributeError(EvaluationError):
    """An attribute the expression reads is absent (and no ``|`` default covers it)."""

    def __init__(self, name: str, key: str | None = None) -> None:
        where = name if key is None else f"{name}[{key!r}]"
        super().__init__(f"attribute {where} is not present")
        self.name = name
        self.key = key
