"""Process-wide data the plugins declare (terminology, DIP catalogs, …), loaded once on first use.

Blueprints, hook handlers and event subscribers reach it through :func:`get_app_data` (or
``req.app_data``), so nothing re-reads the data store per request. Which names exist is up to the
installed plugins (``Plugin.app_data``); the core knows none of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

if TYPE_CHECKING:
    from cds_service.config import Settings

EXTENSION_KEY = "dip_cds.app_data"
T = TypeVar("T")
Loader = Callable[["AppData"], Any]


class AppData:
    """Named, lazily loaded data rooted at one data home. ``data["terminology"]`` (or the shorthand
    ``data.terminology``) runs the declaring plugin's loader once; a loader that fails is retried on
    the next use, so ``/readyz`` reports the failure until the data store is fixed."""

    def __init__(
        self, home: Path, settings: Settings | None = None, loaders: Mapping[str, Loader] | None = None
    ):
        self.home = Path(home)
        self.settings = settings
        self._loaders = dict(loaders or {})
        self._values: dict[str, Any] = {}
        self._lock = threading.RLock()  # re-entrant: a loader may read another name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._loaders)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            pass
        loader = self._loaders.get(name)
        if loader is None:
            raise KeyError(
                f"no plugin declares the data {name!r} (declared: {', '.join(self._loaders) or 'none'})"
            )
        with self._lock:
            if name not in self._values:
                self._values[name] = loader(self)
            return self._values[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def get(self, name: str, kind: type[T]) -> T:
        """The data ``name``, checked to be a ``kind`` (for typed code)."""
        value = self[name]
        if not isinstance(value, kind):
            raise TypeError(f"data {name!r} is {type(value).__name__}, not {kind.__name__}")
        return value

    def is_loaded(self, name: str) -> bool:
        return name in self._values

    def forget(self, name: str) -> None:
        """Drop a loaded value so the next use reloads it (after a data import, or in tests)."""
        with self._lock:
            self._values.pop(name, None)


def install(app: Flask, data: AppData) -> None:
    app.extensions[EXTENSION_KEY] = data


def get_app_data() -> AppData:
    return current_app.extensions[EXTENSION_KEY]
