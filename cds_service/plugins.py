"""The seam between the service core and the domains: plugins found through entry points.

The core (``cds_service``) imports no domain package. A domain plugs in, as Flask extensions and
pytest plugins do, by exposing a :class:`Plugin` and naming it in its distribution's metadata::

    # pyproject.toml
    [project.entry-points."dip_cds.plugins"]
    yb_audit = "yb_audit.plugin:plugin"

    # yb_audit/plugin.py
    plugin = Plugin(
        name="yb_audit",
        settings={"audit": AuditSchema},           # [audit] in config.toml → AuditSettings
        cli=register,                              # adds `dip-cds audit …`
        services=lambda: [audit_service],          # @cds_service definitions (imported lazily)
        blueprints=lambda: [api_blueprint],        # mounted on the app as declared
        app_data={"rules": lambda data: load_rules(data.home)},
        readiness=lambda data: {"rules": f"{len(data.rules)} rules"},
        events={"assessment": record},             # record(app_data, payload)
    )

Every app owns the plugin set it was built with (:func:`cds_service.app.create_app` takes
``plugins=``; the default is :func:`discover`), so tests can build apps with different sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from cds_service.events import EVENTS, EventBus, Subscriber
from cds_service.registry import ServiceDefinition, ServiceRegistry

if TYPE_CHECKING:
    import click
    from flask import Blueprint

    from cds_service.appdata import AppData, Loader
    from cds_service.config import SectionSchema

ENTRY_POINT_GROUP = "dip_cds.plugins"

Readiness = Callable[["AppData"], Mapping[str, Any]]


def _none() -> tuple[()]:
    return ()


@dataclass(frozen=True)
class Plugin:
    """What a domain contributes to the service and the ``dip-cds`` command.

    - ``settings``: configuration sections it owns, section name → a
      :class:`~cds_service.config.SectionSchema` subclass that loads into a frozen dataclass whose
      field defaults are the section's defaults; read as ``settings.section(name, TheDataclass)``.
    - ``cli``: ``register(main)`` adding its commands to the ``dip-cds`` click group (the ``data``
      subgroup is ``main.commands["data"]``).
    - ``services``: a zero-argument callable returning its :class:`ServiceDefinition` s (lazy, so the
      CLI and the config loader do not import handler code).
    - ``blueprints``: a zero-argument callable returning Flask blueprints, mounted as declared.
    - ``app_data``: name → ``loader(app_data)``, process-wide data loaded on first use (and at worker
      start), reached as ``app_data[name]`` / ``app_data.<name>``.
    - ``readiness``: ``readiness(app_data)`` → entries merged into ``/readyz``'s ``data``; raising
      makes the service not ready, with the reason.
    - ``events``: core event name → ``subscriber(app_data, payload)`` (see :mod:`cds_service.events`).
    """

    name: str
    settings: Mapping[str, type[SectionSchema]] = field(default_factory=dict)
    cli: Callable[[click.Group], None] | None = None
    services: Callable[[], Iterable[ServiceDefinition]] = _none
    blueprints: Callable[[], Iterable[Blueprint]] = _none
    app_data: Mapping[str, Loader] = field(default_factory=dict)
    readiness: Readiness | None = None
    events: Mapping[str, Subscriber] = field(default_factory=dict)


class PluginError(RuntimeError):
    """A plugin that cannot be installed (broken entry point, clashing names): a deployment error."""


class PluginSet:
    """An ordered, consistency-checked set of plugins: no two claim a name, section or data name."""

    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self.plugins = tuple(plugins)
        problems: list[str] = []
        owners: dict[tuple[str, str], str] = {}
        for plugin in self.plugins:
            if not isinstance(plugin, Plugin):
                raise PluginError(f"not a cds_service.plugins.Plugin: {plugin!r}")
            claims = [("plugin", plugin.name)]
            claims += [("configuration section", s) for s in plugin.settings]
            claims += [("data", d) for d in plugin.app_data]
            for claim in claims:
                if claim in owners:
                    problems.append(
                        f"{claim[0]} {claim[1]!r} claimed by both {owners[claim]} and {plugin.name}"
                    )
                owners[claim] = plugin.name
            problems += [
                f"{plugin.name}: subscribes to unknown event {event!r}"
                for event in plugin.events
                if event not in EVENTS
            ]
        if problems:
            raise PluginError("; ".join(problems))

    def __iter__(self) -> Iterator[Plugin]:
        return iter(self.plugins)

    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def sections(self) -> dict[str, type[SectionSchema]]:
        return {name: schema for p in self.plugins for name, schema in p.settings.items()}

    def register_cli(self, main: click.Group) -> None:
        for plugin in self.plugins:
            if plugin.cli is not None:
                plugin.cli(main)

    def registry(self) -> ServiceRegistry:
        return ServiceRegistry(service for p in self.plugins for service in p.services())

    def blueprints(self) -> list[Blueprint]:
        return [bp for p in self.plugins for bp in p.blueprints()]

    def loaders(self) -> dict[str, Loader]:
        return {name: loader for p in self.plugins for name, loader in p.app_data.items()}

    def event_bus(self, data: AppData) -> EventBus:
        subscribers: dict[str, list[tuple[str, Subscriber]]] = {}
        for plugin in self.plugins:
            for event, subscriber in plugin.events.items():
                subscribers.setdefault(event, []).append((plugin.name, subscriber))
        return EventBus(data, subscribers)

    def readiness(self, data: AppData) -> tuple[dict[str, Any], list[str]]:
        """Every plugin's readiness entries, and the problems of those that raised."""
        report: dict[str, Any] = {}
        problems: list[str] = []
        for plugin in self.plugins:
            if plugin.readiness is None:
                continue
            try:
                report.update(plugin.readiness(data))
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with the reason
                problems.append(f"{plugin.name}: not ready ({type(exc).__name__}: {exc})")
        return report, problems


@cache
def discover() -> tuple[Plugin, ...]:
    """The installed plugins (entry-point group ``dip_cds.plugins``), in name order. A plugin that
    fails to import is an error, not a silent omission: the service would answer without it."""
    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(plugin, Plugin):
            raise PluginError(f"plugin {ep.name} ({ep.value}) is a {type(plugin).__name__}, not a Plugin")
        found.append(plugin)
    PluginSet(found)  # clashes are reported once, here
    return tuple(found)


def publish(event: str, payload: Mapping[str, Any]) -> None:
    """Publish from a blueprint (the plugin API, a console action) of the current app."""
    from flask import current_app

    from cds_service.app import STATE_KEY

    current_app.extensions[STATE_KEY].events.publish(event, payload)
