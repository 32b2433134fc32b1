"""Settlement parameters of one 统筹区 and period, read from a TOML file (see docs/settle.example.toml).

Everything a bureau changes from year to year (fund budgets, fund payment ratios, trimming,
prepayment ratio, historical data for the 年初点值, hospital assessment coefficients) lives here,
not in code. Money is parsed as ``Decimal`` from strings so no float ever touches a yuan amount.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

CENT = Decimal("0.01")
#: Budget (年初) point values are published to six decimals of a yuan per score point.
POINT_VALUE_PLACES = Decimal("0.000001")


class ConfigError(ValueError):
    """The settlement configuration is unusable; the message says which key and why."""


@dataclass(frozen=True)
class HistoryYear:
    """One historical year behind the 年初点值: total inpatient cost, total score, weight (e.g. 1:2:7)."""

    year: int
    total_cost: Decimal
    total_score: Decimal
    weight: Decimal


@dataclass(frozen=True)
class Fund:
    """One 基金 (职工 / 居民, or a single pooled fund) settled with its own point value."""

    key: str
    label: str
    insurance_types: tuple[str, ...]
    budget: Decimal | None  # DIP fund available for the year (yuan); required for annual settlement
    payment_ratio: Decimal  # 基金支付比例: share of the DIP amount the fund pays
    history: tuple[HistoryYear, ...] = ()
    budget_point_value: Decimal | None = None  # explicit 年初点值 overrides the history

    def year_start_point_value(self) -> Decimal | None:
        """年初点值 = Σ w·cost / Σ w·score over the history, or the explicit value."""
        if self.budget_point_value is not None:
            return self.budget_point_value
        if not self.history:
            return None
        cost = sum((h.weight * h.total_cost for h in self.history), Decimal(0))
        score = sum((h.weight * h.total_score for h in self.history), Decimal(0))
        if score <= 0:
            return None
        return (cost / score).quantize(POINT_VALUE_PLACES, ROUND_HALF_UP)


@dataclass(frozen=True)
class SettleConfig:
    region: str | None = None
    funds: tuple[Fund, ...] = ()
    trim: str = "none"  # "none" | "quantile"
    trim_quantiles: tuple[Decimal, Decimal] = (Decimal("0.025"), Decimal("0.975"))
    prepayment_ratio: Decimal = Decimal("0.90")
    special_review_ratio: Decimal = Decimal("5")  # > 5× reference: 特例单议 candidate
    high_review_ratio: Decimal = Decimal("2")  # > 2× reference: listed as 超高 candidate
    assessment: dict[str, Decimal] = field(default_factory=dict)  # hospital_id -> 考核系数
    hospital_names: dict[str, str] = field(default_factory=dict)
    deductions_file: str | None = None
    chunk_size: int = 50_000
    source: str = "(defaults)"

    def fund_for(self, insurance_type: str | None, fund_type: str | None = None) -> Fund | None:
        """The fund a case is settled in: an explicit fund_type column wins over the insurance type."""
        for candidate in (fund_type, insurance_type):
            if candidate:
                key = candidate.strip()
                for fund in self.funds:
                    if key == fund.key or key in fund.insurance_types:
                        return fund
        for fund in self.funds:
            if "*" in fund.insurance_types:
                return fund
        return None

    def fund(self, key: str) -> Fund:
        for fund in self.funds:
            if fund.key == key:
                return fund
        raise KeyError(key)

    def fingerprint(self) -> str:
        """Stable hash of every parameter: a resumed run must use the same configuration."""
        data = asdict(self)
        data.pop("source", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _decimal(value: object, key: str, *, positive: bool = False) -> Decimal:
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).replace(",", "").strip())
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(f"{key}: not a number: {value!r}") from exc
    if not number.is_finite() or (positive and number <= 0) or number < 0:
        raise ConfigError(f"{key}: must be {'> 0' if positive else '≥ 0'}, got {value!r}")
    return number


def _fund(key: str, raw: dict) -> Fund:
    where = f"funds.{key}"
    ratio = _decimal(raw.get("payment_ratio", "1"), f"{where}.payment_ratio", positive=True)
    if ratio > 1:
        raise ConfigError(f"{where}.payment_ratio must be ≤ 1, got {ratio}")
    history = []
    for i, row in enumerate(raw.get("history", [])):
        history.append(
            HistoryYear(
                year=int(row.get("year", 0)),
                total_cost=_decimal(row["total_cost"], f"{where}.history[{i}].total_cost"),
                total_score=_decimal(row["total_score"], f"{where}.history[{i}].total_score", positive=True),
                weight=_decimal(row.get("weight", "1"), f"{where}.history[{i}].weight"),
            )
        )
    types = raw.get("insurance_types", [key])
    if isinstance(types, str):
        types = [types]
    budget = raw.get("budget")
    bpv = raw.get("budget_point_value")
    return Fund(
        key=key,
        label=str(raw.get("label", key)),
        insurance_types=tuple(str(t).strip() for t in types),
        budget=None if budget is None else _decimal(budget, f"{where}.budget", positive=True),
        payment_ratio=ratio,
        history=tuple(history),
        budget_point_value=None
        if bpv is None
        else _decimal(bpv, f"{where}.budget_point_value", positive=True),
    )


#: Used when no configuration names any fund: one pooled fund for every insurance type.
DEFAULT_FUND = Fund(
    key="all", label="全部基金", insurance_types=("*",), budget=None, payment_ratio=Decimal(1)
)


def parse_config(data: dict, source: str = "(dict)") -> SettleConfig:
    """Build a :class:`SettleConfig` from parsed TOML; unknown keys are errors (typos must not pass)."""
    known = {
        "region",
        "funds",
        "trim",
        "trim_quantiles",
        "prepayment_ratio",
        "special_review_ratio",
        "high_review_ratio",
        "hospitals",
        "audit_deductions",
        "chunk_size",
    }
    section = data.get("settlement", data)
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"unknown settlement keys: {', '.join(sorted(unknown))}")
    funds = tuple(_fund(k, v) for k, v in sorted(section.get("funds", {}).items()))
    trim = str(section.get("trim", "none"))
    if trim not in ("none", "quantile"):
        raise ConfigError(f"trim must be 'none' or 'quantile', got {trim!r}")
    lo, hi = (_decimal(q, "trim_quantiles") for q in section.get("trim_quantiles", ["0.025", "0.975"]))
    if not (0 <= lo < hi <= 1):
        raise ConfigError("trim_quantiles must satisfy 0 ≤ low < high ≤ 1")
    prepay = _decimal(section.get("prepayment_ratio", "0.90"), "prepayment_ratio", positive=True)
    if prepay > 1:
        raise ConfigError("prepayment_ratio must be ≤ 1")
    assessment: dict[str, Decimal] = {}
    names: dict[str, str] = {}
    for hid, hospital in section.get("hospitals", {}).items():
        if "assessment" in hospital:
            assessment[str(hid)] = _decimal(hospital["assessment"], f"hospitals.{hid}.assessment")
        if "name" in hospital:
            names[str(hid)] = str(hospital["name"])
    chunk = int(section.get("chunk_size", 50_000))
    if chunk < 1:
        raise ConfigError("chunk_size must be ≥ 1")
    return SettleConfig(
        region=section.get("region"),
        funds=funds or (DEFAULT_FUND,),
        trim=trim,
        trim_quantiles=(lo, hi),
        prepayment_ratio=prepay,
        special_review_ratio=_decimal(
            section.get("special_review_ratio", "5"), "special_review_ratio", positive=True
        ),
        high_review_ratio=_decimal(section.get("high_review_ratio", "2"), "high_review_ratio", positive=True),
        assessment=assessment,
        hospital_names=names,
        deductions_file=section.get("audit_deductions"),
        chunk_size=chunk,
        source=source,
    )


def load_config(path: str | Path | None) -> SettleConfig:
    """Read the TOML file; ``None`` gives the defaults (one pooled fund, no budget: estimates only)."""
    if path is None:
        return parse_config({}, "(defaults)")
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    config = parse_config(data, str(path))
    if config.deductions_file and not Path(config.deductions_file).is_absolute():
        # relative paths in a config file are relative to that file, as users expect
        config = SettleConfig(
            **{**config.__dict__, "deductions_file": str(path.parent / config.deductions_file)}
        )
    return config
