"""Citadel: the mesh certificate authority.

Not built yet (issue 4)."""
