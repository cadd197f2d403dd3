"""PLACEHOLDER: spec models for policy kinds (being written)."""

from shared.config.base import SpecModel


class HandlerSpec(SpecModel):
    """Placeholder."""


class InstanceSpec(SpecModel):
    """Placeholder."""


class RuleSpec(SpecModel):
    """Placeholder."""
