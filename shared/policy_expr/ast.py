"""The syntax tree the parser builds and the compiler consumes.

Every node records ``position``: the 1-based character where it starts in the source
text (for a binary operator, the operator's own character), so compile errors can point
at it. ``depth`` is the node's height, computed on construction from its children, so
the parser can refuse trees too deep to compile without recursing. Nodes are frozen
dataclasses: immutable and shareable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.policy_expr.types import Value, ValueType


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant written in the text: string, integer, double or boolean."""

    position: int
    value: Value
    type: ValueType
    depth: int = field(default=1, init=False)


@dataclass(frozen=True, slots=True)
class Attribute:
    """A dotted attribute name such as ``request.headers``."""

    position: int
    name: str
    depth: int = field(default=1, init=False)


@dataclass(frozen=True, slots=True)
class Index:
    """Map access ``target[key]``; ``position`` is the ``[``."""

    position: int
    target: Node
    key: Node
    depth: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 + max(self.target.depth, self.key.depth))


@dataclass(frozen=True, slots=True)
class Unary:
    """``!operand`` or ``-operand``; ``position`` is the operator."""

    position: int
    operator: str
    operand: Node
    depth: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 + self.operand.depth)


@dataclass(frozen=True, slots=True)
class Binary:
    """``left <operator> right``; ``position`` is the operator's first character."""

    position: int
    operator: str
    left: Node
    right: Node
    depth: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 + max(self.left.depth, self.right.depth))


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args)`` or, with a ``receiver``, ``receiver.name(args)``.

    ``position`` is the function name's first character.
    """

    position: int
    name: str
    args: tuple[Node, ...]
    receiver: Node | None = None
    depth: int = field(init=False)

    def __post_init__(self) -> None:
        children = (*self.args, *(() if self.receiver is None else (self.receiver,)))
        object.__setattr__(self, "depth", 1 + max((c.depth for c in children), default=0))


Node = Literal | Attribute | Index | Unary | Binary | Call
"""Any expression node."""
