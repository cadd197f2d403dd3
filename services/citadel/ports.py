"""The narrow interfaces Citadel's core consumes.

- :class:`RootStore` keeps the self-signed CA's roots across restarts: on disk today
  (``adapters.root_store``; private keys 0600), a Kubernetes Secret later.
"""

from __future__ import annotations

from typing import Protocol

from services.citadel.core.material import RootSet


class RootStore(Protocol):
    """Where the self-signed roots live. Called from the event loop thread only."""

    def load(self) -> RootSet | None:
        """The saved roots, or None on first start.

        Raise :class:`~services.citadel.core.errors.CaConfigError` when something is saved
        but unusable (a missing or corrupt key): Citadel must not silently make a new root.
        """
        ...

    def save(self, roots: RootSet) -> None:
        """Replace the saved roots with ``roots``, atomically (a crash leaves old or new)."""
        ...
