"""Readable tables of a running mesh: ``splitmesh status`` and ``splitmesh proxy-config``.

:func:`status_tables` turns the state file plus what Galley (``/debug/configz``) and Pilot
(``/debug/syncz``) report into rich tables; a service that does not answer is shown as
such rather than raising. :func:`proxy_config_table` renders one section of an Envoy
admin's ``/config_dump`` (``clusters``, ``listeners``, ``routes``) or of
``/clusters?format=json`` (``endpoints``). Pure functions of their inputs plus, for
status, the HTTP reads named above.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

import httpx
from rich.table import Table

from cli.launcher.pilot_view import ProxySync, fetch_sync
from cli.launcher.state import ComponentState, MeshState, pid_alive


class Section(StrEnum):
    """What ``splitmesh proxy-config`` can show."""

    CLUSTERS = "clusters"
    LISTENERS = "listeners"
    ROUTES = "routes"
    ENDPOINTS = "endpoints"


_TIMEOUT_S = 5.0
_DUMP_TYPES = {
    Section.CLUSTERS: "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
    Section.LISTENERS: "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
    Section.ROUTES: "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
}


def status_tables(state: MeshState) -> list[Table]:
    """Components, proxies (from Pilot) and config versions (from Galley)."""
    tables = [_components(state)]
    pilot = state.component("pilot")
    if pilot is not None:
        tables.append(_proxies(state, pilot))
    galley = state.component("galley")
    if galley is not None:
        tables.append(_versions(galley))
    return tables


def _components(state: MeshState) -> Table:
    table = Table(
        title=f"splitmesh ({state.status}, run dir {state.run_dir})", title_justify="left"
    )
    for column in ("component", "process", "ports", "log"):
        table.add_column(column)
    for component in state.components:
        pids = [("", component.pid)]
        if component.kind == "workload" and component.app_log is not None:
            pids = [("agent ", component.pid), ("app ", component.app_pid)]
        table.add_row(
            component.name,
            ", ".join(_process(label, pid) for label, pid in pids),
            " ".join(f"{name}={port}" for name, port in sorted(component.ports.items())),
            str(component.log),
        )
    if state.notes:
        table.caption = "\n".join(f"note: {note}" for note in state.notes)
    return table


def _process(label: str, pid: int | None) -> str:
    if pid is None:
        return f"{label}[red]not running[/]"
    return f"{label}{pid} " + ("[green]up[/]" if pid_alive(pid) else "[red]gone[/]")


def _proxies(state: MeshState, pilot: ComponentState) -> Table:
    table = Table(title="proxies (Pilot /debug/syncz)", title_justify="left")
    for column in ("workload", "xDS", "connected", "in sync", "version", "NACKs"):
        table.add_column(column)
    try:
        sync: Mapping[str, ProxySync] = fetch_sync(
            f"http://127.0.0.1:{pilot.ports['http']}/debug/syncz"
        )
    except (httpx.HTTPError, ValueError) as exc:
        table.add_row("[red]Pilot does not answer[/]", str(exc), "", "", "", "")
        return table
    for component in state.components:
        if component.node_id is None:
            continue
        proxy = sync.get(component.node_id)
        if proxy is None:
            table.add_row(component.name, "", "[red]no[/]", "", "", "")
            continue
        table.add_row(
            component.name,
            proxy.protocol,
            "[green]yes[/]",
            "[green]yes[/]" if proxy.in_sync else "[yellow]no[/]",
            proxy.version or "",
            str(proxy.nacks) + (f" (last: {proxy.last_nack})" if proxy.last_nack else ""),
        )
    return table


def _versions(galley: ComponentState) -> Table:
    table = Table(title="config versions (Galley /debug/configz)", title_justify="left")
    table.add_column("collection")
    table.add_column("version")
    try:
        response = httpx.get(
            f"http://127.0.0.1:{galley.ports['http']}/debug/configz", timeout=_TIMEOUT_S
        )
        response.raise_for_status()
        page = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        table.add_row("[red]Galley does not answer[/]", str(exc))
        return table
    for collection, version in sorted(page.get("versions", {}).items()):
        table.add_row(collection, str(version))
    issues = page.get("issues") or []
    if issues:
        table.caption = f"{len(issues)} config problem(s): splitmesh analyze shows them"
    return table


def proxy_config_table(
    workload: str, section: Section, config_dump: Mapping[str, Any], clusters: Mapping[str, Any]
) -> Table:
    """One section of a proxy's config as a table."""
    table = Table(title=f"{workload}: {section}", title_justify="left")
    if section is Section.ENDPOINTS:
        _endpoint_rows(table, clusters)
        return table
    dump = config_section(config_dump, section)
    if section is Section.CLUSTERS:
        _cluster_rows(table, dump)
    elif section is Section.LISTENERS:
        _listener_rows(table, dump)
    else:
        _route_rows(table, dump)
    return table


def config_section(config_dump: Mapping[str, Any], section: Section) -> Mapping[str, Any]:
    """The part of an Envoy ``/config_dump`` holding ``section`` (empty when absent)."""
    wanted = _DUMP_TYPES.get(section)
    return next((c for c in config_dump.get("configs", []) if c.get("@type") == wanted), {})


def _cluster_rows(table: Table, dump: Mapping[str, Any]) -> None:
    for column in ("cluster", "type", "version", "details"):
        table.add_column(column)
    entries: list[tuple[Mapping[str, Any], str | None]] = [
        (c, "static") for c in dump.get("static_clusters", [])
    ]
    entries += [(c, None) for c in dump.get("dynamic_active_clusters", [])]
    entries += [(c, "warming") for c in dump.get("dynamic_warming_clusters", [])]
    for entry, note in entries:
        cluster = entry.get("cluster", {})
        details = []
        if "lb_policy" in cluster:
            details.append(f"lb {cluster['lb_policy']}")
        if "outlier_detection" in cluster:
            details.append("outlier detection")
        if "circuit_breakers" in cluster:
            details.append("circuit breakers")
        table.add_row(
            _short(cluster.get("name", "?")),
            cluster.get("type", "EDS" if "eds_cluster_config" in cluster else "?"),
            note or entry.get("version_info", ""),
            ", ".join(details),
        )


def _listener_rows(table: Table, dump: Mapping[str, Any]) -> None:
    for column in ("listener", "address", "version", "routes"):
        table.add_column(column)
    for entry in dump.get("static_listeners", []):
        _listener_row(table, entry.get("listener", {}), "static")
    for entry in dump.get("dynamic_listeners", []):
        for state in ("active_state", "warming_state", "draining_state"):
            if state in entry:
                note = entry[state].get("version_info", "")
                if state != "active_state":
                    note = f"{note} ({state.removesuffix('_state')})"
                _listener_row(table, entry[state].get("listener", {}), note)
        if "error_state" in entry:
            error = entry["error_state"].get("details", "")
            table.add_row(entry.get("name", "?"), "", "[red]rejected[/]", error)


def _listener_row(table: Table, listener: Mapping[str, Any], version: str) -> None:
    address = listener.get("address", {}).get("socket_address", {})
    routes = sorted(set(_strings(listener, "route_config_name")))
    table.add_row(
        listener.get("name", "?"),
        f"{address.get('address', '?')}:{address.get('port_value', '?')}",
        version,
        ", ".join(routes) or "(inline)",
    )


def _route_rows(table: Table, dump: Mapping[str, Any]) -> None:
    for column in ("route config", "virtual host", "match", "action"):
        table.add_column(column)
    entries = dump.get("static_route_configs", []) + dump.get("dynamic_route_configs", [])
    versions = set()
    for entry in entries:
        config = entry.get("route_config", {})
        versions.add(entry.get("version_info", "static"))
        for host in config.get("virtual_hosts", []):
            domains = len(host.get("domains", []))
            for route in host.get("routes", []):
                table.add_row(
                    config.get("name", "?"),
                    f"{_short(host.get('name', '?'))} ({domains} domain{'s' * (domains != 1)})",
                    _match_text(route.get("match", {})),
                    _action_text(route),
                )
    table.caption = f"version {', '.join(sorted(versions))}" if versions else None


def _match_text(match: Mapping[str, Any]) -> str:
    parts = []
    for key in ("prefix", "path", "path_separated_prefix"):
        if key in match:
            parts.append(f"{key} {match[key]}")
    if "safe_regex" in match:
        parts.append(f"regex {match['safe_regex'].get('regex')}")
    for header in match.get("headers", []):
        parts.append(_header_text(header))
    return "\n".join(parts) or "*"


def _header_text(header: Mapping[str, Any]) -> str:
    name = header.get("name", "?")
    condition = header.get("string_match", {})
    for key, operator in (("exact", "="), ("prefix", "^="), ("suffix", "$="), ("contains", "*=")):
        if key in condition:
            return f"{name}{operator}{condition[key]}"
    if "safe_regex" in condition:
        return f"{name}~{condition['safe_regex'].get('regex')}"
    if header.get("present_match"):
        return f"{name} present"
    return f"{name} {dict(condition) or dict(header)}"


def _action_text(route: Mapping[str, Any]) -> str:
    action = route.get("route", {})
    if "cluster" in action:
        text = _short(str(action["cluster"]))
    elif "weighted_clusters" in action:
        text = "\n".join(
            f"{_short(str(c.get('name')))} {c.get('weight')}"
            for c in action["weighted_clusters"].get("clusters", [])
        )
    elif "redirect" in route:
        text = f"redirect {route['redirect']}"
    elif "direct_response" in route:
        text = f"respond {route['direct_response'].get('status')}"
    else:
        text = "?"
    extras = [name.rsplit(".", 1)[-1] for name in route.get("typed_per_filter_config", {})]
    extras += [key for key in ("timeout", "retry_policy") if key in action]
    return text + (f"\n({', '.join(extras)})" if extras else "")


def _short(name: str) -> str:
    """A cluster or host name without the ``.svc.cluster.local`` every local one has."""
    return name.replace(".svc.cluster.local", "")


def _endpoint_rows(table: Table, clusters: Mapping[str, Any]) -> None:
    for column in ("cluster", "endpoint", "health", "weight"):
        table.add_column(column)
    for cluster in sorted(clusters.get("cluster_statuses", []), key=lambda c: str(c.get("name"))):
        for host in cluster.get("host_statuses", []):
            address = host.get("address", {}).get("socket_address", {})
            health = host.get("health_status", {})
            table.add_row(
                _short(cluster.get("name", "?")),
                f"{address.get('address', '?')}:{address.get('port_value', '?')}",
                str(health.get("eds_health_status", "HEALTHY")),
                str(host.get("weight", 1)),
            )


def _strings(value: Any, key: str) -> Iterator[str]:
    """Every string stored under ``key`` anywhere inside ``value``."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name == key and isinstance(item, str):
                yield item
            else:
                yield from _strings(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, key)
