"""Galley's validation of the networking.istio.io kinds, rule by rule.

Each rule has a valid case (no errors) and an invalid one (an error at the named field
path whose message contains a telling word). Specs are YAML flow mappings run through
the real parser and validator.
"""

from __future__ import annotations

import pytest

from services.galley.core.validation import validate
from shared.config import ConfigIssue, Severity, has_errors, parse_yaml

VS = "VirtualService"
DR = "DestinationRule"
GW = "Gateway"
SE = "ServiceEntry"
SC = "Sidecar"

ROUTE = "route: [{destination: {host: r.shop}}]"


def _issues(kind: str, spec: str) -> list[ConfigIssue]:
    text = (
        "apiVersion: networking.istio.io/v1alpha3\n"
        f"kind: {kind}\n"
        "metadata: {name: t, namespace: shop}\n"
        f"spec: {spec}\n"
    )
    result = parse_yaml(text, "test.yaml")
    found = list(result.issues)
    for resource in result.resources:
        found.extend(validate(resource))
    return found


def vs(http: str = ROUTE, top: str = "hosts: [r.shop]") -> str:
    """A VirtualService spec with one HTTP route."""
    return "{" + top + ", http: [{" + http + "}]}"


def dr(policy: str) -> str:
    """A DestinationRule spec with a host-wide traffic policy."""
    return "{host: r.shop, trafficPolicy: " + policy + "}"


def gw(server: str) -> str:
    """A Gateway spec with one server."""
    return "{selector: {istio: ingressgateway}, servers: [" + server + "]}"


def se(body: str) -> str:
    """A ServiceEntry spec: ``body`` plus hosts/ports unless it sets them."""
    hosts = "" if "hosts:" in body else "hosts: [api.example.com], "
    ports = "" if "ports: [" in body else ", ports: [{number: 443, name: https, protocol: TLS}]"
    return "{" + hosts + body + ports + "}"


def sc(egress: str) -> str:
    """A Sidecar spec with the given egress listeners."""
    return "{egress: [" + egress + "]}"


def tcp(body: str) -> str:
    """A VirtualService spec with one TCP route."""
    return "{hosts: [mongo], tcp: [{" + body + "}]}"


def tls(hosts: str, body: str) -> str:
    """A VirtualService spec with one TLS route."""
    return "{hosts: [" + hosts + "], tls: [{" + body + "}]}"


def subset(body: str) -> str:
    """A DestinationRule spec with one subset ``v1``."""
    return "{host: r, subsets: [{name: v1, " + body + "}]}"


def server(name: str, number: int) -> str:
    """A plain HTTP Gateway server."""
    return f"{{port: {{number: {number}, name: {name}, protocol: HTTP}}, hosts: ['*']}}"


def https(tls_settings: str, protocol: str = "HTTPS") -> str:
    """A Gateway spec with one server on port 443 and the given TLS settings."""
    port_spec = f"port: {{number: 443, name: p, protocol: {protocol}}}, hosts: ['*']"
    return gw("{" + ", ".join(part for part in (port_spec, tls_settings) if part) + "}")


def port(number: int, name: str, protocol: str = "HTTP") -> str:
    """A ServiceEntry port."""
    return f"{{number: {number}, name: {name}, protocol: {protocol}}}"


def ingress(*listeners: str) -> str:
    """A Sidecar spec with the given ingress listeners."""
    return "{ingress: [" + ", ".join(listeners) + "]}"


def listener(number: int, endpoint: str) -> str:
    """A Sidecar ingress listener forwarding port ``number`` to ``endpoint``."""
    return f"{{port: {{number: {number}}}, defaultEndpoint: '{endpoint}'}}"


def rule(case_id: str, kind: str, expected: str, valid: str, invalid: str) -> object:
    """One rule: ``valid`` has no errors; ``invalid`` has one at ``"path: word..."``."""
    path, _, word = expected.partition(": ")
    return pytest.param(kind, valid, invalid, path, word, id=case_id)


HTTP_PORT = "port: {number: 80, name: http, protocol: HTTP}"
SOCKET = "bind: 'unix:///var/run/out.sock'"
TO_A = "route: [{destination: {host: a}}]"
WEIGHTED = (
    "route: [{destination: {host: r.shop, subset: v1}, weight: %s}, "
    "{destination: {host: r.shop, subset: v2}, weight: %s}]"
)

VIRTUAL_SERVICE_RULES = [
    rule("vs-hosts-required", VS, "spec.hosts: at least one host",
         vs(),
         vs(top="gateways: [gw]")),
    rule("vs-host-syntax", VS, "spec.hosts[0]: not a valid",
         vs(top="hosts: [r]"),
         vs(top="hosts: [bad_host]")),
    rule("vs-duplicate-host", VS, "spec.hosts[1]: duplicate",
         vs(top="hosts: [r, r.shop]"),
         vs(top="hosts: [r.shop, r.shop]")),
    rule("vs-star-needs-gateway", VS, "spec.hosts[0]: wildcard",
         vs(top="hosts: ['*'], gateways: [gw]"),
         vs(top="hosts: ['*']")),
    rule("vs-star-not-on-mesh", VS, "spec.hosts[0]: wildcard",
         vs(top="hosts: ['*'], gateways: [gw]"),
         vs(top="hosts: ['*'], gateways: [gw, mesh]")),
    rule("vs-gateway-name", VS, "spec.gateways[0]: namespace",
         vs(top="hosts: [r], gateways: [shop/gw, mesh]"),
         vs(top="hosts: [r], gateways: [Shop/gw]")),
    rule("vs-needs-routes", VS, "spec: http, tcp or tls",
         vs(),
         "{hosts: [r.shop]}"),
    rule("weights-sum", VS, "spec.http[0].route: 100",
         vs(WEIGHTED % (75, 25)),
         vs(WEIGHTED % (60, 30))),
    rule("weights-needed-for-several", VS, "spec.http[0].route: 100",
         vs(WEIGHTED % (100, 0)),
         vs(WEIGHTED % ("null", "null"))),
    rule("weight-given-for-one", VS, "spec.http[0].route: 100",
         vs("route: [{destination: {host: r.shop}, weight: 100}]"),
         vs("route: [{destination: {host: r.shop}, weight: 50}]")),
    rule("weight-negative", VS, "spec.http[0].route[0].weight: negative",
         vs(WEIGHTED % (0, 100)),
         vs(WEIGHTED % (-10, 110))),
    rule("string-match-two-kinds", VS, "spec.http[0].match[0].uri: exactly one",
         vs("match: [{uri: {prefix: /a}}], " + ROUTE),
         vs("match: [{uri: {exact: /a, prefix: /b}}], " + ROUTE)),
    rule("string-match-no-kind", VS, "spec.http[0].match[0].method: exactly one",
         vs("match: [{method: {exact: GET}}], " + ROUTE),
         vs("match: [{method: {}}], " + ROUTE)),
    rule("regex-compiles", VS, "spec.http[0].match[0].uri.regex: compile",
         vs("match: [{uri: {regex: '^/v[0-9]+'}}], " + ROUTE),
         vs("match: [{uri: {regex: '([a-z'}}], " + ROUTE)),
    rule("header-match-name", VS, "spec.http[0].match[0].headers.x user: header name",
         vs("match: [{headers: {x-user: {exact: a}}}], " + ROUTE),
         vs("match: [{headers: {'x user': {exact: a}}}], " + ROUTE)),
    rule("header-match-kind", VS, "spec.http[0].match[0].headers.x-user: exactly one",
         vs("match: [{headers: {x-user: {regex: 'a.*'}}}], " + ROUTE),
         vs("match: [{headers: {x-user: {}}}], " + ROUTE)),
    rule("query-param-match", VS, "spec.http[0].match[0].queryParams.v.regex: compile",
         vs("match: [{queryParams: {v: {exact: '1'}}}], " + ROUTE),
         vs("match: [{queryParams: {v: {regex: '(('}}}], " + ROUTE)),
    rule("without-headers-match", VS, "spec.http[0].match[0].withoutHeaders.x-debug: exactly one",
         vs("match: [{withoutHeaders: {x-debug: {exact: '1'}}}], " + ROUTE),
         vs("match: [{withoutHeaders: {x-debug: {}}}], " + ROUTE)),
    rule("match-port", VS, "spec.http[0].match[0].port: range",
         vs("match: [{port: 8080}], " + ROUTE),
         vs("match: [{port: 0}], " + ROUTE)),
    rule("match-source-labels", VS, "spec.http[0].match[0].sourceLabels.app: label value",
         vs("match: [{sourceLabels: {app: web}}], " + ROUTE),
         vs("match: [{sourceLabels: {app: 'bad value!'}}], " + ROUTE)),
    rule("match-gateways", VS, "spec.http[0].match[0].gateways[0]: not a valid",
         vs("match: [{gateways: [mesh]}], " + ROUTE),
         vs("match: [{gateways: ['bad_gw']}], " + ROUTE)),
    rule("timeout-positive", VS, "spec.http[0].timeout: at least",
         vs(ROUTE + ", timeout: 10s"),
         vs(ROUTE + ", timeout: 0s")),
    rule("timeout-negative", VS, "spec.http[0].timeout: at least",
         vs(ROUTE + ", timeout: 1ms"),
         vs(ROUTE + ", timeout: -2s")),
    rule("retries-attempts", VS, "spec.http[0].retries.attempts: negative",
         vs(ROUTE + ", retries: {attempts: 0}"),
         vs(ROUTE + ", retries: {attempts: -1}")),
    rule("retries-per-try-timeout", VS, "spec.http[0].retries.perTryTimeout: at least",
         vs(ROUTE + ", retries: {attempts: 2, perTryTimeout: 100ms}"),
         vs(ROUTE + ", retries: {attempts: 2, perTryTimeout: 0s}")),
    rule("retries-retry-on", VS, "spec.http[0].retries.retryOn: retryOn",
         vs(ROUTE + ", retries: {attempts: 2, retryOn: '5xx,503,reset'}"),
         vs(ROUTE + ", retries: {attempts: 2, retryOn: '5xx,sometimes'}")),
    rule("fault-delay-percentage", VS, "spec.http[0].fault.delay.percentage.value: range",
         vs(ROUTE + ", fault: {delay: {fixedDelay: 5s, percentage: {value: 100}}}"),
         vs(ROUTE + ", fault: {delay: {fixedDelay: 5s, percentage: {value: 150}}}")),
    rule("fault-delay-percent", VS, "spec.http[0].fault.delay.percent: range",
         vs(ROUTE + ", fault: {delay: {fixedDelay: 5s, percent: 10}}"),
         vs(ROUTE + ", fault: {delay: {fixedDelay: 5s, percent: 101}}")),
    rule("fault-delay-positive", VS, "spec.http[0].fault.delay.fixedDelay: at least",
         vs(ROUTE + ", fault: {delay: {fixedDelay: 5s}}"),
         vs(ROUTE + ", fault: {delay: {fixedDelay: 0s}}")),
    rule("fault-delay-needs-fixed-delay", VS, "spec.http[0].fault.delay.fixedDelay: fixedDelay",
         vs(ROUTE + ", fault: {delay: {fixedDelay: 5s}}"),
         vs(ROUTE + ", fault: {delay: {percentage: {value: 5}}}")),
    rule("fault-abort-percentage", VS, "spec.http[0].fault.abort.percentage.value: range",
         vs(ROUTE + ", fault: {abort: {httpStatus: 503, percentage: {value: 0}}}"),
         vs(ROUTE + ", fault: {abort: {httpStatus: 503, percentage: {value: -1}}}")),
    rule("fault-abort-status-high", VS, "spec.http[0].fault.abort.httpStatus: 200-599",
         vs(ROUTE + ", fault: {abort: {httpStatus: 200}}"),
         vs(ROUTE + ", fault: {abort: {httpStatus: 600}}")),
    rule("fault-abort-status-low", VS, "spec.http[0].fault.abort.httpStatus: 200-599",
         vs(ROUTE + ", fault: {abort: {httpStatus: 599}}"),
         vs(ROUTE + ", fault: {abort: {httpStatus: 199}}")),
    rule("fault-abort-needs-status", VS, "spec.http[0].fault.abort.httpStatus: httpStatus",
         vs(ROUTE + ", fault: {abort: {httpStatus: 503}}"),
         vs(ROUTE + ", fault: {abort: {percentage: {value: 5}}}")),
    rule("fault-not-empty", VS, "spec.http[0].fault: abort and/or a delay",
         vs(ROUTE + ", fault: {abort: {httpStatus: 503}}"),
         vs(ROUTE + ", fault: {}")),
    rule("redirect-and-route", VS, "spec.http[0].redirect: both",
         vs("redirect: {uri: /new}"),
         vs("redirect: {uri: /new}, " + ROUTE)),
    rule("route-or-redirect-required", VS, "spec.http[0].route: required",
         vs("redirect: {authority: b.shop}"),
         vs("match: [{uri: {prefix: /}}]")),
    rule("redirect-code", VS, "spec.http[0].redirect.redirectCode: 3xx",
         vs("redirect: {uri: /new, redirectCode: 308}"),
         vs("redirect: {uri: /new, redirectCode: 200}")),
    rule("redirect-target", VS, "spec.http[0].redirect: uri, authority",
         vs("redirect: {uri: /new, redirectCode: 301}"),
         vs("redirect: {redirectCode: 301}")),
    rule("rewrite-with-redirect", VS, "spec.http[0].rewrite: redirect",
         vs("rewrite: {uri: /v2}, " + ROUTE),
         vs("redirect: {uri: /new}, rewrite: {uri: /v2}")),
    rule("rewrite-target", VS, "spec.http[0].rewrite: uri, authority",
         vs("rewrite: {authority: b.shop}, " + ROUTE),
         vs("rewrite: {}, " + ROUTE)),
    rule("mirror-percentage", VS, "spec.http[0].mirrorPercentage.value: range",
         vs(ROUTE + ", mirror: {host: m.shop}, mirrorPercentage: {value: 50}"),
         vs(ROUTE + ", mirror: {host: m.shop}, mirrorPercentage: {value: 101}")),
    rule("mirror-percent", VS, "spec.http[0].mirrorPercent: range",
         vs(ROUTE + ", mirror: {host: m.shop}, mirrorPercent: 100"),
         vs(ROUTE + ", mirror: {host: m.shop}, mirrorPercent: -5")),
    rule("mirror-destination", VS, "spec.http[0].mirror.host: '*'",
         vs(ROUTE + ", mirror: {host: m.shop}"),
         vs(ROUTE + ", mirror: {host: '*'}")),
    rule("destination-subset", VS, "spec.http[0].route[0].destination.subset: subset name",
         vs("route: [{destination: {host: r.shop, subset: v1-a}}]"),
         vs("route: [{destination: {host: r.shop, subset: V1_a}}]")),
    rule("destination-port", VS, "spec.http[0].route[0].destination.port.number: range",
         vs("route: [{destination: {host: r.shop, port: {number: 9080}}}]"),
         vs("route: [{destination: {host: r.shop, port: {number: 70000}}}]")),
    rule("destination-host", VS, "spec.http[0].route[0].destination.host: not a valid",
         vs("route: [{destination: {host: '*.shop'}}]"),
         vs("route: [{destination: {host: 'r.*.shop'}}]")),
    rule("cors-methods", VS, "spec.http[0].corsPolicy.allowMethods[0]: HTTP method",
         vs(ROUTE + ", corsPolicy: {allowMethods: [GET, POST]}"),
         vs(ROUTE + ", corsPolicy: {allowMethods: [FETCH]}")),
    rule("cors-origins", VS, "spec.http[0].corsPolicy.allowOrigins[0]: exactly one",
         vs(ROUTE + ", corsPolicy: {allowOrigins: [{prefix: 'https://'}]}"),
         vs(ROUTE + ", corsPolicy: {allowOrigins: [{}]}")),
    rule("cors-headers", VS, "spec.http[0].corsPolicy.exposeHeaders[0]: header name",
         vs(ROUTE + ", corsPolicy: {allowHeaders: [x-a, '*'], exposeHeaders: [x-b]}"),
         vs(ROUTE + ", corsPolicy: {exposeHeaders: ['x b']}")),
    rule("cors-max-age", VS, "spec.http[0].corsPolicy.maxAge: seconds",
         vs(ROUTE + ", corsPolicy: {maxAge: 24h}"),
         vs(ROUTE + ", corsPolicy: {maxAge: 1.5s}")),
    rule("header-operations", VS, "spec.http[0].headers.request.set.x a: header name",
         vs(ROUTE + ", headers: {request: {set: {x-a: '1'}, remove: [x-b]}}"),
         vs(ROUTE + ", headers: {request: {set: {'x a': '1'}}}")),
    rule("destination-header-operations", VS,
         "spec.http[0].route[0].headers.response.remove[0]: header name",
         vs("route: [{destination: {host: r.shop}, headers: {response: {add: {x-a: '1'}}}}]"),
         vs("route: [{destination: {host: r.shop}, headers: {response: {remove: ['']}}}]")),
    rule("export-to-star-alone", VS, "spec.exportTo: combine",
         vs(top="hosts: [r.shop], exportTo: ['.']"),
         vs(top="hosts: [r.shop], exportTo: ['.', '*']")),
    rule("export-to-namespace", VS, "spec.exportTo[0]: namespace",
         vs(top="hosts: [r.shop], exportTo: [other]"),
         vs(top="hosts: [r.shop], exportTo: [Other_NS]")),
    rule("export-to-duplicate", VS, "spec.exportTo[1]: duplicate",
         vs(top="hosts: [r.shop], exportTo: [other]"),
         vs(top="hosts: [r.shop], exportTo: ['.', shop]")),
    rule("tcp-route-required", VS, "spec.tcp[0].route: required",
         tcp("match: [{port: 27017}], " + TO_A),
         tcp("match: [{port: 27017}]")),
    rule("tcp-subnet", VS, "spec.tcp[0].match[0].destinationSubnets[0]: CIDR",
         tcp("match: [{destinationSubnets: [10.0.0.0/8]}], " + TO_A),
         tcp("match: [{destinationSubnets: [10.0.0.0/33]}], " + TO_A)),
    rule("tcp-weights", VS, "spec.tcp[0].route: 100",
         tcp(WEIGHTED % (50, 50)),
         tcp(WEIGHTED % (50, 40))),
    rule("tls-sni-subset-of-hosts", VS, "spec.tls[0].match[0].sniHosts[0]: not covered",
         tls("'*.example.com'", "match: [{sniHosts: [a.example.com]}], " + TO_A),
         tls("'*.example.com'", "match: [{sniHosts: [a.example.org]}], " + TO_A)),
    rule("tls-sni-required", VS, "spec.tls[0].match[0].sniHosts: SNI host",
         tls("a.example.com", "match: [{sniHosts: [a.example.com]}], " + TO_A),
         tls("a.example.com", "match: [{port: 443}], " + TO_A)),
    rule("tls-match-required", VS, "spec.tls[0].match: match",
         tls("a.example.com", "match: [{sniHosts: [a.example.com]}], " + TO_A),
         tls("a.example.com", TO_A)),
]  # fmt: skip

DESTINATION_RULE_RULES = [
    rule("dr-host", DR, "spec.host: not a valid",
         "{host: '*.shop.svc.cluster.local'}",
         "{host: 'bad host'}"),
    rule("lb-one-of", DR, "spec.trafficPolicy.loadBalancer: only one",
         dr("{loadBalancer: {simple: LEAST_CONN}}"),
         dr("{loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: true}}}")),
    rule("consistent-hash-key", DR, "spec.trafficPolicy.loadBalancer.consistentHash: exactly one",
         dr("{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}"),
         dr("{loadBalancer: {consistentHash: {minimumRingSize: 1024}}}")),
    rule("cookie-ttl", DR, "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl: ttl",
         dr("{loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: 10s}}}}"),
         dr("{loadBalancer: {consistentHash: {httpCookie: {name: u}}}}")),
    rule("cookie-name", DR,
         "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: name",
         dr("{loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: 0s}}}}"),
         dr("{loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}")),
    rule("policy-not-empty", DR, "spec.trafficPolicy: at least one field",
         dr("{tls: {mode: SIMPLE}}"),
         "{host: r.shop, trafficPolicy: {}}"),
    rule("pool-not-empty", DR, "spec.trafficPolicy.connectionPool: at least one field",
         dr("{connectionPool: {tcp: {maxConnections: 0}}}"),
         dr("{connectionPool: {}}")),
    rule("pool-max-connections", DR,
         "spec.trafficPolicy.connectionPool.tcp.maxConnections: negative",
         dr("{connectionPool: {tcp: {maxConnections: 100}}}"),
         dr("{connectionPool: {tcp: {maxConnections: -1}}}")),
    rule("pool-connect-timeout", DR,
         "spec.trafficPolicy.connectionPool.tcp.connectTimeout: at least",
         dr("{connectionPool: {tcp: {connectTimeout: 30ms}}}"),
         dr("{connectionPool: {tcp: {connectTimeout: 0s}}}")),
    rule("pool-keepalive", DR,
         "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.interval: at least",
         dr("{connectionPool: {tcp: {tcpKeepalive: {probes: 3, time: 7200s}}}}"),
         dr("{connectionPool: {tcp: {tcpKeepalive: {interval: 0s}}}}")),
    rule("pool-pending", DR,
         "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: negative",
         dr("{connectionPool: {http: {http1MaxPendingRequests: 1}}}"),
         dr("{connectionPool: {http: {http1MaxPendingRequests: -1}}}")),
    rule("pool-retries", DR, "spec.trafficPolicy.connectionPool.http.maxRetries: negative",
         dr("{connectionPool: {http: {http2MaxRequests: 10, maxRequestsPerConnection: 1}}}"),
         dr("{connectionPool: {http: {maxRetries: -3}}}")),
    rule("pool-idle-timeout", DR, "spec.trafficPolicy.connectionPool.http.idleTimeout: at least",
         dr("{connectionPool: {http: {idleTimeout: 1h}}}"),
         dr("{connectionPool: {http: {idleTimeout: 0s}}}")),
    rule("outlier-errors", DR,
         "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: negative",
         dr("{outlierDetection: {consecutive5xxErrors: 5}}"),
         dr("{outlierDetection: {consecutive5xxErrors: -5}}")),
    rule("outlier-gateway-errors", DR,
         "spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors: negative",
         dr("{outlierDetection: {consecutiveGatewayErrors: 0}}"),
         dr("{outlierDetection: {consecutiveGatewayErrors: -1}}")),
    rule("outlier-interval", DR, "spec.trafficPolicy.outlierDetection.interval: at least",
         dr("{outlierDetection: {interval: 10s}}"),
         dr("{outlierDetection: {interval: 0s}}")),
    rule("outlier-ejection-time", DR,
         "spec.trafficPolicy.outlierDetection.baseEjectionTime: at least",
         dr("{outlierDetection: {baseEjectionTime: 30s}}"),
         dr("{outlierDetection: {baseEjectionTime: -30s}}")),
    rule("outlier-max-ejection", DR,
         "spec.trafficPolicy.outlierDetection.maxEjectionPercent: range",
         dr("{outlierDetection: {maxEjectionPercent: 100}}"),
         dr("{outlierDetection: {maxEjectionPercent: 150}}")),
    rule("outlier-min-health", DR, "spec.trafficPolicy.outlierDetection.minHealthPercent: range",
         dr("{outlierDetection: {minHealthPercent: 0}}"),
         dr("{outlierDetection: {minHealthPercent: -1}}")),
    rule("tls-mutual-cert", DR, "spec.trafficPolicy.tls.clientCertificate: client certificate",
         dr("{tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}}"),
         dr("{tls: {mode: MUTUAL, privateKey: /k.pem}}")),
    rule("tls-mutual-key", DR, "spec.trafficPolicy.tls.privateKey: private key",
         dr("{tls: {mode: ISTIO_MUTUAL, sni: r.shop}}"),
         dr("{tls: {mode: MUTUAL, clientCertificate: /c.pem}}")),
    rule("port-policy-port", DR, "spec.trafficPolicy.portLevelSettings[0].port: port",
         dr("{portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]}"),
         dr("{portLevelSettings: [{tls: {mode: DISABLE}}]}")),
    rule("port-policy-number", DR, "spec.trafficPolicy.portLevelSettings[0].port.number: range",
         dr("{portLevelSettings: [{port: {number: 65535}, tls: {mode: DISABLE}}]}"),
         dr("{portLevelSettings: [{port: {number: 0}, tls: {mode: DISABLE}}]}")),
    rule("port-policy-not-empty", DR,
         "spec.trafficPolicy.portLevelSettings[0]: at least one field",
         dr("{portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}]}"),
         dr("{portLevelSettings: [{port: {number: 80}}]}")),
    rule("subset-names-unique", DR, "spec.subsets[1].name: duplicate",
         "{host: r, subsets: [{name: v1}, {name: v2}]}",
         "{host: r, subsets: [{name: v1}, {name: v1}]}"),
    rule("subset-name-syntax", DR, "spec.subsets[0].name: subset name",
         "{host: r, subsets: [{name: v1-canary}]}",
         "{host: r, subsets: [{name: V1.canary}]}"),
    rule("subset-label-value", DR, "spec.subsets[0].labels.version: label value",
         subset("labels: {version: v1}"),
         subset("labels: {version: 'v 1'}")),
    rule("subset-label-key", DR, "spec.subsets[0].labels.-app: label key",
         subset("labels: {app.kubernetes.io/version: v1}"),
         subset("labels: {'-app': v1}")),
    rule("subset-policy", DR,
         "spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnections: negative",
         subset("trafficPolicy: {loadBalancer: {simple: RANDOM}}"),
         subset("trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}")),
    rule("dr-export-to", DR, "spec.exportTo: combine",
         "{host: r, exportTo: ['*']}",
         "{host: r, exportTo: ['*', other]}"),
]  # fmt: skip

GATEWAY_RULES = [
    rule("gateway-servers", GW, "spec.servers: at least one server",
         gw("{" + HTTP_PORT + ", hosts: ['*']}"),
         "{selector: {istio: ingressgateway}}"),
    rule("server-hosts-required", GW, "spec.servers[0].hosts: at least one host",
         gw("{" + HTTP_PORT + ", hosts: [a.example.com]}"),
         gw("{" + HTTP_PORT + "}")),
    rule("server-host-syntax", GW, "spec.servers[0].hosts[0]: not a valid",
         gw("{" + HTTP_PORT + ", hosts: ['shop/*.example.com', './a.example.com']}"),
         gw("{" + HTTP_PORT + ", hosts: ['shop/a b']}")),
    rule("server-host-namespace", GW, "spec.servers[0].hosts[0]: namespace",
         gw("{" + HTTP_PORT + ", hosts: ['*/a.example.com']}"),
         gw("{" + HTTP_PORT + ", hosts: ['Shop_NS/a.example.com']}")),
    rule("server-port-required", GW, "spec.servers[0].port: required",
         gw("{" + HTTP_PORT + ", hosts: ['*']}"),
         gw("{hosts: ['*']}")),
    rule("server-port-number", GW, "spec.servers[0].port.number: range",
         gw("{port: {number: 65535, name: http, protocol: HTTP}, hosts: ['*']}"),
         gw("{port: {number: 65536, name: http, protocol: HTTP}, hosts: ['*']}")),
    rule("server-protocol", GW, "spec.servers[0].port.protocol: unsupported",
         gw("{port: {number: 80, name: h, protocol: http2}, hosts: ['*']}"),
         gw("{port: {number: 80, name: h, protocol: UDP}, hosts: ['*']}")),
    rule("server-protocol-required", GW, "spec.servers[0].port.protocol: required",
         gw("{port: {number: 27017, name: m, protocol: MONGO}, hosts: ['*']}"),
         gw("{port: {number: 80, name: h}, hosts: ['*']}")),
    rule("server-port-name", GW, "spec.servers[0].port.name: must be set",
         gw("{port: {number: 80, name: h, protocol: GRPC}, hosts: ['*']}"),
         gw("{port: {number: 80, protocol: HTTP}, hosts: ['*']}")),
    rule("server-port-names-unique", GW, "spec.servers[1].port.name: unique",
         gw(server("http", 80) + ", " + server("http2", 81)),
         gw(server("http", 80) + ", " + server("http", 81))),
    rule("https-needs-tls", GW, "spec.servers[0].tls: TLS settings",
         https("tls: {mode: PASSTHROUGH}"),
         https("")),
    rule("tls-on-plain-port", GW, "spec.servers[0].tls: cannot have TLS",
         gw("{" + HTTP_PORT + ", hosts: ['*'], tls: {httpsRedirect: true}}"),
         https("tls: {httpsRedirect: true}", protocol="TCP")),
    rule("simple-tls-cert", GW, "spec.servers[0].tls.serverCertificate: server certificate",
         https("tls: {mode: SIMPLE, credentialName: cert}"),
         https("tls: {mode: SIMPLE, privateKey: /k.pem}")),
    rule("mutual-tls-ca", GW, "spec.servers[0].tls.caCertificates: CA bundle",
         https("tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k, caCertificates: /ca}"),
         https("tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}")),
    rule("istio-mutual-no-certs", GW, "spec.servers[0].tls.privateKey: ISTIO_MUTUAL",
         https("tls: {mode: ISTIO_MUTUAL}", protocol="TLS"),
         https("tls: {mode: ISTIO_MUTUAL, privateKey: /k}", protocol="TLS")),
    rule("server-bind", GW, "spec.servers[0].bind: IP address",
         gw("{" + HTTP_PORT + ", hosts: ['*'], bind: 10.0.0.1}"),
         gw("{" + HTTP_PORT + ", hosts: ['*'], bind: 'not-an-ip'}")),
    rule("gateway-selector", GW, "spec.selector.istio: label value",
         "{selector: {istio: ingress-gateway}, servers: [{" + HTTP_PORT + ", hosts: ['*']}]}",
         "{selector: {istio: 'ingress gateway'}, servers: [{" + HTTP_PORT + ", hosts: ['*']}]}"),
]  # fmt: skip

SERVICE_ENTRY_RULES = [
    rule("se-hosts-required", SE, "spec.hosts: at least one host",
         se("resolution: DNS"),
         "{ports: [{number: 443, name: https, protocol: TLS}]}"),
    rule("se-no-star", SE, "spec.hosts[0]: invalid host",
         se("hosts: ['*.example.com']"),
         se("hosts: ['*']")),
    rule("se-host-syntax", SE, "spec.hosts[0]: not a valid",
         se("hosts: [api.example.com]"),
         se("hosts: [api..example.com]")),
    rule("se-ports-required", SE, "spec.ports: at least one port",
         se("location: MESH_EXTERNAL"),
         "{hosts: [api.example.com]}"),
    rule("se-port-number", SE, "spec.ports[0].number: range",
         se("ports: [{number: 1, name: p, protocol: TCP}]"),
         se("ports: [{number: 0, name: p, protocol: TCP}]")),
    rule("se-port-name", SE, "spec.ports[0].name: port name",
         se("ports: [{number: 80, name: http-web, protocol: HTTP}]"),
         se("ports: [{number: 80, name: HTTP_web, protocol: HTTP}]")),
    rule("se-port-protocol", SE, "spec.ports[0].protocol: unsupported",
         se("ports: [{number: 80, name: http, protocol: grpc-web}]"),
         se("ports: [{number: 80, name: http, protocol: QUIC}]")),
    rule("se-port-names-unique", SE, "spec.ports[1].name: already defined",
         se("ports: [" + port(80, "a") + ", " + port(81, "b") + "]"),
         se("ports: [" + port(80, "a") + ", " + port(81, "a") + "]")),
    rule("se-port-numbers-unique", SE, "spec.ports[1].number: already defined",
         se("ports: [" + port(80, "a") + ", " + port(81, "b") + "]"),
         se("ports: [" + port(80, "a") + ", " + port(80, "b") + "]")),
    rule("se-target-port", SE, "spec.ports[0].targetPort: range",
         se("ports: [{number: 80, name: a, protocol: HTTP, targetPort: 8080}]"),
         se("ports: [{number: 80, name: a, protocol: HTTP, targetPort: 80000}]")),
    rule("se-addresses", SE, "spec.addresses[0]: IP address",
         se("addresses: [10.0.0.0/24, '2001:db8::1']"),
         se("addresses: [10.0.0.300]")),
    rule("se-cidr-needs-none-or-static", SE, "spec.addresses[0]: CIDR",
         se("addresses: [10.0.0.0/24], resolution: STATIC, endpoints: [{address: 10.0.0.1}]"),
         se("addresses: [10.0.0.0/24], resolution: DNS")),
    rule("static-needs-endpoints", SE, "spec.endpoints: endpoints must be provided",
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1}, {address: '::1'}]"),
         se("resolution: STATIC")),
    rule("static-endpoint-ip", SE, "spec.endpoints[0].address: IP address",
         se("resolution: STATIC, endpoints: [{address: 'unix:///var/run/api.sock'}]"),
         se("resolution: STATIC, endpoints: [{address: api.internal}]")),
    rule("none-forbids-endpoints", SE, "spec.endpoints: NONE",
         se("resolution: NONE, addresses: [10.0.0.0/8]"),
         se("resolution: NONE, endpoints: [{address: 10.0.0.1}]")),
    rule("dns-forbids-wildcard-hosts", SE, "spec.hosts[0]: wildcard",
         se("hosts: ['*.example.com'], resolution: DNS, endpoints: [{address: proxy.example.com}]"),
         se("hosts: ['*.example.com'], resolution: DNS")),
    rule("dns-endpoint-address", SE, "spec.endpoints[0].address: not a valid",
         se("resolution: DNS, endpoints: [{address: us.api.example.com}, {address: 1.2.3.4}]"),
         se("resolution: DNS, endpoints: [{address: 'bad_host!'}]")),
    rule("endpoint-port-name", SE, "spec.endpoints[0].ports.grpc: not defined",
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {https: 8443}}]"),
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {grpc: 8443}}]")),
    rule("endpoint-port-number", SE, "spec.endpoints[0].ports.https: range",
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {https: 8443}}]"),
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {https: 0}}]")),
    rule("endpoint-labels", SE, "spec.endpoints[0].labels.version: label value",
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, labels: {version: v1}}]"),
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, labels: {version: 'v1?'}}]")),
    rule("endpoint-weight", SE, "spec.endpoints[0].weight: negative",
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, weight: 2}]"),
         se("resolution: STATIC, endpoints: [{address: 10.0.0.1, weight: -2}]")),
    rule("se-workload-selector", SE, "spec.workloadSelector.labels.app: label value",
         se("resolution: STATIC, workloadSelector: {labels: {app: api}}"),
         se("resolution: STATIC, workloadSelector: {labels: {app: 'a/b'}}")),
    rule("se-selector-or-endpoints", SE, "spec.endpoints: only one",
         se("resolution: STATIC, workloadSelector: {labels: {app: api}}"),
         se("resolution: STATIC, workloadSelector: {}, endpoints: [{address: 10.0.0.1}]")),
    rule("se-multiple-hosts-need-http-or-tls", SE, "spec.ports[0].protocol: multiple hosts",
         se("hosts: [a.com, b.com], resolution: DNS, ports: [" + port(443, "tls", "TLS") + "]"),
         se("hosts: [a.com, b.com], resolution: DNS, ports: [" + port(5432, "pg", "TCP") + "]")),
    rule("se-export-to-private", SE, "spec.exportTo: combine",
         se("exportTo: ['~']"),
         se("exportTo: ['~', '.']")),
]  # fmt: skip

SIDECAR_RULES = [
    rule("sidecar-not-empty", SC, "spec: empty",
         "{outboundTrafficPolicy: {mode: ALLOW_ANY}}",
         "{}"),
    rule("egress-host-form", SC, "spec.egress[0].hosts[0]: namespace/dnsName",
         sc("{hosts: ['./*', 'istio-system/*', '*/a.example.com', '~/*']}"),
         sc("{hosts: [ratings.shop]}")),
    rule("egress-host-namespace", SC, "spec.egress[0].hosts[0]: namespace",
         sc("{hosts: ['shop/*.example.com']}"),
         sc("{hosts: ['Shop_NS/*']}")),
    rule("egress-host-name", SC, "spec.egress[0].hosts[0]: not a valid",
         sc("{hosts: ['shop/ratings']}"),
         sc("{hosts: ['shop/bad_host']}")),
    rule("egress-hosts-required", SC, "spec.egress[0].hosts: at least one host",
         sc("{port: {number: 9080, protocol: HTTP, name: http}, hosts: ['./*']}"),
         sc("{port: {number: 9080, protocol: HTTP, name: http}}")),
    rule("egress-catch-all-last", SC, "spec.egress[0].port: last",
         sc("{port: {number: 9080}, hosts: ['./*']}, {hosts: ['*/*']}"),
         sc("{hosts: ['*/*']}, {port: {number: 9080}, hosts: ['./*']}")),
    rule("egress-port-number", SC, "spec.egress[0].port.number: range",
         sc("{port: {number: 9080}, hosts: ['./*']}"),
         sc("{port: {number: 70000}, hosts: ['./*']}")),
    rule("egress-port-protocol", SC, "spec.egress[0].port.protocol: unsupported",
         sc("{port: {number: 3306, protocol: MYSQL}, hosts: ['./*']}"),
         sc("{port: {number: 3306, protocol: SQL}, hosts: ['./*']}")),
    rule("egress-port-name", SC, "spec.egress[0].port.name: port name",
         sc("{port: {number: 80, name: web}, hosts: ['./*']}"),
         sc("{port: {number: 80, name: Web_1}, hosts: ['./*']}")),
    rule("egress-ports-unique", SC, "spec.egress[1].port.number: unique",
         sc("{port: {number: 80}, hosts: ['./*']}, {port: {number: 81}, hosts: ['./*']}"),
         sc("{port: {number: 80}, hosts: ['./*']}, {port: {number: 80}, hosts: ['./*']}")),
    rule("egress-socket-bind", SC, "spec.egress[0].bind: unix",
         sc("{port: {number: 0}, " + SOCKET + ", hosts: ['./*']}"),
         sc("{port: {number: 0}, bind: 127.0.0.1, hosts: ['./*']}")),
    rule("egress-socket-capture", SC, "spec.egress[0].captureMode: DEFAULT or NONE",
         sc("{port: {number: 0}, " + SOCKET + ", captureMode: NONE, hosts: ['./*']}"),
         sc("{port: {number: 0}, " + SOCKET + ", captureMode: IPTABLES, hosts: ['./*']}")),
    rule("egress-bind", SC, "spec.egress[0].bind: IP address",
         sc("{port: {number: 80}, bind: '::1', hosts: ['./*']}"),
         sc("{port: {number: 80}, bind: localhost, hosts: ['./*']}")),
    rule("ingress-port-required", SC, "spec.ingress[0].port: required",
         ingress("{port: {number: 80, protocol: HTTP, name: web}, defaultEndpoint: '[::]:80'}"),
         ingress("{defaultEndpoint: '127.0.0.1:8080'}")),
    rule("ingress-default-endpoint-required", SC, "spec.ingress[0].defaultEndpoint: required",
         ingress(listener(9080, "unix:///var/run/app.sock")),
         ingress("{port: {number: 9080}}")),
    rule("ingress-default-endpoint-local", SC, "spec.ingress[0].defaultEndpoint: 127.0.0.1",
         ingress(listener(9080, "0.0.0.0:8080")),
         ingress(listener(9080, "10.0.0.1:8080"))),
    rule("ingress-default-endpoint-port", SC, "spec.ingress[0].defaultEndpoint: range",
         ingress(listener(9080, "[::1]:8080")),
         ingress(listener(9080, "127.0.0.1:99999"))),
    rule("ingress-ports-unique", SC, "spec.ingress[1].port.number: unique",
         ingress(listener(9080, "127.0.0.1:1"), listener(9081, "127.0.0.1:2")),
         ingress(listener(9080, "127.0.0.1:1"), listener(9080, "127.0.0.1:2"))),
    rule("sidecar-workload-selector", SC, "spec.workloadSelector.labels.app*: label key",
         "{workloadSelector: {labels: {app: ratings}}, egress: [{hosts: ['./*']}]}",
         "{workloadSelector: {labels: {'app*': ratings}}, egress: [{hosts: ['./*']}]}"),
]  # fmt: skip

RULES = (
    VIRTUAL_SERVICE_RULES
    + DESTINATION_RULE_RULES
    + GATEWAY_RULES
    + SERVICE_ENTRY_RULES
    + SIDECAR_RULES
)


@pytest.mark.parametrize(("kind", "valid", "invalid", "path", "word"), RULES)
def test_valid_case_has_no_errors(
    kind: str, valid: str, invalid: str, path: str, word: str
) -> None:
    found = _issues(kind, valid)
    assert not has_errors(found), [str(issue) for issue in found]


@pytest.mark.parametrize(("kind", "valid", "invalid", "path", "word"), RULES)
def test_invalid_case_is_an_error_at_its_path(
    kind: str, valid: str, invalid: str, path: str, word: str
) -> None:
    found = _issues(kind, invalid)
    assert any(
        issue.severity is Severity.ERROR and issue.path == path and word in issue.message
        for issue in found
    ), [str(issue) for issue in found]


WARNINGS = [
    pytest.param(DR, dr("{outlierDetection: {consecutiveErrors: 5}}"),
                 "spec.trafficPolicy.outlierDetection.consecutiveErrors", "deprecated",
                 id="consecutive-errors"),
    pytest.param(VS, vs(ROUTE + ", corsPolicy: {allowOrigin: ['*']}"),
                 "spec.http[0].corsPolicy.allowOrigin", "deprecated", id="allow-origin"),
    pytest.param(SC, "{workloadSelector: {}, egress: [{hosts: ['./*']}]}",
                 "spec.workloadSelector", "every workload", id="empty-selector"),
    pytest.param(GW,
                 gw("{port: {number: 80, name: h, protocol: HTTP, targetPort: 8080}, hosts: [a]}"),
                 "spec.servers[0].port.targetPort", "no effect", id="gateway-target-port"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "spec", "path", "word"), WARNINGS)
def test_questionable_but_legal_fields_only_warn(
    kind: str, spec: str, path: str, word: str
) -> None:
    found = _issues(kind, spec)
    assert not has_errors(found), [str(issue) for issue in found]
    assert any(
        issue.severity is Severity.WARNING and issue.path == path and word in issue.message
        for issue in found
    ), [str(issue) for issue in found]


def test_every_error_is_reported_not_just_the_first() -> None:
    spec = vs(WEIGHTED % (60, 30) + ", timeout: 0s, retries: {attempts: -1}")
    paths = {issue.path for issue in _issues(VS, spec)}
    assert {"spec.http[0].route", "spec.http[0].timeout", "spec.http[0].retries.attempts"} <= paths


def test_issue_names_file_object_and_field() -> None:
    (issue,) = _issues(VS, vs(WEIGHTED % (60, 30)))
    assert str(issue) == (
        "test.yaml:1: VirtualService shop/t: spec.http[0].route: total destination weight 90 != 100"
    )
