"""The Istio kinds splitmesh understands, and the MCP collection each one travels in.

A :class:`KindInfo` ties ``apiVersion``/``kind`` as written in YAML to the typed spec
model and to the collection name Galley publishes it under (Istio 1.4's names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from shared.config.base import SpecModel
from shared.config.mesh import MeshConfigSpec
from shared.config.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    SidecarSpec,
    VirtualServiceSpec,
)
from shared.config.policy import HandlerSpec, InstanceSpec, RuleSpec
from shared.config.security import AuthorizationPolicySpec, PeerAuthenticationSpec


@dataclass(frozen=True, slots=True)
class KindInfo:
    """One config kind: its YAML identity, spec model and MCP collection."""

    kind: str
    group: str
    versions: tuple[str, ...]
    collection: str
    spec_model: type[SpecModel]

    @property
    def api_version(self) -> str:
        """The preferred ``group/version`` (the first accepted version)."""
        return f"{self.group}/{self.versions[0]}"


_NETWORKING = ("v1alpha3", "v1beta1", "v1")


@cache
def all_kinds() -> tuple[KindInfo, ...]:
    """Every supported kind, in a stable order."""
    return (
        KindInfo(
            "VirtualService",
            "networking.istio.io",
            _NETWORKING,
            "istio/networking/v1alpha3/virtualservices",
            VirtualServiceSpec,
        ),
        KindInfo(
            "DestinationRule",
            "networking.istio.io",
            _NETWORKING,
            "istio/networking/v1alpha3/destinationrules",
            DestinationRuleSpec,
        ),
        KindInfo(
            "Gateway",
            "networking.istio.io",
            _NETWORKING,
            "istio/networking/v1alpha3/gateways",
            GatewaySpec,
        ),
        KindInfo(
            "ServiceEntry",
            "networking.istio.io",
            _NETWORKING,
            "istio/networking/v1alpha3/serviceentries",
            ServiceEntrySpec,
        ),
        KindInfo(
            "Sidecar",
            "networking.istio.io",
            _NETWORKING,
            "istio/networking/v1alpha3/sidecars",
            SidecarSpec,
        ),
        KindInfo(
            "AuthorizationPolicy",
            "security.istio.io",
            ("v1beta1", "v1"),
            "istio/security/v1beta1/authorizationpolicies",
            AuthorizationPolicySpec,
        ),
        KindInfo(
            "PeerAuthentication",
            "security.istio.io",
            ("v1beta1", "v1"),
            "istio/security/v1beta1/peerauthentications",
            PeerAuthenticationSpec,
        ),
        KindInfo(
            "handler",
            "config.istio.io",
            ("v1alpha2",),
            "istio/policy/v1beta1/handlers",
            HandlerSpec,
        ),
        KindInfo(
            "instance",
            "config.istio.io",
            ("v1alpha2",),
            "istio/policy/v1beta1/instances",
            InstanceSpec,
        ),
        KindInfo("rule", "config.istio.io", ("v1alpha2",), "istio/policy/v1beta1/rules", RuleSpec),
        KindInfo(
            "MeshConfig",
            "mesh.istio.io",
            ("v1alpha1",),
            "istio/mesh/v1alpha1/MeshConfig",
            MeshConfigSpec,
        ),
    )


@cache
def kinds_by_name() -> Mapping[str, KindInfo]:
    """Kinds keyed by their ``kind`` string."""
    return {info.kind: info for info in all_kinds()}


@cache
def kinds_by_collection() -> Mapping[str, KindInfo]:
    """Kinds keyed by MCP collection name."""
    return {info.collection: info for info in all_kinds()}


def lookup(api_version: str, kind: str) -> KindInfo | None:
    """The kind for ``apiVersion``/``kind`` as written in YAML, or None if unsupported."""
    info = kinds_by_name().get(kind)
    if info is None:
        return None
    group, _, version = api_version.partition("/")
    if group != info.group or version not in info.versions:
        return None
    return info
