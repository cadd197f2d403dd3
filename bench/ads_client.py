"""An ADS client that behaves like Envoy, for Pilot's tests and the push benchmarks.

:class:`SimulatedProxy` is one Envoy's ADS stream, state of the world or delta. Like Envoy
it subscribes to every cluster and listener, then to the EDS assignments of the EDS
clusters it received and the RDS route configurations its HTTP connection managers name,
and ACKs every response (or NACKs it when ``reject`` returns an error message, keeping what
it accepted before; SotW CDS and LDS responses replace what it holds, EDS and RDS ones add
to it, as in Envoy). When the stream fails it reconnects with backoff and resumes the way
Envoy does (SotW: ``version_info`` of what it holds; delta: ``initial_resource_versions``).
As Envoy, it asks for listeners only once the clusters and their endpoints arrived. It
records every accepted response (:attr:`SimulatedProxy.history`, with monotonic
receive times) and every stream error (:attr:`SimulatedProxy.errors`).

:class:`ProxyFleet` runs many simulated proxies against one Pilot and measures, per proxy,
when a given snapshot version arrived (:meth:`ProxyFleet.wait_for_version`).

Task safety: each proxy owns one background task and one gRPC channel, on the event loop
that started it; read its state from that loop. ``stop()`` is idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_DEPENDENT = {CLUSTER_TYPE: ENDPOINT_TYPE, LISTENER_TYPE: ROUTE_TYPE}

RejectFn = Callable[[str, Sequence[any_pb2.Any]], str | None]
"""``reject(type_url, resources)``: an error message to NACK the response, or None."""


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted response: its type, version, nonce, size and monotonic receive time."""

    type_url: str
    version: str
    nonce: str
    resources: int
    at: float


class SimulatedProxy:
    """One Envoy-like ADS stream to ``target`` (see the module docstring)."""

    def __init__(
        self,
        *,
        target: str,
        node_id: str,
        metadata: Mapping[str, Any] | None = None,
        delta: bool = False,
        reject: RejectFn | None = None,
        reconnect: bool = True,
        max_backoff: float = 1.0,
    ) -> None:
        self.target = target
        self.node_id = node_id
        self.delta = delta
        self.reject = reject
        self._reconnect = reconnect
        self._max_backoff = max_backoff
        self._node = base_pb2.Node(id=node_id)
        self._node.metadata.update(dict(metadata or {}))
        self.resources: dict[str, dict[str, any_pb2.Any]] = {}
        self.resource_versions: dict[str, dict[str, str]] = {}
        self.versions: dict[str, str] = {}
        self.names: dict[str, set[str]] = {ENDPOINT_TYPE: set(), ROUTE_TYPE: set()}
        self.history: list[Received] = []
        self.errors: list[tuple[str, str]] = []
        self.streams = 0
        self._nonces: dict[str, str] = {}
        self._fresh: set[str] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        """Connect in the background (returns at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ads-client {self.node_id}")

    async def stop(self) -> None:
        """Close the stream and the channel. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    @property
    def done(self) -> bool:
        """True once the background task ended (a failed stream with ``reconnect=False``)."""
        return self._task is not None and self._task.done()

    def resource(self, type_url: str, name: str, message: Any) -> Any:
        """Unpack the held resource ``name`` of ``type_url`` into ``message`` and return it."""
        self.resources[type_url][name].Unpack(message)
        return message

    async def wait_for(
        self,
        predicate: Callable[[SimulatedProxy], bool],
        timeout: float = 10.0,  # noqa: ASYNC109  (the error says what was held)
    ) -> None:
        """Wait until ``predicate(self)`` holds; :class:`TimeoutError` after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    changed = self._changed
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"{self.node_id}: condition not met in {timeout} s; versions {self.versions}, "
                f"errors {self.errors}"
            ) from None

    async def wait_for_version(
        self,
        version: str,
        type_urls: Iterable[str],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> float:
        """Wait until every type in ``type_urls`` was accepted at ``version``.

        Returns the monotonic time the last of them first arrived at that version.
        """
        wanted = tuple(type_urls)
        await self.wait_for(lambda p: all(p.versions.get(t) == version for t in wanted), timeout)
        return max(
            min(r.at for r in self.history if r.type_url == t and r.version == version)
            for t in wanted
        )

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._stream()
                self.errors.append(("OK", "the server closed the stream"))
            except grpc.aio.AioRpcError as exc:
                self.errors.append((exc.code().name, exc.details() or ""))
            self._notify()
            if not self._reconnect:
                return
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self._max_backoff)

    async def _stream(self) -> None:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        call = stub.DeltaAggregatedResources() if self.delta else stub.StreamAggregatedResources()
        self.streams += 1
        self._nonces = {}
        self._fresh = set()
        await call.write(self._subscribe(CLUSTER_TYPE))
        if self.names[ENDPOINT_TYPE]:
            await call.write(self._subscribe(ENDPOINT_TYPE))
        listeners_requested = False
        while (response := await call.read()) is not grpc.aio.EOF:
            for request in self._answer(response):
                await call.write(request)
            if not listeners_requested and self._clusters_warm():
                # Like Envoy: listeners are fetched once the clusters (and their EDS) are in.
                listeners_requested = True
                await call.write(self._subscribe(LISTENER_TYPE))
                if self.names[ROUTE_TYPE]:
                    await call.write(self._subscribe(ROUTE_TYPE))
            self._notify()

    def _clusters_warm(self) -> bool:
        return CLUSTER_TYPE in self._fresh and (
            not self.names[ENDPOINT_TYPE] or ENDPOINT_TYPE in self._fresh
        )

    def _subscribe(self, type_url: str) -> Any:
        names = sorted(self.names.get(type_url, ()))
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(
                node=self._node,
                type_url=type_url,
                resource_names_subscribe=names,
                initial_resource_versions=self.resource_versions.get(type_url, {}),
            )
        return discovery_pb2.DiscoveryRequest(
            node=self._node,
            type_url=type_url,
            version_info=self.versions.get(type_url, ""),
            resource_names=names,
            response_nonce=self._nonces.get(type_url, ""),
        )

    def _answer(self, response: Any) -> list[Any]:
        """Apply (or reject) one response; the ACK/NACK and subscription updates to send."""
        type_url = response.type_url
        self._nonces[type_url] = response.nonce
        packed = [r.resource for r in response.resources] if self.delta else response.resources
        error = None if self.reject is None else self.reject(type_url, packed)
        if error is not None:
            return [self._reply(type_url, response.nonce, error)]
        self._accept(response)
        replies = [self._reply(type_url, response.nonce, None)]
        dependent = _DEPENDENT.get(type_url)
        if dependent is not None:
            wanted = _dependent_names(type_url, self.resources[type_url].values())
            update = self._resubscribe(dependent, wanted)
            if update is not None:
                replies.append(update)
        return replies

    def _accept(self, response: Any) -> None:
        type_url = response.type_url
        held = self.resources.setdefault(type_url, {})
        versions = self.resource_versions.setdefault(type_url, {})
        if self.delta:
            version = response.system_version_info
            for resource in response.resources:
                held[resource.name] = resource.resource
                versions[resource.name] = resource.version
            for name in response.removed_resources:
                held.pop(name, None)
                versions.pop(name, None)
        else:
            version = response.version_info
            if type_url in (CLUSTER_TYPE, LISTENER_TYPE):  # EDS and RDS responses add up
                held.clear()
            held.update({_name(type_url, packed): packed for packed in response.resources})
        self.versions[type_url] = version
        self._fresh.add(type_url)
        self.history.append(
            Received(type_url, version, response.nonce, len(response.resources), time.monotonic())
        )

    def _reply(self, type_url: str, nonce: str, error: str | None) -> Any:
        detail = (
            None
            if error is None
            else status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=error)
        )
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(
                node=self._node, type_url=type_url, response_nonce=nonce, error_detail=detail
            )
        return discovery_pb2.DiscoveryRequest(
            node=self._node,
            type_url=type_url,
            version_info=self.versions.get(type_url, ""),
            resource_names=sorted(self.names.get(type_url, ())),
            response_nonce=nonce,
            error_detail=detail,
        )

    def _resubscribe(self, type_url: str, wanted: set[str]) -> Any | None:
        current = self.names[type_url]
        if wanted == current:
            return None
        added, gone = wanted - current, current - wanted
        self.names[type_url] = wanted
        for name in gone:
            self.resources.get(type_url, {}).pop(name, None)
            self.resource_versions.get(type_url, {}).pop(name, None)
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(
                node=self._node,
                type_url=type_url,
                resource_names_subscribe=sorted(added),
                resource_names_unsubscribe=sorted(gone),
            )
        return self._subscribe(type_url)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class ProxyFleet:
    """Many :class:`SimulatedProxy` streams against one Pilot."""

    def __init__(self, proxies: Sequence[SimulatedProxy]) -> None:
        self.proxies = tuple(proxies)

    @classmethod
    def sidecars(
        cls,
        *,
        target: str,
        count: int,
        delta: bool = False,
        namespace: str = "default",
        metadata: Callable[[int], Mapping[str, Any]] | None = None,
    ) -> ProxyFleet:
        """``count`` sidecars ``sidecar~127.0.0.1~load-<i>.<namespace>~...`` of one fleet."""
        return cls(
            [
                SimulatedProxy(
                    target=target,
                    node_id=(
                        f"sidecar~127.0.0.1~load-{index}.{namespace}~{namespace}.svc.cluster.local"
                    ),
                    metadata=None if metadata is None else metadata(index),
                    delta=delta,
                )
                for index in range(count)
            ]
        )

    async def start(self) -> None:
        """Start every proxy (each connects in the background)."""
        for proxy in self.proxies:
            await proxy.start()

    async def stop(self) -> None:
        """Stop every proxy. Idempotent."""
        await asyncio.gather(*(proxy.stop() for proxy in self.proxies))

    async def wait_for_version(
        self,
        version: str,
        type_urls: Iterable[str],
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> list[float]:
        """Per proxy, the monotonic time ``version`` of all ``type_urls`` arrived."""
        wanted = tuple(type_urls)
        return list(
            await asyncio.gather(
                *(proxy.wait_for_version(version, wanted, timeout) for proxy in self.proxies)
            )
        )


def _name(type_url: str, packed: any_pb2.Any) -> str:
    """The name of a packed resource."""
    return _describe(type_url, packed.value)[0]


def _dependent_names(type_url: str, packed: Iterable[any_pb2.Any]) -> set[str]:
    """EDS cluster names of clusters, or RDS route names of listeners' HCMs."""
    return {name for item in packed for name in _describe(type_url, item.value)[1]}


@functools.lru_cache(maxsize=1 << 16)
def _describe(type_url: str, value: bytes) -> tuple[str, frozenset[str]]:
    """A resource's name and what it makes a client subscribe to (EDS or RDS names).

    Cached by content: a fleet of simulated proxies receives the same resources, and
    unpacking them is most of the client's work.
    """
    if type_url == ENDPOINT_TYPE:
        return str(endpoint_pb2.ClusterLoadAssignment.FromString(value).cluster_name), frozenset()
    if type_url == CLUSTER_TYPE:
        cluster = cluster_pb2.Cluster.FromString(value)
        eds = cluster.type == cluster_pb2.Cluster.EDS
        return str(cluster.name), frozenset({cluster.name} if eds else ())
    if type_url == ROUTE_TYPE:
        return str(route_pb2.RouteConfiguration.FromString(value).name), frozenset()
    listener = listener_pb2.Listener.FromString(value)
    routes: set[str] = set()
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            manager = http_connection_manager_pb2.HttpConnectionManager()
            if network_filter.typed_config.Unpack(manager) and manager.HasField("rds"):
                routes.add(manager.rds.route_config_name)
    return str(listener.name), frozenset(routes)
