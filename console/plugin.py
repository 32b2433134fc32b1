"""The console's plug into the service core (entry point ``dip_cds.plugins``)."""

from __future__ import annotations

from cds_service.plugins import Plugin
from console.cli import register
from console.service import record
from console.settings import ConsoleSettingsSchema


def _blueprints() -> list:
    from console.web import blueprint

    return [blueprint]


plugin = Plugin(
    name="console",
    settings={"console": ConsoleSettingsSchema},
    cli=register,
    blueprints=_blueprints,
    events={"assessment": record},
)
