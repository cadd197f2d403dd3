"""Spec models of networking.istio.io/v1alpha3: the five kinds Pilot turns into Envoy config.

The models live in one module per kind (``networking_<kind>.py``, shared messages in
``networking_types.py``); this module re-exports the five spec classes the kind table
uses. Models are immutable pydantic values with Istio's camelCase field names; unknown
fields are rejected at parse time, Istio's semantic rules are Galley's validation.
"""

from shared.config.networking_destinationrule import DestinationRuleSpec
from shared.config.networking_gateway import GatewaySpec
from shared.config.networking_serviceentry import ServiceEntrySpec
from shared.config.networking_sidecar import SidecarSpec
from shared.config.networking_virtualservice import VirtualServiceSpec

__all__ = [
    "DestinationRuleSpec",
    "GatewaySpec",
    "ServiceEntrySpec",
    "SidecarSpec",
    "VirtualServiceSpec",
]
