"""Small builders of Envoy v3 messages shared by the xDS translators.

Durations, ``Any`` packing, addresses (``unix://`` paths become pipes), the ADS config
source, string matchers, percentages and header operations. Every function returns a
new message that the caller owns; none raises on values Galley accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from shared.config.networking_types import StringMatch
from shared.config.networking_virtualservice import HeaderOperations

UNIX_PREFIX = "unix://"
_MILLION = 1_000_000


def duration(value: timedelta) -> duration_pb2.Duration:
    """A protobuf Duration (negative values clamp to zero)."""
    message = duration_pb2.Duration()
    message.FromTimedelta(max(value, timedelta(0)))
    return message


def pack(message: Message) -> any_pb2.Any:
    """``message`` in an ``Any`` (typed_config, typed_per_filter_config)."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def address(host: str, port: int) -> address_pb2.Address:
    """A TCP socket address, or a pipe for ``unix:///path`` (the port is then unused)."""
    if host.startswith(UNIX_PREFIX):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=host[len(UNIX_PREFIX) :]))
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


def ads_source() -> config_source_pb2.ConfigSource:
    """Fetch over the ADS stream, Envoy API v3."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def string_matcher(match: StringMatch, *, ignore_case: bool = False) -> string_pb2.StringMatcher:
    """Istio's exact/prefix/regex as an Envoy StringMatcher (empty prefix: any value)."""
    if match.exact is not None:
        return string_pb2.StringMatcher(exact=match.exact, ignore_case=ignore_case)
    if match.prefix:
        return string_pb2.StringMatcher(prefix=match.prefix, ignore_case=ignore_case)
    if match.regex:
        return string_pb2.StringMatcher(safe_regex=regex_matcher(match.regex))
    return string_pb2.StringMatcher(safe_regex=regex_matcher(".*"))


def is_presence_match(match: StringMatch) -> bool:
    """True for a match that any value satisfies (``prefix: ""``, ``regex: ""``)."""
    return match.exact is None and not match.prefix and not match.regex


def regex_matcher(pattern: str) -> regex_pb2.RegexMatcher:
    """An RE2 regex matcher (Envoy's default engine)."""
    return regex_pb2.RegexMatcher(regex=pattern)


def fraction(percent: float) -> percent_pb2.FractionalPercent:
    """A 0-100 percentage as millionths, the precision Istio uses."""
    numerator = round(min(max(percent, 0.0), 100.0) * _MILLION / 100)
    return percent_pb2.FractionalPercent(
        numerator=numerator, denominator=percent_pb2.FractionalPercent.MILLION
    )


def header_options(operations: HeaderOperations | None) -> list[base_pb2.HeaderValueOption]:
    """``set`` (overwrite) then ``add`` (append) as HeaderValueOptions."""
    if operations is None:
        return []
    action = base_pb2.HeaderValueOption.HeaderAppendAction
    return [
        *_options(operations.set, action.OVERWRITE_IF_EXISTS_OR_ADD),
        *_options(operations.add, action.APPEND_IF_EXISTS_OR_ADD),
    ]


def headers_to_remove(operations: HeaderOperations | None) -> Sequence[str]:
    """The header names to remove."""
    return () if operations is None else operations.remove


def _options(headers: Mapping[str, str], action: int) -> list[base_pb2.HeaderValueOption]:
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, value=value), append_action=action
        )
        for key, value in headers.items()
    ]
