"""The console inside the service process: its database, its recorder, its pages.

At start the console's migrations are applied and any spool left by a killed process is drained,
so the pages show everything the service answered before it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import Engine

from console.db import engine_for, migrate
from console.recorder import Recorder, recover_orphans
from console.retention import purge
from console.settings import ConsoleSettings

log = logging.getLogger("dip_cds.console")
EXTENSION_KEY = "dip_cds.console"


def service_database_url(core_settings: Any, home: Path) -> str:
    """The service database: the one the core keeps card feedback in."""
    from cds_service.feedback import default_database_url

    feedback = getattr(core_settings, "feedback", None)
    return getattr(feedback, "database_url", None) or default_database_url(home)


class Console:
    """Per-app console state; the engine and the recorder are per process (made after a fork)."""

    def __init__(self, settings: ConsoleSettings, home: Path, database_url: str) -> None:
        self.settings = settings
        self.home = Path(home)
        self.database_url = settings.database_url or database_url
        self._recorders: dict[int, Recorder] = {}

    @property
    def engine(self) -> Engine:
        return engine_for(self.database_url)

    @property
    def recorder(self) -> Recorder:
        import os

        pid = os.getpid()
        if pid not in self._recorders:
            self._recorders[pid] = Recorder(
                self.engine,
                self.settings.spool_path(self.home),
                interval=self.settings.drain_interval_seconds,
                fsync=self.settings.spool_fsync,
                housekeeping=self.purge,
            )
        return self._recorders[pid]

    def prepare(self) -> int:
        """Migrate the tables, drain spools left by stopped processes (returns how many files) and
        apply the retention setting."""
        migrate(self.engine)
        recovered = recover_orphans(self.engine, self.settings.spool_path(self.home))
        self.purge()
        return recovered

    def purge(self) -> dict[str, int]:
        return purge(self.engine, self.settings.retention_days, self.settings.session_max_hours)

    def record(self, _app_data: Any, event: Mapping[str, Any]) -> None:
        """The ``assessment`` subscriber."""
        self.recorder.record(event)

    def flush(self) -> None:
        self.recorder.flush()


def setup(app: Flask, settings: ConsoleSettings | None = None) -> Console:
    """Make (or remake, with new settings) the app's console: tables migrated, spools recovered,
    the recorder subscribed to ``assessment`` once (the subscriber looks the console up per call)."""
    state = app.extensions["dip_cds.state"]
    settings = settings or state.settings.section("console", ConsoleSettings)
    console = Console(settings, state.home, service_database_url(state.settings, state.home))
    app.extensions[EXTENSION_KEY] = console
    if not settings.enabled:
        return console
    recovered = console.prepare()
    if recovered:
        log.warning(
            "console: recovered spooled assessments of a stopped process", extra={"stored": recovered}
        )
    return console


def record(app_data: Any, event: Mapping[str, Any]) -> None:
    """The ``assessment`` subscriber: spool the event with this app's console. A console missing
    from an app that delivers to it is a wiring error: raised, so the bus logs and counts it
    (``dip_cds_event_subscriber_failures_total``) instead of the record silently going empty."""
    from flask import current_app

    console = current_app.extensions.get(EXTENSION_KEY)
    if console is None:
        raise RuntimeError("the console plugin is subscribed but not set up on this app")
    if console.settings.enabled:
        console.record(app_data, event)


def install(app: Flask, settings: ConsoleSettings | None = None) -> Console:
    """Mount the console on ``app`` (pages at ``/console/``) with ``settings``."""
    from console.web import blueprint

    console = setup(app, settings)
    if blueprint.name not in app.blueprints:
        app.register_blueprint(blueprint)
    return console
