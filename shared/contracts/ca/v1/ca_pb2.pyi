from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCertificateRequest(_message.Message):
    __slots__ = ("csr", "validity_duration")
    CSR_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_DURATION_FIELD_NUMBER: _ClassVar[int]
    csr: str
    validity_duration: int
    def __init__(self, csr: _Optional[str] = ..., validity_duration: _Optional[int] = ...) -> None: ...

class CreateCertificateResponse(_message.Message):
    __slots__ = ("cert_chain", "trusted_roots")
    CERT_CHAIN_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_ROOTS_FIELD_NUMBER: _ClassVar[int]
    cert_chain: _containers.RepeatedScalarFieldContainer[str]
    trusted_roots: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cert_chain: _Optional[_Iterable[str]] = ..., trusted_roots: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTrustBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrustBundle(_message.Message):
    __slots__ = ("trusted_roots",)
    TRUSTED_ROOTS_FIELD_NUMBER: _ClassVar[int]
    trusted_roots: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trusted_roots: _Optional[_Iterable[str]] = ...) -> None: ...
