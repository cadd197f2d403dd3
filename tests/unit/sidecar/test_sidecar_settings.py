"""The agent's settings: environment parsing, the identity they describe, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import SettingsError
from sidecar.node import InboundPort, parse_address, parse_labels
from sidecar.settings import SidecarSettings

BASE = {"SPLITMESH_SIDECAR_WORKLOAD_NAME": "catalog-v1"}


def test_environment_describes_the_workload() -> None:
    settings = SidecarSettings.from_env(
        {
            **BASE,
            "SPLITMESH_SIDECAR_NAMESPACE": "shop",
            "SPLITMESH_SIDECAR_SERVICE_ACCOUNT": "catalog",
            "SPLITMESH_SIDECAR_LABELS": "app=catalog, version=v1",
            "SPLITMESH_SIDECAR_INBOUND": "18081:28081:catalog.shop.svc.cluster.local",
            "SPLITMESH_SIDECAR_PILOT_ADDRESS": "pilot.istio-system:15010",
            "SPLITMESH_SIDECAR_DELTA_XDS": "true",
            "SPLITMESH_SIDECAR_PORTS_FILE": "/tmp/ports.json",
        }
    )
    identity = settings.identity()
    assert identity.node_id() == "sidecar~127.0.0.1~catalog-v1.shop~shop.svc.cluster.local"
    assert dict(identity.labels) == {"app": "catalog", "version": "v1"}
    assert identity.inbound == (
        InboundPort(port=18081, app_port=28081, service="catalog.shop.svc.cluster.local"),
    )
    assert settings.pilot() == ("pilot.istio-system", 15010)
    assert settings.delta_xds
    assert settings.ports_file == Path("/tmp/ports.json")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SPLITMESH_SIDECAR_WORKLOAD_NAME", "", "SPLITMESH_SIDECAR_WORKLOAD_NAME"),
        ("SPLITMESH_SIDECAR_WORKLOAD_NAME", "a.b", "SPLITMESH_SIDECAR_WORKLOAD_NAME"),
        ("SPLITMESH_SIDECAR_LABELS", "app", "SPLITMESH_SIDECAR_LABELS"),
        ("SPLITMESH_SIDECAR_INBOUND", "18081:catalog", "SPLITMESH_SIDECAR_INBOUND"),
        ("SPLITMESH_SIDECAR_INBOUND", "18081:99999:c", "SPLITMESH_SIDECAR_INBOUND"),
        ("SPLITMESH_SIDECAR_PILOT_ADDRESS", "pilot", "SPLITMESH_SIDECAR_PILOT_ADDRESS"),
        ("SPLITMESH_SIDECAR_ADMIN_PORT", "70000", "SPLITMESH_SIDECAR_ADMIN_PORT"),
        ("SPLITMESH_SIDECAR_PROXY_TYPE", "gateway", "SPLITMESH_SIDECAR_PROXY_TYPE"),
        ("SPLITMESH_SIDECAR_ENVOY_LOG_LEVEL", "loud", "SPLITMESH_SIDECAR_ENVOY_LOG_LEVEL"),
        (
            "SPLITMESH_SIDECAR_RESTART_BACKOFF_MAX_S",
            "0.1",
            "SPLITMESH_SIDECAR_RESTART_BACKOFF_MAX_S",
        ),
        ("SPLITMESH_SIDECAR_DRAIN_TIME_S", "-1", "SPLITMESH_SIDECAR_DRAIN_TIME_S"),
        (
            "SPLITMESH_SIDECAR_LISTENER_DRAIN_TIME_S",
            "0",
            "SPLITMESH_SIDECAR_LISTENER_DRAIN_TIME_S",
        ),
        ("SPLITMESH_SIDECAR_CITADEL_ADDRESS", "citadel", "SPLITMESH_SIDECAR_CITADEL_ADDRESS"),
        ("SPLITMESH_SIDECAR_CERT_VALIDITY_S", "-5", "SPLITMESH_SIDECAR_CERT_VALIDITY_S"),
    ],
)
def test_bad_setting_is_named_with_its_variable(variable: str, value: str, named: str) -> None:
    with pytest.raises(SettingsError, match=named) as raised:
        SidecarSettings.from_env({**BASE, variable: value})
    assert value in str(raised.value) or "must" in str(raised.value)


def test_inbound_port_takes_an_optional_name_and_protocol() -> None:
    port = InboundPort.parse("9090:29090:ratings.shop.svc.cluster.local:grpc-api:grpc")
    assert (port.name, port.protocol) == ("grpc-api", "GRPC")
    assert port.to_metadata()["app_port"] == 29090


def test_labels_must_be_unique() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_labels(("app=a", "app=b"))


def test_ipv6_pilot_address() -> None:
    assert parse_address("[::1]:15010") == ("::1", 15010)


def test_settings_print_readably() -> None:
    text = str(SidecarSettings.from_env(BASE))
    assert "workload_name=catalog-v1" in text
    assert "pilot_address=127.0.0.1:15010" in text


def test_citadel_settings_give_the_workload_a_spiffe_identity() -> None:
    settings = SidecarSettings.from_env(
        {
            **BASE,
            "SPLITMESH_SIDECAR_NAMESPACE": "shop",
            "SPLITMESH_SIDECAR_SERVICE_ACCOUNT": "catalog",
            "SPLITMESH_SIDECAR_CITADEL_ADDRESS": "127.0.0.1:8060",
            "SPLITMESH_SIDECAR_CITADEL_TOKEN_FILE": "/run/catalog.token",
            "SPLITMESH_SIDECAR_CERT_VALIDITY_S": "600",
            "SPLITMESH_SIDECAR_TRUST_DOMAIN": "example.org",
        }
    )
    assert settings.citadel() == ("127.0.0.1", 8060)
    assert settings.citadel_token_file == Path("/run/catalog.token")
    assert settings.cert_validity_s == 600
    assert str(settings.spiffe_id()) == "spiffe://example.org/ns/shop/sa/catalog"
    assert settings.identity().tls
    plain = SidecarSettings.from_env(BASE)
    assert plain.citadel() is None
    assert not plain.identity().tls


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "SPLITMESH_SIDECAR_CITADEL_TOKEN_FILE"),
        (
            {"SPLITMESH_SIDECAR_CITADEL_TOKEN_FILE": "t", "SPLITMESH_SIDECAR_TRUST_DOMAIN": "Bad!"},
            "SPLITMESH_SIDECAR_TRUST_DOMAIN",
        ),
    ],
)
def test_citadel_needs_a_token_file_and_a_valid_identity(extra: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        SidecarSettings.from_env(
            {**BASE, "SPLITMESH_SIDECAR_CITADEL_ADDRESS": "127.0.0.1:8060", **extra}
        )
