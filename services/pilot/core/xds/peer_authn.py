"""PeerAuthentication: which mTLS mode each inbound port of a workload accepts.

Istio's ``composePeerAuthentication`` (1.5+ ``security.istio.io/v1beta1``), with splitmesh's
"oldest" meaning first by ``(namespace, name)`` (there are no creation timestamps):

- the **mesh** policy is the first PeerAuthentication without a selector in the root
  namespace (MeshConfig ``rootNamespace``);
- the **namespace** policy is the first one without a selector in the workload's
  namespace (for a workload in the root namespace, that is the mesh policy);
- the **workload** policy is the first one in the workload's namespace whose selector
  matches the workload's labels (policies with a selector in the root namespace are
  ignored, as in Istio).

The mode starts as PERMISSIVE; the mesh, then the namespace, then the workload policy
replace it unless their mode is UNSET. ``portLevelMtls`` of the workload policy (Galley
only accepts it with a selector) sets a port's mode, UNSET meaning the workload's mode.
Ports are the ports the workload's sidecar binds (``SPLITMESH_INBOUND`` ``port``, the
endpoint port peers connect to). Pure functions of the snapshot; values are immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from services.pilot.core.model import Proxy
from services.pilot.core.snapshot import MeshSnapshot, selector_matches
from shared.config import Resource
from shared.config.security import MutualTls, PeerAuthenticationSpec

PeerMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]
_NO_PORTS: Mapping[int, PeerMode] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InboundMtls:
    """The effective inbound mode of a workload, and its port-level exceptions."""

    mode: PeerMode = "PERMISSIVE"
    ports: Mapping[int, PeerMode] = field(default_factory=lambda: _NO_PORTS)
    sources: tuple[str, ...] = ()  # the policies that applied, mesh first

    def at(self, port: int) -> PeerMode:
        """The mode on ``port``."""
        return self.ports.get(port, self.mode)


def inbound_mtls(snapshot: MeshSnapshot, proxy: Proxy) -> InboundMtls:
    """The PeerAuthentication outcome for ``proxy``'s workload (see the module docstring)."""
    root = snapshot.mesh.root_namespace
    mesh_policy = namespace_policy = workload_policy = None
    for resource in snapshot.of_kind("PeerAuthentication"):
        spec = resource.spec
        namespace = resource.metadata.namespace
        if not isinstance(spec, PeerAuthenticationSpec) or namespace not in (
            root,
            proxy.namespace,
        ):
            continue
        selector = spec.selector.match_labels if spec.selector is not None else None
        if not selector:
            if namespace == root:
                mesh_policy = mesh_policy or resource
            else:
                namespace_policy = namespace_policy or resource
        elif namespace != root and selector_matches(selector, proxy.labels):
            workload_policy = workload_policy or resource
    mode: PeerMode = "PERMISSIVE"
    for policy in (mesh_policy, namespace_policy, workload_policy):
        mode = _mode(policy, mode)
    ports: dict[int, PeerMode] = {}
    if workload_policy is not None:
        spec = workload_policy.spec
        assert isinstance(spec, PeerAuthenticationSpec)
        for port, mtls in sorted((spec.port_level_mtls or {}).items()):
            ports[port] = _set(mtls, mode)
    return InboundMtls(
        mode=mode,
        ports=MappingProxyType(ports),
        sources=tuple(
            policy.ref
            for policy in (mesh_policy, namespace_policy, workload_policy)
            if policy is not None
        ),
    )


def _mode(policy: Resource | None, inherited: PeerMode) -> PeerMode:
    if policy is None:
        return inherited
    spec = policy.spec
    assert isinstance(spec, PeerAuthenticationSpec)
    return _set(spec.mtls, inherited)


def _set(mtls: MutualTls | None, inherited: PeerMode) -> PeerMode:
    if mtls is None or mtls.mode == "UNSET":
        return inherited
    return mtls.mode
