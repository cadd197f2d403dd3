"""The errors of Pilot's ADS core.

Hierarchy::

    AdsError
     ├── StreamRequestError       a request this stream cannot honour: the stream ends
     │    ├── UnknownTypeError        a type URL Pilot does not serve
     │    └── BadNodeError            a node id or metadata that describes no proxy
     └── ConnectionClosedError    next_response() on a closed connection

The ADS adapter maps :class:`StreamRequestError` to ``INVALID_ARGUMENT`` on that stream only;
no other stream is affected.
"""

from __future__ import annotations


class AdsError(Exception):
    """Base of the ADS core's errors."""


class StreamRequestError(AdsError):
    """A discovery request this stream cannot honour; the stream should end with it."""


class UnknownTypeError(StreamRequestError):
    """The request names a type URL Pilot does not serve."""


class BadNodeError(StreamRequestError):
    """The request's node id or metadata cannot describe a proxy."""


class ConnectionClosedError(AdsError):
    """The connection was closed; no more responses will come."""
