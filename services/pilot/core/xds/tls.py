"""Mutual TLS between sidecars: server TLS on inbound listeners, client TLS on clusters.

Only a proxy whose agent has a workload identity (node metadata ``SPLITMESH_TLS``, see
:mod:`services.pilot.core.model`) is given TLS: every context here takes its certificate
from SDS secret ``default`` and its trusted roots from SDS secret ``ROOTCA``, both served
by the agent on the bootstrap cluster ``sds-grpc`` that only such a proxy has.

Inbound (:func:`secure_inbound`, the mode from :mod:`.peer_authn`): STRICT makes the one
filter chain TLS-only (a client certificate from the mesh's roots is required);
PERMISSIVE adds Envoy's TLS inspector and two chains, TLS (``transport_protocol: tls``)
and plaintext (``raw_buffer``); DISABLE leaves the plaintext chain. A peer's certificate
must name a SPIFFE identity of the mesh's trust domain (MeshConfig ``trustDomain`` or one
of ``trustDomainAliases``).

Outbound (:func:`secure_clusters`), from the DestinationRule ``tls`` that applies to the
cluster (Istio's merge, :mod:`.plan`):

- ``ISTIO_MUTUAL``: the cluster always originates mutual TLS;
- ``DISABLE``: plaintext; ``SIMPLE`` and ``MUTUAL`` (certificates from files) are not
  supported yet: reported, plaintext;
- no ``tls`` and MeshConfig ``enableAutoMtls``: auto mTLS, as Istio does it — the
  cluster gets a ``transport_socket_matches`` entry for ``tlsMode: istio`` and the
  endpoints whose ServiceEntry labels carry ``security.istio.io/tlsMode: istio`` (the
  workload runs a sidecar) get that key in ``envoy.transport_socket_match`` metadata
  (:func:`endpoint_metadata`); other endpoints stay plaintext. The decision is a pure
  function of the snapshot, per endpoint, and travels with EDS.

The server's certificate is checked against the destination's identities: the rule's
``subjectAltNames`` if it names some, else the ServiceEntry's ``subjectAltNames`` plus
``spiffe://<trustDomain>/ns/<service namespace>/sa/<serviceAccount>`` of each endpoint
with a ``serviceAccount``; when none is known, any identity of the mesh's trust domain.
SNI is the rule's ``sni`` or Istio's ``outbound_.<port>_.<subset>_.<host>``.

Pure functions; :func:`secure_inbound` and :func:`secure_clusters` change only the new
messages generation just built, before anything else can see them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Literal

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import protos
from services.pilot.core.xds.peer_authn import PeerMode
from services.pilot.core.xds.plan import PlannedCluster
from services.pilot.core.xds.problems import Problems
from shared.config.mesh import MeshConfigSpec
from shared.config.networking import ServiceEntrySpec
from shared.config.networking_destinationrule import ClientTLSSettings

SDS_CLUSTER = "sds-grpc"
DEFAULT_SECRET = "default"
ROOT_SECRET = "ROOTCA"
TLS_MODE_LABEL = "security.istio.io/tlsMode"
TLS_MODE_ISTIO = "istio"
SOCKET_MATCH_METADATA = "envoy.transport_socket_match"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
AUTO_MTLS_MATCH = "tlsMode-istio"
SPIFFE = "spiffe://"

ClientMode = Literal["ISTIO_MUTUAL", "AUTO", "PLAINTEXT"]
_URI = common_pb2.SubjectAltNameMatcher.SanType.URI
_DNS = common_pb2.SubjectAltNameMatcher.SanType.DNS


def client_mode(settings: ClientTLSSettings | None, mesh: MeshConfigSpec) -> ClientMode:
    """What a cluster originates: the rule's ``tls`` first, else auto mTLS if enabled."""
    if settings is None:
        return "AUTO" if mesh.enable_auto_mtls else "PLAINTEXT"
    return "ISTIO_MUTUAL" if settings.mode == "ISTIO_MUTUAL" else "PLAINTEXT"


def secure_inbound(listener: listener_pb2.Listener, mode: PeerMode, mesh: MeshConfigSpec) -> None:
    """Make ``listener`` (one plaintext filter chain) accept what ``mode`` allows."""
    if mode == "DISABLE":
        return
    (plain,) = listener.filter_chains
    secured = listener_components_pb2.FilterChain()
    secured.CopyFrom(plain)
    secured.name = "tls"
    secured.transport_socket.CopyFrom(_transport_socket(_downstream(mesh)))
    if mode == "STRICT":
        chains = [secured]
    else:
        secured.filter_chain_match.transport_protocol = "tls"
        plaintext = listener_components_pb2.FilterChain()
        plaintext.CopyFrom(plain)
        plaintext.name = "plaintext"
        plaintext.filter_chain_match.transport_protocol = "raw_buffer"
        chains = [secured, plaintext]
        listener.listener_filters.append(
            listener_components_pb2.ListenerFilter(
                name=TLS_INSPECTOR, typed_config=protos.pack(tls_inspector_pb2.TlsInspector())
            )
        )
    del listener.filter_chains[:]
    listener.filter_chains.extend(chains)


def secure_clusters(
    clusters: MutableMapping[str, cluster_pb2.Cluster],
    plan: Mapping[str, PlannedCluster],
    snapshot: MeshSnapshot,
    originates_mtls: bool,
    problems: Problems,
) -> None:
    """Add client TLS to the planned clusters in ``clusters`` (see the module docstring).

    ``originates_mtls``: the proxy has a workload identity (``Proxy.tls``).
    """
    mesh = snapshot.mesh
    entry_sans = {
        entry.ref: entry.spec.subject_alt_names
        for entry in snapshot.of_kind("ServiceEntry")
        if isinstance(entry.spec, ServiceEntrySpec)
    }
    for name, planned in plan.items():
        cluster = clusters.get(name)
        settings = planned.policy.tls
        if cluster is None:
            continue
        where = planned.service.source or planned.service.hostname
        if settings is not None and settings.mode in ("SIMPLE", "MUTUAL"):
            problems.note(
                where,
                f"cluster {name}: tls mode {settings.mode} is not supported yet (only "
                "ISTIO_MUTUAL and DISABLE); traffic goes in plaintext",
            )
            continue
        mode = client_mode(settings, mesh)
        if mode == "PLAINTEXT":
            continue
        if not originates_mtls:
            if mode == "ISTIO_MUTUAL":
                problems.note(
                    where,
                    f"cluster {name}: ISTIO_MUTUAL needs a proxy with a workload identity "
                    "(Citadel); proxies without one send plaintext",
                )
            continue
        sans = destination_sans(
            planned, settings, entry_sans.get(planned.service.source, ()), mesh.trust_domain
        )
        socket = _transport_socket(_upstream(planned, settings, sans, mesh))
        if mode == "ISTIO_MUTUAL":
            cluster.transport_socket.CopyFrom(socket)
        else:
            match = struct_pb2.Struct()
            match.update({"tlsMode": TLS_MODE_ISTIO})
            cluster.transport_socket_matches.append(
                cluster_pb2.Cluster.TransportSocketMatch(
                    name=AUTO_MTLS_MATCH, match=match, transport_socket=socket
                )
            )


def destination_sans(
    planned: PlannedCluster,
    settings: ClientTLSSettings | None,
    entry_sans: tuple[str, ...],
    trust_domain: str,
) -> tuple[str, ...]:
    """The identities a destination's certificate may name (empty: any of the mesh)."""
    if settings is not None and settings.subject_alt_names:
        return settings.subject_alt_names
    service = planned.service
    accounts = (
        f"{SPIFFE}{trust_domain}/ns/{service.namespace}/sa/{endpoint.service_account}"
        for endpoint in service.endpoints
        if endpoint.service_account
    )
    return tuple(dict.fromkeys([*entry_sans, *accounts]))


def endpoint_metadata(labels: Mapping[str, str]) -> base_pb2.Metadata | None:
    """The auto-mTLS match metadata of an endpoint whose workload runs a sidecar."""
    if labels.get(TLS_MODE_LABEL) != TLS_MODE_ISTIO:
        return None
    metadata = base_pb2.Metadata()
    metadata.filter_metadata[SOCKET_MATCH_METADATA].update({"tlsMode": TLS_MODE_ISTIO})
    return metadata


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """Secret ``name`` from the agent's SDS server (bootstrap cluster ``sds-grpc``)."""
    grpc_service = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
    )
    source = config_source_pb2.ConfigSource(
        api_config_source=config_source_pb2.ApiConfigSource(
            api_type=config_source_pb2.ApiConfigSource.GRPC,
            transport_api_version=config_source_pb2.ApiVersion.V3,
            grpc_services=[grpc_service],
        ),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )
    return secret_pb2.SdsSecretConfig(name=name, sds_config=source)


def _common(matchers: list[common_pb2.SubjectAltNameMatcher]) -> tls_pb2.CommonTlsContext:
    validation = tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=common_pb2.CertificateValidationContext(
            match_typed_subject_alt_names=matchers
        ),
        validation_context_sds_secret_config=sds_secret(ROOT_SECRET),
    )
    return tls_pb2.CommonTlsContext(
        tls_certificate_sds_secret_configs=[sds_secret(DEFAULT_SECRET)],
        combined_validation_context=validation,
    )


def _downstream(mesh: MeshConfigSpec) -> tls_pb2.DownstreamTlsContext:
    context = tls_pb2.DownstreamTlsContext(common_tls_context=_common(_trust_domains(mesh)))
    context.require_client_certificate.value = True
    return context


def _upstream(
    planned: PlannedCluster,
    settings: ClientTLSSettings | None,
    sans: tuple[str, ...],
    mesh: MeshConfigSpec,
) -> tls_pb2.UpstreamTlsContext:
    matchers = [_exact(san) for san in sans]
    subset = planned.subset
    sni = settings.sni if settings is not None and settings.sni else None
    return tls_pb2.UpstreamTlsContext(
        common_tls_context=_common(matchers or _trust_domains(mesh)),
        sni=sni or f"outbound_.{planned.port.number}_.{subset}_.{planned.service.hostname}",
    )


def _trust_domains(mesh: MeshConfigSpec) -> list[common_pb2.SubjectAltNameMatcher]:
    domains = dict.fromkeys((mesh.trust_domain, *mesh.trust_domain_aliases))
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=_URI, matcher=string_pb2.StringMatcher(prefix=f"{SPIFFE}{domain}/")
        )
        for domain in domains
    ]


def _exact(san: str) -> common_pb2.SubjectAltNameMatcher:
    kind = _URI if "://" in san else _DNS
    return common_pb2.SubjectAltNameMatcher(
        san_type=kind, matcher=string_pb2.StringMatcher(exact=san)
    )


def _transport_socket(context: Message) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=protos.pack(context))
