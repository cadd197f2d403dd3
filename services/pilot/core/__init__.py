"""Pilot's pure logic: the mesh snapshot, the registry, xDS translation, push state."""
