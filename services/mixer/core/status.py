"""Decision statuses: google.rpc codes without importing a transport.

:class:`Code` mirrors ``google.rpc.Code`` by number, so adapters map it onto gRPC or
HTTP with one table each. :class:`Status` is an immutable value (code and message).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.IntEnum):
    """google.rpc.Code, by number."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True)
class Status:
    """A decision status: ``code`` and a human message (empty when OK)."""

    code: Code = Code.OK
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the code is OK."""
        return self.code is Code.OK

    @classmethod
    def of(cls, code: int, message: str = "") -> Status:
        """A status from a numeric code; an unknown number becomes UNKNOWN."""
        try:
            return cls(Code(code), message)
        except ValueError:
            return cls(Code.UNKNOWN, message or f"unknown status code {code}")


OK = Status()
"""The OK status."""
