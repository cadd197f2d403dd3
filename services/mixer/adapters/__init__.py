"""Mixer's edges: Envoy-facing gRPC servicers, attribute bags from Envoy's messages, Redis."""
