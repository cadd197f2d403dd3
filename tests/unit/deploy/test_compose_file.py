"""docker-compose.yml stays in step with the code: modules exist, settings are real."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import yaml

from services.galley.settings import GalleySettings
from shared.settings import SettingsBase

ROOT = Path(__file__).resolve().parents[3]
SETTINGS: dict[str, type[SettingsBase]] = {"services.galley": GalleySettings}


def _compose() -> dict[str, dict[str, object]]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = document["services"]
    assert isinstance(services, dict)
    return services


def test_every_service_runs_an_existing_module() -> None:
    for name, service in _compose().items():
        command = service["command"]
        assert isinstance(command, list) and command[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: {command[2]}"


def test_every_environment_variable_names_a_setting_and_parses() -> None:
    for name, service in _compose().items():
        module = service["command"][2]  # type: ignore[index]
        settings_type = SETTINGS[module]
        known = {settings_type.env_name(f.name) for f in dataclasses.fields(settings_type)}
        environment = service.get("environment", {})
        assert isinstance(environment, dict)
        unknown = set(environment) - known
        assert not unknown, f"{name}: unknown settings {sorted(unknown)}"
        env = {key: str(value) for key, value in environment.items()}
        env[settings_type.env_name("config_dir")] = str(ROOT / "examples")
        settings_type.from_env(env)  # raises SettingsError on a bad value


def test_the_image_is_built_from_the_checked_in_dockerfile() -> None:
    for service in _compose().values():
        build = service["build"]
        assert isinstance(build, dict)
        assert (ROOT / str(build["dockerfile"])).is_file()
