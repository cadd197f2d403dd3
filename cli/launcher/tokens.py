"""Workload tokens: how each local agent proves its identity to Citadel.

In local mode nothing like Kubernetes vouches for a workload, so the launcher does (as
issue 4 describes): it holds the Ed25519 signing key (``<citadel state dir>/
token-signing.key``, created 0600 by
:func:`services.citadel.adapters.key_files.load_or_create_token_key` before Citadel
starts, so Citadel verifies with its public half) and mints one single-use bootstrap
token per workload, bound to ``spiffe://<trust domain>/ns/<namespace>/sa/<service
account>``. :meth:`TokenMinter.write` writes it to a file (mode 0600) the agent reads;
after its first certificate the agent renews with that certificate, not the token.

Errors: ``OSError`` for I/O; :class:`~services.citadel.core.errors.CaConfigError` when
the key file holds something else; ``ValueError`` for a namespace or service account
that cannot be part of a SPIFFE id. Tokens never go to a log. Not thread-safe.
"""

from __future__ import annotations

import time
from pathlib import Path

from services.citadel.adapters.key_files import (
    PRIVATE_MODE,
    load_or_create_token_key,
    write_file,
)
from services.citadel.core.token import mint_token
from services.citadel.settings import CitadelSettings
from shared.contracts.ca.spiffe import SpiffeId

TOKEN_TTL_S = 900  # the agent needs it once, at start; Citadel's maximum is 3600


class TokenMinter:
    """Mints workload tokens with the key in ``state_dir`` (created on first use)."""

    def __init__(self, state_dir: Path, *, trust_domain: str) -> None:
        key_path = CitadelSettings(state_dir=state_dir).token_signing_key  # what Citadel reads
        self._key = load_or_create_token_key(key_path)
        self._trust_domain = trust_domain

    def write(self, path: Path, *, namespace: str, service_account: str) -> None:
        """Write a fresh token for ``namespace``/``service_account`` to ``path`` (0600)."""
        identity = SpiffeId(self._trust_domain, namespace, service_account)
        token = mint_token(self._key, identity, ttl_s=TOKEN_TTL_S, now=time.time())
        write_file(path, token.encode("ascii"), PRIVATE_MODE)
