"""The agent that runs beside each Envoy: bootstrap, SDS, rotation, supervision.

Not built yet (issue 3)."""
