"""Generated code of ``ca.proto`` (``python -m shared.contracts.generate``)."""
