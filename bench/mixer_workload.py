"""What Envoy sends Mixer in the benchmarks: config, Check and RLS requests, ALS messages.

:data:`POLICY_CONFIG` is a realistic Istio 1.4 policy set for a ``shop`` namespace: a
denier on a header, a header blacklist (listchecker), a quota per source on Redis
(redisquota, rolling window) and two AuthorizationPolicies (an ALLOW for ``ratings``
by principal, method and path; a mesh-wide DENY of admin paths). The builders make the
messages the server-side sidecar's filters send for a request to ``ratings``, varied by
``number`` (source address, path, request id, user). Pure functions returning fresh
messages; :func:`policy_resources` parses the config.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2, wrappers_pb2

from shared.config import Resource, parse_yaml

RATINGS = "ratings.shop.svc.cluster.local"
QUOTA = "requestcount.instance.shop"
_CHECK_POLICY = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: deny-blocked, namespace: NAMESPACE}
spec: {compiledAdapter: denier, params: {status: {code: 7, message: blocked}}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: denyrequest, namespace: NAMESPACE}
spec: {compiledTemplate: checknothing}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: deny-blocked, namespace: NAMESPACE}
spec:
  match: request.headers["x-blocked"] == "true"
  actions: [{handler: deny-blocked, instances: [denyrequest]}]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: users, namespace: istio-system}
spec: {compiledAdapter: listchecker, params: {overrides: [mallory, eve], blacklist: true}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: user, namespace: istio-system}
spec: {compiledTemplate: listentry, params: {value: 'request.headers["x-user"] | ""'}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: users, namespace: istio-system}
spec: {actions: [{handler: users, instances: [user]}]}
"""


def check_policy(namespace: str) -> str:
    """A denier rule on ``x-blocked: true`` in ``namespace`` and a mesh-wide ``x-user``
    blacklist (mallory, eve): the Check workload of the Mixer benchmarks."""
    return _CHECK_POLICY.replace("NAMESPACE", namespace)


POLICY_CONFIG = (
    check_policy("shop")
    + """---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: quota, namespace: shop}
spec:
  compiledAdapter: redisquota
  params:
    redisServerUrl: REDIS
    quotas:
      - {name: requestcount.instance.shop, maxAmount: 1000000000, validDuration: 60s,
         bucketDuration: 1s, rateLimitAlgorithm: ROLLING_WINDOW}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: requestcount, namespace: shop}
spec:
  compiledTemplate: quota
  params: {dimensions: {source: 'source.workload.name | "unknown"'}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: quota, namespace: shop}
spec:
  match: destination.service.host == "ratings.shop.svc.cluster.local"
  actions: [{handler: quota, instances: [requestcount]}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: ratings-readers, namespace: shop}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
    - from: [{source: {principals: [cluster.local/ns/shop/sa/storefront]}}]
      to: [{operation: {methods: [GET], paths: [/ratings/*]}}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
"""
)


def policy_resources(redis_address: str) -> tuple[Resource, ...]:
    """:data:`POLICY_CONFIG` parsed, its redisquota pointing at ``redis_address``."""
    result = parse_yaml(POLICY_CONFIG.replace("REDIS", redis_address), "bench-policy.yaml")
    if result.issues:
        raise ValueError(f"bench config does not parse: {result.issues}")
    return result.resources


def _address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def check_request(number: int, user: str) -> external_auth_pb2.CheckRequest:
    """The ext_authz Check for request ``number`` to ratings, from storefront as ``user``."""
    request = external_auth_pb2.CheckRequest(
        attributes=ac.AttributeContext(
            source=ac.AttributeContext.Peer(
                address=_address(f"10.1.{number % 250}.{number % 200 + 1}", 40000 + number % 20000),
                principal="spiffe://cluster.local/ns/shop/sa/storefront",
                service="storefront-v1.shop",
            ),
            destination=ac.AttributeContext.Peer(
                address=_address("10.0.0.9", 9080), service="ratings-v1.shop"
            ),
            request=ac.AttributeContext.Request(
                time=timestamp_pb2.Timestamp(seconds=1_700_000_000 + number),
                http=ac.AttributeContext.HttpRequest(
                    id=f"req-{number}",
                    method="GET",
                    path=f"/ratings/{number % 50}",
                    host=RATINGS,
                    scheme="http",
                    protocol="HTTP/1.1",
                    headers={
                        ":authority": RATINGS,
                        ":method": "GET",
                        ":path": f"/ratings/{number % 50}",
                        "user-agent": "bench/1.0",
                        "x-request-id": f"req-{number}",
                        "x-user": user,
                    },
                ),
            ),
        )
    )
    request.attributes.context_extensions["destination.labels"] = '{"app": "ratings"}'
    return request


def rate_limit_request(number: int) -> rls_pb2.RateLimitRequest:
    """The RLS request for request ``number``: the quota, per source workload."""
    entries = (
        ("quota", QUOTA),
        ("destination_cluster", f"outbound|9080||{RATINGS}"),
        ("source_cluster", f"storefront-{number % 100}.shop"),
        ("request.id", f"req-{number}"),
    )
    return rls_pb2.RateLimitRequest(
        domain="mixer",
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[
                    ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries
                ]
            )
        ],
    )


def access_log_message(first: int, count: int, *, identify: bool) -> bytes:
    """A serialized ALS message of ``count`` inbound entries, numbered from ``first``."""
    message = als_pb2.StreamAccessLogsMessage()
    if identify:
        metadata = struct_pb2.Struct()
        metadata.update(
            {"WORKLOAD_NAME": "ratings-v1", "NAMESPACE": "shop", "LABELS": {"app": "ratings"}}
        )
        node = message.identifier.node
        node.id = "sidecar~10.0.0.9~ratings-v1.shop~shop.svc.cluster.local"
        node.cluster = "ratings-v1.shop"
        node.metadata.CopyFrom(metadata)
    for number in range(first, first + count):
        message.http_logs.log_entry.append(
            accesslog_pb2.HTTPAccessLogEntry(
                common_properties=accesslog_pb2.AccessLogCommon(
                    upstream_cluster=f"inbound|9080|http|{RATINGS}",
                    downstream_remote_address=_address(f"10.1.0.{number % 200 + 1}", 40000),
                    downstream_local_address=_address("10.0.0.9", 9080),
                    start_time=timestamp_pb2.Timestamp(seconds=1_700_000_000 + number),
                    time_to_last_downstream_tx_byte=duration_pb2.Duration(
                        nanos=2_000_000 + number % 5000 * 1000
                    ),
                ),
                request=accesslog_pb2.HTTPRequestProperties(
                    request_method=base_pb2.GET,
                    authority=RATINGS,
                    path=f"/ratings/{number % 50}",
                    user_agent="bench/1.0",
                    request_id=f"req-{number}",
                    request_body_bytes=0,
                    request_headers_bytes=300,
                    request_headers={
                        "x-envoy-downstream-service-cluster": f"storefront-v{number % 3}.shop"
                    },
                ),
                response=accesslog_pb2.HTTPResponseProperties(
                    response_code=wrappers_pb2.UInt32Value(value=503 if number % 20 == 0 else 200),
                    response_body_bytes=1000 + number % 100,
                ),
            )
        )
    return bytes(message.SerializeToString())
