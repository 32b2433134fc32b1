"""What every online audit call needs, built once per call from process-wide data: the enabled rules,
the value tables, the hospital's local maps and price list, the settings and the hospital level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from costing import load_prices
from costing.fhir_input import as_decimal, codings
from costing.prices import PriceList
from yb_audit import store
from yb_audit.codes import ValueTables, local_maps_for, value_tables
from yb_audit.fhir_input import Pricing
from yb_audit.model import Line, RuleSet
from yb_audit.rulesets import enabled_rules
from yb_audit.settings import AuditSettings, audit_settings, parse_level

HOSPITAL_LEVEL_EXTENSION = "yb-audit-hospital-level"  # request ``extension`` key (multi-site deployments)
_CENT = Decimal("0.01")


class RuleHolder:
    """The active rules of a data home, re-read when ``rules.sqlite`` changes (an import is picked
    up by a running service without a restart)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.current()  # load now (worker start), not on the first order

    def current(self) -> RuleSet:
        return store.load_rules(self.home)


@dataclass(frozen=True)
class AuditContext:
    rules: RuleSet
    settings: AuditSettings
    tables: ValueTables
    local_maps: Mapping[str, Any]
    prices: PriceList
    hospital_level: int | None
    home: Path

    @property
    def source_label(self) -> str:
        if self.rules.is_sample:
            return "医保智能审核（内置示例规则）"
        batches = sorted({s.batch for s in self.rules.sets})
        return f"医保智能审核（规则库 {len(self.rules)} 条，{'、'.join(batches[:3])}{'等' if len(batches) > 3 else ''}）"

    def price_of(self, order: Mapping[str, Any], line: Line) -> Pricing | None:
        """Price of a draft order from the price list: its national code, else its own codings."""
        candidates = [line.code, line.local_code]
        concept = (
            order.get("code")
            if order.get("resourceType") == "ServiceRequest"
            else order.get("medicationCodeableConcept")
        )
        candidates += [c.get("code") for c in codings(concept)]
        item = next((p for p in (self.prices.get(c) for c in candidates if c) if p is not None), None)
        if item is None:
            return None
        quantity = line.quantity
        dispense = order.get("dispenseRequest")
        if order.get("resourceType") == "MedicationRequest" and isinstance(dispense, Mapping):
            raw = dispense.get("quantity")
            value = as_decimal(raw.get("value")) if isinstance(raw, Mapping) else None
            quantity = value if value is not None and value > 0 else quantity
        return Pricing(item.unit_price, (item.unit_price * quantity).quantize(_CENT, rounding=ROUND_HALF_UP))


def _dip_level(settings: Any) -> int | None:
    try:
        dip = settings.section("dip")
    except (KeyError, AttributeError):
        return None
    try:
        return parse_level(getattr(dip, "hospital_level", None))
    except Exception:  # noqa: BLE001 - [dip] hospital_level is free text there ("三甲"): unreadable = unknown
        return None


def audit_context(app_data: Any, settings: Any, extension: Mapping[str, Any] | None = None) -> AuditContext:
    audit = audit_settings(settings)
    home = Path(app_data.home)
    holder = app_data["yb_rules"] if "yb_rules" in getattr(app_data, "names", ()) else RuleHolder(home)
    level = audit.hospital_level if audit.hospital_level is not None else _dip_level(settings)
    tables = value_tables(home)
    if extension and extension.get(HOSPITAL_LEVEL_EXTENSION) is not None:
        # 二级 / 三级甲等 / 1–3, or a 3101 medins_lv code (05 二级甲等 …); a bad value keeps the setting
        level = tables.level_of(str(extension[HOSPITAL_LEVEL_EXTENSION])) or level
    return AuditContext(
        rules=enabled_rules(holder.current(), audit.disabled_rules),
        settings=audit,
        tables=tables,
        local_maps=local_maps_for(home),
        prices=load_prices(home),
        hospital_level=level,
        home=home,
    )
