"""Which catalog and reference data one request is answered with.

The catalog is the request ``extension`` ``dip-cds-region``'s, else ``[dip] region``'s, else the data
home's default; the hospital's identity and default insurance type come from ``[dip]``. Everything
here is shared, read-only process data (loaded once) plus the request's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cards import load_card_templates, source
from cards.render import CardTemplates
from cds_service.registry import HookRequest
from costing import PriceList, load_prices
from dip_engine.engine import Engine
from dip_engine.settings import DipSettings
from mappings import local_maps_for_home

REGION_EXTENSION = "dip-cds-region"  # request ``extension`` key naming the region's catalog


class NoCatalog(LookupError):
    """The request names a region that has no imported catalog."""


@dataclass(frozen=True)
class DipContext:
    """What one request's cards are computed with (shared, read-only reference data + settings).

    ``hospital_id`` / ``hospital_level`` feed the hospital coefficient; ``insurance_type`` is only
    the default for patients whose FHIR Coverage does not say (see :mod:`hooks.coverage`)."""

    engine: Engine
    templates: CardTemplates
    home: Path | None
    prices: PriceList
    local_maps: Any
    hospital_id: str | None = None
    hospital_level: str | None = None
    insurance_type: str | None = None

    @property
    def label(self) -> str:
        return self.engine.catalog.label

    def card_source(self) -> dict[str, Any]:
        return source(self.label)


def dip_context(req: HookRequest) -> DipContext:
    """The request's catalog and the hospital's settings; :class:`NoCatalog` when the region has none."""
    data = req.app_data
    conf = req.settings.section("dip", DipSettings)
    region = None
    if isinstance(req.extension, Mapping) and isinstance(req.extension.get(REGION_EXTENSION), str):
        region = req.extension[REGION_EXTENSION].strip()[:12] or None
    region = region or conf.region
    try:
        engine = data.catalogs.engine(region, data.terminology)
    except KeyError as exc:
        raise NoCatalog(str(exc.args[0]) if exc.args else str(exc)) from exc
    home = data.home
    return DipContext(
        engine=engine,
        templates=load_card_templates(home),
        home=home,
        prices=load_prices(home),
        local_maps=local_maps_for_home(home),
        hospital_id=conf.hospital_id or None,
        hospital_level=conf.hospital_level or None,
        insurance_type=conf.insurance_type or None,
    )
