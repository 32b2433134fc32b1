"""The terminology domain's plug-in: ``dip-cds code …`` / ``data import-terminology``, the FHIR
terminology operations under ``/fhir``, and the process-wide terminology (``app_data.terminology``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cds_service.plugins import Plugin
from terminology.cli import register

if TYPE_CHECKING:
    from flask import Blueprint

    from cds_service.appdata import AppData


def _blueprints() -> list[Blueprint]:
    from terminology.fhir_api import blueprint

    return [blueprint]


def _load(data: AppData) -> Any:
    from terminology import load_terminology

    return load_terminology(data.home)


def _readiness(data: AppData) -> Mapping[str, Any]:
    """The code tables the service answers with: label, and each table's version and size
    (``status: sample`` when any part is the built-in sample, so nobody mistakes it for real data)."""
    from terminology.model import Terminology

    term = data.get("terminology", Terminology)
    summary = {k: v for k, v in term.summary().items() if k != "is_sample"}
    return {"terminology": {"status": "sample" if term.is_sample else "loaded", **summary}}


plugin = Plugin(
    name="terminology",
    cli=register,
    blueprints=_blueprints,
    app_data={"terminology": _load},
    readiness=_readiness,
)
