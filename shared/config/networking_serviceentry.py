"""ServiceEntry (networking.istio.io/v1alpha3): adds a service to the mesh's registry.

In splitmesh's local mode ServiceEntries are the registry itself. Field names follow
Istio's API reference. Immutable values, safe to share between tasks; Galley's
validation checks hosts, addresses, ports and the resolution rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from shared.config.base import SpecModel
from shared.config.networking_types import Port, WorkloadSelector


class WorkloadEntry(SpecModel):
    """One endpoint of the service: an address, port overrides and labels."""

    address: str
    ports: Mapping[str, int] = Field(default_factory=dict)
    labels: Mapping[str, str] = Field(default_factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: int | None = None
    service_account: str | None = None


class ServiceEntrySpec(SpecModel):
    """A service: its hosts, virtual addresses, ports and how endpoints are found."""

    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] = "MESH_EXTERNAL"
    resolution: Literal["NONE", "STATIC", "DNS"] = "NONE"
    endpoints: tuple[WorkloadEntry, ...] = ()
    workload_selector: WorkloadSelector | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()
