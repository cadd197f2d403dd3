"""Typed specs of security.istio.io/v1beta1: AuthorizationPolicy and PeerAuthentication.

Field names are Istio's (camelCase on the wire). Optional lists and maps are ``None``
when absent, so an explicitly empty list (``from: []``, which Istio rejects) stays
distinguishable from an omitted one. The models check shape and enums only; Istio's
semantic rules (ports, IP blocks, condition keys, selectors) live in Galley's
validators. Instances are immutable and safe to share between tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from shared.config.base import SpecModel

AuthorizationAction = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]
MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


class WorkloadSelector(SpecModel):
    """Selects the workloads (by pod labels) a policy applies to."""

    match_labels: Mapping[str, str] | None = None

    @property
    def is_empty(self) -> bool:
        """True when the selector selects every workload (no labels)."""
        return not self.match_labels


class Source(SpecModel):
    """Who sends the request: peer identities, JWT principals, namespaces, IPs."""

    principals: tuple[str, ...] | None = None
    not_principals: tuple[str, ...] | None = None
    request_principals: tuple[str, ...] | None = None
    not_request_principals: tuple[str, ...] | None = None
    namespaces: tuple[str, ...] | None = None
    not_namespaces: tuple[str, ...] | None = None
    ip_blocks: tuple[str, ...] | None = None
    not_ip_blocks: tuple[str, ...] | None = None


class RuleFrom(SpecModel):
    """One ``from`` entry of a rule."""

    source: Source | None = None


class Operation(SpecModel):
    """What the request does: host, port (as a string), method, path."""

    hosts: tuple[str, ...] | None = None
    not_hosts: tuple[str, ...] | None = None
    ports: tuple[str, ...] | None = None
    not_ports: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    not_methods: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    not_paths: tuple[str, ...] | None = None


class RuleTo(SpecModel):
    """One ``to`` entry of a rule."""

    operation: Operation | None = None


class Condition(SpecModel):
    """A ``when`` condition: an attribute key and the values it must (not) have."""

    key: str = ""
    values: tuple[str, ...] | None = None
    not_values: tuple[str, ...] | None = None


class AuthorizationRule(SpecModel):
    """A rule matches when all of from, to and when match (each absent one matches all)."""

    from_: tuple[RuleFrom, ...] | None = Field(default=None, alias="from")
    to: tuple[RuleTo, ...] | None = None
    when: tuple[Condition, ...] | None = None


class ExtensionProvider(SpecModel):
    """The external authorizer a CUSTOM policy delegates to."""

    name: str = ""


class AuthorizationPolicySpec(SpecModel):
    """Access control on workloads: ``action`` applies when any rule matches."""

    selector: WorkloadSelector | None = None
    action: AuthorizationAction = "ALLOW"
    provider: ExtensionProvider | None = None
    rules: tuple[AuthorizationRule, ...] | None = None


class MutualTls(SpecModel):
    """The mTLS mode for a workload or a port; UNSET inherits from the parent scope."""

    mode: MtlsMode = "UNSET"


class PeerAuthenticationSpec(SpecModel):
    """How traffic to the selected workloads is tunnelled (mTLS or not), per port too."""

    selector: WorkloadSelector | None = None
    mtls: MutualTls | None = None
    port_level_mtls: Mapping[int, MutualTls] | None = None
