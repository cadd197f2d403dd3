"""Building blocks of the typed config model.

:class:`SpecModel` is the base of every spec and nested message: immutable, camelCase
field names exactly as in Istio's YAML, unknown fields rejected (Istio's strict
validation). :data:`Duration` parses Istio/Go durations (``"1.5s"``, ``"100ms"``,
``"3m"``, ``"1h30m"``) into :class:`datetime.timedelta` and writes them back as seconds
(``"1.5s"``), the protobuf JSON form.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class SpecModel(BaseModel):
    """Base of every config message: frozen, camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-compatible dict (Istio field names, unset fields omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_duration(value: object) -> timedelta:
    """Parse a Go/Istio duration string (or a timedelta); raise ValueError if malformed."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"duration must be a string like '1.5s', got {type(value).__name__}")
    text = value.strip()
    negative = text.startswith("-")
    body = text[1:] if negative else text
    if not body:
        raise ValueError("duration is empty")
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(body):
        raise ValueError(f"invalid duration {value!r}: expected forms like '1s', '250ms', '1h30m'")
    return timedelta(seconds=-seconds if negative else seconds)


def format_duration(value: timedelta) -> str:
    """Seconds with an ``s`` suffix, the protobuf JSON duration form (``"1.5s"``)."""
    seconds = value.total_seconds()
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A duration field: accepts ``"1.5s"``/``"100ms"``/``"1h"``, holds a ``timedelta``."""
