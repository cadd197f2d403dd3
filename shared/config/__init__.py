"""Istio's configuration model: typed specs parsed from Istio's own YAML.

Entry points: :func:`parse_yaml` (a file's bytes → resources and issues),
:func:`parse_object` (one decoded document), :func:`all_kinds` (what is supported).
"""

from shared.config.errors import ConfigIssue, Severity, has_errors
from shared.config.kinds import KindInfo, all_kinds, kinds_by_collection, kinds_by_name, lookup
from shared.config.parse import ParseResult, parse_object, parse_yaml
from shared.config.resource import ObjectMeta, Resource

__all__ = [
    "ConfigIssue",
    "KindInfo",
    "ObjectMeta",
    "ParseResult",
    "Resource",
    "Severity",
    "all_kinds",
    "has_errors",
    "kinds_by_collection",
    "kinds_by_name",
    "lookup",
    "parse_object",
    "parse_yaml",
]
