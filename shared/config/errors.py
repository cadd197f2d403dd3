"""Where a config problem is, and what it is.

Every problem in a config object is a :class:`ConfigIssue`: the file (or other source),
the line its document starts on, ``Kind namespace/name``, a field path such as
``spec.http[0].route[1].weight`` and a message. ``str(issue)`` is the one-line form the
CLI prints and the webhook returns::

    examples/reviews.yaml:12: VirtualService default/reviews: spec.http[0].timeout: ...

Issues are values, not exceptions: a parser or validator collects them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How bad an issue is: errors block an object, warnings only inform."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in one config object (or file, when no object could be read)."""

    source: str
    message: str
    kind: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    line: int | None = None
    severity: Severity = Severity.ERROR
    code: str = ""

    @property
    def object_ref(self) -> str:
        """``Kind namespace/name``, or what is known of it."""
        if not self.kind and not self.name:
            return ""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '<unknown kind>'} {name or '<unnamed>'}".strip()

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        parts = [where]
        if self.object_ref:
            parts.append(self.object_ref)
        if self.path:
            parts.append(self.path)
        prefix = "" if self.severity is Severity.ERROR else f"{self.severity.value}: "
        return f"{': '.join(parts)}: {prefix}{self.message}"


def format_path(parts: Sequence[str | int]) -> str:
    """Render ``("spec", "http", 0, "route")`` as ``spec.http[0].route``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def has_errors(issues: Sequence[ConfigIssue]) -> bool:
    """True when any issue is an error (warnings do not block)."""
    return any(issue.severity is Severity.ERROR for issue in issues)
