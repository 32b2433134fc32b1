"""The hooks domain's plug-in: the five DIP CDS services and ``dip-cds demo-fhir``."""

from __future__ import annotations

from typing import Any

from cds_service.plugins import Plugin
from cds_service.registry import ServiceDefinition
from hooks.cli import register


def _services() -> list[ServiceDefinition]:
    from hooks import encounter_discharge, encounter_start, order_select, order_sign, patient_view

    return [m.handle for m in (patient_view, order_select, order_sign, encounter_start, encounter_discharge)]


def _warm_caches(data: Any) -> bool:
    """Load what every hook call reads (card templates, price list, local code maps) when the
    service preloads its data, so a cold process does not spend a request's prefetch deadline on it."""
    from cards import load_card_templates
    from costing import load_prices
    from mappings import local_maps_for_home

    load_card_templates(data.home)
    load_prices(data.home)
    local_maps_for_home(data.home)
    return True


plugin = Plugin(name="hooks", cli=register, services=_services, app_data={"hook_caches": _warm_caches})
