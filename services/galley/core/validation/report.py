"""A per-object issue collector that fills in file, line and ``Kind namespace/name``."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import ConfigIssue, Resource, Severity


@dataclass
class Report:
    """Collects the issues of one resource. Not shared between tasks."""

    resource: Resource
    issues: list[ConfigIssue] = field(default_factory=list)

    def error(self, path: str, message: str, *, code: str = "") -> None:
        """Record an error at ``path`` (``spec.http[0].route``)."""
        self._add(path, message, Severity.ERROR, code)

    def warning(self, path: str, message: str, *, code: str = "") -> None:
        """Record a warning at ``path``; warnings never block an object."""
        self._add(path, message, Severity.WARNING, code)

    def _add(self, path: str, message: str, severity: Severity, code: str) -> None:
        meta = self.resource.metadata
        self.issues.append(
            ConfigIssue(
                source=self.resource.source,
                message=message,
                kind=self.resource.kind.kind,
                namespace=meta.namespace,
                name=meta.name,
                path=path,
                line=self.resource.line,
                severity=severity,
                code=code,
            )
        )
