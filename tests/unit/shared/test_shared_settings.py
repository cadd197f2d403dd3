"""SettingsBase: environment conversions, readable errors, overrides, validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Self

import pytest

from shared.settings import SettingsBase, SettingsError


@dataclasses.dataclass(frozen=True)
class DemoSettings(SettingsBase):
    env_prefix = "SPLITMESH_DEMO_"

    name: str = "demo"
    grpc_port: int = 15010
    ratio: float = 0.5
    debug: bool = False
    config_dir: Path = Path("/etc/demo")
    ca_file: Path | None = None
    otlp_endpoint: str | None = None
    namespaces: tuple[str, ...] = ("default",)

    def validate(self) -> Self:
        self.require_port("grpc_port")
        self.require(0.0 <= self.ratio <= 1.0, "ratio", f"{self.ratio} is not in [0, 1]")
        return self


def test_defaults_without_environment() -> None:
    settings = DemoSettings.from_env({})
    assert settings == DemoSettings()


def test_every_supported_type_converts_from_the_environment() -> None:
    settings = DemoSettings.from_env(
        {
            "SPLITMESH_DEMO_NAME": "pilot",
            "SPLITMESH_DEMO_GRPC_PORT": "0",
            "SPLITMESH_DEMO_RATIO": "0.25",
            "SPLITMESH_DEMO_DEBUG": "Yes",
            "SPLITMESH_DEMO_CONFIG_DIR": "/tmp/cfg",
            "SPLITMESH_DEMO_CA_FILE": "/tmp/ca.pem",
            "SPLITMESH_DEMO_OTLP_ENDPOINT": "",
            "SPLITMESH_DEMO_NAMESPACES": " prod, ,staging ",
            "UNRELATED": "ignored",
        }
    )
    assert settings.name == "pilot"
    assert settings.grpc_port == 0
    assert settings.ratio == 0.25
    assert settings.debug is True
    assert settings.config_dir == Path("/tmp/cfg")
    assert settings.ca_file == Path("/tmp/ca.pem")
    assert settings.otlp_endpoint is None  # empty means unset for optional settings
    assert settings.namespaces == ("prod", "staging")


@pytest.mark.parametrize("raw", ["off", "0", "FALSE", "no"])
def test_false_spellings(raw: str) -> None:
    assert DemoSettings.from_env({"SPLITMESH_DEMO_DEBUG": raw}).debug is False


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("SPLITMESH_DEMO_GRPC_PORT", "http"),
        ("SPLITMESH_DEMO_RATIO", "half"),
        ("SPLITMESH_DEMO_DEBUG", "maybe"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        DemoSettings.from_env({variable: raw})
    assert caught.value.setting == variable
    assert variable in str(caught.value)
    assert repr(raw) in str(caught.value)


def test_validation_names_the_setting_and_its_variable() -> None:
    with pytest.raises(SettingsError, match="grpc_port") as caught:
        DemoSettings.from_env({"SPLITMESH_DEMO_GRPC_PORT": "70000"})
    assert "SPLITMESH_DEMO_GRPC_PORT" in str(caught.value)
    assert "70000 is not a port" in str(caught.value)


def test_with_overrides_replaces_given_fields_and_ignores_none() -> None:
    base = DemoSettings(name="a", grpc_port=1)
    changed = base.with_overrides(grpc_port=2, name=None)
    assert changed.grpc_port == 2
    assert changed.name == "a"
    assert base.grpc_port == 1  # frozen original untouched


def test_with_overrides_validates() -> None:
    with pytest.raises(SettingsError, match="ratio"):
        DemoSettings().with_overrides(ratio=3.0)


def test_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="no such setting") as caught:
        DemoSettings().with_overrides(grpc_prot=1)
    assert caught.value.setting == "grpc_prot"


def test_str_is_readable() -> None:
    text = str(DemoSettings())
    assert text.startswith("DemoSettings(name=demo, grpc_port=15010")
    assert "namespaces=('default',)" in text


def test_env_name_uses_the_prefix() -> None:
    assert DemoSettings.env_name("grpc_port") == "SPLITMESH_DEMO_GRPC_PORT"
