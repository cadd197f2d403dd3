"""Galley as a real process: what MCP subscribers receive, and what bad input does to it.

Each test starts ``python -m services.galley`` on its own temporary directory (the
``launch_galley`` fixture) and follows it with the shared MCP client (``subscribe``).
Files are edited the way people edit them; assertions are about what a subscriber
holds, what ``/debug/configz`` and ``/debug/syncz`` show and what ``/metrics`` counts.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shared.config import kinds_by_name
from shared.contracts.mcp.snapshot import CollectionSnapshot

if TYPE_CHECKING:
    from tests.integration.galley.conftest import GalleyLauncher, GalleyProcess, Subscribe

VS = kinds_by_name()["VirtualService"].collection
DR = kinds_by_name()["DestinationRule"].collection
WAIT_S = 10.0


def virtual_service(name: str, *, timeout: str = "1s", weights: Sequence[int] = (100,)) -> str:
    """A VirtualService in ``default`` routing to subsets v0, v1, ... with ``weights``."""
    routes = "".join(
        f"        - destination: {{host: {name}.default.svc.cluster.local, subset: v{index}}}\n"
        f"          weight: {weight}\n"
        for index, weight in enumerate(weights)
    )
    return (
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        f"  hosts: [{name}.default.svc.cluster.local]\n"
        "  http:\n"
        "    - route:\n"
        f"{routes}"
        f"      timeout: {timeout}\n"
    )


def destination_rule(name: str) -> str:
    """A DestinationRule in ``default`` with one subset."""
    return (
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        f"  host: {name}.default.svc.cluster.local\n"
        "  subsets: [{name: v0, labels: {v: '0'}}]\n"
    )


def timeout_of(snapshot: CollectionSnapshot, name: str) -> str | None:
    """The first HTTP route's timeout of VirtualService ``default/<name>``, if held."""
    resource = snapshot.resources.get(f"default/{name}")
    return None if resource is None else str(resource.body["http"][0]["timeout"])


def has_timeout(name: str, timeout: str, snapshot: CollectionSnapshot) -> bool:
    """Whether ``snapshot`` holds VirtualService ``default/<name>`` with ``timeout``."""
    return timeout_of(snapshot, name) == timeout


async def eventually(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it returns something truthy (generously, up to WAIT_S)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        result = condition()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def issues_of(galley: GalleyProcess, source: str) -> list[dict[str, Any]]:
    """The issues ``/debug/configz`` lists for file ``source``."""
    return [i for i in galley.debug("configz")["issues"] if i["source"] == source]


def served(galley: GalleyProcess, ref: str) -> dict[str, Any] | None:
    """The ``/debug/configz`` entry of the served object ``Kind ns/name``, if served."""
    return next((o for o in galley.debug("configz")["objects"] if o["ref"] == ref), None)


def watch_of(galley: GalleyProcess, sink_id: str, collection: str) -> dict[str, Any] | None:
    """The ``/debug/syncz`` state of ``collection`` on the stream of ``sink_id``."""
    for subscriber in galley.debug("syncz")["subscribers"]:
        if subscriber["sink_id"] == sink_id:
            watch: dict[str, Any] | None = subscriber["watches"].get(collection)
            return watch
    return None


async def test_created_edited_renamed_and_deleted_files_reach_the_subscriber(
    launch_galley: GalleyLauncher, subscribe: Subscribe
) -> None:
    galley = launch_galley({"rules.yaml": destination_rule("ratings")})
    sink = await subscribe(galley, collections=[VS, DR])
    empty = await sink.client.wait_for(VS)
    assert dict(empty.resources) == {}
    rules = await sink.client.wait_for(DR)
    assert list(rules.resources) == ["default/ratings"]
    assert rules.resources["default/ratings"].body["host"] == "ratings.default.svc.cluster.local"

    (galley.config_dir / "reviews.yaml").write_text(virtual_service("reviews", timeout="1s"))
    created = await sink.client.wait_for(VS, functools.partial(has_timeout, "reviews", "1s"))
    body = created.resources["default/reviews"].body
    assert body["hosts"] == ["reviews.default.svc.cluster.local"]
    assert body["http"][0]["route"][0]["destination"]["subset"] == "v0"
    assert body["http"][0]["route"][0]["weight"] == 100
    assert created.version != empty.version

    (galley.config_dir / "reviews.yaml").write_text(virtual_service("reviews", timeout="3s"))
    edited = await sink.client.wait_for(VS, functools.partial(has_timeout, "reviews", "3s"))
    assert edited.version != created.version
    assert (
        edited.resources["default/reviews"].version != created.resources["default/reviews"].version
    )

    (galley.config_dir / "reviews.yaml").rename(galley.config_dir / "renamed.yaml")
    await eventually(
        lambda: (
            (entry := served(galley, "VirtualService default/reviews"))
            and entry["source"] == "renamed.yaml"
        ),
        "configz to show the object served from its new file name",
    )
    # A rename is atomic: the object is never withdrawn, even for one push.
    assert all("default/reviews" in s.resources for s in sink.history(VS)[1:])
    assert sink.client.snapshots()[VS].version == edited.version

    (galley.config_dir / "renamed.yaml").unlink()
    deleted = await sink.client.wait_for(VS, lambda s: "default/reviews" not in s.resources)
    assert deleted.version not in (created.version, edited.version)
    assert list(sink.client.snapshots()[DR].resources) == ["default/ratings"]
    assert served(galley, "VirtualService default/reviews") is None


async def test_an_invalid_edit_keeps_the_last_good_version_served(
    launch_galley: GalleyLauncher, subscribe: Subscribe
) -> None:
    galley = launch_galley({"reviews.yaml": virtual_service("reviews", weights=(50, 50))})
    sink = await subscribe(galley, collections=[VS, DR])
    good = await sink.client.wait_for(VS, lambda s: "default/reviews" in s.resources)
    rejected_before = galley.metric("galley_rejections_total", kind="VirtualService")

    (galley.config_dir / "reviews.yaml").write_text(
        virtual_service("reviews", weights=(50, 40), timeout="9s")
    )
    issues = await eventually(lambda: issues_of(galley, "reviews.yaml"), "the rejection issue")
    assert len(issues) == 1
    issue = issues[0]
    assert (issue["kind"], issue["namespace"], issue["name"]) == (
        "VirtualService",
        "default",
        "reviews",
    )
    assert issue["path"] == "spec.http[0].route"
    assert "90" in issue["message"]
    assert galley.metric("galley_rejections_total", kind="VirtualService") > rejected_before
    entry = served(galley, "VirtualService default/reviews")
    assert entry is not None
    assert entry["version"] == good.resources["default/reviews"].version
    assert galley.debug("configz")["versions"][VS] == good.version

    # Galley keeps publishing other changes, and the rejected edit is still not among them.
    (galley.config_dir / "rules.yaml").write_text(destination_rule("reviews"))
    await sink.client.wait_for(DR, lambda s: "default/reviews" in s.resources)
    assert sink.client.snapshots()[VS] == good

    (galley.config_dir / "reviews.yaml").write_text(virtual_service("reviews", timeout="9s"))
    fixed = await sink.client.wait_for(VS, functools.partial(has_timeout, "reviews", "9s"))
    assert fixed.version != good.version
    assert issues_of(galley, "reviews.yaml") == []


async def test_a_nacking_subscriber_is_visible_and_still_gets_later_versions(
    launch_galley: GalleyLauncher, subscribe: Subscribe
) -> None:
    galley = launch_galley({"reviews.yaml": virtual_service("reviews")})

    async def refuse_canaries(snapshot: CollectionSnapshot) -> None:
        if "default/canary" in snapshot.resources:
            raise ValueError("this sink refuses default/canary")

    sink = await subscribe(galley, collections=[VS], before=refuse_canaries, sink_id="picky")
    first = await sink.client.wait_for(VS, lambda s: "default/reviews" in s.resources)
    nacks_before = galley.metric("galley_mcp_nacks_total", collection=VS)

    (galley.config_dir / "canary.yaml").write_text(virtual_service("canary"))
    watch = await eventually(
        lambda: (found := watch_of(galley, "picky", VS)) and found["state"] == "nacked" and found,
        "syncz to show the NACK",
    )
    assert "this sink refuses default/canary" in watch["last_error"]
    assert watch["nacked_version"] == galley.debug("configz")["versions"][VS]
    assert watch["acked_version"] == first.version
    assert galley.metric("galley_mcp_nacks_total", collection=VS) > nacks_before
    assert sink.client.snapshots()[VS] == first

    (galley.config_dir / "canary.yaml").unlink()
    (galley.config_dir / "later.yaml").write_text(virtual_service("later"))
    later = await sink.client.wait_for(VS, lambda s: "default/later" in s.resources)
    assert sorted(later.resources) == ["default/later", "default/reviews"]
    acked = await eventually(
        lambda: (found := watch_of(galley, "picky", VS)) and found["state"] == "acked" and found,
        "syncz to show the later ACK",
    )
    assert acked["acked_version"] == later.version


async def test_a_subscriber_resumes_after_galley_restarts_and_gets_what_changed(
    launch_galley: GalleyLauncher, subscribe: Subscribe, caplog: pytest.LogCaptureFixture
) -> None:
    galley = launch_galley(
        {"reviews.yaml": virtual_service("reviews"), "ratings.yaml": virtual_service("ratings")}
    )
    ports = dict(galley.ports)
    sink = await subscribe(galley, collections=[VS, DR], sink_id="resumer", max_backoff=0.2)
    before = await sink.client.wait_for(VS, lambda s: len(s.resources) == 2)
    await sink.client.wait_for(DR)

    assert await asyncio.to_thread(galley.stop) == 0
    # Galley ended the stream itself on SIGTERM (no waiting out the gRPC grace period).
    await eventually(
        lambda: any("UNAVAILABLE: Galley is stopping" in r.getMessage() for r in caplog.records),
        "the subscriber to log why its stream ended",
    )
    (galley.config_dir / "reviews.yaml").write_text(virtual_service("reviews", timeout="5s"))
    (galley.config_dir / "ratings.yaml").unlink()
    (galley.config_dir / "rules.yaml").write_text(destination_rule("reviews"))
    assert await asyncio.to_thread(galley.start, reuse_ports=True) == ports

    after = await sink.client.wait_for(
        VS, lambda s: "default/ratings" not in s.resources and timeout_of(s, "reviews") == "5s"
    )
    assert list(after.resources) == ["default/reviews"]
    assert after.version != before.version
    rules = await sink.client.wait_for(DR, lambda s: "default/reviews" in s.resources)
    assert rules.resources["default/reviews"].body["subsets"][0]["name"] == "v0"
    # It resumed from what it held: the new Galley sent only the changed VirtualService.
    watch = watch_of(galley, "resumer", VS)
    assert watch is not None
    assert (watch["last_push_incremental"], watch["last_push_resources"]) == (True, 1)


async def test_a_stuck_subscriber_does_not_delay_another(
    launch_galley: GalleyLauncher, subscribe: Subscribe
) -> None:
    galley = launch_galley({"reviews.yaml": virtual_service("reviews", timeout="1s")})
    stuck_called = asyncio.Event()

    async def never_return(_snapshot: CollectionSnapshot) -> None:
        stuck_called.set()
        await asyncio.Event().wait()

    await subscribe(galley, collections=[VS], before=never_return, sink_id="stuck")
    healthy = await subscribe(galley, collections=[VS], sink_id="healthy")
    await asyncio.wait_for(stuck_called.wait(), WAIT_S)

    timeouts = [f"{seconds}s" for seconds in range(2, 7)]
    for timeout in timeouts:
        (galley.config_dir / "reviews.yaml").write_text(virtual_service("reviews", timeout=timeout))
        await healthy.client.wait_for(VS, functools.partial(has_timeout, "reviews", timeout))

    assert [timeout_of(s, "reviews") for s in healthy.history(VS)] == ["1s", *timeouts]
    stuck = watch_of(galley, "stuck", VS)
    assert stuck is not None
    # One push outstanding, never re-sent or queued behind: the stuck sink costs nothing.
    assert (stuck["state"], stuck["pushes"], stuck["acked_version"]) == ("sent", 1, None)
    fine = await eventually(
        lambda: (found := watch_of(galley, "healthy", VS)) and found["state"] == "acked" and found,
        "the healthy sink's last ACK",
    )
    assert fine["pushes"] == 1 + len(timeouts)


def _symlink_loop(config_dir: Path) -> None:
    os.symlink("loop.yaml", config_dir / "loop.yaml")


def _directory_loop(config_dir: Path) -> None:
    (config_dir / "nested").mkdir()
    os.symlink("..", config_dir / "nested" / "again")


def _deleted_at_once(config_dir: Path) -> None:
    path = config_dir / "gone.yaml"
    path.write_text(virtual_service("gone"))
    path.unlink()


def _writer(name: str, content: str | bytes) -> Callable[[Path], None]:
    def write(config_dir: Path) -> None:
        path = config_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return write


_FOUR_MIB = 4 * 1024 * 1024

# (file the issue is reported under, how to make it, what its one issue says)
_BAD_INPUTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("malformed.yaml", _writer("malformed.yaml", "kind: [VirtualService\n"), "invalid YAML"),
    (
        "unknown-kind.yaml",
        _writer(
            "unknown-kind.yaml",
            "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualMachine\n"
            "metadata: {name: vm}\nspec: {}\n",
        ),
        "unknown kind 'VirtualMachine'",
    ),
    (
        "wrong-types.yaml",
        _writer("wrong-types.yaml", virtual_service("typed").replace("hosts: [", "hosts: 5 #")),
        "spec.hosts",
    ),
    (
        "huge.yaml",
        _writer("huge.yaml", b"# " + b"x" * _FOUR_MIB + b"\n"),
        "over the limit of 4194304 bytes",
    ),
    ("binary.yaml", _writer("binary.yaml", bytes(range(256)) * 16), "binary file"),
    ("loop.yaml", _symlink_loop, "symlink loop"),
    ("nested/again", _directory_loop, "symlink loop"),
    ("reviews.yaml", _writer("reviews.yaml", "spec: {hosts: [\n"), "invalid YAML"),
]


async def test_bad_input_files_yield_one_issue_each_and_the_last_good_config_stays(
    launch_galley: GalleyLauncher, subscribe: Subscribe
) -> None:
    galley = launch_galley({"reviews.yaml": virtual_service("reviews")})
    sink = await subscribe(galley, collections=[VS])
    good = await sink.client.wait_for(VS, lambda s: "default/reviews" in s.resources)
    versions = galley.debug("configz")["versions"]

    # A file deleted right after its creation (maybe while Galley reads it) counts as
    # removed: once later scans ran, no issue names it and nothing from it is served.
    _deleted_at_once(galley.config_dir)
    for source, make, complaint in _BAD_INPUTS:
        rejected_before = galley.metric("galley_rejections_total")
        make(galley.config_dir)
        issues = await eventually(
            functools.partial(issues_of, galley, source), f"an issue for {source}"
        )
        assert len(issues) == 1, f"{source}: {issues}"
        text = f"{issues[0]['path']}: {issues[0]['message']}"
        assert complaint in text, f"{source}: {text}"
        assert galley.get("/readyz").status_code == 200, source
        assert galley.metric("galley_rejections_total") > rejected_before, source
        assert galley.debug("configz")["versions"] == versions, source

    assert {issue["source"] for issue in galley.debug("configz")["issues"]} == {
        source for source, _, _ in _BAD_INPUTS
    }
    assert served(galley, "VirtualService default/gone") is None
    assert sink.client.snapshots()[VS] == good
    assert galley.running

    (galley.config_dir / "ok.yaml").write_text(virtual_service("ok"))
    latest = await sink.client.wait_for(VS, lambda s: "default/ok" in s.resources)
    assert latest.resources["default/reviews"] == good.resources["default/reviews"]


async def test_metrics_expose_objects_rejections_pushes_and_subscribers(
    launch_galley: GalleyLauncher, subscribe: Subscribe
) -> None:
    galley = launch_galley(
        {
            "reviews.yaml": virtual_service("reviews") + "---\n" + virtual_service("ratings"),
            "rules.yaml": destination_rule("reviews"),
            "bad.yaml": virtual_service("bad", weights=(10,)),
        }
    )
    assert galley.metric("galley_config_objects", collection=VS) == 2
    assert galley.metric("galley_config_objects", collection=DR) == 1
    assert galley.metric("galley_rejections_total", kind="VirtualService") >= 1
    assert galley.metric("galley_mcp_subscribers") == 0

    async def refuse_rules(snapshot: CollectionSnapshot) -> None:
        if snapshot.collection == DR:
            raise ValueError("no rules today")

    sink = await subscribe(galley, collections=[VS, DR], before=refuse_rules)
    await sink.client.wait_for(VS)
    await eventually(
        lambda: galley.metric("galley_mcp_nacks_total", collection=DR) == 1, "the DR NACK"
    )
    assert galley.metric("galley_mcp_subscribers") == 1
    assert galley.metric("galley_mcp_pushes_total", collection=VS) == 1
    assert galley.metric("galley_mcp_acks_total", collection=VS) == 1
    assert galley.metric("galley_mcp_acks_total", collection=DR) == 0
    assert galley.metric("galley_mcp_push_latency_seconds_count", collection=VS) == 1
    assert galley.metric("galley_mcp_push_latency_seconds_sum", collection=VS) > 0

    await sink.client.stop()
    await eventually(
        lambda: galley.metric("galley_mcp_subscribers") == 0, "the subscriber to be gone"
    )
