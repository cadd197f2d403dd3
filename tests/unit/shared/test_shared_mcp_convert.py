"""MCP value ⇄ wire conversion, and the client's argument checks."""

from __future__ import annotations

import pytest

from shared.contracts.mcp.client import McpClient
from shared.contracts.mcp.convert import (
    apply_resources,
    resource_from_proto,
    resource_to_proto,
    resources_message,
)
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource

VS = "istio/networking/v1alpha3/virtualservices"


def resource(name: str, version: str, **body: object) -> McpResource:
    return McpResource(name=name, version=version, body=body)


def test_a_resource_survives_the_wire_with_its_types() -> None:
    original = McpResource(
        name="default/reviews",
        version="7",
        body={
            "hosts": ["reviews"],
            "http": [{"route": [{"weight": 80}, {"weight": 20.5}], "mirror": None}],
            "tls": {"enabled": True},
        },
        labels={"app": "reviews"},
        annotations={"owner": "team-a"},
    )
    wire = resource_to_proto(original)
    assert (wire.metadata.name, wire.metadata.version) == ("default/reviews", "7")

    back = resource_from_proto(wire)
    assert back == original
    routes = back.body["http"][0]["route"]
    assert type(routes[0]["weight"]) is int
    assert routes[1]["weight"] == 20.5
    assert resource_from_proto(resource_to_proto(resource("a/b", "1", hosts=("x",)))).body == {
        "hosts": ["x"]
    }


def test_a_body_json_cannot_hold_is_refused_naming_the_resource() -> None:
    with pytest.raises(ValueError, match="default/bad"):
        resource_to_proto(resource("default/bad", "1", when=object()))


def test_full_and_incremental_messages_apply_onto_what_is_held() -> None:
    held = CollectionSnapshot(
        VS, "v1", {"ns/a": resource("ns/a", "1", n=1), "ns/b": resource("ns/b", "1", n=1)}
    )
    incremental = resources_message(
        collection=VS,
        version="v2",
        nonce="5",
        incremental=True,
        resources=[resource("ns/c", "1", n=3)],
        removed=["ns/a", "ns/never-held"],
    )
    after = apply_resources(held, incremental)
    assert (after.version, sorted(after.resources)) == ("v2", ["ns/b", "ns/c"])
    assert sorted(held.resources) == ["ns/a", "ns/b"]

    full = resources_message(
        collection=VS, version="v3", nonce="6", incremental=False, resources=[]
    )
    assert apply_resources(after, full) == CollectionSnapshot(VS, "v3", {})
    assert apply_resources(None, incremental).resources == {"ns/c": resource("ns/c", "1", n=3)}


def test_removed_names_need_an_incremental_message() -> None:
    with pytest.raises(ValueError, match="incremental"):
        resources_message(
            collection=VS, version="v1", nonce="1", incremental=False, resources=[], removed=["x"]
        )


async def _ignore(snapshot: CollectionSnapshot) -> None:
    del snapshot


@pytest.mark.parametrize(
    ("collections", "initial", "maximum", "message"),
    [
        ((), 0.1, 1.0, "at least one"),
        ((VS, ""), 0.1, 1.0, "at least one"),
        ((VS, VS), 0.1, 1.0, "duplicate"),
        ((VS,), 0.0, 1.0, "initial_backoff"),
        ((VS,), 2.0, 1.0, "initial_backoff"),
    ],
)
def test_client_arguments_are_checked(
    collections: tuple[str, ...], initial: float, maximum: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        McpClient(
            target="127.0.0.1:1",
            sink_id="s",
            collections=collections,
            handler=_ignore,
            initial_backoff=initial,
            max_backoff=maximum,
        )
