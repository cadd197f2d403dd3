"""DirectorySource on a real temporary directory with real watchfiles events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from services.galley.adapters.directory_source import DirectorySource, DirectorySourceError
from shared.config import ConfigIssue, Resource

LABELS = 26


def dr(name: str, rev: str = "1") -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: default, labels: {{rev: '{rev}'}}}}\n"
        f"spec: {{host: {name}.default.svc.cluster.local}}\n"
    )


class RecordingSink:
    """A ConfigSink that records what it is told; can be told to fail the next N calls."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.files: dict[str, tuple[tuple[Resource, ...], tuple[ConfigIssue, ...]]] = {}
        self.replaced: list[tuple[str, tuple[Resource, ...]]] = []
        self.synced = False
        self.fail_next = 0

    def replace_source(
        self, source: str, resources: tuple[Resource, ...], issues: tuple[ConfigIssue, ...]
    ) -> None:
        self._maybe_fail()
        self.events.append(("replace", source))
        self.replaced.append((source, resources))
        self.files[source] = (resources, issues)

    def remove_source(self, source: str) -> None:
        self._maybe_fail()
        self.events.append(("remove", source))
        self.files.pop(source, None)

    def mark_synced(self) -> None:
        self.events.append(("synced", ""))
        self.synced = True

    def names(self, source: str) -> list[str]:
        return [resource.metadata.full_name for resource in self.files[source][0]]

    def revs(self, source: str) -> list[str]:
        return [resource.metadata.labels["rev"] for resource in self.files.get(source, ((), ()))[0]]

    def messages(self, source: str) -> list[str]:
        return [issue.message for issue in self.files[source][1]]

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("injected sink failure")


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (generously, up to 10.0 s) until ``condition`` holds."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def watching(root: Path, **options: int | float) -> AsyncIterator[RecordingSink]:
    sink = RecordingSink()
    source = DirectorySource(root, **options)  # type: ignore[arg-type]
    await source.start(sink)
    try:
        yield sink
    finally:
        await source.stop()
        await source.stop()


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def write_in_two_halves(path: Path, data: bytes, half: int) -> None:
    with path.open("wb") as file:
        file.write(data[:half])
        file.flush()
        os.fsync(file.fileno())
        time.sleep(0.02)
        file.write(data[half:])


async def test_reads_every_yaml_file_below_root_then_marks_synced(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", dr("a"))
    write(tmp_path / "networking" / "deeper" / "b.yml", dr("b"))
    skipped = [".hidden.yaml", ".git/c.yaml", "x.yaml~", ".#x.yaml", ".x.yaml.swp", "x.yaml.tmp"]
    for name in [*skipped, "notes.txt", "x.swp"]:
        write(tmp_path / name, dr("skipped"))

    async with watching(tmp_path) as sink:
        assert sink.events == [
            ("replace", "a.yaml"),
            ("replace", "networking/deeper/b.yml"),
            ("synced", ""),
        ]
        (resource,) = sink.files["networking/deeper/b.yml"][0]
        assert resource.source == "networking/deeper/b.yml"


async def test_create_modify_rename_and_delete_are_reported(tmp_path: Path) -> None:
    async with watching(tmp_path) as sink:
        write(tmp_path / "c.yaml", dr("c", "1"))
        await eventually(lambda: sink.revs("c.yaml") == ["1"])

        write(tmp_path / "c.yaml", dr("c", "2"))
        await eventually(lambda: sink.revs("c.yaml") == ["2"])

        (tmp_path / "c.yaml").rename(tmp_path / "d.yaml")
        await eventually(lambda: "c.yaml" not in sink.files and sink.revs("d.yaml") == ["2"])

        write(tmp_path / "new" / "dir" / "e.yaml", dr("e"))
        await eventually(lambda: sink.revs("new/dir/e.yaml") == ["1"])

        (tmp_path / "d.yaml").unlink()
        await eventually(lambda: "d.yaml" not in sink.files)
        assert ("remove", "d.yaml") in sink.events


async def test_an_unchanged_file_is_not_reported_again(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", dr("a"))
    async with watching(tmp_path) as sink:
        os.utime(tmp_path / "a.yaml")
        write(tmp_path / "b.yaml", dr("b"))
        await eventually(lambda: "b.yaml" in sink.files)
        await asyncio.sleep(0.2)
        assert sink.events.count(("replace", "a.yaml")) == 1


async def test_a_partial_write_never_yields_an_object_from_half_a_file(tmp_path: Path) -> None:
    lines = [
        "apiVersion: networking.istio.io/v1alpha3",
        "kind: DestinationRule",
        "spec: {host: reviews.default.svc.cluster.local}",
        "metadata:",
        "  name: reviews",
        "  labels:",
        *(f"    label{index}: 'value{index}'" for index in range(LABELS)),
    ]
    text = "\n".join(lines).encode() + b"\n"
    half = text.index(b"label13")  # the first half alone is a valid object with 13 labels
    async with watching(tmp_path) as sink:
        for _ in range(3):
            await asyncio.to_thread(write_in_two_halves, tmp_path / "reviews.yaml", text, half)
            await eventually(lambda: bool(sink.files.get("reviews.yaml", ((),))[0]))
            (tmp_path / "reviews.yaml").unlink()
            await eventually(lambda: "reviews.yaml" not in sink.files)

    label_counts = [len(r.metadata.labels) for source, rs in sink.replaced for r in rs]
    assert label_counts == [LABELS] * 3


async def test_an_oversize_file_is_one_issue_and_its_last_good_version_stays(
    tmp_path: Path,
) -> None:
    write(tmp_path / "big.yaml", dr("big") + "# padding\n" * 200)
    size = (tmp_path / "big.yaml").stat().st_size
    async with watching(tmp_path, max_file_bytes=1024) as sink:
        assert sink.files["big.yaml"][0] == ()
        assert sink.messages("big.yaml") == [
            f"file is {size} bytes, over the limit of 1024 bytes; not read"
        ]
        write(tmp_path / "big.yaml", dr("big"))
        await eventually(lambda: sink.names("big.yaml") == ["default/big"])


async def test_a_binary_file_is_one_issue(tmp_path: Path) -> None:
    write(tmp_path / "blob.yaml", bytes(range(256)))
    async with watching(tmp_path) as sink:
        ((), (issue,)) = sink.files["blob.yaml"]
        assert issue.source == "blob.yaml" and "binary" in issue.message


async def test_symlinks_inside_root_are_followed_and_bad_ones_skipped_with_an_issue(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "x.yaml", dr("outside"))
    write(root / ".versions" / "v1" / "linked.yaml", dr("linked"))
    (root / "linked.yaml").symlink_to(".versions/v1/linked.yaml")
    (root / "loop1.yaml").symlink_to("loop2.yaml")
    (root / "loop2.yaml").symlink_to("loop1.yaml")
    (root / "sub").mkdir()
    (root / "sub" / "back").symlink_to("..")
    (root / "escape.yaml").symlink_to(outside / "x.yaml")
    (root / "escape-dir").symlink_to(outside)

    async with watching(root) as sink:
        assert sink.names("linked.yaml") == ["default/linked"]
        assert sink.messages("loop1.yaml") == ["symlink loop"]
        assert sink.messages("loop2.yaml") == ["symlink loop"]
        assert sink.messages("sub/back")[0].startswith("symlink loop: points back to")
        assert "symlink points outside" in sink.messages("escape.yaml")[0]
        assert "symlink points outside" in sink.messages("escape-dir")[0]
        assert not any(sink.files[source][0] for source in sink.files if source != "linked.yaml")

        write(root / ".versions" / "v2" / "linked.yaml", dr("linked", "2"))
        (root / "linked.yaml").unlink()
        (root / "linked.yaml").symlink_to(".versions/v2/linked.yaml")
        await eventually(lambda: sink.revs("linked.yaml") == ["2"])


async def test_a_directory_named_yaml_and_a_dangling_symlink_are_unreadable(
    tmp_path: Path,
) -> None:
    write(tmp_path / "x.yaml" / "inner.yaml", dr("inner"))
    (tmp_path / "dangling.yaml").symlink_to("missing.yaml")
    async with watching(tmp_path) as sink:
        assert set(sink.files) == {"x.yaml", "dangling.yaml"}
        assert "is a directory" in sink.messages("x.yaml")[0]
        assert sink.messages("dangling.yaml") == ["dangling symlink (to missing.yaml)"]

        write(tmp_path / "missing.yaml", dr("found"))
        await eventually(lambda: sink.files.get("dangling.yaml", ((),))[0] != ())
        assert sink.names("dangling.yaml") == ["default/found"]


async def test_a_file_deleted_while_being_read_counts_as_removed(tmp_path: Path) -> None:
    path = tmp_path / "flaky.yaml"
    body = (dr("flaky") + "# padding\n" * 20_000).encode()  # big enough to be mid-read
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            path.write_bytes(body)
            path.unlink()

    async with watching(tmp_path, settle_delay=0.005) as sink:
        worker = threading.Thread(target=churn)
        worker.start()
        try:
            await asyncio.sleep(0.6)
        finally:
            stop.set()
            worker.join()
        await eventually(lambda: "flaky.yaml" not in sink.files)
        write(tmp_path / "after.yaml", dr("after"))
        await eventually(lambda: "after.yaml" in sink.files)
        await asyncio.sleep(0.2)
        assert "flaky.yaml" not in sink.files


async def test_watching_continues_after_the_sink_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with watching(tmp_path) as sink:
        sink.fail_next = 1
        write(tmp_path / "a.yaml", dr("a"))
        await eventually(lambda: "injected sink failure" in caplog.text)
        write(tmp_path / "b.yaml", dr("b"))
        await eventually(lambda: {"a.yaml", "b.yaml"} <= set(sink.files))


async def test_start_fails_clearly_when_root_is_not_a_directory(tmp_path: Path) -> None:
    source = DirectorySource(tmp_path / "missing")
    with pytest.raises(DirectorySourceError, match="is not a directory"):
        await source.start(RecordingSink())
    await source.stop()
