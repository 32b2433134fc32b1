"""The hooks domain's plug-in: the five DIP CDS services and ``dip-cds demo-fhir``."""

from __future__ import annotations

from cds_service.plugins import Plugin
from cds_service.registry import ServiceDefinition
from hooks.cli import register


def _services() -> list[ServiceDefinition]:
    from hooks import encounter_discharge, encounter_start, order_select, order_sign, patient_view

    return [m.handle for m in (patient_view, order_select, order_sign, encounter_start, encounter_discharge)]


plugin = Plugin(name="hooks", cli=register, services=_services)
