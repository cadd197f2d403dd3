"""Pilot's xDS server core: ADS connections (SotW and delta), pushes, generation cache.

No transport here: the gRPC adapter (``services.pilot.adapters.ads_server``) feeds requests
in and takes responses out. Errors are drawn in :mod:`.errors`.
"""
