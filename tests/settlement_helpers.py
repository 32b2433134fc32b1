"""Helpers for the settlement tests: a data home with the real 平顶山 catalog, case files, runs."""

from __future__ import annotations

import csv
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PDS = DATA / "catalogs" / "410400-pingdingshan-2025-dip2.0"
REGION = "410400"

RULES = """
[grouping]
primary_care_groups = ["J18.9"]

[hospital_coefficient]
default = "1"
by_level = { "3" = "1.1", "2" = "1.0", "1" = "0.9" }
"""

TWO_FUNDS = """
[settlement]
region = "410400"

[settlement.funds.employee]
label = "职工医保"
insurance_types = ["职工", "310"]
budget = "60000.00"
payment_ratio = "0.75"

[settlement.funds.resident]
label = "居民医保"
insurance_types = ["居民", "390"]
budget = "20000.00"
payment_ratio = "0.6"
"""

CASE_HEADER = (
    "case_id",
    "sex",
    "age",
    "los_days",
    "main_diagnosis",
    "other_diagnoses",
    "procedures",
    "total_cost",
    "hospital_id",
    "hospital_level",
    "insurance_type",
    "department",
    "discharge_date",
)


def q2(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def q4(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001"), ROUND_HALF_UP)


def require_real_data() -> None:
    if not (PDS / "目录.csv").is_file():
        pytest.skip("real reference data ../shared/data not available")


def import_real_catalog(home: Path, rules_toml: str | None = None) -> Path:
    """Import the real 平顶山 catalog into ``home`` with the engine's own importer and store."""
    require_real_data()
    from dip_engine.importer import import_catalog
    from dip_engine.store import save_catalog

    home.mkdir(parents=True, exist_ok=True)
    catalog, _report = import_catalog(
        PDS / "目录.csv", REGION, "平顶山", 2025, stats_path=PDS / "中间结果.csv"
    )
    save_catalog(home, catalog, make_default=True)
    if rules_toml:
        (home / "rules").mkdir(exist_ok=True)
        (home / "rules" / f"{REGION}.toml").write_text(rules_toml, encoding="utf-8")
    return home


def catalog_row(code: str) -> dict[str, Decimal]:
    """Score and average cost of a group straight from the published files (independent of the engine)."""
    with (PDS / "中间结果.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["DIP_CODE"] == code:
                return {"score": Decimal(row["WEIGHT_SCORE"]), "avg_cost": Decimal(row["DIP_AVG_FEE"])}
    raise KeyError(code)


def case(
    case_id: str,
    dx: str,
    procedures: str,
    cost: str,
    hospital: str,
    level: str,
    insurance: str = "职工",
    **extra,
) -> dict:
    row = {
        "case_id": case_id,
        "sex": "男",
        "age": "40",
        "los_days": "6",
        "main_diagnosis": dx,
        "other_diagnoses": "",
        "procedures": procedures,
        "total_cost": cost,
        "hospital_id": hospital,
        "hospital_level": level,
        "insurance_type": insurance,
        "department": "普外科",
        "discharge_date": "2025-06-15",
    }
    row.update(extra)
    return row


def write_cases(path: Path, rows: list[dict], header=CASE_HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def by_id(path: Path) -> dict[str, dict]:
    return {row["case_id"]: row for row in read_rows(path)}


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def settle(home: Path, inputs: list[Path], out: Path, config_toml: str | None = None, **kwargs):
    """Run a settlement in-process (one worker, no progress bar) and return the RunReport."""
    from settlement.config import load_config
    from settlement.run import RunOptions, run_settlement

    config_path = None
    if config_toml is not None:
        config_path = out.parent / f"{out.name}-settle.toml"
        config_path.write_text(config_toml, encoding="utf-8")
    options = {"period": "2025", "region": None, "workers": 1, "progress": False}
    options.update(kwargs)
    return run_settlement(
        RunOptions(inputs=list(inputs), output=out, config=load_config(config_path), home=home, **options)
    )


def output_bytes(out: Path) -> dict[str, bytes]:
    """Every report file of an output directory (checkpoints excluded)."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
