"""Compiling config versions: issues name the object, handlers are reused and closed."""

from __future__ import annotations

from pathlib import Path

from services.mixer.core.handlers.stdio import StdioHandler


def handler(name: str, adapter: str, params: str = "{}", namespace: str = "shop") -> str:
    return (
        f"apiVersion: config.istio.io/v1alpha2\nkind: handler\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec: {{compiledAdapter: {adapter}, params: {params}}}\n---\n"
    )


def instance(name: str, template: str, params: str = "{}") -> str:
    return (
        f"apiVersion: config.istio.io/v1alpha2\nkind: instance\n"
        f"metadata: {{name: {name}, namespace: shop}}\n"
        f"spec: {{compiledTemplate: {template}, params: {params}}}\n---\n"
    )


def rule(name: str, handler_ref: str, instances: str, match: str = "") -> str:
    return (
        f"apiVersion: config.istio.io/v1alpha2\nkind: rule\n"
        f"metadata: {{name: {name}, namespace: shop}}\n"
        f"spec: {{match: '{match}', "
        f"actions: [{{handler: {handler_ref}, instances: {instances}}}]}}\n"
        "---\n"
    )


async def test_problems_are_issues_naming_the_object_and_the_rest_still_works(kit) -> None:
    config = (
        handler("deny", "denier")
        + instance("nothing", "checknothing")
        + instance("entry", "listentry", "{value: 'source.ip'}")
        + rule("good", "deny", "[nothing]", 'request.path == "/blocked"')
        + rule("bad-match", "deny", "[nothing]", 'request.pth == "/"')
        + rule("missing-handler", "nobody", "[nothing]")
        + rule("wrong-template", "deny", "[entry, nope]")
        + handler("broken", "memquota", "{quotas: [{name: q, maxAmount: lots}]}")
    )
    await kit.load(config)
    issues = "\n".join(kit.runtime.current.issues)
    assert "rule shop/bad-match: spec.match: position 1: unknown attribute 'request.pth'" in issues
    assert "rule shop/missing-handler: spec.actions[0].handler: 'nobody' not found" in issues
    assert "rule shop/wrong-template: spec.actions[0].instances: 'nope' not found" in issues
    assert "handler shop/broken: spec.params: quotas.0.maxAmount" in issues
    assert not kit.check({"destination.namespace": "shop", "request.path": "/blocked"}).status.ok
    # wrong-template still denies through its valid instance; bad-match is gone.
    assert len(kit.runtime.current.check_rules) == 2


async def test_a_handler_whose_object_did_not_change_is_reused(kit) -> None:
    base = handler("deny", "denier") + instance("nothing", "checknothing")
    await kit.load(base + rule("r", "deny", "[nothing]"))
    first = kit.runtime.current.handlers["deny.handler.shop"].handler
    await kit.load(base + rule("r", "deny", "[nothing]", 'request.path == "/x"'))
    assert kit.runtime.current.handlers["deny.handler.shop"].handler is first
    await kit.load(
        handler("deny", "denier", "{status: {code: 16}}") + instance("nothing", "checknothing")
    )
    assert kit.runtime.current.handlers["deny.handler.shop"].handler is not first


async def test_handlers_dropped_by_a_new_version_are_closed(kit, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    await kit.load(
        handler("file", "stdio", f"{{logStream: FILE, outputPath: '{log}'}}", "istio-system")
    )
    stdio = kit.runtime.current.handlers["file.handler.istio-system"].handler
    assert isinstance(stdio, StdioHandler)
    await kit.load("")
    assert "file.handler.istio-system" not in kit.runtime.current.handlers
    assert stdio._stream.closed


async def test_status_reports_versions_counts_and_issues(kit) -> None:
    await kit.load(
        handler("deny", "denier")
        + instance("nothing", "checknothing")
        + rule("r", "deny", "[nothing]")
    )
    status = kit.runtime.status()
    assert status.rules == {"check": 1, "quota": 0, "report": 0}
    assert status.handlers == ("deny.handler.shop",)
    assert set(status.collections.values()) == {"v1"}
    assert status.issues == ()
    assert kit.counter("mixer_config_versions_total") == 5  # one per collection delivered
