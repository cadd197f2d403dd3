"""Galley's config store: what each source holds, what is served, and its snapshots.

:class:`ConfigStore` implements :class:`~services.galley.ports.ConfigSink`. Per source (a
file) it keeps the objects it serves from it and the issues of its latest read:

- Every object a source reports is also run through
  :func:`~services.galley.core.validation.validate`; an object with an error issue is
  rejected. An object equal to the one the source served before (same content, file and
  line: a re-read of an unchanged part of an edited file) keeps its verdict and version
  without being validated and hashed again. If the same object (collection and
  ``namespace/name``) was served from that source before, its LAST GOOD version keeps
  being served. Objects missing from a read that produced objects or object-level issues
  are withdrawn.
- A file-level error (error issues, no resources, no issue naming an object: bad YAML,
  unreadable, too large) keeps everything the source served before.
- The same object from two sources: the source whose name sorts first wins; the other
  gets an error issue naming both files. If the winner withdraws it, the other is served.
- Every issue is logged (one line, ``str(issue)``) and every rejected object is counted
  in ``galley_rejections_total`` (attribute ``kind``; ``file`` for file-level errors).

Snapshots: a collection's version is a short hash of its sorted ``(name, version)``
pairs, an object's version its :meth:`~shared.config.Resource.content_version`, so a
restarted Galley serving the same files serves the same versions. Nothing is published
before :meth:`ConfigStore.mark_synced`; that call publishes every known collection (empty
ones too, so subscribers learn "nothing there") at once. After it, changes are debounced
(:class:`~services.galley.core.debounce.Debouncer`) and only collections whose version
changed are published. The ``galley_config_objects`` gauge counts served objects per
collection. Metrics go to the global meter ``splitmesh.galley`` unless a meter is given.

Task safety: every method is called from the event loop thread; the store owns its state
and hands out only immutable values (snapshots, :class:`StoreStatus`). Errors: a failing
publisher is logged and retried after the next quiet period; a validator that raises
rejects that object with an issue (``validate`` never raises).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from opentelemetry import metrics

from services.galley.core.debounce import Debouncer
from services.galley.core.validation import validate
from services.galley.ports import SnapshotPublisher
from shared.config import (
    ConfigIssue,
    Resource,
    Severity,
    has_errors,
    kinds_by_collection,
    kinds_by_name,
)
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource

_log = logging.getLogger(__name__)

_Key = tuple[str, str]
"""(collection, ``namespace/name``): the identity of an object."""


@dataclass(frozen=True, slots=True)
class ServedObject:
    """One object being served: ``Kind namespace/name``, where it came from, its version."""

    ref: str
    collection: str
    name: str
    source: str
    version: str


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What the store serves and what is wrong, for the CLI and ``/debug/configz``."""

    synced: bool
    objects: tuple[ServedObject, ...]
    issues: tuple[ConfigIssue, ...]
    versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """The last published version of each collection."""


@dataclass(frozen=True, slots=True)
class _Entry:
    resource: Resource
    version: str
    mcp: McpResource
    warnings: tuple[ConfigIssue, ...]
    """What validation said about ``resource`` (an entry is only made when it had no error)."""

    @classmethod
    def of(cls, resource: Resource, warnings: Iterable[ConfigIssue]) -> _Entry:
        version = resource.content_version()
        meta = resource.metadata
        mcp = McpResource(
            name=meta.full_name,
            version=version,
            body=MappingProxyType(resource.body()),
            labels=meta.labels,
            annotations=meta.annotations,
        )
        return cls(resource, version, mcp, tuple(warnings))


@dataclass(frozen=True, slots=True)
class _SourceState:
    entries: Mapping[_Key, _Entry]
    issues: tuple[ConfigIssue, ...]


class ConfigStore:
    """The :class:`ConfigSink` that validates, keeps last good versions and publishes."""

    def __init__(
        self,
        *,
        publisher: SnapshotPublisher,
        debounce_quiet: float = 0.5,
        debounce_max: float = 1.0,
        meter: metrics.Meter | None = None,
    ) -> None:
        self._publisher = publisher
        self._debouncer = Debouncer(self._publish, quiet=debounce_quiet, max_delay=debounce_max)
        self._sources: dict[str, _SourceState] = {}
        self._holders: dict[_Key, dict[str, _Entry]] = {}
        self._conflicts: dict[_Key, dict[str, ConfigIssue]] = {}
        self._published: dict[str, str] = {}
        self._synced = False
        meter = meter if meter is not None else metrics.get_meter("splitmesh.galley")
        self._rejections = meter.create_counter(
            "galley_rejections_total",
            unit="{object}",
            description="Config objects (or files) rejected, by kind",
        )
        self._objects_gauge = meter.create_gauge(
            "galley_config_objects",
            unit="{object}",
            description="Config objects served, by collection",
        )

    @property
    def name(self) -> str:
        """Component name for logs."""
        return "config-store"

    async def start(self) -> None:
        """Nothing to start: publishing begins at :meth:`mark_synced`."""

    async def stop(self) -> None:
        """Stop the debouncer; changes not yet published are dropped. Idempotent."""
        await self._debouncer.stop()

    def replace_source(
        self, source: str, resources: tuple[Resource, ...], issues: tuple[ConfigIssue, ...]
    ) -> None:
        """``source`` now holds ``resources``; see the module docstring for the rules."""
        old = self._sources.get(source)
        old_entries: Mapping[_Key, _Entry] = old.entries if old is not None else {}
        if _is_file_failure(resources, issues):
            state = _SourceState(old_entries, issues)
            if old_entries:
                _log.warning(
                    "%s: keeping its %d last good object(s) until it reads cleanly",
                    source,
                    len(old_entries),
                )
        else:
            state = self._read_state(source, resources, issues, old_entries)
        self._report(state.issues)
        self._set_source(source, state)

    def remove_source(self, source: str) -> None:
        """``source`` is gone: withdraw its objects and forget its issues."""
        if source in self._sources:
            self._set_source(source, None)

    def mark_synced(self) -> None:
        """The initial read is complete: publish every collection now."""
        self._synced = True
        self._publish()

    def status(self) -> StoreStatus:
        """The served objects (sorted by collection and name) and all current issues."""
        objects = tuple(
            ServedObject(
                ref=entry.resource.ref,
                collection=key[0],
                name=key[1],
                source=source,
                version=entry.version,
            )
            for key, (source, entry) in sorted(self._served().items())
        )
        issues = [issue for state in self._sources.values() for issue in state.issues]
        issues.extend(issue for losers in self._conflicts.values() for issue in losers.values())
        issues.sort(key=lambda issue: (issue.source, issue.line or 0, issue.path))
        return StoreStatus(
            synced=self._synced,
            objects=objects,
            issues=tuple(issues),
            versions=MappingProxyType(dict(self._published)),
        )

    def _read_state(
        self,
        source: str,
        resources: tuple[Resource, ...],
        issues: tuple[ConfigIssue, ...],
        old_entries: Mapping[_Key, _Entry],
    ) -> _SourceState:
        entries: dict[_Key, _Entry] = {}
        found = list(issues)
        rejected = {key for key in map(_issue_key, issues) if key is not None}
        for resource in resources:
            key = (resource.collection, resource.metadata.full_name)
            unchanged = old_entries.get(key)
            if unchanged is not None and unchanged.resource == resource:
                # Re-read but equal (same content, file and line): validation is a pure
                # function of the resource, so its verdict and version still hold.
                problems: list[ConfigIssue] = list(unchanged.warnings)
            else:
                unchanged = None
                problems = validate(resource)
            found.extend(problems)
            if has_errors(problems):
                rejected.add(key)
            elif key in entries:
                found.append(_duplicate_issue(resource, source, entries[key].resource, source))
            else:
                entries[key] = unchanged or _Entry.of(resource, problems)
        for key in sorted(rejected - entries.keys()):
            kept = old_entries.get(key)
            if kept is not None:
                entries[key] = kept
                _log.warning(
                    "%s: %s is rejected; still serving its last good version %s",
                    source,
                    kept.resource.ref,
                    kept.version,
                )
        return _SourceState(entries, tuple(found))

    def _set_source(self, source: str, state: _SourceState | None) -> None:
        old = self._sources.pop(source, None)
        touched: set[_Key] = set()
        if old is not None:
            for key in old.entries:
                holders = self._holders[key]
                del holders[source]
                if not holders:
                    del self._holders[key]
                touched.add(key)
        if state is not None:
            self._sources[source] = state
            for key, entry in state.entries.items():
                self._holders.setdefault(key, {})[source] = entry
                touched.add(key)
        self._refresh_conflicts(touched)
        if self._synced:
            self._debouncer.trigger()

    def _refresh_conflicts(self, keys: Iterable[_Key]) -> None:
        for key in keys:
            previous = self._conflicts.pop(key, {})
            holders = self._holders.get(key, {})
            if len(holders) < 2:
                continue
            winner = min(holders)
            current: dict[str, ConfigIssue] = {}
            for loser in sorted(holders.keys() - {winner}):
                issue = _duplicate_issue(
                    holders[loser].resource, loser, holders[winner].resource, winner
                )
                if previous.get(loser) != issue:
                    self._report((issue,))
                current[loser] = issue
            self._conflicts[key] = current

    def _served(self) -> dict[_Key, tuple[str, _Entry]]:
        served: dict[_Key, tuple[str, _Entry]] = {}
        for key, holders in self._holders.items():
            winner = min(holders)
            served[key] = (winner, holders[winner])
        return served

    def _report(self, issues: Iterable[ConfigIssue]) -> None:
        rejected: dict[tuple[str, str, str, int | None], str] = {}
        for issue in issues:
            if issue.severity is Severity.ERROR:
                _log.warning("%s", issue)
                rejected[(issue.kind, issue.namespace, issue.name, issue.line)] = issue.kind
            else:
                _log.info("%s", issue)
        for kind in rejected.values():
            self._rejections.add(1, {"kind": kind or "file"})

    def _publish(self) -> None:
        if not self._synced:
            return
        try:
            self._publish_changed()
        except Exception:
            _log.exception("publishing config snapshots failed; retrying after the debounce")
            self._debouncer.trigger()

    def _publish_changed(self) -> None:
        collections: dict[str, dict[str, _Entry]] = {name: {} for name in kinds_by_collection()}
        for (collection, name), (_, entry) in self._served().items():
            collections.setdefault(collection, {})[name] = entry
        changed: dict[str, CollectionSnapshot] = {}
        for collection, entries in collections.items():
            self._objects_gauge.set(len(entries), {"collection": collection})
            version = _collection_version(entries)
            if self._published.get(collection) == version:
                continue
            resources = {name: entries[name].mcp for name in sorted(entries)}
            changed[collection] = CollectionSnapshot(
                collection, version, MappingProxyType(resources)
            )
        if not changed:
            return
        self._publisher.publish(MappingProxyType(changed))
        self._published.update({name: snapshot.version for name, snapshot in changed.items()})
        _log.info(
            "published %s",
            ", ".join(
                f"{name}@{snap.version} ({len(snap.resources)})" for name, snap in changed.items()
            ),
        )


def _is_file_failure(resources: tuple[Resource, ...], issues: tuple[ConfigIssue, ...]) -> bool:
    """Error issues, no resources and no issue naming an object: keep what was there."""
    return not resources and has_errors(issues) and not any(issue.object_ref for issue in issues)


def _issue_key(issue: ConfigIssue) -> _Key | None:
    """The object an error issue from the parser is about, if it names a known kind."""
    info = kinds_by_name().get(issue.kind)
    if issue.severity is not Severity.ERROR or info is None or not issue.name:
        return None
    return (info.collection, f"{issue.namespace}/{issue.name}")


def _duplicate_issue(
    duplicate: Resource, source: str, served: Resource, served_source: str
) -> ConfigIssue:
    where = served_source if served.line is None else f"{served_source}:{served.line}"
    if served_source == source:
        message = f"defined twice in this file; the first definition ({where}) is served"
    else:
        message = (
            f"also defined in {where}; {served_source} sorts first so its definition is "
            f"served and this one in {source} is ignored"
        )
    return ConfigIssue(
        source=source,
        message=message,
        kind=duplicate.kind.kind,
        namespace=duplicate.metadata.namespace,
        name=duplicate.metadata.name,
        line=duplicate.line,
    )


def _collection_version(entries: Mapping[str, _Entry]) -> str:
    pairs = sorted((name, entry.version) for name, entry in entries.items())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]
