"""Pilot's adapters: the ADS gRPC servicer, the debug HTTP router, the MCP config feed."""
