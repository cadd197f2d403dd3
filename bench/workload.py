"""Generated Istio configuration for the benchmarks: realistic objects, files and trees.

:func:`generate` yields the documents of a synthetic mesh, deterministically from a seed:
namespaces of ten applications, each namespace with a Gateway, a PeerAuthentication and
a Sidecar; each application with a ServiceEntry (its endpoints), a DestinationRule
(2-3 subsets, a traffic policy), a VirtualService (header match, weighted canary,
retries, timeout, sometimes a fault) and an AuthorizationPolicy; every other application
with an Istio 1.4 Mixer quota (handler, instance, rule); plus one MeshConfig. The shapes
follow ``examples/mesh``. Every object is valid and the whole set analyses cleanly
(references resolve, no host is claimed twice), whatever the count: objects of one
application come in dependency order, so cutting the stream short leaves no dangling
reference.

:func:`config_files` groups the objects into files (one per application, one per
namespace for the shared objects); :func:`render` makes a file's YAML text;
:func:`write_tree` writes files below a directory (atomically, like an editor saving).
:func:`retimed` changes one VirtualService of a file so its version changes.

Pure functions over fresh values (no shared state); only :func:`write_tree` touches the
file system, raising :class:`OSError` as it comes.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

APPS_PER_NAMESPACE = 10
_NETWORKING = "networking.istio.io/v1alpha3"
_SECURITY = "security.istio.io/v1beta1"
_POLICY = "config.istio.io/v1alpha2"


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """One YAML file of the tree: its path relative to the root and its documents."""

    path: str
    documents: tuple[Document, ...]


def generate(count: int, *, seed: int = 0) -> list[Document]:
    """The first ``count`` documents of the synthetic mesh (see the module docstring)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return [document for _, document in itertools.islice(_stream(seed), count)]


def config_files(count: int, *, seed: int = 0) -> list[ConfigFile]:
    """The first ``count`` documents grouped into files, in generation order."""
    groups: dict[str, list[Document]] = {}
    for path, document in itertools.islice(_stream(seed), count):
        groups.setdefault(path, []).append(document)
    return [ConfigFile(path, tuple(documents)) for path, documents in groups.items()]


def render(file: ConfigFile) -> str:
    """The file's multi-document YAML text (block style, keys in Istio's order)."""
    return yaml.safe_dump_all(file.documents, sort_keys=False, default_flow_style=False)


def write_tree(root: Path, files: Sequence[ConfigFile]) -> None:
    """Write every file below ``root`` (made if missing) via a rename, as an editor does."""
    for file in files:
        write_file(root, file.path, render(file))


def write_file(root: Path, relative: str, text: str) -> None:
    """Write ``text`` to ``root/relative`` atomically: a hidden temporary, then a rename."""
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text)
    partial.replace(target)


def retimed(file: ConfigFile, millis: int) -> tuple[ConfigFile, str]:
    """``file`` with its first VirtualService's default-route timeout set to ``millis`` ms.

    Returns the new file and the changed object's ``namespace/name``; raises
    :class:`ValueError` if the file holds no VirtualService.
    """
    documents = [copy.deepcopy(document) for document in file.documents]
    for document in documents:
        if document["kind"] == "VirtualService":
            document["spec"]["http"][-1]["timeout"] = f"{millis}ms"
            meta = document["metadata"]
            return ConfigFile(file.path, tuple(documents)), f"{meta['namespace']}/{meta['name']}"
    raise ValueError(f"{file.path} holds no VirtualService")


def _stream(seed: int) -> Iterator[tuple[str, Document]]:
    """(file path, document) pairs, endlessly, in dependency order."""
    rng = random.Random(seed)
    yield "istio-system/mesh.yaml", _mesh_config()
    for index in itertools.count():
        namespace = f"ns-{index:04d}"
        shared = f"{namespace}/namespace.yaml"
        yield shared, _gateway(namespace)
        yield shared, _peer_authentication(namespace, rng)
        yield shared, _sidecar(namespace)
        for number in range(APPS_PER_NAMESPACE):
            app = _App(namespace, f"app-{number:02d}", subsets=rng.randint(2, 3))
            path = f"{namespace}/{app.name}.yaml"
            yield path, _service_entry(app, number, rng)
            yield path, _destination_rule(app, rng)
            yield path, _virtual_service(app, with_gateway=number == 0, rng=rng)
            yield path, _authorization_policy(app, rng)
            if number % 2 == 0:
                yield from ((path, document) for document in _mixer_quota(app, rng))


@dataclass(frozen=True, slots=True)
class _App:
    namespace: str
    name: str
    subsets: int

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def versions(self) -> list[str]:
        return [f"v{number}" for number in range(1, self.subsets + 1)]


def _object(api_version: str, kind: str, name: str, namespace: str, spec: Document) -> Document:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _mesh_config() -> Document:
    spec = {
        "trustDomain": "cluster.local",
        "rootNamespace": "istio-system",
        "enableAutoMtls": True,
        "accessLogEncoding": "JSON",
        "connectTimeout": "10s",
    }
    return _object("mesh.istio.io/v1alpha1", "MeshConfig", "mesh", "istio-system", spec)


def _gateway(namespace: str) -> Document:
    spec = {
        "selector": {"istio": "ingressgateway"},
        "servers": [
            {
                "port": {"number": 8080, "name": "http", "protocol": "HTTP"},
                "hosts": [f"{namespace}.example.com"],
            }
        ],
    }
    return _object(_NETWORKING, "Gateway", "ingress", namespace, spec)


def _peer_authentication(namespace: str, rng: random.Random) -> Document:
    spec = {"mtls": {"mode": rng.choice(["STRICT", "PERMISSIVE"])}}
    return _object(_SECURITY, "PeerAuthentication", "default", namespace, spec)


def _sidecar(namespace: str) -> Document:
    spec = {"egress": [{"hosts": ["./*", "istio-system/*"]}]}
    return _object(_NETWORKING, "Sidecar", "default", namespace, spec)


def _service_entry(app: _App, number: int, rng: random.Random) -> Document:
    endpoints = [
        {
            "address": f"10.{number}.{index}.{rng.randint(1, 254)}",
            "ports": {"http": 8080},
            "labels": {"app": app.name, "version": version},
        }
        for index, version in enumerate(app.versions())
    ]
    spec = {
        "hosts": [app.host],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}],
        "endpoints": endpoints,
    }
    return _object(_NETWORKING, "ServiceEntry", app.name, app.namespace, spec)


def _destination_rule(app: _App, rng: random.Random) -> Document:
    spec = {
        "host": app.host,
        "trafficPolicy": {
            "loadBalancer": {"simple": rng.choice(["ROUND_ROBIN", "LEAST_CONN", "RANDOM"])},
            "connectionPool": {
                "http": {
                    "http1MaxPendingRequests": rng.choice([64, 100, 256]),
                    "maxRequestsPerConnection": rng.choice([10, 100]),
                }
            },
            "outlierDetection": {
                "consecutive5xxErrors": rng.randint(3, 7),
                "interval": "10s",
                "baseEjectionTime": "30s",
            },
        },
        "subsets": [
            {"name": version, "labels": {"version": version}} for version in app.versions()
        ],
    }
    return _object(_NETWORKING, "DestinationRule", app.name, app.namespace, spec)


def _virtual_service(app: _App, *, with_gateway: bool, rng: random.Random) -> Document:
    versions = app.versions()
    weights = _split(100, len(versions), rng)
    testers: Document = {
        "name": "testers",
        "match": [{"headers": {"x-user": {"exact": "tester"}}}],
        "route": [{"destination": {"host": app.host, "subset": versions[-1]}}],
    }
    if rng.random() < 0.3:
        testers["fault"] = {"delay": {"fixedDelay": "200ms", "percentage": {"value": 10}}}
    canary = {
        "name": "canary",
        "route": [
            {"destination": {"host": app.host, "subset": version}, "weight": weight}
            for version, weight in zip(versions, weights, strict=True)
        ],
        "retries": {"attempts": rng.randint(1, 3), "perTryTimeout": "500ms", "retryOn": "5xx"},
        "timeout": f"{rng.randint(1, 5)}s",
    }
    spec: Document = {"hosts": [app.host], "http": [testers, canary]}
    if with_gateway:
        spec["hosts"] = [f"{app.namespace}.example.com", app.host]
        spec["gateways"] = ["ingress", "mesh"]
    return _object(_NETWORKING, "VirtualService", app.name, app.namespace, spec)


def _authorization_policy(app: _App, rng: random.Random) -> Document:
    caller = f"cluster.local/ns/{app.namespace}/sa/app-{rng.randint(0, 9):02d}"
    spec = {
        "selector": {"matchLabels": {"app": app.name}},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"principals": [caller]}}],
                "to": [{"operation": {"methods": ["GET", "POST"], "paths": [f"/{app.name}/*"]}}],
            }
        ],
    }
    return _object(_SECURITY, "AuthorizationPolicy", app.name, app.namespace, spec)


def _mixer_quota(app: _App, rng: random.Random) -> list[Document]:
    name = f"{app.name}-quota"
    handler = {
        "compiledAdapter": "memquota",
        "params": {
            "quotas": [
                {
                    "name": f"{name}.instance.{app.namespace}",
                    "maxAmount": rng.choice([50, 100, 500]),
                    "validDuration": "1s",
                }
            ]
        },
    }
    instance = {
        "compiledTemplate": "quota",
        "params": {"dimensions": {"source": 'source.workload.name | "unknown"'}},
    }
    rule = {
        "match": f'destination.service.host == "{app.host}"',
        "actions": [{"handler": name, "instances": [name]}],
    }
    return [
        _object(_POLICY, "handler", name, app.namespace, handler),
        _object(_POLICY, "instance", name, app.namespace, instance),
        _object(_POLICY, "rule", name, app.namespace, rule),
    ]


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``parts`` positive integers summing to ``total``, mostly to the first part."""
    rest = [rng.randint(1, total // (parts * 2)) for _ in range(parts - 1)]
    return [total - sum(rest), *rest]
