"""Galley: where mesh configuration enters, is validated and is distributed over MCP."""
