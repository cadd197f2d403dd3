"""The typed models of the security, Mixer-policy and MeshConfig kinds, read from YAML."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from shared.config import Resource, parse_yaml
from shared.config.mesh import MeshConfigSpec
from shared.config.policy import HandlerSpec, InstanceSpec, RuleSpec
from shared.config.policy_adapters import (
    KNOWN_ADAPTERS,
    MemquotaParams,
    PrometheusParams,
    RedisquotaParams,
    adapter_params_model,
)
from shared.config.security import AuthorizationPolicySpec, PeerAuthenticationSpec


def _one(text: str) -> Resource:
    parsed = parse_yaml(text, "model.yaml")
    assert parsed.issues == (), [str(issue) for issue in parsed.issues]
    [resource] = parsed.resources
    return resource


AUTHZ = """
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  selector:
    matchLabels: {app: httpbin}
  action: DENY
  rules:
  - from:
    - source: {notNamespaces: [foo], ipBlocks: [10.0.0.0/8]}
    to:
    - operation: {methods: [POST], ports: ['8080'], notPaths: [/health]}
    when:
    - key: request.headers[x-token]
      notValues: [secret]
"""


def test_authorization_policy_reads_every_level_and_round_trips() -> None:
    resource = _one(AUTHZ)
    spec = resource.spec
    assert isinstance(spec, AuthorizationPolicySpec)
    assert spec.action == "DENY"
    assert spec.selector is not None and spec.selector.match_labels == {"app": "httpbin"}
    [rule] = spec.rules or ()
    [source] = rule.from_ or ()
    assert source.source is not None and source.source.not_namespaces == ("foo",)
    [target] = rule.to or ()
    assert target.operation is not None and target.operation.ports == ("8080",)
    [condition] = rule.when or ()
    assert (condition.key, condition.not_values) == ("request.headers[x-token]", ("secret",))
    assert resource.body() == yaml.safe_load(AUTHZ)["spec"]


def test_authorization_policy_defaults_to_allow_and_keeps_absent_lists_absent() -> None:
    spec = AuthorizationPolicySpec.model_validate({"rules": [{"to": []}]})
    assert spec.action == "ALLOW"
    [rule] = spec.rules or ()
    assert rule.from_ is None and rule.to == ()
    assert AuthorizationPolicySpec.model_validate({}).rules is None


@pytest.mark.parametrize(
    ("spec", "path", "word"),
    [
        ("{action: BLOCK}", "spec.action", "ALLOW"),
        (
            "{rules: [{to: [{operation: {ports: [8080]}}]}]}",
            "spec.rules[0].to[0].operation.ports[0]",
            "string",
        ),
        (
            "{rules: [{from: [{source: {users: [a]}}]}]}",
            "spec.rules[0].from[0].source.users",
            "unknown field",
        ),
        (
            "{rules: [{when: [{key: a, values: a}]}]}",
            "spec.rules[0].when[0].values",
            "must be a list",
        ),
    ],
)
def test_authorization_policy_shape_errors_name_the_field(spec: str, path: str, word: str) -> None:
    parsed = parse_yaml(
        "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: p}}\nspec: {spec}\n",
        "model.yaml",
    )
    assert parsed.resources == ()
    assert [issue.path for issue in parsed.issues] == [path]
    assert word in parsed.issues[0].message


def test_peer_authentication_port_keys_are_numbers_and_mode_defaults_to_unset() -> None:
    resource = _one("""
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: finance, namespace: foo}
spec:
  selector: {matchLabels: {app: finance}}
  mtls: {}
  portLevelMtls:
    8080: {mode: DISABLE}
    "9090": {mode: STRICT}
""")
    spec = resource.spec
    assert isinstance(spec, PeerAuthenticationSpec)
    assert spec.mtls is not None and spec.mtls.mode == "UNSET"
    assert spec.port_level_mtls is not None
    assert {port: mtls.mode for port, mtls in spec.port_level_mtls.items()} == {
        8080: "DISABLE",
        9090: "STRICT",
    }
    assert resource.body()["portLevelMtls"] == {
        "8080": {"mode": "DISABLE"},
        "9090": {"mode": "STRICT"},
    }


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ("{mtls: {mode: ON}}", "spec.mtls.mode"),
        ("{portLevelMtls: {http: {mode: STRICT}}}", "spec.portLevelMtls.http.[key]"),
    ],
)
def test_peer_authentication_shape_errors(spec: str, path: str) -> None:
    parsed = parse_yaml(
        f"apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
        f"metadata: {{name: p}}\nspec: {spec}\n",
        "model.yaml",
    )
    assert [issue.path for issue in parsed.issues] == [path]


def test_specs_are_immutable() -> None:
    spec = AuthorizationPolicySpec.model_validate({"action": "DENY"})
    with pytest.raises(ValidationError):
        spec.action = "ALLOW"  # type: ignore[misc]


def test_handler_and_instance_name_their_adapter_and_template_either_way() -> None:
    assert HandlerSpec.model_validate({"compiledAdapter": "denier"}).adapter_name == "denier"
    assert HandlerSpec.model_validate({"adapter": "stdio"}).adapter_name == "stdio"
    assert HandlerSpec.model_validate({}).adapter_name == ""
    assert InstanceSpec.model_validate({"template": "metric"}).template_name == "metric"
    assert InstanceSpec.model_validate({"compiledTemplate": "quota"}).template_name == "quota"


def test_rule_reads_actions_header_operations_and_sampling() -> None:
    spec = RuleSpec.model_validate(
        {
            "match": 'request.headers["x"] == "y"',
            "actions": [{"handler": "h.denier", "instances": ["i.checknothing"], "name": "a"}],
            "requestHeaderOperations": [{"name": "x-id", "values": ["a"]}],
            "sampling": {"rateLimit": {"samplingDuration": "2s", "samplingRate": 10}},
        }
    )
    [action] = spec.actions or ()
    assert (action.handler, action.instances, action.name) == ("h.denier", ("i.checknothing",), "a")
    [header] = spec.request_header_operations or ()
    assert header.operation == "REPLACE"
    assert spec.sampling is not None and spec.sampling.rate_limit is not None
    assert spec.sampling.rate_limit.sampling_duration == timedelta(seconds=2)


def test_known_adapters_each_have_a_params_model() -> None:
    assert set(KNOWN_ADAPTERS) == {
        "denier",
        "listchecker",
        "memquota",
        "redisquota",
        "prometheus",
        "stdio",
        "opentelemetry",
    }
    for adapter in KNOWN_ADAPTERS:
        model = adapter_params_model(adapter)
        assert model is not None
        model.model_validate({})
    assert adapter_params_model("fluentd") is None


def test_mixer_can_read_handler_params_typed() -> None:
    resource = _one("""
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: quota, namespace: istio-system}
spec:
  compiledAdapter: redisquota
  params:
    redisServerUrl: localhost:6379
    quotas:
    - name: requestcount.instance.istio-system
      maxAmount: 500
      validDuration: 1s
      bucketDuration: 500ms
      rateLimitAlgorithm: ROLLING_WINDOW
      overrides:
      - dimensions: {destination: reviews}
        maxAmount: 1
""")
    spec = resource.spec
    assert isinstance(spec, HandlerSpec)
    model = adapter_params_model(spec.adapter_name)
    assert model is RedisquotaParams
    params = RedisquotaParams.model_validate(spec.params)
    [quota] = params.quotas or ()
    assert (quota.max_amount, quota.valid_duration) == (500, timedelta(seconds=1))
    assert quota.bucket_duration == timedelta(milliseconds=500)
    [override] = quota.overrides or ()
    assert override.dimensions == {"destination": "reviews"}


def test_adapter_params_reject_wrong_shapes() -> None:
    with pytest.raises(ValidationError) as raised:
        MemquotaParams.model_validate({"quotas": [{"name": "q", "validDuration": "soon"}]})
    assert raised.value.errors()[0]["loc"] == ("quotas", 0, "validDuration")
    with pytest.raises(ValidationError):
        PrometheusParams.model_validate({"metrics": [{"name": "a", "kind": "HISTOGRAM"}]})


def test_mesh_config_defaults_are_istio_1_4_defaults() -> None:
    mesh = MeshConfigSpec()
    assert mesh.root_namespace == "istio-system"
    assert mesh.trust_domain == "cluster.local"
    assert mesh.access_log_encoding == "TEXT"
    assert mesh.outbound_traffic_policy.mode == "ALLOW_ANY"
    assert mesh.default_config.drain_duration == timedelta(seconds=45)
    assert mesh.default_config.parent_shutdown_duration == timedelta(seconds=60)
    assert mesh.default_service_export_to == ("*",)


def test_mesh_config_object_overrides_only_what_it_sets() -> None:
    resource = _one("""
apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  policyCheckFailOpen: true
  mixerCheckServer: 127.0.0.1:9091
  connectTimeout: 2.5s
  defaultConfig:
    discoveryAddress: 127.0.0.1:15010
    proxyMetadata: {ISTIO_META_DNS: "true"}
""")
    spec = resource.spec
    assert isinstance(spec, MeshConfigSpec)
    assert spec.policy_check_fail_open is True
    assert spec.mixer_check_server == "127.0.0.1:9091"
    assert spec.connect_timeout == timedelta(seconds=2.5)
    assert spec.default_config.discovery_address == "127.0.0.1:15010"
    assert spec.default_config.drain_duration == timedelta(seconds=45)
    assert spec.default_config.proxy_metadata == {"ISTIO_META_DNS": "true"}
    assert spec.enable_tracing is True
    assert resource.body()["connectTimeout"] == "2.5s"


def test_adapter_params_take_proto_names_and_enum_numbers_like_mixer_did() -> None:
    params = PrometheusParams.model_validate(
        {"metrics": [{"name": "a", "instance_name": "i.instance.x", "kind": 2}]}
    )
    [metric] = params.metrics or ()
    assert (metric.instance_name, metric.kind) == ("i.instance.x", "COUNTER")
    for out_of_range in (4, -1, True):
        with pytest.raises(ValidationError):
            PrometheusParams.model_validate({"metrics": [{"kind": out_of_range}]})
