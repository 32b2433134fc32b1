"""Region rules (TOML): point values, coefficients, deviation rule, grouping policy.

Defaults ship in ``config/rules/default.toml``; a region's file (``<home>/rules/<region>.toml``,
the packaged ``config/rules/<region>.toml`` or an explicit path) lists only what differs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from dip_engine.quality import QualityConfigError, QualityRules
from grouper import GroupingPolicy

PACKAGE_RULES = Path(__file__).with_name("config") / "rules"


class RulesError(ValueError):
    """A rules file with a value the engine cannot use."""


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _d(value: object, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except Exception:
        raise RulesError(f"{what}: {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise RulesError(f"{what}: {value!r} must be a non-negative number")
    return d


@dataclass(frozen=True)
class Band:
    low: float | None
    high: float | None
    coefficient: Decimal
    label: str

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class RegionRules:
    region: str
    sources: tuple[str, ...]
    grouping: dict
    point_values: dict[str, dict[str, Decimal]]
    point_value_use: str
    hospital_default: Decimal
    hospital_by_level: dict[str, Decimal]
    hospital_by_hospital: dict[str, Decimal]
    age_bands: tuple[Band, ...] = ()  # in days
    icu_bands: tuple[Band, ...] = ()
    severity: tuple[tuple[frozenset[str], Decimal, str], ...] = ()
    cci_weights: dict[str, int] = field(default_factory=dict)
    cci_bands: tuple[Band, ...] = ()
    deviation_rule: str = "2.0"
    deviation_low: Decimal = Decimal("0.5")
    deviation_high: Decimal = Decimal("2.0")
    deviation_special: Decimal = Decimal("5.0")
    deviation_reference: str = "average_cost"
    hospital_default_configured: bool = False
    quality: QualityRules = field(default_factory=QualityRules)
    ungrouped_payment: str = "fee_for_service"
    rejected_payment: str = "none"

    def policy(
        self, catalog_codes: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset()
    ) -> GroupingPolicy:
        """The grouper policy; ``optional`` = codes whose 入选类型 is ignorable, minus catalog-named ones."""
        g = self.grouping
        ignored = {c.upper() for c in g.get("ignored_procedures", [])} | set(optional - catalog_codes)
        return GroupingPolicy(
            excluded_principal=self.excluded_principal,
            ignored_procedures=frozenset(ignored),
            simple_operations={
                code.upper(): why for code, why in g.get("simple_operations", {}).items() if why is not False
            },
            tie_break=tuple(g.get("tie_break", ())),
            type_selection=g.get("type_selection", "principal"),
            type_rank=tuple(g.get("type_rank", ("SS", "ZLXCZ", "ZDXCZ"))),
            conservative_types=frozenset(g.get("conservative_types", [])),
            primary_care=frozenset(c.upper() for c in g.get("primary_care_groups", [])),
            chapter_fallback=bool(g.get("chapter_fallback", True)),
        )

    @property
    def ignore_entry_options(self) -> set[str]:
        return set(self.grouping.get("ignore_entry_options", []))

    @property
    def excluded_principal(self) -> dict[str, str]:
        """Entry → rule: the national list (``never_principal``), then the region's additions."""
        out = {
            k.upper(): str(v) for k, v in self.grouping.get("never_principal", {}).items() if v is not False
        }
        for code in self.grouping.get("excluded_principal", []):
            out.setdefault(code.upper(), REGION_EXCLUSION)
        return out


REGION_EXCLUSION = "本统筹区规定"
PAYMENT_RULES = {
    "fee_for_service": "按项目付费（实际费用）",
    "none": "不予支付（退回医疗机构修改后重新申报）",
}


def _bands(items: list[dict], lo: str, hi: str, what: str, scale: int = 1) -> tuple[Band, ...]:
    out = []
    for i, item in enumerate(items):
        if "coefficient" not in item:
            raise RulesError(f"{what}[{i}]: missing coefficient")
        low, high = item.get(lo), item.get(hi)
        out.append(
            Band(
                None if low is None else float(low) * scale,
                None if high is None else float(high) * scale + (scale - 1),
                _d(item["coefficient"], f"{what}[{i}].coefficient"),
                str(item.get("label", "")),
            )
        )
    return tuple(out)


def parse_rules(region: str, data: dict, sources: tuple[str, ...] = ()) -> RegionRules:
    g = dict(data.get("grouping", {}))
    # the principal procedure now always comes first (national rule): an old region file may still list it
    g["tie_break"] = [t for t in g.get("tie_break", ()) if t != "principal_procedure"]
    for key in ("never_principal", "simple_operations"):
        table = g.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(v, str | bool) for v in table.values()):
            raise RulesError(f"[grouping.{key}] must map codes to a reason (or false to remove one)")
    try:
        GroupingPolicy(tie_break=tuple(g["tie_break"]), type_selection=g.get("type_selection", "principal"))
    except ValueError as exc:
        raise RulesError(f"[grouping] {exc}") from None
    try:
        quality = QualityRules.from_config(data.get("quality", {}))
    except QualityConfigError as exc:
        raise RulesError(str(exc)) from None
    ungrouped = data.get("ungrouped", {})
    payments = (ungrouped.get("payment", "fee_for_service"), ungrouped.get("rejected_payment", "none"))
    for key, value in zip(("payment", "rejected_payment"), payments, strict=True):
        if value not in PAYMENT_RULES:
            raise RulesError(f"[ungrouped] {key} must be one of {', '.join(PAYMENT_RULES)}, not {value!r}")
    pv = data.get("point_value", {})
    use = pv.get("use", "budget")
    if use not in ("budget", "settlement"):
        raise RulesError(f"[point_value] use must be 'budget' or 'settlement', not {use!r}")
    point_values = {
        ins: {
            kind: _d(v, f"point_value.{ins}.{kind}")
            for kind, v in table.items()
            if kind in ("budget", "settlement")
        }
        for ins, table in pv.items()
        if isinstance(table, dict)
    }
    hc = data.get("hospital_coefficient", {})
    aux = data.get("aux", {})
    age: list[Band] = []
    for i, item in enumerate(aux.get("age", [])):
        if "min_years" in item or "max_years" in item:
            age += _bands(
                [{"min": item.get("min_years"), "max": item.get("max_years"), **item}],
                "min",
                "max",
                f"aux.age[{i}]",
                365,
            )
        else:
            age += _bands([item], "min_days", "max_days", f"aux.age[{i}]")
    severity = tuple(
        (
            frozenset(c.upper() for c in s.get("codes", [])),
            _d(s.get("coefficient", "1"), f"aux.severity[{i}]"),
            str(s.get("label", "")),
        )
        for i, s in enumerate(aux.get("severity", []))
    )
    cci = aux.get("cci", {})
    dev = data.get("deviation", {})
    rule = str(dev.get("rule", "2.0"))
    if rule not in ("2.0", "3.0"):
        raise RulesError(f"[deviation] rule must be '2.0' or '3.0', not {rule!r}")
    reference = dev.get("reference", "average_cost")
    if reference not in ("average_cost", "standard"):
        raise RulesError("[deviation] reference must be 'average_cost' or 'standard'")
    low, high = _d(dev.get("low", "0.5"), "deviation.low"), _d(dev.get("high", "2.0"), "deviation.high")
    special = _d(dev.get("special", "5.0" if rule == "2.0" else "3.0"), "deviation.special")
    if not low < high <= special:
        raise RulesError("[deviation] needs low < high <= special")
    return RegionRules(
        region=region,
        sources=sources,
        grouping=g,
        point_values=point_values,
        point_value_use=use,
        hospital_default=_d(hc.get("default", "1"), "hospital_coefficient.default"),
        hospital_default_configured="default" in hc,
        hospital_by_level={
            str(k): _d(v, f"hospital_coefficient.by_level.{k}") for k, v in hc.get("by_level", {}).items()
        },
        hospital_by_hospital={
            str(k): _d(v, f"hospital_coefficient.by_hospital.{k}")
            for k, v in hc.get("by_hospital", {}).items()
        },
        age_bands=tuple(age),
        icu_bands=_bands(aux.get("icu_days", []), "min", "max", "aux.icu_days"),
        severity=severity,
        cci_weights={k.upper(): int(v) for k, v in cci.get("weights", {}).items()},
        cci_bands=_bands(cci.get("bands", []), "min", "max", "aux.cci.bands"),
        deviation_rule=rule,
        deviation_low=low,
        deviation_high=high,
        deviation_special=special,
        deviation_reference="standard" if rule == "3.0" and "reference" not in dev else reference,
        quality=quality,
        ungrouped_payment=payments[0],
        rejected_payment=payments[1],
    )


REGION_CODE = re.compile(r"^[0-9A-Za-z_-]{1,32}$")


def check_region_code(region: str) -> str:
    """Region codes name files (``rules/<region>.toml``): letters, digits, ``-`` and ``_`` only."""
    if not isinstance(region, str) or not REGION_CODE.match(region):
        raise RulesError(f"invalid region code {str(region)[:40]!r} (letters, digits, - and _ only)")
    return region


def load_rules(region: str, home: Path | None = None, path: Path | None = None) -> RegionRules:
    """Defaults, then the packaged region file, then the data home's, then an explicit file."""
    check_region_code(region)
    files = [PACKAGE_RULES / "default.toml", PACKAGE_RULES / f"{region}.toml"]
    if home is not None:
        files.append(Path(home) / "rules" / f"{region}.toml")
    if path is not None:
        if not Path(path).is_file():
            raise RulesError(f"rules file {path} does not exist")
        files.append(Path(path))
    data: dict = {}
    used = []
    for f in files:
        if f.is_file():
            try:
                with f.open("rb") as fh:
                    layer = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise RulesError(f"{f}: {exc}") from None
            if layer.get("grouping", {}).get("replace_simple_operations") and "grouping" in data:
                data["grouping"] = {k: v for k, v in data["grouping"].items() if k != "simple_operations"}
            data = _merge(data, layer)
            used.append(str(f))
    return parse_rules(region, data, tuple(used))
