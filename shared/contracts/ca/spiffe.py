"""Workload identities: ``spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>``.

:class:`SpiffeId` is an immutable value; :meth:`SpiffeId.parse` is strict (the exact Istio
form, Kubernetes naming rules for namespace and service account, a lower-case trust
domain) and raises ``ValueError`` naming what is wrong. ``str(identity)`` is the URI.
Shared by Citadel (which checks CSRs and tokens against it) and the agent (which asks for
it), so both sides agree on the form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "spiffe://"
_TRUST_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_MAX_SUBDOMAIN = 253


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """One workload identity; the constructor checks every part."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        if not _TRUST_DOMAIN.match(self.trust_domain):
            raise ValueError(f"trust domain {self.trust_domain!r} is not a lower-case DNS name")
        if not _DNS_LABEL.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a DNS-1123 label")
        if not _is_subdomain(self.service_account):
            raise ValueError(
                f"service account {self.service_account!r} is not a DNS-1123 subdomain"
            )

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse ``spiffe://<td>/ns/<ns>/sa/<sa>``; raise ``ValueError`` on any other text."""
        if not uri.startswith(SCHEME):
            raise ValueError(f"{uri!r} is not a spiffe:// URI")
        trust_domain, _, path = uri.removeprefix(SCHEME).partition("/")
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
            raise ValueError(f"{uri!r} is not spiffe://<trust-domain>/ns/<namespace>/sa/<name>")
        return cls(trust_domain, parts[1], parts[3])

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


def _is_subdomain(name: str) -> bool:
    return len(name) <= _MAX_SUBDOMAIN and all(_DNS_LABEL.match(p) for p in name.split("."))
