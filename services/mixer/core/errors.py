"""Mixer's exception hierarchy.

::

    MixerError                     base of everything Mixer's core raises
    ├── ConfigError                a handler, instance, rule or policy cannot be compiled
    │                              (recorded as a config issue; the object is skipped)
    ├── HandlerError               an adapter failed while handling one request
    │   └── QuotaBackendError      the quota store (Redis) is unreachable or too slow
    └── OverloadedError            load shedding: the latency budget is exceeded

Expression errors come from :mod:`shared.policy_expr` (``ExpressionError`` at compile
time, ``EvaluationError`` per request) and are translated where they are caught: a
compile error becomes a :class:`ConfigError`, an evaluation error fails that rule and
follows the fail policy. Adapters translate foreign exceptions (Redis, OTLP) with
``raise ... from exc``; servicers map these onto status codes in one table each.
"""

from __future__ import annotations


class MixerError(Exception):
    """Base of Mixer's errors."""


class ConfigError(MixerError):
    """A config object cannot be compiled; ``subject`` names it (``rule shop/deny``)."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(f"{subject}: {message}")
        self.subject = subject
        self.message = message


class HandlerError(MixerError):
    """An adapter failed on one request."""


class QuotaBackendError(HandlerError):
    """The quota store could not answer (unreachable, timed out, script error)."""


class OverloadedError(MixerError):
    """Mixer is over its latency budget and sheds this call."""
