"""Mutual TLS translation: PeerAuthentication scopes and modes, client TLS, cache keys."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from services.pilot.core.model import CLUSTER_TYPE, LISTENER_TYPE, Proxy, node_id, parse_proxy
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds.generate import generate, scope_key, shared_key
from services.pilot.core.xds.peer_authn import InboundMtls, inbound_mtls
from shared.config import parse_yaml

CATALOG = "catalog.shop.svc.cluster.local"
REGISTRY = f"""\
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: catalog, namespace: shop}}
spec:
  hosts: [{CATALOG}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints:
    - address: 127.0.0.1
      ports: {{http: 18081}}
      labels: {{app: catalog, security.istio.io/tlsMode: istio}}
      serviceAccount: catalog
"""


def _peer(name: str, namespace: str, body: str) -> str:
    return (
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


def _snapshot(*extra: str, auto: bool = True) -> MeshSnapshot:
    mesh = (
        "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
        "metadata: {name: mesh, namespace: istio-system}\n"
        f"spec: {{enableAutoMtls: {str(auto).lower()}}}\n"
    )
    parsed = parse_yaml("\n---\n".join([REGISTRY, mesh, *extra]), "mtls.yaml")
    assert not parsed.issues, parsed.issues
    resources = parsed.resources
    return MeshSnapshot.build(resources, services_from_service_entries(resources), version="m")


def _proxy(labels: dict[str, str] | None = None, *, tls: bool = True, **meta: Any) -> Proxy:
    metadata: dict[str, Any] = {
        "LABELS": labels if labels is not None else {"app": "catalog"},
        "SPLITMESH_OUTBOUND_PORT": 15001,
        "SPLITMESH_INBOUND": [
            {"port": port, "app_port": port + 10000, "service": CATALOG} for port in (18081, 18082)
        ],
        **meta,
    }
    if tls:
        metadata["SPLITMESH_TLS"] = "true"
    return parse_proxy(node_id("sidecar", "127.0.0.1", "catalog-v1", "shop"), metadata)


MESH_STRICT = _peer("default", "istio-system", "  mtls: {mode: STRICT}\n")
NS_DISABLE = _peer("default", "shop", "  mtls: {mode: DISABLE}\n")
NS_UNSET = _peer("default", "shop", "  mtls: {mode: UNSET}\n")
WORKLOAD = _peer(
    "catalog",
    "shop",
    "  selector: {matchLabels: {app: catalog}}\n  mtls: {mode: PERMISSIVE}\n"
    "  portLevelMtls: {18082: {mode: STRICT}}\n",
)


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        ((), InboundMtls("PERMISSIVE")),
        ((MESH_STRICT,), InboundMtls("STRICT")),
        ((MESH_STRICT, NS_DISABLE), InboundMtls("DISABLE")),
        ((MESH_STRICT, NS_UNSET), InboundMtls("STRICT")),  # UNSET inherits
        ((MESH_STRICT, NS_DISABLE, WORKLOAD), InboundMtls("PERMISSIVE", {18082: "STRICT"})),
        (
            (
                MESH_STRICT,
                _peer("a", "shop", "  selector: {matchLabels: {app: catalog}}\n"),
                WORKLOAD,
            ),  # the first matching workload policy wins; UNSET with no ports
            InboundMtls("STRICT"),
        ),
        (
            (
                _peer(
                    "z", "shop", "  selector: {matchLabels: {app: other}}\n  mtls: {mode: STRICT}\n"
                ),
            ),
            InboundMtls("PERMISSIVE"),  # selects someone else
        ),
        (
            (
                _peer(
                    "sel",
                    "istio-system",
                    "  selector: {matchLabels: {app: catalog}}\n  mtls: {mode: STRICT}\n",
                ),
            ),
            InboundMtls("PERMISSIVE"),  # selectors in the root namespace are ignored
        ),
        (
            (
                _peer(
                    "w",
                    "shop",
                    "  selector: {matchLabels: {app: catalog}}\n  mtls: {mode: DISABLE}\n"
                    "  portLevelMtls: {18082: {mode: UNSET}}\n",
                ),
                MESH_STRICT,
            ),
            InboundMtls("DISABLE", {18082: "DISABLE"}),  # an UNSET port takes the workload's
        ),
    ],
)
def test_peer_authentication_scopes_merge_as_istio_does(
    policies: tuple[str, ...], expected: InboundMtls
) -> None:
    found = inbound_mtls(_snapshot(*policies), _proxy())
    assert (found.mode, dict(found.ports)) == (expected.mode, dict(expected.ports))


def _listener(config: Any, port: int) -> listener_pb2.Listener:
    listener = config.of_type(LISTENER_TYPE)[f"inbound|{port}"]
    assert isinstance(listener, listener_pb2.Listener)
    return listener


def _downstream(chain: Any) -> tls_pb2.DownstreamTlsContext:
    context = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(context)
    return context


def test_inbound_listeners_follow_the_mode_of_their_port() -> None:
    config = generate(_snapshot(MESH_STRICT, NS_DISABLE, WORKLOAD), _proxy())
    permissive, strict = _listener(config, 18081), _listener(config, 18082)
    assert [f.name for f in permissive.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    tls_chain, plain_chain = permissive.filter_chains
    assert tls_chain.filter_chain_match.transport_protocol == "tls"
    assert plain_chain.filter_chain_match.transport_protocol == "raw_buffer"
    assert not plain_chain.HasField("transport_socket")
    (only,) = strict.filter_chains
    context = _downstream(only)
    assert context.require_client_certificate.value
    common = context.common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["default"]
    validation = common.combined_validation_context
    assert validation.validation_context_sds_secret_config.name == "ROOTCA"
    sds = validation.validation_context_sds_secret_config.sds_config.api_config_source
    assert sds.grpc_services[0].envoy_grpc.cluster_name == "sds-grpc"
    (trust,) = validation.default_validation_context.match_typed_subject_alt_names
    assert trust.matcher.prefix == "spiffe://cluster.local/"


def test_a_proxy_without_identity_gets_no_tls_whatever_the_policy() -> None:
    snapshot = _snapshot(MESH_STRICT)
    config = generate(snapshot, _proxy(tls=False))
    for listener in config.of_type(LISTENER_TYPE).values():
        assert isinstance(listener, listener_pb2.Listener)
        assert not any(chain.HasField("transport_socket") for chain in listener.filter_chains)
    for cluster in config.of_type(CLUSTER_TYPE).values():
        assert isinstance(cluster, cluster_pb2.Cluster)
        assert not cluster.HasField("transport_socket") and not cluster.transport_socket_matches
    assert shared_key(snapshot, _proxy(tls=False)) != shared_key(snapshot, _proxy())


def _cluster(config: Any, name: str = f"outbound|8080||{CATALOG}") -> cluster_pb2.Cluster:
    cluster = config.of_type(CLUSTER_TYPE)[name]
    assert isinstance(cluster, cluster_pb2.Cluster)
    return cluster


def _upstream(socket: Any) -> tls_pb2.UpstreamTlsContext:
    context = tls_pb2.UpstreamTlsContext()
    assert socket.typed_config.Unpack(context)
    return context


def _rule(tls: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n"
        f"metadata: {{name: catalog, namespace: shop}}\nspec:\n  host: {CATALOG}\n"
        f"  trafficPolicy: {{tls: {tls}}}\n"
    )


def test_auto_mtls_matches_sidecar_endpoints_and_checks_their_identity() -> None:
    cluster = _cluster(generate(_snapshot(), _proxy()))
    assert not cluster.HasField("transport_socket")
    (match,) = cluster.transport_socket_matches
    assert dict(match.match) == {"tlsMode": "istio"}
    context = _upstream(match.transport_socket)
    assert context.sni == f"outbound_.8080_._.{CATALOG}"
    sans = context.common_tls_context.combined_validation_context.default_validation_context
    assert [m.matcher.exact for m in sans.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/shop/sa/catalog"
    ]
    assert not _cluster(generate(_snapshot(auto=False), _proxy())).transport_socket_matches


def test_destination_rule_tls_overrides_auto_mtls() -> None:
    mutual = _cluster(generate(_snapshot(_rule("{mode: ISTIO_MUTUAL}"), auto=False), _proxy()))
    assert _upstream(mutual.transport_socket).common_tls_context.tls_certificate_sds_secret_configs
    disabled = _cluster(generate(_snapshot(_rule("{mode: DISABLE}")), _proxy()))
    assert not disabled.HasField("transport_socket") and not disabled.transport_socket_matches


@pytest.mark.parametrize(
    ("tls", "proxy_tls", "message"),
    [
        ("{mode: SIMPLE}", True, "tls mode SIMPLE is not supported yet"),
        ("{mode: ISTIO_MUTUAL}", False, "ISTIO_MUTUAL needs a proxy with a workload identity"),
    ],
)
def test_tls_that_cannot_be_honoured_is_reported_and_plaintext(
    tls: str, proxy_tls: bool, message: str
) -> None:
    problems: list[Any] = []
    config = generate(_snapshot(_rule(tls)), _proxy(tls=proxy_tls), report=problems.append)
    assert not _cluster(config).HasField("transport_socket")
    assert any(message in str(problem) for problem in problems), problems


def test_cache_keys_tell_identity_and_labels_apart() -> None:
    snapshot = _snapshot(WORKLOAD)
    other = _proxy({"app": "catalog", "version": "v2"})
    assert scope_key(snapshot, _proxy()) != scope_key(snapshot, other)
    plain = _proxy(tls=False)
    assert scope_key(snapshot, plain) == scope_key(snapshot, _proxy({"x": "y"}, tls=False))
