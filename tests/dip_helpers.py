"""Helpers for the DIP engine / grouper tests: real data location and small case builders."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from grouper import Case, Group, GroupType

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PDS_DIR = DATA / "catalogs" / "410400-pingdingshan-2025-dip2.0"
PDS_XLSX = PDS_DIR / "平顶山2025年DIP2.0分组目录库.xlsx"
OPTYPES = DATA / "terminology" / "icd9cm3-yb2.0-optypes.csv"


def need_real_data() -> None:
    if not PDS_XLSX.is_file() or not OPTYPES.is_file():
        pytest.skip("real reference data ../shared/data is absent")


def case(dx: str, *procs: str, **kw) -> Case:
    return Case(case_id=kw.pop("case_id", "t"), main_diagnosis=dx, procedures=tuple(procs), **kw)


def core(code: str, score: str = "1000", avg_cost: str | None = None) -> Group:
    """A core group from its published code, e.g. ``C34.1:32.4100_33.3903+40.5914``; ``a|b`` = any of."""
    dx, _, rest = code.partition(":")
    slots: list[tuple[str, ...]] = []
    if rest:
        main, _, related = rest.partition("_")
        slots = [tuple(main.split("|"))] + [tuple(r.split("|")) for r in related.split("+") if r]
    return Group(
        code=code, type=GroupType.CORE, dx_key=dx, score=Decimal(score),
        slots=tuple(frozenset(c.upper() for c in s) for s in slots), procedures=tuple(slots),
        avg_cost=Decimal(avg_cost) if avg_cost else None,
    )  # fmt: skip


def comprehensive(code: str, score: str = "900") -> Group:
    key, _, t = code.partition(":")
    gtype = GroupType.CHAPTER if key.startswith("CP") else GroupType.COMPREHENSIVE
    return Group(code=code, type=gtype, dx_key=key, score=Decimal(score), op_type=t)
