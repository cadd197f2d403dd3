"""Citadel's pure logic: identity tokens, CSR checks, the CA and its roots, issuance."""
