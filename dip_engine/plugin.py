"""The DIP engine's plug-in: the ``[dip]`` section, ``dip-cds data import-catalog`` /
``import-optypes`` / ``group``, and the process-wide catalogs (``app_data.catalogs``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cds_service.plugins import Plugin
from dip_engine.cli import register
from dip_engine.settings import DipSchema

if TYPE_CHECKING:
    from cds_service.appdata import AppData


def _load(data: AppData) -> Any:
    from dip_engine import load_catalogs

    return load_catalogs(data.home)


def _readiness(data: AppData) -> Mapping[str, Any]:
    catalogs = data["catalogs"].all()
    sample = bool(catalogs) and all(getattr(c, "is_sample", False) for c in catalogs)
    return {"catalogs": "sample" if sample else "loaded"}


plugin = Plugin(
    name="dip_engine",
    settings={"dip": DipSchema},
    cli=register,
    app_data={"catalogs": _load},
    readiness=_readiness,
)
