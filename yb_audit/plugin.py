"""The 医保智能审核 domain's plug-in: the ``[audit]`` section, ``dip-cds data import-rules`` /
``data rules`` / ``audit`` / ``synth-fees``, the ``yb-audit-order-sign`` / ``-order-select``
services, the national ``/yb/3101`` / ``/yb/3102`` endpoints and the active rules
(``app_data.yb_rules``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cds_service.plugins import Plugin
from yb_audit.cli import register
from yb_audit.settings import SECTION, AuditSchema

if TYPE_CHECKING:
    from flask import Blueprint

    from cds_service.appdata import AppData
    from cds_service.registry import ServiceDefinition


def _services() -> list[ServiceDefinition]:
    from yb_audit.order_hooks import order_select, order_sign

    return [order_sign, order_select]


def _blueprints() -> list[Blueprint]:
    from yb_audit.national_api import blueprint

    return [blueprint]


def _rules(data: AppData) -> Any:
    from yb_audit.service import RuleHolder

    return RuleHolder(data.home)


def _readiness(data: AppData) -> Mapping[str, Any]:
    """The active rule sets (name, version) and how many rules they hold; sample when none is imported."""
    rules = data["yb_rules"].current()
    return {
        "yb_rules": {
            "status": "sample" if rules.is_sample else "loaded",
            "rules": len(rules),
            "rule_sets": [{"name": s.name, "version": s.version} for s in rules.sets],
        }
    }


plugin = Plugin(
    name="yb_audit",
    settings={SECTION: AuditSchema},
    cli=register,
    services=_services,
    blueprints=_blueprints,
    app_data={"yb_rules": _rules},
    readiness=_readiness,
)
