"""Reference data a service process holds: terminology and DIP catalogs, loaded once per process.

Blueprints and hook handlers reach it through :func:`get_app_data`, so nothing re-reads the
data store per request.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from flask import Flask, current_app

EXTENSION_KEY = "dip_cds.app_data"


class AppData:
    """Lazily loaded, process-wide reference data rooted at one data home."""

    def __init__(self, home: Path, settings: Any = None) -> None:
        self.home = Path(home)
        self.settings = settings
        self._lock = threading.Lock()

    @cached_property
    def terminology(self):
        from terminology import load_terminology

        with self._lock:
            return load_terminology(self.home)

    @cached_property
    def catalogs(self):
        from dip_engine import load_catalogs

        with self._lock:
            return load_catalogs(self.home)

    def loaded(self) -> dict[str, bool]:
        """Which data sets are in memory (for /readyz)."""
        return {name: name in self.__dict__ for name in ("terminology", "catalogs")}


def install(app: Flask, data: AppData) -> None:
    app.extensions[EXTENSION_KEY] = data


def get_app_data() -> AppData:
    return current_app.extensions[EXTENSION_KEY]
