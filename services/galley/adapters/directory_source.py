"""A watched directory of Istio YAML files as a :class:`~services.galley.ports.ConfigSource`.

:class:`DirectorySource` reads every ``*.yaml``/``*.yml`` file below its root (recursively)
at start, reports each into the sink with ``replace_source`` and then calls
``mark_synced``; after that it watches the tree with ``watchfiles`` and reports creates,
modifications, deletes and renames (a rename is a remove of the old name and a replace of
the new one).

Source names: a file is reported under its path relative to the root with ``/``
separators (``networking/reviews.yaml``), so issues read
``networking/reviews.yaml:12: VirtualService default/reviews: ...``.

What is read: names ending ``.yaml``/``.yml`` that are not hidden; hidden files and
directories (``.git``, Kubernetes' ``..data``) are skipped, and so are editor files
(``.#x.yaml``, ``x.yaml~``, ``.x.yaml.swp``, ``x.yaml.tmp``: hidden or not ending
``.yaml``). Symlinks are followed when they stay inside the root (a ConfigMap mount is a
tree of such links); symlinked directories are read once.

Bad input never publishes anything from that file; each case is one file-level error
issue reported under the file's name (so the objects it served before keep being
served): over ``max_file_bytes``, binary (from the parser), unreadable, not a regular
file, a directory named ``*.yaml``, a dangling symlink, a symlink loop, a symlink
pointing outside the root. A file deleted while being read counts as removed.

Partial writes: events are coalesced until the tree has been quiet for ``settle_delay``
(watchfiles' step: it reports a batch once no event came for that long; our own debouncer
only merges batches that arrive within 5 ms, and flushes at most 1 s after the first),
then the whole tree is scanned (``stat`` only) and files that changed are re-read; if a
file's size or times change while it is read it is read again, and if it keeps changing
it is left for the next event. A half-written file that does not parse is only a
file-level error and the final write fixes it. A file whose bytes did not change is not
reported again.

Task safety and errors: the source owns two tasks (the watcher and the debouncer) and
calls the sink from the event loop thread only; files are read and parsed in a worker
thread. An exception while watching or reading is logged and watching continues (the
watcher restarts with a back-off and the tree is re-scanned). If the root itself
disappears, nothing is withdrawn. ``start`` raises :class:`DirectorySourceError` if the
root is not a directory; ``stop`` is idempotent.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from watchfiles import awatch

from services.galley.core.debounce import Debouncer
from services.galley.ports import ConfigSink
from shared.config import ConfigIssue, ParseResult, parse_yaml
from shared.lifecycle import cancel_and_wait

_log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024
_SUFFIXES = (".yaml", ".yml")
_SETTLE_MAX = 1.0
_COALESCE = 0.005  # watchfiles already waited ``settle_delay`` of quiet: only merge batches
_READ_ATTEMPTS = 3
_RETRY_MIN, _RETRY_MAX = 1.0, 30.0

_Signature = tuple[int, int, int, int, int]


class DirectorySourceError(Exception):
    """The directory source cannot start (its root is not a readable directory)."""


@dataclass(frozen=True, slots=True)
class _File:
    """A candidate config file found by a scan."""

    path: str
    target: str
    signature: _Signature


@dataclass(frozen=True, slots=True)
class _Problem:
    """Why an entry cannot be read: becomes one file-level issue."""

    message: str


@dataclass(frozen=True, slots=True)
class _Seen:
    """What was last reported for a source; ``signature`` None forces a re-read."""

    signature: _Signature | None
    digest: str


class _Transient(Enum):
    """A read that reports nothing: the file vanished, or kept changing while read."""

    REMOVED = "removed"
    UNSTABLE = "unstable"


_Action = tuple[str, ParseResult | None]


class DirectorySource:
    """Reads and watches a directory tree of Istio YAML; see the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        settle_delay: float = 0.05,
        default_namespace: str = "default",
    ) -> None:
        self._root = str(root.absolute())
        self._max_bytes = max_file_bytes
        self._settle = settle_delay
        self._namespace = default_namespace
        self._debouncer = Debouncer(
            self._sync, quiet=_COALESCE, max_delay=max(settle_delay, _SETTLE_MAX)
        )
        self._lock = asyncio.Lock()
        self._sink: ConfigSink | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._known: dict[str, _Seen] = {}
        self._changed: set[str] = set()

    @property
    def name(self) -> str:
        """``directory:<root>``."""
        return f"directory:{self._root}"

    async def start(self, sink: ConfigSink) -> None:
        """Start watching, read the whole tree into ``sink``, then ``mark_synced``.

        If the initial read fails, the watcher is stopped again before the error propagates.
        """
        if self._sink is not None:
            raise DirectorySourceError(f"{self.name} is already started")
        if not await asyncio.to_thread(os.path.isdir, self._root):
            raise DirectorySourceError(f"config directory {self._root} is not a directory")
        self._sink = sink
        self._watcher = asyncio.create_task(self._watch(), name=self.name)
        try:
            # One loop turn lets awatch install its watches: no change after this is missed.
            await asyncio.sleep(0)
            await self._sync()
            sink.mark_synced()
        except BaseException:
            await self.stop()
            raise
        _log.info("%s: read %d file(s), watching for changes", self.name, len(self._known))

    async def stop(self) -> None:
        """Stop watching and drop unprocessed changes. Idempotent."""
        watcher, self._watcher = self._watcher, None
        await cancel_and_wait(watcher)
        await self._debouncer.stop()

    async def _watch(self) -> None:
        delay = _RETRY_MIN
        while True:
            try:
                async for changes in awatch(
                    self._root,
                    watch_filter=None,
                    step=max(1, round(self._settle * 1000)),
                    recursive=True,
                    ignore_permission_denied=True,
                ):
                    self._changed.update(path for _, path in changes)
                    self._debouncer.trigger()
                    delay = _RETRY_MIN
            except Exception:
                _log.exception("%s: watching failed; watching again in %.0f s", self.name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)
            self._debouncer.trigger()  # changes may have been missed: re-scan

    async def _sync(self) -> None:
        """Scan, read what changed in a worker thread, report it into the sink."""
        sink = self._sink
        if sink is None:
            return
        async with self._lock:
            changed, self._changed = frozenset(self._changed), set()
            actions, known, unstable = await asyncio.to_thread(
                self._plan, dict(self._known), changed
            )
            for source, result in actions:
                if result is None:
                    _log.info("%s: %s removed", self.name, source)
                    sink.remove_source(source)
                else:
                    sink.replace_source(source, result.resources, result.issues)
            self._known = known
        if unstable:
            self._debouncer.trigger()

    def _plan(
        self, known: Mapping[str, _Seen], changed: frozenset[str]
    ) -> tuple[list[_Action], dict[str, _Seen], bool]:
        """Worker thread: what to report, what is now known, whether a file kept changing."""
        actions: list[_Action] = []
        seen: dict[str, _Seen] = {}
        unstable = False
        for source, item in _scan(self._root).items():
            old = known.get(source)
            if isinstance(item, _Problem):
                outcome: tuple[ParseResult, _Seen] | _Transient = _problem(source, item)
            elif (
                old is None or old.signature != item.signature or {item.path, item.target} & changed
            ):
                outcome = self._load(source, item)
            else:
                seen[source] = old
                continue
            if outcome is _Transient.UNSTABLE:
                unstable = True
                if old is not None:
                    seen[source] = _Seen(None, old.digest)
            elif isinstance(outcome, tuple):
                result, seen[source] = outcome
                if old is None or old.digest != seen[source].digest:
                    actions.append((source, result))
        actions.extend((source, None) for source in sorted(known.keys() - seen.keys()))
        return actions, seen, unstable

    def _load(self, source: str, file: _File) -> tuple[ParseResult, _Seen] | _Transient:
        content = _read(file, self._max_bytes)
        if isinstance(content, _Problem):
            return _problem(source, content)
        if isinstance(content, _Transient):
            return content
        result = parse_yaml(content, source, default_namespace=self._namespace)
        return result, _Seen(file.signature, hashlib.sha256(content).hexdigest())


def _problem(source: str, problem: _Problem) -> tuple[ParseResult, _Seen]:
    issue = ConfigIssue(source=source, message=problem.message)
    return ParseResult(issues=(issue,)), _Seen(None, f"problem: {problem.message}")


def _scan(root: str) -> dict[str, _File | _Problem]:
    """Every candidate below ``root`` by relative name (raises OSError if root is gone)."""
    real_root = os.path.realpath(root)
    found: dict[str, _File | _Problem] = {}

    def walk(directory: str, prefix: str, ancestors: frozenset[tuple[int, int]]) -> None:
        with os.scandir(directory) as iterator:
            entries = sorted(iterator, key=lambda entry: entry.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            source = f"{prefix}{entry.name}"
            is_yaml = entry.name.endswith(_SUFFIXES)
            try:
                info = os.stat(entry.path)
            except OSError as exc:
                if is_yaml:
                    found[source] = _Problem(_stat_problem(entry, exc))
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            target = os.path.realpath(entry.path)
            identity = (info.st_dev, info.st_ino)
            if entry.is_symlink() and os.path.commonpath((target, real_root)) != real_root:
                if is_yaml or is_dir:
                    found[source] = _Problem(f"symlink points outside {root} (to {target})")
            elif is_yaml and is_dir:
                found[source] = _Problem("is a directory, not a YAML file; its files are not read")
            elif is_dir and identity in ancestors:
                found[source] = _Problem(f"symlink loop: points back to {target}")
            elif is_dir:
                try:
                    walk(entry.path, f"{source}/", ancestors | {identity})
                except OSError as exc:
                    found[source] = _Problem(f"cannot list directory: {exc.strerror or exc}")
            elif is_yaml and not stat.S_ISREG(info.st_mode):
                found[source] = _Problem("not a regular file")
            elif is_yaml:
                found[source] = _File(entry.path, target, _signature(info))

    top = os.stat(root)
    walk(root, "", frozenset({(top.st_dev, top.st_ino)}))
    return found


def _stat_problem(entry: os.DirEntry[str], exc: OSError) -> str:
    if entry.is_symlink() and exc.errno == errno.ENOENT:
        return f"dangling symlink (to {os.readlink(entry.path)})"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return f"cannot read: {exc.strerror or exc}"


def _read(file: _File, max_bytes: int) -> bytes | _Problem | _Transient:
    """The file's bytes once stable, or why not."""
    for _ in range(_READ_ATTEMPTS):
        try:
            before = os.stat(file.path)
            if before.st_size > max_bytes:
                return _too_large(before.st_size, max_bytes)
            # O_NONBLOCK: a FIFO swapped in after the scan must not hang the reader.
            fd = os.open(file.path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return _Problem("not a regular file")
                data = _read_fd(fd, max_bytes + 1)
            finally:
                os.close(fd)
            after = os.stat(file.path)
        except FileNotFoundError:
            return _Transient.REMOVED
        except OSError as exc:
            return _Problem(f"cannot read: {exc.strerror or exc}")
        if len(data) > max_bytes:
            return _too_large(len(data), max_bytes)
        if _signature(before) == _signature(after) and len(data) == after.st_size:
            return data
    return _Transient.UNSTABLE


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> _Problem:
    return _Problem(f"file is {size} bytes, over the limit of {max_bytes} bytes; not read")


def _signature(info: os.stat_result) -> _Signature:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_file(
    path: Path,
    *,
    source: str,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    default_namespace: str = "default",
) -> ParseResult:
    """Read and parse one file once, with the watcher's limits and error messages."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return _problem(source, _Problem(f"cannot read: {exc.strerror or exc}"))[0]
    if stat.S_ISDIR(info.st_mode):
        return _problem(source, _Problem("is a directory, not a YAML file"))[0]
    file = _File(str(path), os.path.realpath(path), _signature(info))
    content = _read(file, max_file_bytes)
    if isinstance(content, _Problem):
        return _problem(source, content)[0]
    if isinstance(content, _Transient):
        reason = "was deleted" if content is _Transient.REMOVED else "kept changing"
        return _problem(source, _Problem(f"file {reason} while being read"))[0]
    return parse_yaml(content, source, default_namespace=default_namespace)


def read_tree(
    root: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, default_namespace: str = "default"
) -> list[tuple[str, ParseResult]]:
    """Every YAML file below ``root`` read once (as the watcher would), by relative name.

    Raises :class:`DirectorySourceError` when ``root`` is not a directory.
    """
    if not root.is_dir():
        raise DirectorySourceError(f"{root} is not a directory")
    results: list[tuple[str, ParseResult]] = []
    for source, item in _scan(str(root)).items():
        if isinstance(item, _Problem):
            results.append((source, _problem(source, item)[0]))
        else:
            results.append(
                (
                    source,
                    read_file(
                        Path(item.path),
                        source=source,
                        max_file_bytes=max_file_bytes,
                        default_namespace=default_namespace,
                    ),
                )
            )
    return results
