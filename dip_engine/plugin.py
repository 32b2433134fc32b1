"""The DIP engine's plug-in: the ``[dip]`` section, ``dip-cds data import-catalog`` /
``import-optypes`` / ``group``, and the process-wide catalogs (``app_data.catalogs``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cds_service.plugins import Plugin
from dip_engine.cli import register
from dip_engine.settings import DipSchema, DipSettings

if TYPE_CHECKING:
    from cds_service.appdata import AppData


def _load(data: AppData) -> Any:
    from dip_engine import load_catalogs

    return load_catalogs(data.home)


def _readiness(data: AppData) -> Mapping[str, Any]:
    """The catalogs the service groups with (region, name, year, size) and the region a request
    that names none gets; a configured ``[dip] region`` without a catalog makes the service not ready."""
    from dip_engine.catalog import CatalogSet

    catalogs = data.get("catalogs", CatalogSet)
    every = catalogs.all()
    configured = data.settings.section("dip", DipSettings).region if data.settings is not None else None
    if configured is not None and configured not in catalogs.regions():
        raise LookupError(
            f"[dip] region {configured} has no imported catalog (available: {', '.join(catalogs.regions())})"
        )
    return {
        "catalogs": {
            "status": "sample" if all(c.is_sample for c in every) else "loaded",
            "default_region": configured or catalogs.default_region,
            "catalogs": [
                {
                    "region": c.region,
                    "name": c.name,
                    "year": c.year,
                    "groups": len(c.groups),
                    "sample": c.is_sample,
                }
                for c in sorted(every, key=lambda c: (c.region, -(c.year or 0)))
            ],
        }
    }


plugin = Plugin(
    name="dip_engine",
    settings={"dip": DipSchema},
    cli=register,
    app_data={"catalogs": _load},
    readiness=_readiness,
)
