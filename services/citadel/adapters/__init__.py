"""Citadel's adapters: the gRPC CertificateService, the root store on disk, key files."""
