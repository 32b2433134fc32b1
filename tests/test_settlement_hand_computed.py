"""Settlements of small batches computed by hand from the published 平顶山 catalog and DIP-RULES §3–5."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.settlement_helpers import (
    RULES,
    TWO_FUNDS,
    by_id,
    case,
    catalog_row,
    import_real_catalog,
    q2,
    q4,
    read_rows,
    settle,
    summary,
    write_cases,
)

APPENDIX = "K35.3:47.0100"
PNEUMONIA = "J18.9"  # declared 基层病种 in RULES: no hospital coefficient
GALLBLADDER = "K80.1:51.2300"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return import_real_catalog(tmp_path_factory.mktemp("settle-home"), RULES)


def _batch() -> list[dict]:
    return [
        case("c-normal", "K35.3", "47.0100", "9000.00", "H3", "3"),
        case("c-low", "K35.3", "47.0100", "3000.00", "H3", "3"),
        case("c-high", "K35.3", "47.0100", "25000.00", "H3", "3"),
        case("c-5x", "K35.3", "47.0100", "40000.00", "H1", "1"),
        case("c-primary", "J18.9", "", "3000.00", "H3", "3", department="呼吸内科"),
        case("c-res-gall", "K80.1", "51.2300", "9000.00", "H1", "1", insurance="居民"),
        case("c-res-app", "K35.3", "47.0100", "8000.00", "H3", "3", insurance="居民"),
        case("c-ungrouped", "ZZZ", "", "2000.00", "H1", "1"),
        case("c-no-dx", "", "", "1000.00", "H1", "1"),
        case("c-bad-cost", "K35.3", "47.0100", "abc", "H1", "1"),
    ]


def _expected_scores() -> dict[str, Decimal]:
    """Settlement scores by DIP 2.0: score × coefficient, then the deviation adjustment."""
    app, pneu, gall = catalog_row(APPENDIX), catalog_row(PNEUMONIA), catalog_row(GALLBLADDER)
    h3, h1 = Decimal("1.1"), Decimal("0.9")
    app_h3, app_h1 = q4(app["score"] * h3), q4(app["score"] * h1)
    ref_h3, ref_h1 = q2(app["avg_cost"] * h3), q2(app["avg_cost"] * h1)
    return {
        "c-normal": app_h3,  # 9000 / 9339.56 = 96 %: 正常
        "c-low": q4(app_h3 * Decimal("3000.00") / ref_h3),  # 32 % < 50 %: score × cost / reference
        "c-high": q4(app_h3 * (Decimal("25000.00") / ref_h3 - 1)),  # 268 % > 200 %: score × (ratio − 2 + 1)
        "c-5x": q4(
            app_h1 * (Decimal("40000.00") / ref_h1 - 1)
        ),  # 523 % > 5×: same formula, 特例单议 candidate
        "c-primary": q4(pneu["score"]),  # 基层病种 at a 三级 hospital: no coefficient
        "c-res-gall": q4(gall["score"] * h1),
        "c-res-app": app_h3,
    }


def test_annual_settlement_with_two_funds_matches_hand_computation(home, tmp_path):
    src = write_cases(tmp_path / "batch.csv", _batch())
    out = tmp_path / "out"
    report = settle(home, [src], out, TWO_FUNDS, region="410400")
    cases = by_id(out / "cases.csv")
    expected = _expected_scores()

    for case_id, score in expected.items():
        assert Decimal(cases[case_id]["settle_score"]) == score, case_id
    assert cases["c-low"]["deviation_band"] == "超低"
    assert cases["c-high"]["deviation_band"] == "超高"
    assert cases["c-5x"]["deviation_band"] == "特例"
    assert cases["c-5x"]["special_review"].startswith("超5倍")
    assert cases["c-high"]["special_review"] == "超2倍"
    assert Decimal(cases["c-primary"]["hospital_coef"]) == 1
    assert cases["c-primary"]["group_type"] == "基层"

    # employee fund: DIP amount = 60000 / 0.75 = 80000. "ZZZ" is no diagnosis code: the quality gate
    # rejects the case and, by the default rule, it is not paid (listed with its reason), so the
    # whole pool goes to the DIP cases
    employee = ["c-normal", "c-low", "c-high", "c-5x", "c-primary"]
    total_score = sum(expected[c] for c in employee)
    dip_pool = Decimal("80000.00")
    fund_pool = Decimal("60000.00")
    for c in employee:
        exact = expected[c] * dip_pool / total_score
        assert abs(Decimal(cases[c]["dip_payment"]) - exact) < Decimal("0.01"), c
        exact_fund = expected[c] * fund_pool / total_score
        assert abs(Decimal(cases[c]["fund_payment"]) - exact_fund) < Decimal("0.01"), c
    assert sum(Decimal(cases[c]["dip_payment"]) for c in employee) == dip_pool
    rejected = cases["c-ungrouped"]
    assert rejected["basis"] == "不予支付(质控不通过)" and rejected["qc_flags"] == "dx.invalid:ZZZ"
    assert "dx.invalid" in rejected["reason"] and "ZZZ" in rejected["reason"]
    assert Decimal(rejected["dip_payment"]) == Decimal(rejected["fund_payment"]) == 0
    employee_fund = sum(Decimal(cases[c]["fund_payment"]) for c in [*employee, "c-ungrouped"])
    assert employee_fund == Decimal("60000.00")
    assert report.result.counts["qc_rejected"] == report.result.counts["withheld"] == 1

    # resident fund: its own point value = (20000 / 0.6) / Σ resident scores
    resident = ["c-res-gall", "c-res-app"]
    assert sum(Decimal(cases[c]["fund_payment"]) for c in resident) == Decimal("20000.00")
    assert sum(Decimal(cases[c]["dip_payment"]) for c in resident) == q2(Decimal("20000") / Decimal("0.6"))
    funds = {f["fund"]: f for f in summary(out)["funds"]}
    pv_res = Decimal(funds["resident"]["point_value"])
    assert abs(pv_res - q2(Decimal("20000") / Decimal("0.6")) / sum(expected[c] for c in resident)) < Decimal(
        "1e-12"
    )
    assert abs(Decimal(funds["employee"]["point_value"]) - dip_pool / total_score) < Decimal("1e-12")

    # rejects: line numbers of the file (header is line 1) and reasons
    rejects = {r["case_id"]: r for r in read_rows(out / "rejects.csv")}
    assert rejects["c-no-dx"]["line"] == "10" and "main_diagnosis" in rejects["c-no-dx"]["reason"]
    assert rejects["c-bad-cost"]["line"] == "11" and "total_cost" in rejects["c-bad-cost"]["reason"]
    assert report.result.ok
    assert report.result.counts["rows_in"] == 10 and report.result.counts["rejected"] == 2


def test_a_region_that_pays_rejected_cases_at_cost_takes_them_out_of_the_dip_pool_first(tmp_path):
    rules = RULES + '\n[ungrouped]\nrejected_payment = "fee_for_service"\n'
    home = import_real_catalog(tmp_path / "home", rules)
    out = tmp_path / "out"
    report = settle(home, [write_cases(tmp_path / "b.csv", _batch())], out, TWO_FUNDS, region="410400")
    cases = by_id(out / "cases.csv")
    assert cases["c-ungrouped"]["basis"] == "按项目(质控不通过)"
    assert Decimal(cases["c-ungrouped"]["dip_payment"]) == Decimal("2000.00")
    assert Decimal(cases["c-ungrouped"]["fund_payment"]) == Decimal("1500.00")
    employee = ["c-normal", "c-low", "c-high", "c-5x", "c-primary"]
    assert sum(Decimal(cases[c]["dip_payment"]) for c in employee) == Decimal("80000.00") - Decimal("2000.00")
    assert report.result.ok and report.result.counts["withheld"] == 0


def test_hospital_summary_adds_gain_loss_cmi_assessment_and_deductions(home, tmp_path):
    deductions = tmp_path / "deductions.csv"
    deductions.write_text(
        "hospital_id,case_id,amount,reason\nH3,c-high,100.00,高套编码\nH9,,5.00,无此机构\n", encoding="utf-8"
    )
    config = TWO_FUNDS + f'\naudit_deductions = "{deductions.as_posix()}"\n'
    config = config.replace(
        'region = "410400"', f'region = "410400"\naudit_deductions = "{deductions.as_posix()}"'
    )
    config = (
        config.rsplit("\naudit_deductions", 1)[0] + '\n\n[settlement.hospitals.H1]\nassessment = "0.98"\n'
    )
    out = tmp_path / "out"
    report = settle(home, [write_cases(tmp_path / "b.csv", _batch())], out, config, region="410400")
    cases = read_rows(out / "cases.csv")
    hospitals = {h["hospital_id"]: h for h in read_rows(out / "hospitals.csv")}

    for hid, h in hospitals.items():
        mine = [c for c in cases if c["hospital_id"] == hid]
        dip = sum(Decimal(c["dip_payment"]) for c in mine)
        cost = sum(Decimal(c["total_cost"]) for c in mine)
        fund = sum(Decimal(c["fund_payment"]) for c in mine)
        assert Decimal(h["dip_payment"]) == dip
        assert Decimal(h["gain_loss"]) == dip - cost
        assert Decimal(h["fund_payment"]) == fund
        scored = [c for c in mine if c["basis"] == "DIP"]
        assert Decimal(h["cmi"]) == q4(sum(Decimal(c["base_score"]) for c in scored) / len(scored) / 1000)
    h3, h1 = hospitals["H3"], hospitals["H1"]
    assert Decimal(h3["deductions"]) == Decimal("100.00")
    assert Decimal(h3["net_settlement"]) == Decimal(h3["fund_payment"]) - Decimal("100.00")
    assert Decimal(h1["net_settlement"]) == q2(Decimal(h1["fund_payment"]) * Decimal("0.98"))
    assert h3["review_5x"] == "0" and h1["review_5x"] == "1"
    assert any("H9" in p for p in report.result.notices)


def test_monthly_prepayment_uses_year_start_point_value_and_ratio(home, tmp_path):
    config = """
[settlement]
prepayment_ratio = "0.9"

[settlement.funds.employee]
insurance_types = ["职工"]
payment_ratio = "0.75"
history = [
  { year = 2023, total_cost = "5600000", total_score = "1000000", weight = "1" },
  { year = 2024, total_cost = "5900000", total_score = "1000000", weight = "2" },
]

[settlement.funds.resident]
insurance_types = ["居民"]
payment_ratio = "0.6"
budget_point_value = "5.5"
"""
    rows = _batch()[:7]
    rows.append(case("c-july", "K35.3", "47.0100", "9000.00", "H3", "3", discharge_date="2025-07-02"))
    out = tmp_path / "out"
    report = settle(
        home, [write_cases(tmp_path / "m.csv", rows)], out, config, region="410400", month="2025-06"
    )
    cases = by_id(out / "cases.csv")
    assert "c-july" not in cases and report.result.counts["out_of_period"] == 1
    pv_emp = q4((Decimal(5600000) + 2 * Decimal(5900000)) / Decimal(3000000)).quantize(Decimal("0.000001"))
    expected = _expected_scores()
    for case_id, score in expected.items():
        pv = Decimal("5.5") if case_id.startswith("c-res") else pv_emp
        ratio = Decimal("0.6") if case_id.startswith("c-res") else Decimal("0.75")
        dip = q2(score * pv)
        assert Decimal(cases[case_id]["dip_payment"]) == dip, case_id
        assert Decimal(cases[case_id]["fund_payment"]) == q2(dip * ratio), case_id
    hospitals = {h["hospital_id"]: h for h in read_rows(out / "hospitals.csv")}
    h3_fund = sum(Decimal(c["fund_payment"]) for c in cases.values() if c["hospital_id"] == "H3")
    assert Decimal(hospitals["H3"]["prepayment"]) == q2(h3_fund * Decimal("0.9"))
    assert report.result.ok


def test_a_fund_with_budget_but_no_cases_is_reported_not_silently_dropped(home, tmp_path):
    rows = [r for r in _batch() if r["insurance_type"] == "职工"]
    report = settle(
        home, [write_cases(tmp_path / "e.csv", rows)], tmp_path / "out", TWO_FUNDS, region="410400"
    )
    assert not report.result.ok
    failed = [c["check"] for c in report.result.reconciliation if not c["ok"]]
    assert failed == ["居民医保: 结算点值"]


def test_quantile_trimming_pays_extreme_cases_at_cost_and_still_balances(home, tmp_path):
    rows = [case(f"t{i:02d}", "K35.3", "47.0100", f"{3000 + 500 * i}.00", "H3", "3") for i in range(40)]
    config = TWO_FUNDS.replace('region = "410400"', 'region = "410400"\ntrim = "quantile"').split(
        "[settlement.funds.resident]"
    )[0]
    out = tmp_path / "out"
    report = settle(home, [write_cases(tmp_path / "t.csv", rows)], out, config, region="410400")
    cases = by_id(out / "cases.csv")
    trimmed = sorted(c for c, row in cases.items() if row["basis"] == "按项目(分位数修剪)")
    assert trimmed == ["t00", "t39"]  # floor(40 × 2.5 %) = 1 case at each end
    assert Decimal(cases["t00"]["dip_payment"]) == Decimal(cases["t00"]["total_cost"])
    assert sum(Decimal(r["fund_payment"]) for r in cases.values()) == Decimal("60000.00")
    assert report.result.ok


def test_a_point_value_far_from_the_year_start_value_is_named_in_the_run(home, tmp_path):
    """A whole city's budget over a handful of cases is arithmetically settled, and said to be implausible."""
    year_start = '\nbudget_point_value = "5.5"\n[settlement.funds.resident]'
    huge = TWO_FUNDS.replace('budget = "60000.00"', 'budget = "600000000.00"')
    report = settle(home, [write_cases(tmp_path / "a.csv", _batch())], tmp_path / "a",
                    huge.replace("\n[settlement.funds.resident]", year_start), region="410400")  # fmt: skip
    (notice,) = [n for n in report.result.notices if n.startswith("职工医保")]
    point_value = Decimal(
        next(f for f in summary(tmp_path / "a")["funds"] if f["fund"] == "employee")["point_value"]
    )
    assert f"结算点值 {point_value:.4f} 是年初点值 5.5000 的 {point_value / Decimal('5.5'):.2f} 倍" in notice
    assert notice in (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    assert notice in summary(tmp_path / "a")["notices"]
    assert report.result.ok  # the arithmetic holds: this is a notice, not a failed check

    near = f'\nbudget_point_value = "{point_value / 2:.4f}"\n[settlement.funds.resident]'  # within 3×
    report = settle(home, [write_cases(tmp_path / "b.csv", _batch())], tmp_path / "b",
                    huge.replace("\n[settlement.funds.resident]", near), region="410400")  # fmt: skip
    assert not [n for n in report.result.notices if n.startswith("职工医保")]
