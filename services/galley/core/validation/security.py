"""PLACEHOLDER: validation rules for security kinds (being written)."""

from collections.abc import Callable, Mapping

from shared.config import Resource
from services.galley.core.validation.report import Report

SECURITY_VALIDATORS: Mapping[str, Callable[[Resource, Report], None]] = {}
