"""Galley's adapters: the directory source, the MCP gRPC server, the webhook router."""
