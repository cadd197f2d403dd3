"""Pilot: turns mesh config and the service registry into Envoy config over xDS."""
