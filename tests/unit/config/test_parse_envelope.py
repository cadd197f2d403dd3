"""What the parser says about files and envelopes, before any spec is looked at."""

from __future__ import annotations

import pytest

from shared.config import parse_yaml
from shared.config.parse import MAX_EXPANDED_NODES

VALID = b"""apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [payments.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
"""


def _bomb(levels: int) -> bytes:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def test_alias_bomb_is_rejected_without_expanding_it() -> None:
    result = parse_yaml(_bomb(9), "bomb.yaml")
    assert result.resources == ()
    assert len(result.issues) == 1
    assert f"more than {MAX_EXPANDED_NODES}" in result.issues[0].message


def test_small_aliases_are_fine() -> None:
    text = VALID.replace(b"hosts: [payments.example.com]", b"hosts: &h [payments.example.com]")
    result = parse_yaml(text + b"  subjectAltNames: *h\n", "ok.yaml")
    assert result.issues == ()
    assert len(result.resources) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02", "binary"),
        (b"\xff\xfe bad", "not UTF-8"),
        (b"key: [unclosed", "invalid YAML"),
        (b"- just\n- a list\n", "must be a mapping"),
        (b"kind: ServiceEntry\nmetadata: {name: x}\n", "apiVersion"),
    ],
)
def test_unreadable_input_gives_one_issue(data: bytes, message: str) -> None:
    result = parse_yaml(data, "f.yaml")
    assert result.resources == ()
    assert len(result.issues) == 1
    assert message in str(result.issues[0])


def test_a_bad_document_does_not_hide_the_good_ones_and_lines_are_reported() -> None:
    bad = VALID.replace(b"name: payments", b"name: Payments_Bad")
    result = parse_yaml(VALID + b"---\n" + bad, "two.yaml")
    assert len(result.resources) == 1
    (issue,) = result.issues
    assert issue.line == 9
    assert issue.path == "metadata.name"
    assert str(issue).startswith("two.yaml:9: ServiceEntry shop/Payments_Bad: metadata.name:")


def test_unknown_kind_names_the_known_ones() -> None:
    result = parse_yaml(b"apiVersion: foo.io/v1\nkind: Bar\nmetadata: {name: x}\n", "k.yaml")
    (issue,) = result.issues
    assert "unknown kind 'Bar'" in issue.message
    assert "networking.istio.io/v1alpha3/VirtualService" in issue.message


def test_namespace_defaults_and_unknown_top_level_fields_are_rejected() -> None:
    plain = VALID.replace(b", namespace: shop", b"")
    assert parse_yaml(plain, "n.yaml", default_namespace="team").resources[
        0
    ].metadata.namespace == ("team")
    result = parse_yaml(VALID + b"extra: 1\n", "x.yaml")
    assert [issue.path for issue in result.issues] == ["extra"]
