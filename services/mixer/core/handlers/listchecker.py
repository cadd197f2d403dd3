"""``listchecker``: is a ``listentry`` value in a list (whitelist) or not (blacklist).

Entries are ``overrides`` (``providerUrl`` lists are not fetched: splitmesh reads no
remote lists, so a handler with only a provider URL checks against an empty list).
Entry types: STRINGS (exact), CASE_INSENSITIVE_STRINGS,
IP_ADDRESSES (addresses or CIDR blocks; the value may be an IP or a string) and REGEX
(Python ``re.fullmatch``, Go's RE2 syntax being a subset for the common cases).
A blacklisted value is PERMISSION_DENIED, a value missing from a whitelist NOT_FOUND,
as in Istio. Answers are cacheable for ``cachingInterval`` (default 60 s) and
``cachingUseCount`` (default 10 000). Immutable after construction; task-safe.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from services.mixer.core.errors import ConfigError
from services.mixer.core.handlers.base import CheckResult, Instance, StatelessHandler
from services.mixer.core.status import OK, Code, Status
from shared.config.policy_adapters import ListcheckerParams

_DEFAULT_INTERVAL = timedelta(seconds=60)
_DEFAULT_USES = 10_000


class ListChecker(StatelessHandler):
    """A configured list checker."""

    def __init__(self, name: str, params: ListcheckerParams) -> None:
        self._name = name
        self._blacklist = params.blacklist
        self._contains = _membership(params.entry_type, params.overrides or (), name)
        interval = params.caching_interval or _DEFAULT_INTERVAL
        self._duration = interval.total_seconds()
        self._uses = (
            params.caching_use_count if params.caching_use_count is not None else _DEFAULT_USES
        )

    def handle_check(self, instance: Instance) -> CheckResult:
        """OK or a denial for the instance's ``value``."""
        value = instance.fields.get("value")
        listed = value is not None and self._contains(value)
        if self._blacklist and listed:
            status = Status(Code.PERMISSION_DENIED, f"{value} is blacklisted")
        elif not self._blacklist and not listed:
            status = Status(Code.NOT_FOUND, f"{value} is not whitelisted")
        else:
            status = OK
        return CheckResult(status, self._duration, self._uses)


def _membership(entry_type: str, entries: tuple[str, ...], name: str) -> Callable[[object], bool]:
    if entry_type == "STRINGS":
        exact = frozenset(entries)
        return lambda value: str(value) in exact
    if entry_type == "CASE_INSENSITIVE_STRINGS":
        folded = frozenset(entry.casefold() for entry in entries)
        return lambda value: str(value).casefold() in folded
    if entry_type == "REGEX":
        try:
            patterns = tuple(re.compile(entry) for entry in entries)
        except re.error as exc:
            raise ConfigError(name, f"bad regex in overrides: {exc}") from exc
        return lambda value: any(p.fullmatch(str(value)) for p in patterns)
    try:
        networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as exc:
        raise ConfigError(name, f"bad IP address in overrides: {exc}") from exc

    def contains_ip(value: object) -> bool:
        address: object = value
        if isinstance(value, str):
            try:
                address = ipaddress.ip_address(value.strip())
            except ValueError:
                return False
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    return contains_ip


class ListCheckerBuilder:
    """Builds :class:`ListChecker` handlers."""

    templates = frozenset({"listentry"})

    def build(self, name: str, params: Any) -> ListChecker:
        """A list checker from :class:`ListcheckerParams`."""
        return ListChecker(name, params)
