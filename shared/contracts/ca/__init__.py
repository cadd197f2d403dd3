"""The certificate contract between workload agents and Citadel: proto, client, CSR helpers.

``v1/ca.proto`` is the wire contract; :mod:`.client` is the agent's async client;
:mod:`.spiffe` names workload identities and :mod:`.csr` builds a key and a CSR for one.
"""
