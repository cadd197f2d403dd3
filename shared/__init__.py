"""The common library of splitmesh's services.

Contracts (protos, generated code, clients), the Istio config model, component
lifecycle, the settings base, gRPC/HTTP server builders, telemetry and TLS helpers.
Nothing here imports a service: services import it.
"""
