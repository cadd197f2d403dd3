"""The check cache: decisions keyed by the attributes they referenced (Istio 1.4).

A decision is stored under its *shape* (the ordered references it read, see
:mod:`.references`) and the values the request held for them. A lookup tries each known
shape: a request that agrees with a stored one on every reference of that shape gets
the stored decision, which is valid for ``ttl`` seconds and ``uses`` lookups, whichever
ends first. Shapes are few per config version (one per path through the rules), so a
lookup costs a handful of dict probes. :meth:`CheckCache.clear` drops everything (a new
config version); at most ``max_entries`` decisions are kept (beyond that, the oldest
decision of the oldest shape is evicted) and at most ``max_shapes`` shapes (decisions of
further shapes are not cached).

Task safety: not thread-safe; lookups and stores run on the event loop with no await in
between, so a decision is stored for exactly the bag it was computed from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.mixer.core.references import Reference, reference_value
from shared.policy_expr import AttributeBag

D = TypeVar("D")

Shape = tuple[Reference, ...]


@dataclass(slots=True)
class _Entry(Generic[D]):
    decision: D
    expires: float
    uses_left: int


class CheckCache(Generic[D]):
    """Decisions by referenced attributes; see the module docstring."""

    def __init__(
        self, *, max_entries: int, clock: Callable[[], float], max_shapes: int = 64
    ) -> None:
        self._max_entries = max_entries
        self._max_shapes = max_shapes
        self._clock = clock
        self._shapes: dict[Shape, dict[tuple[object, ...], _Entry[D]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def shapes(self) -> int:
        """How many distinct shapes are stored."""
        return len(self._shapes)

    def lookup(self, bag: AttributeBag) -> D | None:
        """A valid stored decision for ``bag`` (consuming one use), or None."""
        if not self._size:
            return None
        now = self._clock()
        for shape, table in self._shapes.items():
            key = tuple([reference_value(bag, reference) for reference in shape])
            entry = table.get(key)
            if entry is None:
                continue
            if entry.expires <= now or entry.uses_left <= 0:
                del table[key]
                self._size -= 1
                continue
            entry.uses_left -= 1
            return entry.decision
        return None

    def store(
        self,
        references: Iterable[Reference],
        bag: AttributeBag,
        decision: D,
        *,
        ttl: float,
        uses: int,
    ) -> None:
        """Keep ``decision`` for requests that agree with ``bag`` on ``references``.

        Nothing is stored when ``ttl`` or ``uses`` is not positive, or the cache is off.
        """
        if ttl <= 0 or uses <= 0 or self._max_entries <= 0:
            return
        shape = tuple(references)
        table = self._shapes.get(shape)
        if table is None:
            if len(self._shapes) >= self._max_shapes:
                return
            table = self._shapes[shape] = {}
        key = tuple([reference_value(bag, reference) for reference in shape])
        if key not in table:
            self._size += 1
        table[key] = _Entry(decision, self._clock() + ttl, uses)
        if self._size > self._max_entries:
            self._evict_one()

    def clear(self) -> None:
        """Drop every decision and shape."""
        self._shapes.clear()
        self._size = 0

    def _evict_one(self) -> None:
        for shape, table in self._shapes.items():
            if table:
                del table[next(iter(table))]
                self._size -= 1
                if not table:
                    del self._shapes[shape]
                return
