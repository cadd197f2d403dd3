"""Mixer's pure logic: config compilation, rule dispatch, adapters, caches, batching.

Nothing here imports a transport: the Envoy-facing servers and Redis live in
``services.mixer.adapters`` and reach the core through :mod:`services.mixer.ports`.
"""
