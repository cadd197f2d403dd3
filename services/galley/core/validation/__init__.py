"""Per-object validation like Istio's: one function per kind, issues not exceptions.

:func:`validate` runs the validator registered for the resource's kind and returns every
issue found (errors block the object; warnings do not). A validator never raises on
any resource the parser produced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from services.galley.core.validation.mesh import MESH_VALIDATORS
from services.galley.core.validation.networking import NETWORKING_VALIDATORS
from services.galley.core.validation.policy import POLICY_VALIDATORS
from services.galley.core.validation.report import Report
from services.galley.core.validation.security import SECURITY_VALIDATORS
from shared.config import ConfigIssue, Resource, has_errors

_log = logging.getLogger(__name__)

Validator = Callable[[Resource, Report], None]

_VALIDATORS: Mapping[str, Validator] = {
    **NETWORKING_VALIDATORS,
    **SECURITY_VALIDATORS,
    **POLICY_VALIDATORS,
    **MESH_VALIDATORS,
}


def validate(resource: Resource) -> list[ConfigIssue]:
    """Every issue of one resource (empty list: valid).

    Never raises: a validator that crashes rejects the object with an "internal error"
    issue (and a logged traceback) instead of breaking the caller's pipeline.
    """
    report = Report(resource)
    validator = _VALIDATORS.get(resource.kind.kind)
    if validator is not None:
        try:
            validator(resource, report)
        except Exception as exc:
            _log.exception("validator of %s crashed on %s", resource.kind.kind, resource.ref)
            report.error("", f"internal error while validating: {exc!r}")
    return report.issues


def accept(
    resources: Iterable[Resource],
) -> tuple[list[Resource], list[ConfigIssue]]:
    """Validate each resource: the ones without errors, and every issue found."""
    accepted: list[Resource] = []
    issues: list[ConfigIssue] = []
    for resource in resources:
        found = validate(resource)
        issues.extend(found)
        if not has_errors(found):
            accepted.append(resource)
    return accepted, issues
