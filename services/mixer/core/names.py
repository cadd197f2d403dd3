"""Istio 1.4's object names: ``namespace/name`` on the MCP wire, dotted in references.

A rule names handlers and instances as ``name`` (its own namespace), ``name.namespace``
or ``name.kind.namespace``; quota names (in ``memquota``/``redisquota`` params and in
quota requests) are instance names in the same forms. Fully qualified names are
``name.handler.namespace`` and ``name.instance.namespace``. Pure functions.
"""

from __future__ import annotations


def split_full_name(full_name: str) -> tuple[str, str]:
    """``(namespace, name)`` of an MCP resource name ``namespace/name``."""
    namespace, _, name = full_name.partition("/")
    return (namespace, name) if name else ("", namespace)


def qualified(name: str, kind: str, namespace: str) -> str:
    """``name.kind.namespace``."""
    return f"{name}.{kind}.{namespace}"


def candidates(reference: str, kind: str, namespace: str) -> tuple[str, ...]:
    """The fully qualified names ``reference`` may mean, most specific first."""
    found = [qualified(reference, kind, namespace)]
    parts = reference.split(".")
    if len(parts) == 2:
        found.append(qualified(parts[0], kind, parts[1]))
    elif len(parts) == 3:
        found.append(qualified(parts[0], kind, parts[2]))
    return tuple(dict.fromkeys(found))
