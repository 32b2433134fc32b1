"""The evaluator, kind by kind: what breaks each rule, what stays just inside it, and the amount at
risk (the rules are the built-in sample: real rules, ids and texts of the national library)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.yb_audit_helpers import (
    ADHESIOLYSIS,
    AMBULATORY_BP,
    ANGONG,
    APALUTAMIDE,
    APPENDECTOMY,
    CHILD_SYRUP,
    COLD_PRESSOR,
    DELIVERY,
    ECG_MONITOR,
    FETAL_MONITOR,
    FISH_OIL,
    HBA1C,
    HEARING_TRAINING,
    HEMATOMA,
    ICU_CARE,
    MULTI_HEMATOMA,
    NEWBORN_CARE,
    ORAL_CARE,
    OZAGREL,
    RULE_LIBRARY,
    SAMPLE,
    SCAR_CREAM,
    SETTINGS,
    SHENFU,
    WARD_VISIT,
    WEIGHT_TRAINING,
    WORK_TRAINING,
    case,
    line,
)
from yb_audit.evaluate import evaluate
from yb_audit.model import Stay


def findings(c, drafts_only=False, settings=SETTINGS):
    return evaluate(SAMPLE, c, settings, drafts_only=drafts_only).findings


def keys(c, **kw):
    return sorted((f.rule_id, f.check, f.line_ref, f.severity, f.amount_at_risk) for f in findings(c, **kw))


# ----------------------------------------------------------------------------- facts of patient and stay


def test_a_drug_limited_to_men_ordered_for_a_woman_is_a_violation_with_the_bureau_text():
    [f] = findings(case(line("mr1", APALUTAMIDE, "2026-11-22T09:00", price="79.90", qty=2), sex="女"))
    assert (f.rule_id, f.kind, f.batch, f.severity, f.amount_at_risk) == (
        "B01-DSEX-0001",
        "sex",
        "第一批",
        "违规",
        Decimal("159.80"),
    )
    assert f.rule_text == "限转移性激素敏感性前列腺癌(mHSPC)患者。" and "患者为女性" in f.message
    assert f.evidence == ("患者性别：女",)


def test_sex_rule_negative_and_unknown_sex_is_a_note_not_a_finding():
    assert findings(case(line("mr1", APALUTAMIDE, "2026-11-22T09:00"), sex="男")) == []
    result = evaluate(
        SAMPLE, case(line("mr1", APALUTAMIDE, "2026-11-22T09:00", draft=True), sex=None), SETTINGS
    )
    assert result.findings == [] and result.notes == ["未检查「限定性别」：缺少患者性别（涉及 1 条）"]


@pytest.mark.parametrize(
    ("birth", "broken"),
    [
        (date(2008, 11, 22), True),
        (date(2008, 11, 23), False),
        (date(1980, 1, 1), True),
        (date(2020, 1, 1), False),
    ],
)
def test_child_only_drug_uses_the_age_limit_setting_on_the_day_of_the_order(birth, broken):
    # 儿童 = under 18 completed years: 18 on 2026-11-22 for a birth on 2008-11-22
    result = findings(case(line("mr1", CHILD_SYRUP, "2026-11-22T09:00"), birth=birth))
    assert bool(result) is broken
    if broken:
        assert result[0].rule_id == "B01-DAGEG-0001" and "未满 18 周岁" in result[0].message


def test_the_child_age_limit_is_a_setting():
    c = case(line("mr1", CHILD_SYRUP, "2026-11-22T09:00"), birth=date(2012, 1, 1))  # 14 years old
    assert findings(c) == []
    [f] = findings(c, settings=replace(SETTINGS, child_age_limit=14))
    assert "未满 14 周岁" in f.message


def test_newborn_items_are_for_the_first_28_days():
    assert (
        findings(case(line("sr", NEWBORN_CARE, "2026-11-22T08:00"), birth=date(2026, 10, 26))) == []
    )  # day 27
    [f] = findings(case(line("sr", NEWBORN_CARE, "2026-11-22T08:00"), birth=date(2026, 10, 25)))  # day 28
    assert f.rule_id == "B01-IAGEG-0014" and "出生 28 天" in f.message


def test_an_age_rule_stated_without_numbers_is_a_suspicious_reminder_to_check_by_hand():
    [f] = findings(case(line("sr", WORK_TRAINING, "2026-11-22T14:00", price="38.00"), birth=date(1954, 5, 5)))
    assert (f.rule_id, f.severity, f.amount_at_risk) == ("B08-2-IAGE-0001", "可疑", Decimal("38.00"))
    assert f.message == "需人工核对：参保人年龄超出法定就业年龄限制" and f.evidence == ("患者年龄：72 岁",)


def test_work_injury_drug_is_not_paid_by_basic_insurance_and_is_by_work_injury_insurance():
    [f] = findings(case(line("mr1", SCAR_CREAM, "2026-11-22T09:00"), insurance="职工"))
    assert f.rule_id == "B03-DINS-0001" and "仅限工伤保险支付" in f.message
    assert findings(case(line("mr1", SCAR_CREAM, "2026-11-22T09:00"), insurance="工伤")) == []


def test_an_assumed_insurance_is_said_on_the_finding():
    c = case(line("mr1", SCAR_CREAM, "2026-11-22T09:00"))
    c = replace(c, stay=replace(c.stay, insurance="基本医疗", insurance_assumed=True), stays={})
    [f] = findings(c)
    assert "未提供参保信息，按默认设置" in f.message


def test_inpatient_only_drug_for_an_outpatient_and_the_emergency_exception_the_text_states():
    [f] = findings(case(line("mr1", FISH_OIL, "2026-11-22T09:00"), encounter_type="门诊"))
    assert f.rule_id == "B04-DSET-0002" and "本次就诊为门诊" in f.message
    assert findings(case(line("mr1", FISH_OIL, "2026-11-22T09:00"), encounter_type="急诊")) != []
    assert findings(case(line("mr1", FISH_OIL, "2026-11-22T09:00"), encounter_type="住院")) == []
    # 安宫牛黄丸: 限定值域 住院, 药品说明 "限急诊或住院患者" → 急诊 is paid too
    assert findings(case(line("mr1", ANGONG, "2026-11-22T09:00"), encounter_type="急诊")) == []
    assert findings(case(line("mr1", ANGONG, "2026-11-22T09:00"), encounter_type="门诊")) != []


def test_hospital_level_rule():
    [f] = findings(case(line("mr1", SHENFU, "2026-11-22T09:00"), level=1))
    assert f.rule_id == "B05-DLVL-0002" and "本院为一级" in f.message
    assert findings(case(line("mr1", SHENFU, "2026-11-22T09:00"), level=2)) == []
    assert evaluate(SAMPLE, case(line("mr1", SHENFU, "2026-11-22T09:00"), level=None), SETTINGS).notes


def test_a_self_paid_stay_is_not_audited():
    result = evaluate(
        SAMPLE, case(line("mr1", APALUTAMIDE, "2026-11-22T09:00"), sex="女", insurance="自费"), SETTINGS
    )
    assert result.findings == [] and result.notes == ["本次就诊为自费，医保支付规则不适用"]


# ----------------------------------------------------------------------------- counts over the stay


def test_drug_course_the_15th_day_of_a_14_day_drug():
    given = [line(f"ma{d}", OZAGREL, f"2026-11-{d:02d}T10:00", price=None) for d in range(8, 22)]  # 14 days
    assert findings(case(*given)) == []
    draft = line("mr15", OZAGREL, "2026-11-22T09:00", price="36.80", qty=2, draft=True)
    [f] = findings(case(*given, draft), drafts_only=True)
    assert (f.rule_id, f.line_ref, f.amount_at_risk) == ("B06-DDAYS-0002", "mr15", Decimal("73.60"))
    assert "2026-11-08 至 2026-11-21" in f.message and len(f.related) == 14


def test_drug_course_a_draft_covering_several_days_is_charged_only_for_the_days_beyond():
    given = [line(f"ma{d}", OZAGREL, f"2026-11-{d:02d}T10:00", price=None) for d in range(10, 22)]  # 12 days
    draft = line("mr", OZAGREL, "2026-11-22T09:00", price="10.00", qty=5, days=5, draft=True)  # 22..26
    [f] = findings(case(*given, draft))
    assert f.amount_at_risk == Decimal("30.00")  # 3 of its 5 days are beyond the 14th: 50.00 × 3/5


def test_duplicate_charge_same_day_subitem_not_payable():
    main = line("ci1", ICU_CARE, "2026-11-22T00:30", price="260.00")
    sub = line("sr1", ORAL_CARE, "2026-11-22T09:30", price="8.00", draft=True)
    [f] = findings(case(main, sub))
    assert (f.rule_id, f.line_ref, f.related, f.amount_at_risk) == (
        "B07-IDUP-0033",
        "sr1",
        ("ci1",),
        Decimal("8.00"),
    )
    assert findings(case(main, replace(sub, at=sub.at.replace(day=23)))) == []  # the next day


def test_duplicate_windows_one_hour_six_hours_and_one_stay():
    cold = line("a", COLD_PRESSOR, "2026-11-22T09:00")
    assert findings(case(cold, line("b", AMBULATORY_BP, "2026-11-22T10:00"))) != []  # exactly 1 h apart
    assert findings(case(cold, line("b", AMBULATORY_BP, "2026-11-22T10:00:01"))) == []
    birth = line("a", DELIVERY, "2026-11-22T03:00")
    assert findings(case(birth, line("b", FETAL_MONITOR, "2026-11-21T21:00"), sex="女")) != []  # 6 h before
    assert findings(case(birth, line("b", FETAL_MONITOR, "2026-11-21T20:59"), sex="女")) == []
    surgery = line("a", MULTI_HEMATOMA, "2026-11-10T10:00")
    later = line("b", HEMATOMA, "2026-11-20T10:00")
    assert findings(case(surgery, later)) != []  # same stay, ten days later
    other = Stay("s2", "p1", "住院", "职工", 3)
    assert findings(case(surgery, replace(later, stay_id="s2"), stays={"s1": case().stay, "s2": other})) == []


def test_a_draft_main_item_makes_an_already_charged_subitem_a_duplicate_on_the_draft_card():
    sub = line("ci", ORAL_CARE, "2026-11-22T08:00")
    draft_main = line("sr", ICU_CARE, "2026-11-22T09:00", draft=True)
    [f] = findings(case(sub, draft_main), drafts_only=True)
    assert f.line_ref == "ci" and f.related == ("sr",) and f.draft


def test_frequency_second_ward_visit_of_the_day():
    first = line("ci", WARD_VISIT, "2026-11-22T08:00", price="20.00")
    second = line("sr", WARD_VISIT, "2026-11-22T15:00", price="20.00", draft=True)
    [f] = findings(case(first, second))
    assert (f.rule_id, f.line_ref, f.amount_at_risk) == ("B08-1-IFREQ-0002", "sr", Decimal("20.00"))
    assert findings(case(first, replace(second, at=second.at.replace(day=23)))) == []


def test_a_draft_is_the_one_over_the_limit_even_when_timed_before_the_days_charge():
    charged = line("ci", WARD_VISIT, "2026-11-22T15:00")
    draft = line("sr", WARD_VISIT, "2026-11-22T08:00", draft=True)
    [f] = findings(case(charged, draft), drafts_only=True)
    assert f.line_ref == "sr"


def test_frequency_in_hours_counts_quantity_and_charges_only_the_excess():
    morning = line("a", ECG_MONITOR, "2026-11-22T00:00", qty=20, price="5.00")
    evening = line("b", ECG_MONITOR, "2026-11-22T20:00", qty=6, price="5.00")
    [f] = findings(case(morning, evening))
    assert f.amount_at_risk == Decimal("10.00")  # 26 hours charged, 24 paid: 2 × 5.00
    assert findings(case(morning, replace(evening, quantity=Decimal(4), amount=Decimal("20.00")))) == []


def test_cycle_one_hba1c_per_15_days():
    first = line("a", HBA1C, "2026-11-08T07:30")
    assert findings(case(first, line("b", HBA1C, "2026-11-23T07:30"))) == []  # day 16
    [f] = findings(case(first, line("b", HBA1C, "2026-11-22T07:30")))  # day 15 of the window
    assert (f.rule_id, f.line_ref, f.related) == ("B08-4-ICYC-0002", "b", ("a",))


def test_course_paid_days_weight_training_31st_day_is_suspicious():
    days = [
        line(
            f"d{i}", WEIGHT_TRAINING, f"2026-10-{23 + i:02d}T10:00" if i < 9 else f"2026-11-{i - 8:02d}T10:00"
        )
        for i in range(30)
    ]
    assert findings(case(*days)) == []
    [f] = findings(case(*days, line("x", WEIGHT_TRAINING, "2026-11-22T10:00", price="45.00")))
    assert (f.rule_id, f.check, f.severity, f.amount_at_risk) == (
        "B08-3-ICRS-0004",
        "paid_days",
        "可疑",
        Decimal("45.00"),
    )


def test_course_span_and_weekly_limit_of_hearing_training():
    first = line("a", HEARING_TRAINING, "2025-11-01T10:00")
    assert keys(case(first, line("b", HEARING_TRAINING, "2026-10-31T10:00"))) == []  # day 365
    [f] = findings(case(first, line("b", HEARING_TRAINING, "2026-11-01T10:00")))  # day 366
    assert (f.check, f.line_ref) == ("span_days", "b")
    [g] = findings(case(first, line("b", HEARING_TRAINING, "2025-11-07T10:00")))  # 6 days later
    assert (g.check, g.line_ref) == ("cycle7", "b")


def test_main_and_secondary_operation_the_second_at_full_price():
    main = line("op1", APPENDECTOMY, "2026-11-22T10:00", price="980.00", ref_price="980.00")
    second = line("op2", ADHESIOLYSIS, "2026-11-22T10:40", price="720.00", ref_price="720.00")
    [f] = findings(case(main, second))
    assert (f.rule_id, f.line_ref, f.severity, f.amount_at_risk) == (
        "B02-IOPS-0001",
        "op2",
        "违规",
        Decimal("360.00"),
    )
    discounted = replace(second, unit_price=Decimal("360.00"), amount=Decimal("360.00"))
    assert findings(case(main, discounted)) == []
    assert findings(case(main, replace(second, at=second.at.replace(day=23)))) == []  # another day
    unknown_list_price = replace(second, reference_price=None)
    [g] = findings(case(main, unknown_list_price))
    assert (g.severity, g.amount_at_risk) == ("可疑", Decimal("360.00"))


def test_the_main_operation_is_the_dearer_one_whichever_comes_first():
    cheap_first = line("op2", ADHESIOLYSIS, "2026-11-22T09:00", price="720.00", ref_price="720.00")
    dear_later = line("op1", APPENDECTOMY, "2026-11-22T10:00", price="980.00", ref_price="980.00")
    [f] = findings(case(cheap_first, dear_later))
    assert f.line_ref == "op2"


# ----------------------------------------------------------------------------- bookkeeping


def test_unknown_codes_give_no_finding_but_are_listed_for_a_note():
    result = evaluate(SAMPLE, case(line("sr", None, "2026-11-22T09:00", draft=True)), SETTINGS)
    assert result.findings == [] and result.unknown_codes == ["sr"]


def test_drafts_only_keeps_findings_that_involve_a_draft():
    charged = [line("a", WARD_VISIT, "2026-11-21T08:00"), line("b", WARD_VISIT, "2026-11-21T09:00")]
    draft = line("mr", APALUTAMIDE, "2026-11-22T09:00", draft=True)
    c = case(*charged, draft, sex="女")
    assert [f.line_ref for f in findings(c)] == ["b", "mr"]
    assert [f.line_ref for f in findings(c, drafts_only=True)] == ["mr"]


def test_disabled_rules_are_not_applied():
    from yb_audit.rulesets import enabled_rules

    c = case(line("mr", APALUTAMIDE, "2026-11-22T09:00"), sex="女")
    for off in (("B01-DSEX-0001",), ("sex",), ("第一批",)):
        assert evaluate(enabled_rules(SAMPLE, off), c, SETTINGS).findings == []
    assert evaluate(enabled_rules(SAMPLE, ("frequency",)), c, SETTINGS).findings != []


def _random_stay(rng, rules):
    """A stay of 300 random charges and 30 random drafts over 20 days, codes the rules name."""
    from yb_audit.codes import DRUG_SYSTEM, ITEM_SYSTEM, subject_of_code

    codes = sorted(rules.codes())
    start = datetime(2026, 11, 1, 8)

    def coding(code):
        system = DRUG_SYSTEM if subject_of_code(code) == "drug" else ITEM_SYSTEM
        return {"coding": [{"system": system, "code": code}]}

    charges = [
        {
            "resourceType": "ChargeItem",
            "id": f"c{i}",
            "status": "billed",
            "code": coding(rng.choice(codes)),
            "quantity": {"value": rng.choice([1, 1, 2, 24])},
            "priceOverride": {"value": rng.choice([5, 20, 60]), "currency": "CNY"},
            "occurrenceDateTime": (start + timedelta(hours=rng.randrange(20 * 24))).isoformat(),
        }
        for i in range(300)
    ]
    drafts = []
    for i in range(30):
        code = rng.choice(codes)
        at = (start + timedelta(days=20, hours=rng.randrange(24))).isoformat()
        if subject_of_code(code) == "drug":
            drafts.append(
                {
                    "resourceType": "MedicationRequest",
                    "id": f"d{i}",
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": coding(code),
                    "authoredOn": at,
                }
            )
        else:
            drafts.append(
                {
                    "resourceType": "ServiceRequest",
                    "id": f"d{i}",
                    "status": "draft",
                    "intent": "order",
                    "code": coding(code),
                    "occurrenceDateTime": at,
                }
            )
    return charges, drafts


@pytest.mark.parametrize("library", ["sample", "library"])
def test_leaving_out_stay_lines_no_rule_of_a_draft_names_changes_no_finding(library, tmp_path):
    """The hook keeps only the stay's lines that share a rule with a draft (RuleSet.partners)."""
    import random

    from yb_audit.codes import value_tables
    from yb_audit.fhir_input import build_case

    if library == "sample":
        rules = SAMPLE
    else:
        if not RULE_LIBRARY.is_dir():
            pytest.skip("../shared/data is absent")
        from yb_audit.importer import import_paths
        from yb_audit.store import load_rules

        import_paths(tmp_path, [RULE_LIBRARY])
        rules = load_rules(tmp_path)
    tables = value_tables(tmp_path)
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "2019-05-01"}
    encounter = {"resourceType": "Encounter", "id": "e", "class": {"code": "IMP"}}
    compared = 0
    for seed in range(12):
        charges, drafts = _random_stay(random.Random(seed), rules)
        answers = []
        for partners in (None, rules.partners):
            case, _ = build_case(
                patient=patient,
                encounter=encounter,
                encounter_id="e",
                coverages=None,
                charge_items={"resourceType": "Bundle", "entry": [{"resource": c} for c in charges]},
                administrations=None,
                medication_requests=None,
                draft_orders=drafts,
                tables=tables,
                local_maps={},
                price_of=lambda order, line: None,
                relevant=rules.knows,
                hospital_level=2,
                default_insurance="职工",
                now=datetime(2026, 11, 21, 12),
                partners=partners,
            )
            result = evaluate(rules, case, SETTINGS, drafts_only=True)
            kept = len(case.lines)
            answers.append(
                [(f.rule_id, f.line_ref, f.check, f.amount_at_risk, f.message) for f in result.findings]
            )
        assert answers[0] == answers[1]
        assert kept < 330  # lines were left out
        compared += len(answers[0])
    assert compared > 20  # the random stays do break rules
