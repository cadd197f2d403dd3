"""Mixer's settings: environment names, roles, validation messages."""

from __future__ import annotations

import pytest

from services.mixer.settings import MixerSettings
from shared.settings import SettingsError


def test_settings_come_from_splitmesh_mixer_variables() -> None:
    settings = MixerSettings.from_env(
        {
            "SPLITMESH_MIXER_ROLE": "policy",
            "SPLITMESH_MIXER_GALLEY_ADDRESS": "galley:9901",
            "SPLITMESH_MIXER_CHECK_FAIL_OPEN": "true",
            "SPLITMESH_MIXER_QUOTA_FAIL_OPEN": "false",
            "SPLITMESH_MIXER_GRPC_PORT": "0",
        }
    )
    assert settings.serves_policy and not settings.serves_telemetry
    assert settings.check_fail_open is True and settings.quota_fail_open is False
    assert MixerSettings().check_fail_open is None  # follows MeshConfig


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ROLE", "both", "role"),
        ("GALLEY_ADDRESS", "galley", "galley_address"),
        ("QUOTA_TIMEOUT_S", "0", "quota_timeout_s"),
        ("GRPC_PORT", "70000", "grpc_port"),
        ("LOAD_SHED_BUDGET_MS", "-1", "load_shed_budget_ms"),
    ],
)
def test_invalid_values_name_the_setting(field: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        MixerSettings.from_env({f"SPLITMESH_MIXER_{field}": value})
