"""PLACEHOLDER: spec models for mesh kinds (being written)."""

from shared.config.base import SpecModel


class MeshConfigSpec(SpecModel):
    """Placeholder."""
