"""Report rules: the standard Prometheus metrics, stdio access logs, report errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.mixer.adapters.prometheus_collector import MetricStoreCollector
from shared.policy_expr import DictBag


def request(
    code: int, *, service: str = "catalog.shop.svc.cluster.local", **extra: object
) -> DictBag:
    return DictBag(
        {
            "context.protocol": "http",
            "context.reporter.kind": "inbound",
            "destination.service.host": service,
            "destination.service.name": service.split(".", maxsplit=1)[0],
            "destination.workload.name": "catalog-v1",
            "destination.labels": {"app": "catalog", "version": "v1"},
            "source.workload.name": "storefront",
            "response.code": code,
            "response.duration": timedelta(milliseconds=7),
            "request.size": 120,
            "response.size": 2000,
            **extra,  # type: ignore[dict-item]
        }
    )


async def scrape(kit) -> dict[str, list]:
    registry = CollectorRegistry()
    collector = MetricStoreCollector(kit.store, registry)
    await collector.start()
    text = generate_latest(registry).decode()
    await collector.stop()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


async def test_standard_metrics_count_every_request_with_istio_labels(kit_factory) -> None:
    kit = kit_factory(standard=True)
    await kit.load("")
    await kit.report([request(200)] * 3 + [request(503), request(200, service="ratings.shop")])
    families = await scrape(kit)
    totals = {
        (s.labels["destination_service"], s.labels["response_code"]): s.value
        for s in families["istio_requests"]
    }
    assert totals == {
        ("catalog.shop.svc.cluster.local", "200"): 3,
        ("catalog.shop.svc.cluster.local", "503"): 1,
        ("ratings.shop", "200"): 1,
    }
    sample = next(s for s in families["istio_requests"] if s.labels["response_code"] == "503")
    assert sample.labels["reporter"] == "destination"
    assert sample.labels["destination_app"] == "catalog"
    assert sample.labels["source_workload"] == "storefront"
    assert sample.labels["source_principal"] == "unknown"
    assert sample.labels["connection_security_policy"] == "none"
    assert sample.labels["request_protocol"] == "http"
    buckets = [
        s
        for s in families["istio_request_duration_milliseconds"]
        if s.name.endswith("_bucket") and s.labels["response_code"] == "503"
    ]
    by_bound = {s.labels["le"]: s.value for s in buckets}
    assert by_bound["5"] == 0 and by_bound["10"] == 1 and by_bound["+Inf"] == 1
    sizes = [s for s in families["istio_request_bytes"] if s.name.endswith("_sum")]
    assert sum(s.value for s in sizes) == 5 * 120


async def test_probes_are_not_counted(kit_factory) -> None:
    kit = kit_factory(standard=True)
    await kit.load("")
    await kit.report([request(200, **{"request.useragent": "kube-probe/1.16"})])
    await kit.report([request(200)])
    samples = (await scrape(kit))["istio_requests"]
    assert [s.value for s in samples] == [1]


STDIO = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: stdio, namespace: istio-system}
spec: {compiledAdapter: stdio, params: {outputAsJson: true, outputLevel: WARNING}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: accesslog, namespace: istio-system}
spec:
  compiledTemplate: logentry
  params:
    severity: 'conditional((response.code | 200) >= 500, "Error", "Info")'
    timestamp: request.time
    variables:
      path: request.path | ""
      code: response.code | 0
      latency: response.duration | "0ms"
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: stdio, namespace: istio-system}
spec:
  actions: [{handler: stdio, instances: [accesslog]}]
"""


async def test_stdio_writes_json_lines_at_or_above_the_output_level(kit) -> None:
    await kit.load(STDIO)
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    await kit.report(
        [
            request(200, **{"request.path": "/ok", "request.time": moment}),
            request(502, **{"request.path": "/bad", "request.time": moment}),
        ]
    )
    lines = kit.stdout.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry == {
        "level": "error",
        "time": "2024-05-01T12:00:00.000000+00:00",
        "instance": "accesslog.instance.istio-system",
        "path": "/bad",
        "code": 502,
        "latency": "7ms",
    }


async def test_an_instance_a_request_cannot_fill_skips_that_rule_only(kit_factory) -> None:
    kit = kit_factory(standard=True)
    await kit.load(STDIO.replace("outputLevel: WARNING", "outputLevel: INFO"))
    # No request.time: the access log rule fails (counted); the metrics rule still counts.
    await kit.report([request(200)])
    assert kit.stdout.getvalue() == ""
    assert kit.counter("mixer_rule_errors_total", rule="istio-system/stdio", variety="report") == 1
    assert sum(s.value for s in (await scrape(kit))["istio_requests"]) == 1
