"""Shared pieces of the browser-plugin tests: the service with a [plugin] section, on real HTTP."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from cds_service.plugins import Plugin, discover
from cds_service.registry import ServiceDefinition

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "browser_plugin" / "schemas"
EXAMPLE = ROOT / "docs" / "plugin-check-example.json"
EXAMPLE_3101 = ROOT / "docs" / "plugin-check-3101-example.json"
ARTIFACTS = ROOT / "test-artifacts" / "browser"


def plugin_service(home: Path, *, services: Iterable[ServiceDefinition] = (), **sections: Any):
    """The real service (installed plugins, reference data preloaded as ``dip-cds serve`` does) with
    the given sections, plus a ``test`` plugin answering ``services`` when given."""
    sections.setdefault("logging", {"level": "WARNING"})
    # the fetches from the demo FHIR server must not race the 0.4 s default deadline on a busy CI
    # machine: these tests are about what a check answers (the deadline has its own tests)
    sections.setdefault("prefetch", {"deadline_seconds": 5})
    extra = tuple(services)
    plugins = [*discover(), Plugin(name="test", services=lambda: extra)]
    app = create_app(settings=settings_from_mapping(sections, plugins=plugins), home=home, plugins=plugins)
    assert preload(app) == []
    return app
