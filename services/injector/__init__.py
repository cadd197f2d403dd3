"""The sidecar injector: a mutating webhook that adds agent and Envoy to pods.

Not built yet."""
