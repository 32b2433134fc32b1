"""The browser plugin's plug-in: ``[plugin]`` settings, the ``/plugin`` API and panel files, and the
``dip-cds demo-his`` / ``dip-cds plugin`` commands."""

from __future__ import annotations

from flask import Blueprint

from browser_plugin.cli import register
from browser_plugin.settings import PluginSettingsSchema
from cds_service.plugins import Plugin


def _blueprints() -> list[Blueprint]:
    from browser_plugin.api import blueprint

    return [blueprint]


plugin = Plugin(
    name="browser_plugin", settings={"plugin": PluginSettingsSchema}, cli=register, blueprints=_blueprints
)
