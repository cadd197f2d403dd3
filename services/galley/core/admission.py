"""The validating admission webhook's logic: AdmissionReview v1 in, verdict out.

:func:`review` takes a decoded AdmissionReview (``admission.k8s.io/v1``) and returns the
AdmissionReview response: ``allowed`` true, or false with every validation error in
``status.message`` (one line per issue, each naming ``Kind namespace/name`` and the
field path). A review that is not a well-formed AdmissionReview raises
:class:`MalformedReviewError`; the HTTP adapter maps it to 400. Objects of kinds
splitmesh does not know are allowed: the webhook only judges what it owns.
DELETE requests are always allowed. Pure function; safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.galley.core.validation import validate
from shared.config import ConfigIssue, Severity, lookup, parse_object

API_VERSION = "admission.k8s.io/v1"


class MalformedReviewError(ValueError):
    """The request body is not an AdmissionReview v1 with a request."""


def review(body: object, *, default_namespace: str = "default") -> dict[str, Any]:
    """Judge one AdmissionReview; see the module docstring."""
    request = _request_of(body)
    uid = request["uid"]
    operation = request.get("operation", "CREATE")
    document = request.get("object")
    if operation == "DELETE" or document is None:
        return _response(uid, [])
    if not isinstance(document, Mapping):
        raise MalformedReviewError("request.object must be an object")
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise MalformedReviewError("request.object needs string apiVersion and kind")
    if lookup(api_version, kind) is None:
        return _response(uid, [])
    namespace = request.get("namespace")
    source = f"admission:{uid}"
    resource, issues = parse_object(
        document,
        source,
        default_namespace=namespace
        if isinstance(namespace, str) and namespace
        else (default_namespace),
    )
    if resource is not None:
        issues = validate(resource)
    return _response(uid, issues)


def _request_of(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise MalformedReviewError("body must be a JSON object (an AdmissionReview)")
    if body.get("kind") != "AdmissionReview":
        raise MalformedReviewError(f"kind must be 'AdmissionReview', got {body.get('kind')!r}")
    if body.get("apiVersion") != API_VERSION:
        raise MalformedReviewError(
            f"apiVersion must be {API_VERSION!r}, got {body.get('apiVersion')!r}"
        )
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise MalformedReviewError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReviewError("request.uid is missing or not a string")
    return request


def _response(uid: str, issues: list[ConfigIssue]) -> dict[str, Any]:
    errors = [issue for issue in issues if issue.severity is Severity.ERROR]
    response: dict[str, Any] = {"uid": uid, "allowed": not errors}
    if errors:
        response["status"] = {
            "code": 400,
            "reason": "Invalid",
            "message": "\n".join(_without_source(issue) for issue in errors),
        }
    warnings = [_without_source(issue) for issue in issues if issue.severity is Severity.WARNING]
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _without_source(issue: ConfigIssue) -> str:
    """The issue text minus the synthetic ``admission:<uid>`` source prefix."""
    text = str(issue)
    prefix = f"{issue.source}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
