"""The agent that runs beside each Envoy: bootstrap, Envoy supervision (SDS and certificate
rotation join with Citadel).

``python -m sidecar`` runs it; :func:`sidecar.agent.build_agent` wires it. It imports no
service: what it shares with Pilot is the node id and metadata wire contract
(:mod:`sidecar.node`)."""
