"""``stdio``: ``logentry`` and ``metric`` instances written as lines (Istio's access log).

Each instance becomes one line: a JSON object (``outputAsJson``) with ``level``,
``time``, ``instance`` and the instance's ``variables`` (log entries) or ``value`` and
``dimensions`` (metrics), or the same as tab-separated text. A log entry's level comes
from its ``severity`` through ``severityLevels`` (``info``/``warning``/``error`` by
default); entries below ``outputLevel`` are dropped; metrics log at ``metricLevel``.
Lines go to stdout, stderr or ``outputPath`` (FILE and ROTATED_FILE both append to
it; splitmesh does not rotate). Values are rendered as JSON: times in ISO 8601,
durations as ``"12.5ms"``, addresses and maps as strings and objects.

Task safety: event loop only; writes are synchronous and line-buffered, so lines of
concurrent batches never interleave. Errors: an unwritable file raises
:class:`~services.mixer.core.errors.HandlerError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from services.mixer.core.errors import ConfigError, HandlerError
from services.mixer.core.handlers.base import Instance
from shared.config.policy_adapters import StdioParams

_LEVELS = {"INFO": 0, "WARNING": 1, "ERROR": 2}
_DEFAULT_SEVERITIES = {"info": "INFO", "warning": "WARNING", "warn": "WARNING", "error": "ERROR"}


class StdioHandler:
    """A configured stdio handler."""

    def __init__(
        self,
        name: str,
        params: StdioParams,
        *,
        streams: Mapping[str, TextIO],
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._json = params.output_as_json
        self._minimum = _LEVELS[params.output_level]
        self._metric_level = params.metric_level
        severities: dict[str, str] = dict(_DEFAULT_SEVERITIES)
        severities.update(
            {key.lower(): level for key, level in (params.severity_levels or {}).items()}
        )
        self._severities = severities
        self._owned: TextIO | None = None
        self._stream: TextIO
        if params.log_stream in ("FILE", "ROTATED_FILE"):
            if not params.output_path:
                raise ConfigError(name, f"logStream {params.log_stream} needs an outputPath")
            try:
                self._owned = Path(params.output_path).open(  # noqa: SIM115 - closed by close()
                    "a", buffering=1, encoding="utf-8"
                )
            except OSError as exc:
                raise ConfigError(name, f"cannot open {params.output_path}: {exc}") from exc
            self._stream = self._owned
        else:
            self._stream = streams[params.log_stream]

    async def handle_report(self, instances: Sequence[Instance]) -> None:
        """Write one line per instance at or above the output level."""
        lines: list[str] = []
        for instance in instances:
            line = self._line(instance)
            if line is not None:
                lines.append(line)
        if not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            raise HandlerError(f"stdio: cannot write: {exc}") from exc

    async def close(self) -> None:
        """Close the output file, if this handler opened one. Idempotent."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def _line(self, instance: Instance) -> str | None:
        fields = instance.fields
        if instance.template == "metric":
            level: str = self._metric_level
            payload: dict[str, Any] = {
                "value": fields.get("value"),
                **(fields.get("dimensions") or {}),
            }
            moment = self._clock()
        else:
            severity = str(fields.get("severity", "info")).lower()
            level = self._severities.get(severity, "INFO")
            payload = dict(fields.get("variables") or {})
            timestamp = fields.get("timestamp")
            moment = timestamp.timestamp() if isinstance(timestamp, datetime) else self._clock()
        if _LEVELS[level] < self._minimum:
            return None
        time = datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")
        if self._json:
            entry = {"level": level.lower(), "time": time, "instance": instance.name, **payload}
            return json.dumps(entry, default=_json_value, separators=(",", ":"))
        body = json.dumps(payload, default=_json_value, separators=(",", ":"))
        return f"{time}\t{level.lower()}\t{instance.name}\t{body}"


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds() * 1000:g}ms"
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


class StdioBuilder:
    """Builds stdio handlers writing to the process's streams or to files."""

    templates = frozenset({"logentry", "metric"})

    def __init__(self, *, streams: Mapping[str, TextIO], clock: Callable[[], float]) -> None:
        self._streams = streams
        self._clock = clock

    def build(self, name: str, params: Any) -> StdioHandler:
        """A stdio handler from :class:`StdioParams`."""
        return StdioHandler(name, params, streams=self._streams, clock=self._clock)
