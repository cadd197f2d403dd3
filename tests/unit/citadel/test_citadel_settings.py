"""Citadel's settings: lifetimes within 90 days, sane rotation, known key types."""

from __future__ import annotations

import pytest

from services.citadel.settings import CitadelSettings
from shared.settings import SettingsError


def test_defaults_are_valid_and_istio_like() -> None:
    settings = CitadelSettings().validate()
    assert settings.workload_cert_ttl_s == 24 * 3600
    assert settings.max_workload_cert_ttl_s == 90 * 86400
    assert settings.ca_key_type == "ecdsa-p256"
    assert settings.root_ttl_s == 10 * 365 * 86400
    assert settings.root_rotation_fraction == 0.2


def test_environment_overrides() -> None:
    settings = CitadelSettings.from_env(
        {
            "SPLITMESH_CITADEL_WORKLOAD_CERT_TTL_S": "3600",
            "SPLITMESH_CITADEL_CA_KEY_TYPE": "rsa-2048",
            "SPLITMESH_CITADEL_ALLOWED_KEY_TYPES": "ecdsa-p256, rsa-2048",
        }
    )
    assert settings.workload_cert_ttl_s == 3600
    assert settings.ca_key_type == "rsa-2048"
    assert settings.allowed_key_types == ("ecdsa-p256", "rsa-2048")


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"max_workload_cert_ttl_s": 91 * 86400}, "max_workload_cert_ttl_s"),
        ({"workload_cert_ttl_s": 100 * 86400}, "workload_cert_ttl_s"),
        ({"workload_cert_ttl_s": 0}, "workload_cert_ttl_s"),
        ({"ca_key_type": "dsa"}, "ca_key_type"),
        ({"allowed_key_types": ("ed448",)}, "allowed_key_types"),
        ({"root_rotation_fraction": 1.0}, "root_rotation_fraction"),
        ({"root_ttl_s": 10.0, "root_rotation_grace_s": 5.0}, "root_rotation_grace_s"),
        ({"trust_domain": "Not A Domain"}, "trust_domain"),
        ({"grpc_port": 70000}, "grpc_port"),
    ],
)
def test_bad_values_name_the_setting(overrides: dict[str, object], setting: str) -> None:
    with pytest.raises(SettingsError) as caught:
        CitadelSettings().with_overrides(**overrides)
    assert caught.value.setting.startswith(setting)
