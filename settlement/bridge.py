"""The one place settlement talks to the DIP engine (issue 4): build it, group and price a case.

Settlement never re-implements grouping or per-case pricing: the hook services and the batch run
share ``dip_engine.engine.Engine``. This module only adapts the engine's ``GroupResult`` and
``Pricing`` to the flat record a settlement needs, so a renamed engine attribute is fixed here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

SCORE_PLACES = Decimal("0.0001")
#: settlement scores are carried as integers of 1/10,000 point so sums are exact in any engine
SCORE_UNIT = 10_000


@dataclass(frozen=True, slots=True)
class Priced:
    """Grouping and per-case pricing of one case, as settlement uses them."""

    dip_code: str
    group_type: str
    group_name: str
    grouped: bool
    base_score: Decimal  # catalog score of the group
    hospital_coef: Decimal
    aux_coef: Decimal
    case_score: Decimal  # base × coefficients, before the deviation adjustment
    reference_cost: Decimal | None
    band: str
    settle_score: Decimal  # adjusted case score (deviation rules applied), 4 decimals
    reason: str
    flags: str
    estimated: bool
    point_value: Decimal | None  # the engine's (estimated) point value, fallback for the 年初点值
    point_value_source: str = ""
    qc_flags: str = ""  # the quality gate's findings, ``rule:code|…``
    rejected: bool = False  # the quality gate kept the case out of grouping (质控不通过)
    fee_for_service: bool = True  # without a group: paid at cost (按项目) by the region's rule, else not paid


def build_engine(home: str | Path | None, region: str | None) -> tuple[Any, Any]:
    """(engine, catalog) for a region, built from the data home (the sample catalog when none imported)."""
    from dip_engine.engine import Engine

    engine = Engine.from_home(Path(home) if home else None, region)  # with the home's terminology
    return engine, engine.catalog


def make_case(row, case_cls=None):
    """The ``grouper.Case`` of a validated :class:`settlement.rows.SettleRow` (read by the engine's reader)."""
    return row.case


_ONE = Decimal(1)
_ZERO = Decimal(0)
_CENT = Decimal("0.01")


def price_case(engine: Any, case: Any) -> Priced:
    """Group and price one case with the shared engine (``Engine.group`` then ``Engine.price``)."""
    result = engine.group(case)
    flags = "|".join(result.flags) if result.flags else ""
    if result.dip_code is None or result.score is None:
        rule = engine.rules.rejected_payment if result.rejected else engine.rules.ungrouped_payment
        return Priced(
            dip_code="",
            group_type=result.group_type,
            group_name=result.group_name or "",
            grouped=False,
            base_score=_ZERO,
            hospital_coef=_ONE,
            aux_coef=_ONE,
            case_score=_ZERO,
            reference_cost=None,
            band="未入组",
            settle_score=_ZERO,
            reason=result.reason or "",
            flags=flags,
            estimated=False,
            point_value=None,
            qc_flags=result.qc_flags,
            rejected=result.rejected,
            fee_for_service=rule == "fee_for_service",
        )
    pricing = engine.price(case, result)
    case_score = pricing.case_score if pricing.case_score is not None else result.score
    adjusted = pricing.adjusted_case_score if pricing.adjusted_case_score is not None else case_score
    reference = pricing.reference_cost
    return Priced(
        dip_code=result.dip_code,
        group_type=result.group_type,
        group_name=result.group_name or "",
        grouped=True,
        base_score=result.score,
        hospital_coef=pricing.hospital_coefficient,
        aux_coef=pricing.aux_coefficient,
        case_score=case_score,
        reference_cost=None if reference is None else reference.quantize(_CENT, ROUND_HALF_UP),
        band=pricing.deviation_band or "正常",
        settle_score=adjusted.quantize(SCORE_PLACES, ROUND_HALF_UP),
        reason=result.reason or "",
        flags=flags,
        estimated=bool(pricing.estimated),
        point_value=pricing.point_value,
        point_value_source=pricing.point_value_source or "",
        qc_flags=result.qc_flags,
    )
