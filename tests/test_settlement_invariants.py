"""Reconciliation invariants on generated batches (hypothesis), against the built-in sample catalog.

Whatever the batch — bad rows, duplicates, unknown funds, ungroupable codes, extreme costs,
trimming on or off — cases in = settled + out of period + rejected, and every fund's money adds up
to its budget to the cent.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.period import largest_remainder
from tests.settlement_helpers import CASE_HEADER, read_rows, settle, write_cases

STAYS = [
    ("K35.3", "47.0100"),
    ("K35.3", ""),
    ("C34.1", "32.4100|33.3903|40.5914"),
    ("J18.9", ""),
    ("I63.9", ""),
    ("K80.1", "51.2300"),
    ("O80.0", ""),
    ("ZZZ", ""),  # not a code: 未入组
    ("", ""),  # no diagnosis: rejected
]
HOSPITALS = [("H1", "1"), ("H2", "2"), ("H3", "3"), ("H4", "3")]

case_rows = st.lists(
    st.fixed_dictionaries(
        {
            "stay": st.sampled_from(STAYS),
            "cost": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300000"), places=2),
            "hospital": st.sampled_from(HOSPITALS),
            "insurance": st.sampled_from(["职工", "居民", "居民", "商业保险"]),
            "id": st.integers(0, 60),
            "month": st.sampled_from(["2025-03-02", "2025-06-30", "2024-12-31", ""]),
        }
    ),
    min_size=1,
    max_size=60,
)
funds = st.tuples(
    st.decimals(min_value=Decimal("10000"), max_value=Decimal("90000000"), places=2),
    st.sampled_from(["0.5", "0.62", "0.75", "0.9", "1"]),
)


def _config(employee, resident, trim: bool) -> str:
    return f"""
[settlement]
trim = "{"quantile" if trim else "none"}"
[settlement.funds.employee]
insurance_types = ["职工"]
budget = "{employee[0]}"
payment_ratio = "{employee[1]}"
[settlement.funds.resident]
insurance_types = ["居民"]
budget = "{resident[0]}"
payment_ratio = "{resident[1]}"
"""


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=case_rows, employee=funds, resident=funds, trim=st.booleans())
def test_cases_and_money_always_reconcile(tmp_path_factory, rows, employee, resident, trim):
    tmp = tmp_path_factory.mktemp("inv")
    records = []
    for r in rows:
        dx, procs = r["stay"]
        hid, level = r["hospital"]
        records.append(
            {
                "case_id": f"c{r['id']}",
                "sex": "女",
                "age": "50",
                "los_days": "5",
                "main_diagnosis": dx,
                "other_diagnoses": "",
                "procedures": procs,
                "total_cost": str(r["cost"]),
                "hospital_id": hid,
                "hospital_level": level,
                "insurance_type": r["insurance"],
                "department": "内科",
                "discharge_date": r["month"],
            }
        )
    src = write_cases(tmp / "cases.csv", records, CASE_HEADER)
    out = tmp / "out"
    report = settle(tmp / "home", [src], out, _config(employee, resident, trim))
    result = report.result
    counts = result.counts

    assert counts["rows_in"] == len(rows)
    assert counts["rows_in"] == counts["settled"] + counts["out_of_period"] + counts["rejected"]
    cases = read_rows(out / "cases.csv")
    assert len(cases) == counts["settled"]
    assert len({c["case_id"] for c in cases}) == len(cases)  # never double-counted
    assert all(Decimal(c["dip_payment"]) >= 0 and Decimal(c["fund_payment"]) >= 0 for c in cases)

    for plan in result.plans:
        mine = [c for c in cases if c["fund"] == plan.fund]
        if plan.problem:
            assert plan.problem in (
                "本期没有按DIP结算的病例,无法计算结算点值",
                "按项目结算病例的费用已超过基金预算",
            )
            continue
        budget = employee[0] if plan.fund == "employee" else resident[0]
        ratio = Decimal(employee[1] if plan.fund == "employee" else resident[1])
        assert sum(Decimal(c["fund_payment"]) for c in mine) == budget
        assert sum(Decimal(c["dip_payment"]) for c in mine) == (budget / ratio).quantize(Decimal("0.01"))
        scored = [c for c in mine if c["basis"] == "DIP"]
        total = sum(Decimal(c["settle_score"]) for c in scored)
        pool = sum(Decimal(c["dip_payment"]) for c in scored)
        for c in scored:  # each case gets its proportional share, to within one cent
            assert abs(Decimal(c["dip_payment"]) - Decimal(c["settle_score"]) * pool / total) < Decimal(
                "0.01"
            )

    hospitals = read_rows(out / "hospitals.csv")
    assert sum(Decimal(h["fund_payment"]) for h in hospitals) == sum(
        Decimal(c["fund_payment"]) for c in cases
    )
    assert sum(int(h["cases"]) for h in hospitals) == len(cases)
    assert all(check["ok"] for check in result.reconciliation if "结算点值" not in check["check"])


@given(
    total=st.integers(0, 10**12),
    units=st.lists(st.integers(0, 10**9), min_size=1, max_size=50).filter(lambda u: sum(u) > 0),
)
def test_largest_remainder_shares_add_up_exactly_and_stay_within_a_cent(total, units):
    shares = largest_remainder(total, units)
    assert sum(shares) == total
    whole = sum(units)
    for share, u in zip(shares, units, strict=True):
        assert abs(share * whole - total * u) < whole  # |share − exact| < 1 cent
