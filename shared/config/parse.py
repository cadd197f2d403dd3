"""Istio YAML in, typed :class:`Resource` objects and :class:`ConfigIssue` problems out.

Contract: :func:`parse_yaml` never raises on bad input: whatever the bytes, it returns
the objects it could read and one issue per problem. A YAML syntax error, binary data or
an alias bomb rejects the whole file (no object from it is returned). Otherwise each
document stands alone: a bad document is reported and the others are kept.
:func:`parse_object` does the same for one already-decoded document (the webhook and the
MCP subscribers use it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from shared.config.errors import ConfigIssue, format_path
from shared.config.kinds import all_kinds, lookup
from shared.config.resource import ObjectMeta, Resource

DEFAULT_NAMESPACE = "default"
# libyaml's C parser when PyYAML was built with it (about 10x faster), else pure Python.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_EXPANDED_NODES = 200_000
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a file held: the objects read and the problems found."""

    resources: tuple[Resource, ...] = ()
    issues: tuple[ConfigIssue, ...] = field(default=())


def parse_yaml(
    data: bytes | str, source: str, *, default_namespace: str = DEFAULT_NAMESPACE
) -> ParseResult:
    """Parse a (multi-document) YAML file; see the module docstring for the contract."""
    text = _decode(data, source)
    if isinstance(text, ConfigIssue):
        return ParseResult(issues=(text,))
    documents: list[tuple[Any, int]] = []
    try:
        loader = _Loader(text)
        may_alias = "*" in text  # without an alias no node is shared: nothing to expand
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                if may_alias and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                    return ParseResult(
                        issues=(
                            _file_issue(
                                source,
                                f"document expands to more than {MAX_EXPANDED_NODES} "
                                "nodes (YAML alias bomb?)",
                                node.start_mark.line + 1,
                            ),
                        )
                    )
                documents.append((loader.construct_document(node), node.start_mark.line + 1))
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return ParseResult(issues=(_file_issue(source, f"invalid YAML: {problem}", line),))
    except (RecursionError, ValueError, TypeError) as exc:
        return ParseResult(issues=(_file_issue(source, f"invalid YAML: {exc}", None),))

    resources: list[Resource] = []
    issues: list[ConfigIssue] = []
    for document, line in documents:
        if document is None:
            continue
        resource, found = parse_object(
            document, source, line=line, default_namespace=default_namespace
        )
        issues.extend(found)
        if resource is not None:
            resources.append(resource)
    return ParseResult(tuple(resources), tuple(issues))


def parse_object(
    document: object,
    source: str,
    *,
    line: int | None = None,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> tuple[Resource | None, list[ConfigIssue]]:
    """Type-check one decoded document; the resource is None when there are issues."""
    if not isinstance(document, Mapping):
        return None, [
            _file_issue(
                source, f"a config document must be a mapping, got {_type_name(document)}", line
            )
        ]
    api_version = document.get("apiVersion")
    kind_name = document.get("kind")
    meta_raw = document.get("metadata")
    meta_map: Mapping[Any, Any] = meta_raw if isinstance(meta_raw, Mapping) else {}
    name = meta_map.get("name") if isinstance(meta_map.get("name"), str) else ""
    namespace_raw = meta_map.get("namespace")
    namespace = (
        namespace_raw if isinstance(namespace_raw, str) and namespace_raw else (default_namespace)
    )

    def issue(path: str, message: str) -> ConfigIssue:
        return ConfigIssue(
            source=source,
            message=message,
            kind=kind_name if isinstance(kind_name, str) else "",
            namespace=namespace,
            name=str(name),
            path=path,
            line=line,
        )

    if not isinstance(api_version, str) or not api_version:
        return None, [issue("apiVersion", "required string field is missing")]
    if not isinstance(kind_name, str) or not kind_name:
        return None, [issue("kind", "required string field is missing")]
    info = lookup(api_version, kind_name)
    if info is None:
        return None, [issue("kind", _unknown_kind_message(api_version, kind_name))]

    issues = _check_envelope(document, meta_raw, issue)
    spec_raw = document.get("spec", {})
    if spec_raw is None:
        spec_raw = {}
    if not isinstance(spec_raw, Mapping):
        issues.append(issue("spec", f"must be a mapping, got {_type_name(spec_raw)}"))
    if issues:
        return None, issues
    try:
        spec = info.spec_model.model_validate(dict(spec_raw))
    except ValidationError as exc:
        return None, [
            issue(format_path(("spec", *err["loc"])), _pydantic_message(err))
            for err in exc.errors(include_url=False)
        ]
    except (RecursionError, ValueError, TypeError) as exc:
        return None, [issue("spec", f"cannot be read: {exc}")]
    meta = ObjectMeta(
        name=str(name),
        namespace=namespace,
        labels=MappingProxyType(_string_map(meta_map.get("labels"))),
        annotations=MappingProxyType(_string_map(meta_map.get("annotations"))),
    )
    return Resource(kind=info, metadata=meta, spec=spec, source=source, line=line), []


def _check_envelope(document: Mapping[Any, Any], meta_raw: object, issue: Any) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for key in document:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            issues.append(issue(str(key), "unknown field"))
    if not isinstance(meta_raw, Mapping):
        issues.append(issue("metadata", "required mapping with at least a name"))
        return issues
    name = meta_raw.get("name")
    if not isinstance(name, str) or not name:
        issues.append(issue("metadata.name", "required string field is missing"))
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        issues.append(
            issue(
                "metadata.name",
                f"{name!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')",
            )
        )
    namespace = meta_raw.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace)
    ):
        issues.append(issue("metadata.namespace", f"{namespace!r} is not a DNS-1123 label"))
    for field_name in ("labels", "annotations"):
        value = meta_raw.get(field_name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            issues.append(issue(f"metadata.{field_name}", "must be a map of strings"))
            continue
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                issues.append(
                    issue(
                        f"metadata.{field_name}.{key}", f"must be a string, got {_type_name(item)}"
                    )
                )
    return issues


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items()}


def _decode(data: bytes | str, source: str) -> str | ConfigIssue:
    if isinstance(data, str):
        text = data
    else:
        if b"\x00" in data:
            return _file_issue(source, "binary file (contains NUL bytes), not YAML", None)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _file_issue(source, f"not UTF-8 text (byte {exc.start})", None)
    if "\x00" in text:
        return _file_issue(source, "binary content (contains NUL characters), not YAML", None)
    return text


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Count nodes as if aliases were copied; stops early past the limit."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_EXPANDED_NODES + 1  # a cycle counts as too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo)
            if size > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            size += _expanded_size(key_node, memo) + _expanded_size(value_node, memo)
            if size > MAX_EXPANDED_NODES:
                break
    memo[key] = size
    return size


def _pydantic_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    if error.get("type") == "missing":
        return "required field is missing"
    if error.get("type") == "tuple_type":
        return "must be a list"
    return message


def _unknown_kind_message(api_version: str, kind: str) -> str:
    known = ", ".join(f"{info.api_version}/{info.kind}" for info in all_kinds())
    return f"unknown kind {kind!r} for apiVersion {api_version!r}; known kinds: {known}"


def _file_issue(source: str, message: str, line: int | None) -> ConfigIssue:
    return ConfigIssue(source=source, message=message, line=line)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__
