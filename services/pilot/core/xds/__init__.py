"""Translation of a mesh snapshot into Envoy v3 resources (pure functions)."""
