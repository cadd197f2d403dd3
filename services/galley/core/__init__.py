"""Galley's pure logic: validation, analysis, the config store, MCP distribution."""
