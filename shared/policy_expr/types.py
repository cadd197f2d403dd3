"""Value types of Istio's attribute model and the Python values that carry them.

:class:`ValueType` mirrors ``istio.policy.v1beta1.ValueType`` (the subset splitmesh uses).
:data:`Value` is the union of Python objects an :class:`~shared.policy_expr.bag.AttributeBag`
hands out and an expression returns:

=============  ===============================================================
STRING         ``str``
INT64          ``int`` (never ``bool``)
DOUBLE         ``float`` (an ``int`` is accepted from a bag and widened)
BOOL           ``bool``
TIMESTAMP      ``datetime.datetime``
DURATION       ``datetime.timedelta``
IP_ADDRESS     ``ipaddress.IPv4Address | IPv6Address`` (a bag may also give the ``str``
               form; IPv4-mapped IPv6 addresses compare equal to IPv4)
STRING_MAP     ``Mapping[str, str]``
DNS_NAME       ``str``, normalised (lower case, no trailing dot) by ``dnsName()``
EMAIL_ADDRESS  ``str``, normalised (domain lower case) by ``email()``
URI            ``str``, checked by ``uri()``
=============  ===============================================================

Pure data: immutable, task-safe, no work at import time.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from datetime import datetime, timedelta

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
"""What an IP_ADDRESS value is once read."""

Value = str | int | float | bool | datetime | timedelta | IPAddress | Mapping[str, str]
"""Any attribute or expression value (see the table in the module docstring)."""


class ValueType(enum.Enum):
    """The static type of an attribute or an expression."""

    STRING = "STRING"
    INT64 = "INT64"
    DOUBLE = "DOUBLE"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    DURATION = "DURATION"
    IP_ADDRESS = "IP_ADDRESS"
    STRING_MAP = "STRING_MAP"
    DNS_NAME = "DNS_NAME"
    EMAIL_ADDRESS = "EMAIL_ADDRESS"
    URI = "URI"

    def __str__(self) -> str:
        return self.value


NUMERIC_TYPES = frozenset({ValueType.INT64, ValueType.DOUBLE})
"""Types that mix in arithmetic and ordering (INT64 widens to DOUBLE)."""

ORDERED_TYPES = NUMERIC_TYPES | {ValueType.DURATION, ValueType.TIMESTAMP}
"""Types ``<``, ``<=``, ``>``, ``>=`` accept (both sides of one kind)."""
