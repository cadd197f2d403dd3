"""The live config: snapshots in, the current :class:`CompiledConfig` out.

:meth:`ConfigRuntime.apply` is the :data:`~services.mixer.ports.SnapshotHandler` the
config feed delivers into. Each accepted snapshot recompiles the whole config (Istio's
Mixer did the same; a version compiles in milliseconds) and swaps it in atomically:
requests read :attr:`ConfigRuntime.current` once and keep using that version, so a swap
never changes a decision half-way. Handlers no longer used by the new version are
closed after the swap. Compilation problems do not reject the snapshot (Galley already
validated it); they are logged, counted and shown on ``/debug/configz``.

Task safety: event loop only; ``apply`` calls are serialised by the feed.
:meth:`close` closes every handler; idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.mixer.core.authz import AuthorizationPolicies
from services.mixer.core.compiled import CompiledConfig, HandlerEntry
from services.mixer.core.compiler import CompileOptions, compile_config, parse_snapshots
from services.mixer.core.handlers.base import HandlerBuilder
from services.mixer.core.self_metrics import MixerMetrics
from shared.config.mesh import MeshConfigSpec
from shared.contracts.mcp.snapshot import CollectionSnapshot

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """What ``/debug/configz`` shows."""

    version: str
    collections: Mapping[str, str]
    rules: Mapping[str, int]
    handlers: tuple[str, ...]
    authorization_policies: int
    fail_open: bool
    issues: tuple[str, ...]
    compiled_at: float | None = None


class ConfigRuntime:
    """Holds the current compiled config (see the module docstring)."""

    def __init__(
        self,
        *,
        builders: Mapping[str, HandlerBuilder],
        options: CompileOptions,
        metrics: MixerMetrics,
    ) -> None:
        self._builders = dict(builders)
        self._options = options
        self._metrics = metrics
        self._snapshots: dict[str, CollectionSnapshot] = {}
        self._compiled_at: float | None = None
        self.current = self._compile({}, {})
        """The compiled config requests use (read it once per request)."""

    async def apply(self, snapshot: CollectionSnapshot) -> None:
        """Accept ``snapshot`` as its collection's state and swap in the recompiled config."""
        snapshots = {**self._snapshots, snapshot.collection: snapshot}
        previous = self.current
        self.current = self._compile(snapshots, previous.handlers)
        self._snapshots = snapshots
        self._compiled_at = time.time()
        self._metrics.config_versions.add(1)
        self._metrics.config_issues.set(len(self.current.issues))
        for issue in self.current.issues:
            if issue not in previous.issues:
                _log.warning("config issue: %s", issue)
        await _close_unused(previous, self.current)

    async def close(self) -> None:
        """Close every handler of the current config. Idempotent."""
        current = self.current
        self.current = _empty(self._options)
        await _close_unused(current, self.current)

    def status(self) -> RuntimeStatus:
        """The current version, counts and issues."""
        config = self.current
        return RuntimeStatus(
            version=config.version,
            collections={name: snap.version for name, snap in sorted(self._snapshots.items())},
            rules={
                "check": len(config.check_rules),
                "quota": sum(len(rules) for rules in config.quota_rules.values()),
                "report": len(config.report_rules),
            },
            handlers=tuple(sorted(config.handlers)),
            authorization_policies=len(config.authz),
            fail_open=config.fail_open,
            issues=config.issues,
            compiled_at=self._compiled_at,
        )

    def _compile(
        self, snapshots: Mapping[str, CollectionSnapshot], previous: Mapping[str, HandlerEntry]
    ) -> CompiledConfig:
        return compile_config(
            parse_snapshots(snapshots),
            builders=self._builders,
            previous=previous,
            options=self._options,
        )


def _empty(options: CompileOptions) -> CompiledConfig:
    mesh = MeshConfigSpec()
    fail_open = options.check_fail_open
    return CompiledConfig(
        version="closed",
        authz=AuthorizationPolicies(deny=(), allow=(), root_namespace=mesh.root_namespace),
        mesh=mesh,
        fail_open=mesh.policy_check_fail_open if fail_open is None else fail_open,
    )


async def _close_unused(old: CompiledConfig, new: CompiledConfig) -> None:
    kept = {id(entry.handler) for entry in new.handlers.values()}
    for name, entry in old.handlers.items():
        if id(entry.handler) in kept:
            continue
        try:
            await entry.handler.close()
        except Exception:
            _log.exception("closing handler %s failed", name)
