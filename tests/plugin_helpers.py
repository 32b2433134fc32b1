"""Shared pieces of the browser-plugin tests: the service with a [plugin] section, on real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "browser_plugin" / "schemas"
EXAMPLE = ROOT / "docs" / "plugin-check-example.json"
ARTIFACTS = ROOT / "test-artifacts" / "browser"


def plugin_service(home: Path, **sections: Any):
    """The real service (reference data preloaded, as ``dip-cds serve`` does) with the given sections."""
    sections.setdefault("logging", {"level": "WARNING"})
    app = create_app(settings=settings_from_mapping(sections), home=home)
    assert preload(app) == []
    return app
