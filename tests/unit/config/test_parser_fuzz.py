"""Property tests: no input crashes the parser or the validators; bad input is reported.

Whatever a config file holds — arbitrary bytes, arbitrary or YAML-looking text, any
YAML-serializable structure, or a real Istio object from ``examples/mesh`` with random
damage — :func:`shared.config.parse_yaml` followed by
:func:`services.galley.core.validation.validate` (and cross-object analysis of what
passes) returns issues instead of raising. Every issue names its source and says
something; no validator crashes (which ``validate`` would report as an "internal error");
and a document that yields no object yields at least one issue.
"""

from __future__ import annotations

import copy
import functools
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from services.galley.core.analysis import analyze
from services.galley.core.validation import accept
from shared.config import ConfigIssue, ParseResult, Severity, parse_yaml

SOURCE = "fuzz/config.yaml"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "mesh"
FUZZ = settings(max_examples=200, deadline=None)

# Words that make random structures look like Istio config, so they get past the envelope.
_WORDS = [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "name",
    "namespace",
    "labels",
    "hosts",
    "http",
    "route",
    "destination",
    "host",
    "subset",
    "weight",
    "port",
    "number",
    "selector",
    "networking.istio.io/v1alpha3",
    "security.istio.io/v1beta1",
    "config.istio.io/v1alpha2",
    "VirtualService",
    "DestinationRule",
    "Gateway",
    "ServiceEntry",
    "Sidecar",
    "AuthorizationPolicy",
    "handler",
    "rule",
]
_YAML_ALPHABET = string.ascii_lowercase[:6] + "019 :-,[]{}#&*!|>'\"%@`?\n\t."


@functools.cache
def _keys() -> st.SearchStrategy[str]:
    return st.sampled_from(_WORDS) | st.text(max_size=12)


@functools.cache
def _scalars() -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=30)
        | st.sampled_from(_WORDS)
        | st.binary(max_size=8)
        | st.dates()
    )


@functools.cache
def _structures() -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_keys(), children, max_size=5)
        ),
        max_leaves=25,
    )


@functools.cache
def _seed_documents() -> tuple[dict[str, Any], ...]:
    """Every document of examples/mesh: valid objects of every supported kind."""
    documents: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return tuple(documents)


def check(data: bytes | str) -> tuple[ParseResult, list[ConfigIssue]]:
    """Parse, validate and analyze ``data``; assert the universal properties; all issues."""
    result = parse_yaml(data, SOURCE)
    accepted, found = accept(result.resources)
    issues = [*result.issues, *found, *analyze(accepted)]
    for issue in issues:
        assert issue.source == SOURCE, issue
        assert isinstance(issue.message, str), issue
        assert issue.message.strip(), issue
        assert str(issue).startswith(SOURCE), issue
        assert "internal error" not in issue.message, issue
    return result, issues


def _holds_no_document(data: bytes | str) -> bool:
    """Whether ``data`` is clean YAML text with nothing but empty documents."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if "\x00" in text:
            return False
        return all(document is None for document in yaml.safe_load_all(text))
    except (UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError, RecursionError):
        return False


def _assert_reported(data: bytes | str) -> None:
    result, issues = check(data)
    if not result.resources and not issues:
        assert _holds_no_document(data), f"nothing read and nothing reported for {data!r}"


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_and_are_reported(data: bytes) -> None:
    _assert_reported(data)
    if b"\x00" in data:
        result, issues = check(data)
        assert result.resources == ()
        assert len(issues) == 1
        assert "binary" in issues[0].message


@FUZZ
@given(st.text(max_size=500) | st.text(alphabet=_YAML_ALPHABET, max_size=500))
def test_arbitrary_text_never_crashes_and_is_reported(text: str) -> None:
    _assert_reported(text)
    _assert_reported(text.encode("utf-8"))


@FUZZ
@given(_structures())
def test_any_yaml_structure_yields_an_object_or_an_issue(document: Any) -> None:
    result, issues = check(yaml.safe_dump(document))
    if document is not None:
        assert result.resources or issues, f"{document!r} was neither read nor reported"
        assert not (result.resources and result.issues)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``node`` (keys and list indexes), the root included."""
    found = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(_paths(child, (*path, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_paths(child, (*path, index)))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _mutate(document: dict[str, Any], draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    """Apply one random mutation in place: drop a key or item, retype a value, add a field."""
    path = draw(st.sampled_from(_paths(document)))
    operation = draw(st.sampled_from(["drop", "retype", "inject"]))
    if operation == "inject" or not path:
        target = _at(document, path)
        if isinstance(target, dict):
            target[draw(_keys())] = draw(_structures())
        return
    parent, last = _at(document, path[:-1]), path[-1]
    if operation == "drop":
        del parent[last]
    else:
        value = draw(_structures())
        if type(value) is type(parent[last]):
            value = {"value": value} if isinstance(value, list) else [value]
        parent[last] = value


@FUZZ
@given(st.data())
def test_damaged_istio_objects_never_crash_validation(data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(_seed_documents())))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        _mutate(document, data.draw)
    result, issues = check(yaml.safe_dump(document))
    assert result.resources or issues, f"{document!r} was neither read nor reported"


@FUZZ
@given(st.data())
def test_an_unknown_field_in_an_istio_object_is_always_an_error(data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(_seed_documents())))
    mutations = data.draw(st.integers(min_value=0, max_value=2))
    for _ in range(mutations):
        _mutate(document, data.draw)
    if not isinstance(document.get("spec"), dict):
        document["spec"] = {}
    at_top = data.draw(st.booleans())
    field = "x" + data.draw(st.text(alphabet=string.ascii_letters, max_size=10))
    (document if at_top else document["spec"])[field] = data.draw(_structures())
    result, issues = check(yaml.safe_dump(document))
    assert not result.resources, document
    assert any(issue.severity is Severity.ERROR for issue in issues), document
    if mutations == 0:
        path = field if at_top else f"spec.{field}"
        assert [issue.message for issue in issues if issue.path == path] == ["unknown field"]
