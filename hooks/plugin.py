"""The hooks domain's plug-in: the five DIP CDS services and ``dip-cds demo-fhir``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cds_service.plugins import Plugin
from cds_service.registry import ServiceDefinition
from hooks.cli import register

if TYPE_CHECKING:
    from cds_service.appdata import AppData

# The card type each service answers with: its override reasons (cards/templates/override_reasons.toml,
# a hospital's copy in the data home) name the reasons the Sandbox's feedback sends back by code only.
CARD_KINDS = {
    "dip-patient-view": "patient_view",
    "dip-order-select": "order_sign",
    "dip-order-sign": "order_sign",
    "dip-encounter-start": "encounter_start",
    "dip-encounter-discharge": "discharge",
}


def _offered(kind: str) -> Callable[[AppData], list[dict[str, Any]]]:
    def reasons(data: AppData) -> list[dict[str, Any]]:
        from cards import load_card_templates

        return list(load_card_templates(data.home).override_reasons(kind))

    return reasons


def _services() -> list[ServiceDefinition]:
    from hooks import encounter_discharge, encounter_start, order_select, order_sign, patient_view

    services = [
        m.handle for m in (patient_view, order_select, order_sign, encounter_start, encounter_discharge)
    ]
    return [replace(s, override_reasons=_offered(CARD_KINDS[s.id])) for s in services]


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
