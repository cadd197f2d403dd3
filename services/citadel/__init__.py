"""Citadel: the mesh certificate authority (issues SPIFFE workload certificates)."""
