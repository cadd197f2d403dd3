"""PLACEHOLDER: spec models for security kinds (being written)."""

from shared.config.base import SpecModel


class AuthorizationPolicySpec(SpecModel):
    """Placeholder."""


class PeerAuthenticationSpec(SpecModel):
    """Placeholder."""
