"""PLACEHOLDER: spec models for networking kinds (being written)."""

from shared.config.base import SpecModel


class VirtualServiceSpec(SpecModel):
    """Placeholder."""


class DestinationRuleSpec(SpecModel):
    """Placeholder."""


class GatewaySpec(SpecModel):
    """Placeholder."""


class ServiceEntrySpec(SpecModel):
    """Placeholder."""


class SidecarSpec(SpecModel):
    """Placeholder."""
