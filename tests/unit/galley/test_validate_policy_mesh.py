"""Galley's rules for Mixer's handler/instance/rule and for MeshConfig: good and bad cases."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.galley.core.validation import validate
from shared.config import ConfigIssue, Severity, has_errors, parse_object, parse_yaml
from shared.config.policy import KNOWN_TEMPLATES
from shared.config.policy_adapters import KNOWN_ADAPTERS, adapter_params_model

API = {
    "handler": "config.istio.io/v1alpha2",
    "instance": "config.istio.io/v1alpha2",
    "rule": "config.istio.io/v1alpha2",
    "MeshConfig": "mesh.istio.io/v1alpha1",
}


def _parse(kind: str, spec: str) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """(parse issues, validation issues) of one object of ``kind`` with ``spec``."""
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    text = (
        f"apiVersion: {API[kind]}\nkind: {kind}\n"
        f"metadata: {{name: obj, namespace: istio-system}}\nspec:\n{body}\n"
    )
    parsed = parse_yaml(text, "mixer.yaml")
    if parsed.issues:
        return list(parsed.issues), []
    [resource] = parsed.resources
    return [], validate(resource)


def _issues(kind: str, spec: str) -> list[ConfigIssue]:
    parse_issues, issues = _parse(kind, spec)
    assert parse_issues == [], [str(issue) for issue in parse_issues]
    return issues


def _assert_one(issues: list[ConfigIssue], path: str, word: str) -> None:
    assert [issue.path for issue in issues] == [path], [str(issue) for issue in issues]
    assert word in issues[0].message, issues[0].message


def _handler(adapter: str, params: str) -> str:
    return f"compiledAdapter: {adapter}\nparams:\n" + textwrap.indent(
        textwrap.dedent(params).strip(), "  "
    )


QUOTA = "quotas: [{name: q, maxAmount: 10, validDuration: 1s}]"
REDIS = "redisServerUrl: localhost:6379\n" + QUOTA
METRIC = "metrics: [{name: requests_total, instanceName: requestcount.instance.istio-system, "
VALID_PARAMS = {
    "denier": "status: {code: 7, message: denied}\nvalidDuration: 0s\nvalidUseCount: 10",
    "listchecker": "overrides: [10.0.0.0/8, 1.2.3.4]\nentryType: IP_ADDRESSES\nblacklist: true",
    "memquota": QUOTA + "\nminDeduplicationDuration: 1s",
    "redisquota": REDIS,
    "prometheus": METRIC + "kind: COUNTER, labelNames: [source, code]}]",
    "stdio": "logStream: FILE\noutputPath: /tmp/mixer.log\nseverityLevels: {warning: WARNING}",
    "opentelemetry": "endpoint: 127.0.0.1:4317\ninsecure: true\nexportTimeout: 5s",
}


def test_every_known_adapter_has_a_valid_case() -> None:
    assert set(VALID_PARAMS) == set(KNOWN_ADAPTERS)


@pytest.mark.parametrize(("adapter", "params"), VALID_PARAMS.items(), ids=VALID_PARAMS.keys())
def test_valid_handlers_have_no_issues(adapter: str, params: str) -> None:
    assert _issues("handler", _handler(adapter, params)) == []


VALID_HANDLERS = {
    "adapter-field": "adapter: denier",
    "both-same": "adapter: denier\ncompiledAdapter: denier",
    "connection": "compiledAdapter: stdio\nconnection: {address: 'mixer.local:9091', timeout: 2s}",
    "listchecker-regex": _handler("listchecker", "overrides: ['^a.*$']\nentryType: REGEX"),
    "listchecker-provider": _handler(
        "listchecker", "providerUrl: https://lists.example/x\nrefreshInterval: 5s\nttl: 10s"
    ),
    "redis-rolling": _handler(
        "redisquota",
        "redisServerUrl: '[::1]:6379'\nquotas: [{name: q, maxAmount: 5, validDuration: 10s, "
        "bucketDuration: 1s, rateLimitAlgorithm: ROLLING_WINDOW, "
        "overrides: [{dimensions: {source: a}, maxAmount: 1}]}]",
    ),
    "memquota-override": _handler(
        "memquota",
        "quotas: [{name: q, maxAmount: 5, validDuration: 1s, "
        "overrides: [{dimensions: {source: a}, maxAmount: 1, validDuration: 2s}]}]",
    ),
    "prometheus-buckets": _handler(
        "prometheus",
        METRIC + "kind: DISTRIBUTION, buckets: {explicitBuckets: {bounds: [0.1, 1, 10]}}}, "
        "{name: size, instanceName: s.instance.x, kind: DISTRIBUTION, "
        "buckets: {exponentialBuckets: {numFiniteBuckets: 5, growthFactor: 2, scale: 1}}}, "
        "{name: lat, namespace: mesh, instanceName: l.instance.x, kind: DISTRIBUTION, "
        "buckets: {linearBuckets: {numFiniteBuckets: 5, width: 10, offset: 0}}}]\n"
        "metricsExpirationPolicy: {metricsExpiryDuration: 10m}",
    ),
}


@pytest.mark.parametrize("spec", VALID_HANDLERS.values(), ids=VALID_HANDLERS.keys())
def test_valid_handler_variants_have_no_issues(spec: str) -> None:
    assert _issues("handler", spec) == []


def _params_case(name: str, adapter: str, params: str, path: str, word: str) -> object:
    return pytest.param(_handler(adapter, params), path, word, id=name)


INVALID_HANDLERS = [
    pytest.param("compiledAdapter: fluentd", "spec.compiledAdapter", "memquota", id="unknown"),
    pytest.param("adapter: nope", "spec.adapter", "unknown adapter", id="unknown-adapter-field"),
    pytest.param("adapter: denier\ncompiledAdapter: stdio", "spec.adapter", "both", id="both"),
    pytest.param("params: {}", "spec.compiledAdapter", "required", id="no-adapter"),
    pytest.param(
        "compiledAdapter: stdio\nconnection: {address: nohost}",
        "spec.connection.address",
        "host:port",
        id="connection-address",
    ),
    pytest.param(
        "compiledAdapter: stdio\nconnection: {timeout: 1s}",
        "spec.connection.address",
        "required",
        id="connection-no-address",
    ),
    pytest.param(
        "compiledAdapter: stdio\nconnection: {address: 'a:1', timeout: 0s}",
        "spec.connection.timeout",
        "positive",
        id="connection-timeout",
    ),
    _params_case(
        "param-type",
        "memquota",
        "quotas: [{name: q, maxAmount: lots}]",
        "spec.params.quotas[0].maxAmount",
        "integer",
    ),
    _params_case(
        "param-unknown",
        "denier",
        "status: {code: 7}\ncolour: red",
        "spec.params.colour",
        "unknown field",
    ),
    _params_case(
        "denier-code", "denier", "status: {code: 99}", "spec.params.status.code", "google.rpc.Code"
    ),
    _params_case(
        "denier-duration", "denier", "validDuration: -1s", "spec.params.validDuration", "positive"
    ),
    _params_case(
        "denier-use-count", "denier", "validUseCount: -1", "spec.params.validUseCount", "negative"
    ),
    _params_case(
        "list-url", "listchecker", "providerUrl: lists", "spec.params.providerUrl", "scheme"
    ),
    _params_case(
        "list-refresh", "listchecker", "refreshInterval: 500ms", "spec.params.refreshInterval", "1s"
    ),
    _params_case(
        "list-ttl", "listchecker", "refreshInterval: 10s\nttl: 10s", "spec.params.ttl", "longer"
    ),
    _params_case(
        "list-caching",
        "listchecker",
        "cachingUseCount: -5",
        "spec.params.cachingUseCount",
        "negative",
    ),
    _params_case(
        "list-ip",
        "listchecker",
        "entryType: IP_ADDRESSES\noverrides: [1.2.3.4, x]",
        "spec.params.overrides[1]",
        "IP",
    ),
    _params_case(
        "list-regex",
        "listchecker",
        "entryType: REGEX\noverrides: ['(']",
        "spec.params.overrides[0]",
        "compile",
    ),
    _params_case(
        "list-empty-entry", "listchecker", "overrides: [a, '']", "spec.params.overrides[1]", "empty"
    ),
    _params_case(
        "list-entry-type", "listchecker", "entryType: NUMBERS", "spec.params.entryType", "REGEX"
    ),
    _params_case(
        "list-blacklist", "listchecker", "blacklist: maybe", "spec.params.blacklist", "boolean"
    ),
    _params_case(
        "quota-none",
        "memquota",
        "minDeduplicationDuration: 1s",
        "spec.params.quotas",
        "at least one",
    ),
    _params_case(
        "quota-name",
        "memquota",
        "quotas: [{maxAmount: 1, validDuration: 1s}]",
        "spec.params.quotas[0].name",
        "required",
    ),
    _params_case(
        "quota-duplicate",
        "memquota",
        "quotas: [{name: q, maxAmount: 1, validDuration: 1s}, "
        "{name: q, maxAmount: 2, validDuration: 1s}]",
        "spec.params.quotas[1].name",
        "duplicate",
    ),
    _params_case(
        "quota-amount",
        "memquota",
        "quotas: [{name: q, maxAmount: 0, validDuration: 1s}]",
        "spec.params.quotas[0].maxAmount",
        "greater than 0",
    ),
    _params_case(
        "quota-window-missing",
        "memquota",
        "quotas: [{name: q, maxAmount: 1}]",
        "spec.params.quotas[0].validDuration",
        "required",
    ),
    _params_case(
        "quota-window-zero",
        "redisquota",
        "redisServerUrl: 'r:1'\nquotas: [{name: q, maxAmount: 1, validDuration: 0s}]",
        "spec.params.quotas[0].validDuration",
        "positive",
    ),
    _params_case(
        "override-dimensions",
        "memquota",
        "quotas: [{name: q, maxAmount: 1, validDuration: 1s, overrides: [{maxAmount: 1}]}]",
        "spec.params.quotas[0].overrides[0].dimensions",
        "dimensions",
    ),
    _params_case(
        "override-amount",
        "redisquota",
        "redisServerUrl: 'r:1'\nquotas: [{name: q, "
        "maxAmount: 1, validDuration: 1s, overrides: [{dimensions: {a: b}, maxAmount: -1}]}]",
        "spec.params.quotas[0].overrides[0].maxAmount",
        "greater than 0",
    ),
    _params_case(
        "override-window",
        "memquota",
        "quotas: [{name: q, maxAmount: 1, "
        "validDuration: 1s, overrides: [{dimensions: {a: b}, maxAmount: 1, validDuration: 0s}]}]",
        "spec.params.quotas[0].overrides[0].validDuration",
        "positive",
    ),
    _params_case(
        "redis-override-window",
        "redisquota",
        "redisServerUrl: 'r:1'\nquotas: [{name: q, "
        "maxAmount: 1, validDuration: 1s, overrides: [{dimensions: {a: b}, maxAmount: 1, "
        "validDuration: 1s}]}]",
        "spec.params.quotas[0].overrides[0].validDuration",
        "unknown field",
    ),
    _params_case(
        "memquota-dedup",
        "memquota",
        QUOTA + "\nminDeduplicationDuration: 0s",
        "spec.params.minDeduplicationDuration",
        "positive",
    ),
    _params_case(
        "redis-url-missing", "redisquota", QUOTA, "spec.params.redisServerUrl", "required"
    ),
    _params_case(
        "redis-url-form",
        "redisquota",
        "redisServerUrl: localhost\n" + QUOTA,
        "spec.params.redisServerUrl",
        "host:port",
    ),
    _params_case(
        "redis-pool",
        "redisquota",
        REDIS + "\nconnectionPoolSize: -1",
        "spec.params.connectionPoolSize",
        "negative",
    ),
    _params_case(
        "redis-algorithm",
        "redisquota",
        "redisServerUrl: 'r:1'\nquotas: [{name: q, "
        "maxAmount: 1, validDuration: 1s, rateLimitAlgorithm: LEAKY_BUCKET}]",
        "spec.params.quotas[0].rateLimitAlgorithm",
        "ROLLING_WINDOW",
    ),
    _params_case(
        "redis-bucket-missing",
        "redisquota",
        "redisServerUrl: 'r:1'\nquotas: [{name: q, "
        "maxAmount: 1, validDuration: 1s, rateLimitAlgorithm: ROLLING_WINDOW}]",
        "spec.params.quotas[0].bucketDuration",
        "positive",
    ),
    _params_case(
        "redis-bucket-long",
        "redisquota",
        "redisServerUrl: 'r:1'\nquotas: [{name: q, "
        "maxAmount: 1, validDuration: 1s, bucketDuration: 1s, "
        "rateLimitAlgorithm: ROLLING_WINDOW}]",
        "spec.params.quotas[0].bucketDuration",
        "shorter",
    ),
    _params_case(
        "prom-name",
        "prometheus",
        "metrics: [{name: 1-bad, instanceName: i, kind: GAUGE}]",
        "spec.params.metrics[0].name",
        "Prometheus metric name",
    ),
    _params_case(
        "prom-duplicate",
        "prometheus",
        "metrics: [{name: a, instanceName: i, kind: GAUGE}, "
        "{name: a, instanceName: j, kind: COUNTER}]",
        "spec.params.metrics[1].name",
        "duplicate",
    ),
    _params_case(
        "prom-instance",
        "prometheus",
        "metrics: [{name: a, kind: GAUGE}]",
        "spec.params.metrics[0].instanceName",
        "required",
    ),
    _params_case(
        "prom-kind-missing",
        "prometheus",
        "metrics: [{name: a, instanceName: i}]",
        "spec.params.metrics[0].kind",
        "COUNTER",
    ),
    _params_case(
        "prom-kind-bad",
        "prometheus",
        "metrics: [{name: a, instanceName: i, kind: HISTOGRAM}]",
        "spec.params.metrics[0].kind",
        "DISTRIBUTION",
    ),
    _params_case(
        "prom-no-buckets",
        "prometheus",
        "metrics: [{name: a, instanceName: i, kind: DISTRIBUTION}]",
        "spec.params.metrics[0].buckets",
        "exactly one",
    ),
    _params_case(
        "prom-two-buckets",
        "prometheus",
        "metrics: [{name: a, instanceName: i, "
        "kind: DISTRIBUTION, buckets: {explicitBuckets: {bounds: [1]}, "
        "linearBuckets: {numFiniteBuckets: 1, width: 1}}}]",
        "spec.params.metrics[0].buckets",
        "exactly one",
    ),
    _params_case(
        "prom-linear-width",
        "prometheus",
        "metrics: [{name: a, instanceName: i, "
        "kind: DISTRIBUTION, buckets: {linearBuckets: {numFiniteBuckets: 3, width: 0}}}]",
        "spec.params.metrics[0].buckets.linearBuckets.width",
        "positive",
    ),
    _params_case(
        "prom-exponential-growth",
        "prometheus",
        "metrics: [{name: a, instanceName: i, "
        "kind: DISTRIBUTION, buckets: {exponentialBuckets: {numFiniteBuckets: 3, "
        "growthFactor: 1, scale: 1}}}]",
        "spec.params.metrics[0].buckets.exponentialBuckets.growthFactor",
        "greater than 1",
    ),
    _params_case(
        "prom-explicit-order",
        "prometheus",
        "metrics: [{name: a, instanceName: i, "
        "kind: DISTRIBUTION, buckets: {explicitBuckets: {bounds: [5, 1]}}}]",
        "spec.params.metrics[0].buckets.explicitBuckets.bounds",
        "increasing",
    ),
    _params_case(
        "prom-label",
        "prometheus",
        "metrics: [{name: a, instanceName: i, kind: GAUGE, labelNames: [ok, __reserved]}]",
        "spec.params.metrics[0].labelNames[1]",
        "label name",
    ),
    _params_case(
        "prom-label-duplicate",
        "prometheus",
        "metrics: [{name: a, instanceName: i, kind: GAUGE, labelNames: [x, x]}]",
        "spec.params.metrics[0].labelNames[1]",
        "duplicate",
    ),
    _params_case(
        "prom-expiry",
        "prometheus",
        "metricsExpirationPolicy: {expiryCheckIntervalDuration: 1s}",
        "spec.params.metricsExpirationPolicy.metricsExpiryDuration",
        "required",
    ),
    _params_case(
        "stdio-path", "stdio", "logStream: ROTATED_FILE", "spec.params.outputPath", "ROTATED_FILE"
    ),
    _params_case(
        "stdio-rotation", "stdio", "maxRotatedFiles: -1", "spec.params.maxRotatedFiles", "negative"
    ),
    _params_case("stdio-stream", "stdio", "logStream: SYSLOG", "spec.params.logStream", "STDOUT"),
    _params_case(
        "otel-endpoint-missing",
        "opentelemetry",
        "insecure: true",
        "spec.params.endpoint",
        "required",
    ),
    _params_case(
        "otel-endpoint-port",
        "opentelemetry",
        "endpoint: 'collector:0'",
        "spec.params.endpoint",
        "range",
    ),
    _params_case(
        "otel-timeout",
        "opentelemetry",
        "endpoint: 'c:4317'\nexportTimeout: 0s",
        "spec.params.exportTimeout",
        "positive",
    ),
]


@pytest.mark.parametrize(("spec", "path", "word"), INVALID_HANDLERS)
def test_invalid_handlers_name_the_field(spec: str, path: str, word: str) -> None:
    _assert_one(_issues("handler", spec), path, word)


@pytest.mark.parametrize("template", KNOWN_TEMPLATES)
def test_every_known_template_is_accepted(template: str) -> None:
    assert _issues("instance", f"compiledTemplate: {template}\nparams: {{value: '1'}}") == []


def test_template_field_alone_is_accepted() -> None:
    assert _issues("instance", "template: metric") == []


@pytest.mark.parametrize(
    ("spec", "path", "word"),
    [
        pytest.param(
            "compiledTemplate: histogram", "spec.compiledTemplate", "logentry", id="unknown"
        ),
        pytest.param(
            "template: metric\ncompiledTemplate: quota", "spec.template", "both", id="both"
        ),
        pytest.param("params: {value: '1'}", "spec.compiledTemplate", "required", id="none"),
        pytest.param(
            "compiledTemplate: quota\nparams: {dimensions: {src: 'source.nam | \"x\"'}}",
            "spec.params.dimensions.src",
            "position 1: unknown attribute 'source.nam'; did you mean 'source.name'?",
            id="quota-dimension",
        ),
        pytest.param(
            "compiledTemplate: metric\nparams: {value: 'response.size +', dimensions: {}}",
            "spec.params.value",
            "position 16: unexpected end of expression",
            id="metric-value",
        ),
        pytest.param(
            "compiledTemplate: metric\nparams: {value: '1', dimensions: "
            "{code: 'response.code | \"200\"'}}",
            "spec.params.dimensions.code",
            "position 15: both sides of '|' must have one type, not INT64 and STRING",
            id="metric-dimension",
        ),
        pytest.param(
            "compiledTemplate: logentry\nparams: {variables: {path: 'request.path[0]'}}",
            "spec.params.variables.path",
            "position 13: cannot index a STRING",
            id="logentry-variable",
        ),
        pytest.param(
            "compiledTemplate: listentry\nparams: {value: [source.ip]}",
            "spec.params.value",
            "must be an expression",
            id="listentry-not-text",
        ),
        pytest.param(
            "compiledTemplate: quota\nparams: {dimensions: [a]}",
            "spec.params.dimensions",
            "map of names to expressions",
            id="quota-dimensions-list",
        ),
    ],
)
def test_invalid_instances_name_the_field(spec: str, path: str, word: str) -> None:
    _assert_one(_issues("instance", spec), path, word)


ACTION = "actions: [{handler: h, instances: [i]}]"
VALID_RULES = {
    "plain": "match: destination.service.host == 'a'\n" + ACTION,
    "empty-match": ACTION,
    "brackets-in-strings": 'match: \'request.headers["x(y"] == "a)]" && (connection.mtls || '
    'source.labels["app"] == "b")\'\n' + ACTION,
    "escaped-quote": r'match: match(request.path, "/a\"(b")' + "\n" + ACTION,
    "raw-string": "match: 'request.path == `c\\`'\n" + ACTION,
    "default-and-ip": 'match: \'source.ip == ip("10.0.0.1") && '
    '(request.headers["x"] | "") != ""\'\n' + ACTION,
    "blank-match": "match: '  '\n" + ACTION,
    "named-actions": "actions: [{handler: h, instances: [i], name: a}, "
    "{handler: g, instances: [i, j], name: b}]",
    "headers-only": "requestHeaderOperations: [{name: x-user, values: [a]}, "
    "{name: x-drop, operation: REMOVE}]",
    "sampling": ACTION + "\nsampling: {random: {percentSampled: {numerator: 50, "
    "denominator: HUNDRED}}, rateLimit: {samplingDuration: 1s, maxUnsampledEntries: 10, "
    "samplingRate: 5}}",
}


@pytest.mark.parametrize("spec", VALID_RULES.values(), ids=VALID_RULES.keys())
def test_valid_rules_have_no_issues(spec: str) -> None:
    assert _issues("rule", spec) == []


INVALID_RULES = [
    pytest.param(
        "match: '(request.path == \"a\"'\n" + ACTION,
        "spec.match",
        "position 21: expected ')' to close '(' at position 1",
        id="unclosed",
    ),
    pytest.param(
        "match: 'request.path == \"a\")'\n" + ACTION,
        "spec.match",
        "position 20: unexpected ')'",
        id="unbalanced",
    ),
    pytest.param(
        "match: '(request.headers[\"a\")]'\n" + ACTION,
        "spec.match",
        "position 21: expected ']' to close '['",
        id="crossed",
    ),
    pytest.param(
        "match: 'request.path == \"b'\n" + ACTION,
        "spec.match",
        "position 17: unterminated string",
        id="quote",
    ),
    pytest.param(
        "match: 'foo.bar == \"x\"'\n" + ACTION,
        "spec.match",
        "position 1: unknown attribute 'foo.bar'",
        id="unknown-attribute",
    ),
    pytest.param(
        "match: 'request.size == \"big\"'\n" + ACTION,
        "spec.match",
        "position 14: cannot compare INT64 with STRING",
        id="type-mismatch",
    ),
    pytest.param(
        "match: 'request.path'\n" + ACTION,
        "spec.match",
        "position 1: the expression is STRING, but BOOL is required",
        id="not-bool",
    ),
    pytest.param(
        "match: 'source.ip == ip(\"10.0.0.300\")'\n" + ACTION,
        "spec.match",
        "position 17: '10.0.0.300' is not an IP address",
        id="bad-ip-literal",
    ),
    pytest.param("actions: [{instances: [i]}]", "spec.actions[0].handler", "handler", id="handler"),
    pytest.param(
        "actions: [{handler: h}]", "spec.actions[0].instances", "instance", id="instances"
    ),
    pytest.param(
        "actions: [{handler: h, instances: []}]",
        "spec.actions[0].instances",
        "at least one",
        id="instances-empty",
    ),
    pytest.param(
        "actions: [{handler: h, instances: ['']}]",
        "spec.actions[0].instances[0]",
        "empty",
        id="instance-name",
    ),
    pytest.param(
        "actions: [{handler: h, instances: [i], name: a}, {handler: g, instances: [i], name: a}]",
        "spec.actions[1].name",
        "duplicate",
        id="duplicate-name",
    ),
    pytest.param(
        "responseHeaderOperations: [{values: [a]}]",
        "spec.responseHeaderOperations[0].name",
        "required",
        id="header-name",
    ),
    pytest.param(
        "requestHeaderOperations: [{name: x, operation: APPEND}]",
        "spec.requestHeaderOperations[0].values",
        "APPEND",
        id="header-values",
    ),
    pytest.param(
        ACTION + "\nsampling: {random: {percentSampled: {numerator: 101}}}",
        "spec.sampling.random.percentSampled.numerator",
        "between 0 and 100",
        id="sampling-percent",
    ),
    pytest.param(
        ACTION + "\nsampling: {rateLimit: {samplingDuration: 0s}}",
        "spec.sampling.rateLimit.samplingDuration",
        "positive",
        id="sampling-duration",
    ),
    pytest.param(
        ACTION + "\nsampling: {rateLimit: {samplingRate: -2}}",
        "spec.sampling.rateLimit.samplingRate",
        "negative",
        id="sampling-rate",
    ),
]


@pytest.mark.parametrize(("spec", "path", "word"), INVALID_RULES)
def test_invalid_rules_name_the_field(spec: str, path: str, word: str) -> None:
    _assert_one(_issues("rule", spec), path, word)


def test_rule_without_actions_only_warns() -> None:
    issues = _issues("rule", "match: 'true'")
    _assert_one(issues, "spec.actions", "no actions")
    assert issues[0].severity is Severity.WARNING
    assert not has_errors(issues)


VALID_MESH = {
    "empty": "{}",
    "mixer": "mixerCheckServer: istio-policy.istio-system.svc.cluster.local:15004\n"
    "mixerReportServer: '127.0.0.1:9091'\ndisablePolicyChecks: false\npolicyCheckFailOpen: true",
    "tracing-logs": "enableTracing: false\naccessLogFile: /tmp/a.log\naccessLogEncoding: JSON",
    "trust": "trustDomain: example.org\ntrustDomainAliases: [old.example.org]\n"
    "enableAutoMtls: true",
    "detection-off": "protocolDetectionTimeout: 0s\nconnectTimeout: 250ms",
    "export-to": "defaultServiceExportTo: ['.', team-a]\ndefaultVirtualServiceExportTo: ['*']\n"
    "defaultDestinationRuleExportTo: []",
    "proxy": "defaultConfig: {discoveryAddress: '[::1]:15010', drainDuration: 5s, "
    "parentShutdownDuration: 10s, proxyMetadata: {ISTIO_META_X: y}, concurrency: 0}",
    "outbound": "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\nrootNamespace: mesh-root",
}


@pytest.mark.parametrize("spec", VALID_MESH.values(), ids=VALID_MESH.keys())
def test_valid_mesh_configs_have_no_issues(spec: str) -> None:
    assert _issues("MeshConfig", spec) == []


INVALID_MESH = [
    ("connectTimeout: 0s", "spec.connectTimeout", "positive"),
    ("reportBatchMaxTime: -1s", "spec.reportBatchMaxTime", "positive"),
    ("dnsRefreshRate: 0ms", "spec.dnsRefreshRate", "positive"),
    ("protocolDetectionTimeout: -1ms", "spec.protocolDetectionTimeout", "negative"),
    ("reportBatchMaxEntries: -1", "spec.reportBatchMaxEntries", "negative"),
    ("mixerCheckServer: istio-policy", "spec.mixerCheckServer", "host:port"),
    ("mixerReportServer: 'telemetry:0'", "spec.mixerReportServer", "range"),
    ("mixerReportServer: 'bad_host:9091'", "spec.mixerReportServer", "host"),
    ("trustDomain: bad_domain", "spec.trustDomain", "bad_domain"),
    ("trustDomainAliases: [ok.org, '*.x.org']", "spec.trustDomainAliases[1]", "wildcard"),
    ("rootNamespace: Istio_System", "spec.rootNamespace", "DNS-1123"),
    ("defaultServiceExportTo: [Other_NS]", "spec.defaultServiceExportTo[0]", "DNS-1123"),
    ("defaultVirtualServiceExportTo: [a, a]", "spec.defaultVirtualServiceExportTo[1]", "duplicate"),
    ("defaultDestinationRuleExportTo: ['*', a]", "spec.defaultDestinationRuleExportTo", "combine"),
    (
        "defaultConfig: {discoveryAddress: pilot}",
        "spec.defaultConfig.discoveryAddress",
        "host:port",
    ),
    ("defaultConfig: {drainDuration: 0s}", "spec.defaultConfig.drainDuration", "positive"),
    (
        "defaultConfig: {drainDuration: 10s, parentShutdownDuration: 10s}",
        "spec.defaultConfig.drainDuration",
        "shorter",
    ),
    (
        "defaultConfig: {parentShutdownDuration: -5s}",
        "spec.defaultConfig.parentShutdownDuration",
        "positive",
    ),
    ("defaultConfig: {proxyAdminPort: 0}", "spec.defaultConfig.proxyAdminPort", "range"),
    ("defaultConfig: {statusPort: 70000}", "spec.defaultConfig.statusPort", "range"),
    ("defaultConfig: {concurrency: -1}", "spec.defaultConfig.concurrency", "negative"),
]


@pytest.mark.parametrize(("spec", "path", "word"), INVALID_MESH, ids=[c[1] for c in INVALID_MESH])
def test_invalid_mesh_configs_name_the_field(spec: str, path: str, word: str) -> None:
    _assert_one(_issues("MeshConfig", spec), path, word)


@pytest.mark.parametrize(
    ("kind", "spec", "path", "word"),
    [
        pytest.param("rule", "match: 5", "spec.match", "string", id="rule-match-not-string"),
        pytest.param("instance", "params: [a]", "spec.params", "dictionary", id="instance-params"),
        pytest.param("handler", "params: 7", "spec.params", "dictionary", id="handler-params"),
        pytest.param(
            "rule",
            "actions: [{handler: h, instance: [i]}]",
            "spec.actions[0].instance",
            "unknown field",
            id="rule-unknown-field",
        ),
        pytest.param(
            "MeshConfig",
            "accessLogEncoding: XML",
            "spec.accessLogEncoding",
            "JSON",
            id="mesh-encoding",
        ),
        pytest.param(
            "MeshConfig",
            "connectTimeout: soon",
            "spec.connectTimeout",
            "duration",
            id="mesh-duration",
        ),
        pytest.param(
            "MeshConfig",
            "outboundTrafficPolicy: {mode: OPEN}",
            "spec.outboundTrafficPolicy.mode",
            "REGISTRY_ONLY",
            id="mesh-outbound",
        ),
        pytest.param(
            "MeshConfig",
            "mixerServer: a:1",
            "spec.mixerServer",
            "unknown field",
            id="mesh-unknown-field",
        ),
    ],
)
def test_shape_errors_are_parse_issues_with_a_path(
    kind: str, spec: str, path: str, word: str
) -> None:
    parse_issues, _ = _parse(kind, spec)
    _assert_one(parse_issues, path, word)


# Examples from Istio 1.4's policy and telemetry tasks (denials, rate limits, metrics, logs):
# snake_case params and numeric enums included, as the docs wrote them.
ISTIO_14_MIXER_EXAMPLES = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: denyreviewsv3handler}
spec:
  compiledAdapter: denier
  params:
    status:
      code: 7
      message: Not allowed
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: denyreviewsv3request}
spec:
  compiledTemplate: checknothing
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: denyreviewsv3}
spec:
  match: >-
    destination.labels["app"] == "ratings" && source.labels["app"]=="reviews"
    && source.labels["version"] == "v3"
  actions:
  - handler: denyreviewsv3handler
    instances: [ denyreviewsv3request ]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: whitelistip}
spec:
  compiledAdapter: listchecker
  params:
    overrides: ["10.57.0.0/16"]
    blacklist: false
    entryType: IP_ADDRESSES
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: sourceip}
spec:
  compiledTemplate: listentry
  params:
    value: source.ip | ip("0.0.0.0")
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: quotahandler, namespace: istio-system}
spec:
  compiledAdapter: memquota
  params:
    quotas:
    - name: requestcountquota.instance.istio-system
      maxAmount: 500
      validDuration: 1s
      overrides:
      - dimensions:
          destination: reviews
        maxAmount: 1
      - dimensions:
          destination: productpage
          source: "10.28.11.20"
        maxAmount: 500
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: redishandler, namespace: istio-system}
spec:
  compiledAdapter: redisquota
  params:
    redisServerUrl: redis-release-master:6379
    connectionPoolSize: 10
    quotas:
    - name: requestcountquota.instance.istio-system
      maxAmount: 500
      validDuration: 1s
      bucketDuration: 500ms
      rateLimitAlgorithm: ROLLING_WINDOW
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: requestcountquota, namespace: istio-system}
spec:
  compiledTemplate: quota
  params:
    dimensions:
      source: request.headers["x-forwarded-for"] | "unknown"
      destination: destination.labels["app"] | destination.service.name | "unknown"
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: quota, namespace: istio-system}
spec:
  match: match(request.headers["cookie"], "session=*") == false
  actions:
  - handler: quotahandler
    instances:
    - requestcountquota
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: doublerequestcount, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: "2"
    dimensions:
      reporter: conditional((context.reporter.kind | "inbound") == "outbound", "client", "server")
      message: '"twice the fun!"'
    monitored_resource_type: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: doublehandler, namespace: istio-system}
spec:
  compiledAdapter: prometheus
  params:
    metrics:
    - name: double_request_count
      instance_name: doublerequestcount.instance.istio-system
      kind: COUNTER
      label_names: [reporter, message]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: newloghandler, namespace: istio-system}
spec:
  compiledAdapter: stdio
  params:
    severity_levels:
      warning: 1
    outputAsJson: true
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: newlogstdio, namespace: istio-system}
spec:
  match: "true"
  actions:
  - handler: newloghandler
    instances:
    - newlog
"""


def test_istio_14_mixer_task_examples_are_valid() -> None:
    parsed = parse_yaml(ISTIO_14_MIXER_EXAMPLES, "istio-docs.yaml")
    assert parsed.issues == ()
    assert len(parsed.resources) == 13
    for resource in parsed.resources:
        assert validate(resource) == [], resource.ref


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "1s", "-1s", "a:1", "10.0.0.0/8", "(", "ROLLING_WINDOW", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "maxAmount", "x"]), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), adapter=st.sampled_from(KNOWN_ADAPTERS))
def test_any_params_give_issues_under_spec_params_never_a_crash(
    data: st.DataObject, adapter: str
) -> None:
    model = adapter_params_model(adapter)
    assert model is not None
    fields = [str(field.alias) for field in model.model_fields.values()]
    params = data.draw(st.dictionaries(st.sampled_from([*fields, "bogus"]), _JSON_VALUES))
    document = {
        "apiVersion": "config.istio.io/v1alpha2",
        "kind": "handler",
        "metadata": {"name": "h", "namespace": "istio-system"},
        "spec": {"compiledAdapter": adapter, "params": params},
    }
    resource, parse_issues = parse_object(document, "fuzz.yaml")
    assert parse_issues == [] and resource is not None
    for issue in validate(resource):
        assert issue.path.startswith("spec.params"), str(issue)
