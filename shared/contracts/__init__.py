"""Our own wire contracts: .proto files, their generated Python code, and clients.

Generated modules (``*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``) sit next to their
``.proto``; ``python -m shared.contracts.generate`` rewrites them and ``--check`` fails
when they are stale (``make lint`` runs the check).
"""
