"""Problems found while indexing or translating config: reported, never raised.

Pilot must not crash on any config Galley accepts, so every per-resource step of the
translation runs under :meth:`Problems.guard`: an exception there skips that one
object and is recorded as an *internal* :class:`Problem` (a Pilot bug worth a test),
while :meth:`Problems.note` records a known limitation or a config oddity (a shadowed
VirtualService, an unsupported field). A :class:`Problems` collector belongs to one
generation call and is not shared between tasks; :class:`Problem` values are immutable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_log = logging.getLogger("services.pilot.xds")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing Pilot skipped or could not translate faithfully."""

    ref: str
    message: str
    internal: bool = False

    def __str__(self) -> str:
        prefix = "internal error: " if self.internal else ""
        return f"{self.ref}: {prefix}{self.message}"


ProblemSink = Callable[[Problem], None]


def log_problem(problem: Problem) -> None:
    """The default sink: a warning log line (an error for internal problems)."""
    if problem.internal:
        _log.error("%s", problem)
    else:
        _log.warning("%s", problem)


class Problems:
    """Collects the problems of one generation call and forwards each to a sink."""

    def __init__(self, sink: ProblemSink | None = None) -> None:
        self._sink = sink or log_problem
        self.found: list[Problem] = []
        self._seen: set[Problem] = set()

    def note(self, ref: str, message: str) -> None:
        """Record a config oddity or an unsupported feature."""
        self.add(Problem(ref, message))

    @contextmanager
    def guard(self, ref: str) -> Iterator[None]:
        """Run a block; an exception in it is recorded as an internal problem and dropped."""
        try:
            yield
        except Exception as exc:  # the translation must survive any single bad object
            _log.debug("translation of %s failed", ref, exc_info=True)
            self.add(Problem(ref, f"skipped: {exc!r}", internal=True))

    def add(self, problem: Problem) -> None:
        """Record ``problem`` (once per collector), e.g. one found by an earlier call."""
        if problem in self._seen:  # a rule translated for several ports reports once
            return
        self._seen.add(problem)
        self.found.append(problem)
        self._sink(problem)
