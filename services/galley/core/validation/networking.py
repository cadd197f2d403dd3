"""Validation rules of the networking.istio.io kinds, keyed by kind name.

:data:`NETWORKING_VALIDATORS` maps ``VirtualService``, ``DestinationRule``, ``Gateway``,
``ServiceEntry`` and ``Sidecar`` to a validator that records every problem of one
resource into its :class:`Report` (field paths like ``spec.http[0].route[1].weight``)
and never raises. The rules of each kind live in ``networking_<kind>.py``, the checks
they share in ``networking_checks.py``. Pure functions, safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from services.galley.core.validation.networking_destinationrule import validate_destination_rule
from services.galley.core.validation.networking_gateway import validate_gateway
from services.galley.core.validation.networking_serviceentry import validate_service_entry
from services.galley.core.validation.networking_sidecar import validate_sidecar
from services.galley.core.validation.networking_virtualservice import validate_virtual_service
from services.galley.core.validation.report import Report
from shared.config import Resource
from shared.config.base import SpecModel
from shared.config.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    SidecarSpec,
    VirtualServiceSpec,
)

_Spec = TypeVar("_Spec", bound=SpecModel)


def _for_spec(
    model: type[_Spec], check: Callable[[_Spec, Report], None]
) -> Callable[[Resource, Report], None]:
    """Adapt a spec-typed rule set to the resource validator signature."""

    def validate(resource: Resource, report: Report) -> None:
        spec = resource.spec
        if isinstance(spec, model):
            check(spec, report)
        else:
            report.error("spec", f"expected a {model.__name__}, got {type(spec).__name__}")

    return validate


NETWORKING_VALIDATORS: Mapping[str, Callable[[Resource, Report], None]] = {
    "VirtualService": _for_spec(VirtualServiceSpec, validate_virtual_service),
    "DestinationRule": _for_spec(DestinationRuleSpec, validate_destination_rule),
    "Gateway": _for_spec(GatewaySpec, validate_gateway),
    "ServiceEntry": _for_spec(ServiceEntrySpec, validate_service_entry),
    "Sidecar": _for_spec(SidecarSpec, validate_sidecar),
}
