"""The settings base every service's frozen settings object builds on.

A service declares ``@dataclass(frozen=True) class XSettings(SettingsBase)`` with typed
fields and defaults, sets ``env_prefix`` (``"SPLITMESH_GALLEY_"``) and implements
``validate()``. Only :meth:`SettingsBase.from_env` reads the environment; CLI flags are
applied with :meth:`SettingsBase.with_overrides`. An invalid value raises
:class:`SettingsError` naming the setting (and its environment variable), so a bad
setting fails at start with a message a person can act on.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``pathlib.Path``, their
``X | None`` forms and ``tuple[str, ...]`` (comma-separated in the environment).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has an invalid value; ``setting`` names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"invalid setting {setting}: {message}")
        self.setting = setting


@dataclasses.dataclass(frozen=True)
class SettingsBase:
    """Base of the per-service settings dataclasses (see the module docstring)."""

    env_prefix: ClassVar[str] = "SPLITMESH_"

    def validate(self) -> Self:
        """Check every value; raise :class:`SettingsError` on the first bad one."""
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """Build from defaults overlaid with ``{env_prefix}{FIELD}`` variables, validated."""
        values: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            variable = cls.env_name(field.name)
            if variable in environ:
                values[field.name] = _convert(variable, environ[variable], hints[field.name])
        return cls(**values).validate()

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable that sets ``field_name``."""
        return f"{cls.env_prefix}{field_name.upper()}"

    def with_overrides(self, **overrides: Any) -> Self:
        """A copy with the given fields replaced (``None`` values are ignored), validated."""
        given = {key: value for key, value in overrides.items() if value is not None}
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise SettingsError(unknown[0], "no such setting")
        return dataclasses.replace(self, **given).validate()

    def __str__(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)!s}" for f in dataclasses.fields(self)]
        return f"{type(self).__name__}({', '.join(parts)})"

    def require(self, condition: bool, setting: str, message: str) -> None:
        """Raise :class:`SettingsError` for ``setting`` unless ``condition`` holds."""
        if not condition:
            raise SettingsError(f"{setting} ({self.env_name(setting)})", message)

    def require_port(self, setting: str, *, allow_zero: bool = True) -> None:
        """Require the int field ``setting`` to be a TCP port (0 = any free port)."""
        port = getattr(self, setting)
        low = 0 if allow_zero else 1
        self.require(low <= port <= 65535, setting, f"{port} is not a port ({low}-65535)")


def _convert(variable: str, raw: str, hint: Any) -> Any:
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if optional and raw == "":
        return None
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
        if hint in (int, float, str):
            return hint(raw)
        if hint is Path:
            return Path(raw)
        if typing.get_origin(hint) is tuple:
            return tuple(item.strip() for item in raw.split(",") if item.strip())
    except ValueError as exc:
        raise SettingsError(variable, f"{raw!r}: {exc}") from exc
    raise SettingsError(variable, f"unsupported setting type {hint!r}")
