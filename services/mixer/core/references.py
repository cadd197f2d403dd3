"""Which attributes a decision read: the key of the check cache.

:class:`RecordingBag` wraps a bag and records every read: ``(name, None)`` for an
attribute, ``(name, key)`` for one key of a map attribute (``request.headers["x"]``),
``(name, WHOLE)`` when a map was iterated or sized. :func:`reference_value` reads one
such reference from any bag, so two requests that agree on every reference of a decision
get the same decision (evaluation is a pure function of what it reads). Absent values
compare equal to each other (:data:`ABSENT`).

A recording bag belongs to one evaluation on one task; the wrapped bag is not modified.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from shared.policy_expr import AttributeBag, Value


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


ABSENT: Final = _Marker("ABSENT")
"""The value of a reference to something the bag does not carry."""
WHOLE: Final = _Marker("WHOLE")
"""The key part of a reference to a whole map."""

Reference = tuple[str, str | _Marker | None]
"""``(attribute, None | map key | WHOLE)``."""


class RecordingBag:
    """A bag that records what is read from it (see the module docstring)."""

    __slots__ = ("_bag", "references")

    def __init__(self, bag: AttributeBag) -> None:
        self._bag = bag
        self.references: dict[Reference, None] = {}
        """The references read so far, in order (a dict used as an ordered set)."""

    def get(self, name: str, /) -> Value | None:
        """The attribute's value; a map comes back wrapped so its keys are recorded."""
        value = self._bag.get(name)
        self.references[(name, None)] = None
        if isinstance(value, Mapping):
            return _RecordingMap(value, name, self.references)
        return value


class _RecordingMap(Mapping[str, str]):
    __slots__ = ("_map", "_name", "_references")

    def __init__(
        self, mapping: Mapping[str, str], name: str, references: dict[Reference, None]
    ) -> None:
        self._map = mapping
        self._name = name
        self._references = references

    def __getitem__(self, key: str) -> str:
        self._references[(self._name, key)] = None
        return self._map[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self._references[(self._name, key)] = None
        return self._map.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._references[(self._name, key)] = None
        return key in self._map

    def __iter__(self) -> Iterator[str]:
        self._references[(self._name, WHOLE)] = None
        return iter(self._map)

    def __len__(self) -> int:
        self._references[(self._name, WHOLE)] = None
        return len(self._map)


def reference_value(bag: AttributeBag, reference: Reference) -> object:
    """What ``bag`` holds for ``reference``: a hashable value or :data:`ABSENT`.

    A plain reference to a map attribute stands for its presence only (its keys are
    separate references).
    """
    name, key = reference
    value = bag.get(name)
    if value is None:
        return ABSENT
    if key is None:
        return True if isinstance(value, Mapping) else value
    if not isinstance(value, Mapping):
        return ABSENT
    if isinstance(key, _Marker):
        return tuple(sorted(value.items()))
    found = value.get(key)
    return ABSENT if found is None else found
