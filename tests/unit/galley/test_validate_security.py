"""Galley's AuthorizationPolicy and PeerAuthentication rules: one good and one bad case each."""

from __future__ import annotations

import textwrap

import pytest

from services.galley.core.validation import validate
from shared.config import ConfigIssue, parse_yaml

SECURITY = "security.istio.io/v1beta1"


def _document(kind: str, spec: str, namespace: str) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return (
        f"apiVersion: {SECURITY}\nkind: {kind}\n"
        f"metadata: {{name: policy, namespace: {namespace}}}\nspec:\n{body}\n"
    )


def _issues(kind: str, spec: str, namespace: str = "foo") -> list[ConfigIssue]:
    parsed = parse_yaml(_document(kind, spec, namespace), "policy.yaml")
    assert parsed.issues == (), [str(issue) for issue in parsed.issues]
    [resource] = parsed.resources
    return validate(resource)


def _assert_one(issues: list[ConfigIssue], path: str, word: str) -> None:
    assert [issue.path for issue in issues] == [path], [str(issue) for issue in issues]
    assert word in issues[0].message, issues[0].message
    assert issues[0].kind in ("AuthorizationPolicy", "PeerAuthentication")
    assert issues[0].source == "policy.yaml"


def _rule(body: str) -> str:
    """A one-rule ALLOW policy whose rule is ``body`` (YAML, indented under ``- ``)."""
    return "rules:\n- " + textwrap.indent(textwrap.dedent(body).strip(), "  ")[2:]


VALID_AUTHZ = {
    "selector": "selector: {matchLabels: {app: httpbin, version: v1}}",
    "custom-with-provider": "action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{}]",
    "deny-with-empty-rule": "action: DENY\nrules: [{}]",
    "audit-without-rules": "action: AUDIT",
    "allow-nothing": "{}",
    "source-principals": _rule("from: [{source: {principals: [cluster.local/ns/a/sa/b]}}]"),
    "ip-blocks": _rule("from: [{source: {ipBlocks: [10.0.0.1, 10.1.0.0/16, 'fd00::/8']}}]"),
    "not-ip-blocks": _rule("from: [{source: {notIpBlocks: ['::1']}}]"),
    "ports": _rule("to: [{operation: {ports: ['8080', '1'], notPorts: ['65535']}}]"),
    "methods": _rule("to: [{operation: {methods: [GET, POST], notMethods: [DELETE]}}]"),
    "paths": _rule("to: [{operation: {paths: [/api/*, '*/info'], hosts: [a.b]}}]"),
    "when-header": _rule("when: [{key: 'request.headers[User-Agent]', values: [curl/*]}]"),
    "when-claims": _rule("when: [{key: 'request.auth.claims[iss]', notValues: [x]}]"),
    "when-source-ip": _rule("when: [{key: source.ip, values: [10.0.0.0/8]}]"),
    "when-port": _rule("when: [{key: destination.port, values: ['443']}]"),
    "when-sni": _rule("when: [{key: connection.sni, values: [www.example.com]}]"),
    "when-principal": _rule("when: [{key: source.principal, values: ['*']}]"),
}


@pytest.mark.parametrize("spec", VALID_AUTHZ.values(), ids=VALID_AUTHZ.keys())
def test_valid_authorization_policies_have_no_issues(spec: str) -> None:
    assert _issues("AuthorizationPolicy", spec) == []


INVALID_AUTHZ = [
    (
        "selector-wildcard",
        "selector: {matchLabels: {app: '*'}}",
        "spec.selector.matchLabels.app",
        "label",
    ),
    ("custom-no-provider", "action: CUSTOM\nrules: [{}]", "spec.provider.name", "provider"),
    ("provider-not-custom", "provider: {name: x}\nrules: [{}]", "spec.provider", "CUSTOM"),
    ("deny-without-rules", "action: DENY", "spec.rules", "never triggers"),
    ("deny-empty-rules", "action: DENY\nrules: []", "spec.rules", "empty rule"),
    ("from-empty", _rule("from: []"), "spec.rules[0].from", "empty"),
    ("from-no-source", _rule("from: [{}]"), "spec.rules[0].from[0].source", "required"),
    ("source-empty", _rule("from: [{source: {}}]"), "spec.rules[0].from[0].source", "at least one"),
    (
        "principal-empty-string",
        _rule("from: [{source: {principals: ['']}}]"),
        "spec.rules[0].from[0].source.principals[0]",
        "empty",
    ),
    (
        "ip-block-bad",
        _rule("from: [{source: {ipBlocks: [10.0.0.1, 10.0.0.300/8]}}]"),
        "spec.rules[0].from[0].source.ipBlocks[1]",
        "IP",
    ),
    (
        "not-ip-block-bad",
        _rule("from: [{source: {notIpBlocks: [somehost]}}]"),
        "spec.rules[0].from[0].source.notIpBlocks[0]",
        "CIDR",
    ),
    ("to-empty", _rule("to: []"), "spec.rules[0].to", "empty"),
    ("to-no-operation", _rule("to: [{}]"), "spec.rules[0].to[0].operation", "required"),
    (
        "operation-empty",
        _rule("to: [{operation: {}}]"),
        "spec.rules[0].to[0].operation",
        "at least one",
    ),
    (
        "port-zero",
        _rule("to: [{operation: {ports: ['0']}}]"),
        "spec.rules[0].to[0].operation.ports[0]",
        "port",
    ),
    (
        "port-too-big",
        _rule("to: [{operation: {notPorts: ['65536']}}]"),
        "spec.rules[0].to[0].operation.notPorts[0]",
        "1..65535",
    ),
    (
        "port-not-digits",
        _rule("to: [{operation: {ports: [http]}}]"),
        "spec.rules[0].to[0].operation.ports[0]",
        "number",
    ),
    (
        "method-lower-case",
        _rule("to: [{operation: {methods: [get]}}]"),
        "spec.rules[0].to[0].operation.methods[0]",
        "HTTP method",
    ),
    (
        "not-method-unknown",
        _rule("to: [{operation: {notMethods: [FETCH]}}]"),
        "spec.rules[0].to[0].operation.notMethods[0]",
        "HTTP method",
    ),
    (
        "path-empty",
        _rule("to: [{operation: {paths: [/a, '']}}]"),
        "spec.rules[0].to[0].operation.paths[1]",
        "empty",
    ),
    ("when-key-empty", _rule("when: [{values: [a]}]"), "spec.rules[0].when[0].key", "empty"),
    ("when-no-values", _rule("when: [{key: source.ip}]"), "spec.rules[0].when[0]", "notValues"),
    (
        "when-unknown-key",
        _rule("when: [{key: source.user, values: [a]}]"),
        "spec.rules[0].when[0].key",
        "unknown",
    ),
    (
        "when-map-key-form",
        _rule("when: [{key: 'request.headers', values: [a]}]"),
        "spec.rules[0].when[0].key",
        "request.headers[name]",
    ),
    (
        "when-replaced-key",
        _rule("when: [{key: destination.namespace, values: [a]}]"),
        "spec.rules[0].when[0].key",
        "replaced",
    ),
    (
        "when-ip-value",
        _rule("when: [{key: destination.ip, values: [nope]}]"),
        "spec.rules[0].when[0].values[0]",
        "IP",
    ),
    (
        "when-port-value",
        _rule("when: [{key: destination.port, notValues: ['99999']}]"),
        "spec.rules[0].when[0].notValues[0]",
        "port",
    ),
    (
        "when-empty-value",
        _rule("when: [{key: source.namespace, values: ['']}]"),
        "spec.rules[0].when[0].values[0]",
        "empty",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "word"),
    [case[1:] for case in INVALID_AUTHZ],
    ids=[case[0] for case in INVALID_AUTHZ],
)
def test_invalid_authorization_policies_name_the_field(spec: str, path: str, word: str) -> None:
    _assert_one(_issues("AuthorizationPolicy", spec), path, word)


def test_every_problem_of_a_policy_is_reported_at_once() -> None:
    spec = _rule("""
        from: [{source: {ipBlocks: [bad]}}]
        to: [{operation: {ports: ['0'], methods: [get]}}]
        when: [{key: nope, values: [a]}]
    """)
    paths = {issue.path for issue in _issues("AuthorizationPolicy", spec)}
    assert paths == {
        "spec.rules[0].from[0].source.ipBlocks[0]",
        "spec.rules[0].to[0].operation.ports[0]",
        "spec.rules[0].to[0].operation.methods[0]",
        "spec.rules[0].when[0].key",
    }


VALID_PEER = [
    ("namespace-wide", "foo", "mtls: {mode: STRICT}"),
    ("mesh-wide", "istio-system", "mtls: {mode: PERMISSIVE}"),
    (
        "workload-ports",
        "foo",
        "selector: {matchLabels: {app: finance}}\nmtls: {mode: STRICT}\n"
        "portLevelMtls: {8080: {mode: DISABLE}, 1: {mode: STRICT}, 65535: {}}",
    ),
]


@pytest.mark.parametrize(
    ("namespace", "spec"), [case[1:] for case in VALID_PEER], ids=[case[0] for case in VALID_PEER]
)
def test_valid_peer_authentications_have_no_issues(namespace: str, spec: str) -> None:
    assert _issues("PeerAuthentication", spec, namespace) == []


INVALID_PEER = [
    (
        "selector-label",
        "foo",
        "selector: {matchLabels: {'a b': x}}",
        "spec.selector.matchLabels.a b",
        "label",
    ),
    (
        "mesh-wide-selector",
        "istio-system",
        "selector: {matchLabels: {app: x}}",
        "spec.selector",
        "mesh-wide",
    ),
    (
        "ports-without-selector",
        "foo",
        "portLevelMtls: {8080: {mode: STRICT}}",
        "spec.portLevelMtls",
        "selector",
    ),
    (
        "ports-empty",
        "foo",
        "selector: {matchLabels: {app: x}}\nportLevelMtls: {}",
        "spec.portLevelMtls",
        "at least one",
    ),
    (
        "port-zero",
        "foo",
        "selector: {matchLabels: {app: x}}\nportLevelMtls: {0: {mode: STRICT}}",
        "spec.portLevelMtls.0",
        "range",
    ),
    (
        "port-too-big",
        "foo",
        "selector: {matchLabels: {app: x}}\nportLevelMtls: {70000: {mode: STRICT}}",
        "spec.portLevelMtls.70000",
        "65535",
    ),
]


@pytest.mark.parametrize(
    ("namespace", "spec", "path", "word"),
    [case[1:] for case in INVALID_PEER],
    ids=[case[0] for case in INVALID_PEER],
)
def test_invalid_peer_authentications_name_the_field(
    namespace: str, spec: str, path: str, word: str
) -> None:
    _assert_one(_issues("PeerAuthentication", spec, namespace), path, word)


# Examples from Istio's reference pages (authorization-policy, peer_authentication).
ISTIO_DOC_EXAMPLES = """
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["dev"]
    to:
    - operation:
        methods: ["GET"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  action: DENY
  rules:
  - from:
    - source:
        notNamespaces: ["foo"]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: foo}
spec: {}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: foo}
spec:
  action: DENY
  rules:
  - {}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: foo}
spec:
  rules:
  - {}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: httpbin-read, namespace: bar}
spec:
  selector:
    matchLabels:
      app: httpbin
      version: v1
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    to:
    - operation:
        methods: ["GET", "HEAD"]
        paths: ["/info*"]
    - operation:
        methods: ["POST"]
        paths: ["/data"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: ingress-policy, namespace: istio-system}
spec:
  selector:
    matchLabels:
      app: istio-ingressgateway
  action: ALLOW
  rules:
  - from:
    - source:
        ipBlocks: ["1.2.3.4", "5.6.7.0/24"]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  selector:
    matchLabels: {app: httpbin}
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["*"]
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: finance, namespace: foo}
spec:
  selector:
    matchLabels:
      app: finance
  mtls:
    mode: STRICT
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: finance-ports, namespace: foo}
spec:
  selector:
    matchLabels:
      app: finance
  mtls:
    mode: UNSET
  portLevelMtls:
    8080:
      mode: DISABLE
"""


def test_istio_documentation_examples_are_valid() -> None:
    parsed = parse_yaml(ISTIO_DOC_EXAMPLES, "istio-docs.yaml")
    assert parsed.issues == ()
    assert len(parsed.resources) == 11
    for resource in parsed.resources:
        assert validate(resource) == [], resource.ref
