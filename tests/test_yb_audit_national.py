"""The national 3101 / 3102 interface over real HTTP: the same evaluator as the hooks, in the national
request and result shapes; bad payloads answered in the national error shape with every problem."""

from __future__ import annotations

import copy
import re
import uuid

import pytest
import requests

from console.ingest import to_record
from tests.yb_audit_helpers import (
    ADHESIOLYSIS,
    APALUTAMIDE,
    APPENDECTOMY,
    CHILD_SYRUP,
    EVENTS,
    FISH_OIL,
    HBA1C,
    ICU_CARE,
    NEWBORN_CARE,
    ORAL_CARE,
    OZAGREL,
    SCAR_CREAM,
    SHENFU,
    WARD_VISIT,
    WEIGHT_TRAINING,
    WORK_TRAINING,
    served,
)

RESULT_FIELDS = {
    "jr_id",
    "rule_id",
    "rule_name",
    "vola_cont",
    "patn_id",
    "mdtrt_id",
    "judge_result_detail_dtos",
    "vola_amt",
    "vola_amt_stas",
    "sev_deg",
    "vola_evid",
    "vola_bhvr_type",
    "task_id",
}


def order(rx_id, code, begin, *, cnt=1, pric="10.00", current=True, stop=None, list_price=None, name=None):
    dto = {
        "rx_id": rx_id,
        "rxno": f"RX{rx_id}",
        "long_drord_flag": "0",
        "hilist_type": "101" if code and code[0].isalpha() else "201",
        "chrg_type": "09",
        "drord_bhvr": "0",
        "hilist_code": code,
        "hilist_name": name or rx_id,
        "hosplist_code": f"H-{rx_id}",
        "hosplist_name": name or rx_id,
        "cnt": cnt,
        "pric": pric,
        "sumamt": f"{float(pric) * cnt:.2f}",
        "ownpay_amt": "0",
        "selfpay_amt": "0",
        "spec": "",
        "spec_unt": "",
        "drord_begn_date": begin,
        "drord_dept_codg": "0301",
        "drord_dept_name": "心血管内科",
        "drord_dr_codg": "D0001",
        "drord_dr_name": "张医生",
        "drord_dr_profttl": "2",
        "curr_drord_flag": "1" if current else "0",
    }
    if stop:
        dto["drord_stop_date"] = stop
    if list_price:
        dto["hilist_pric"] = list_price
    return dto


def encounter(mdtrt_id, orders, *, med_type="21", insutype="310", medins_lv="02", adm="2026-11-20 08:00:00"):
    return {
        "mdtrt_id": mdtrt_id,
        "medins_id": "H41040001",
        "medins_name": "演示医院",
        "medins_admdvs": "410400",
        "medins_type": "A1",
        "medins_lv": medins_lv,
        "adm_date": adm,
        "dscg_date": "",
        "dscg_main_dise_codg": "I63.9",
        "dscg_main_dise_name": "脑梗死",
        "dr_codg": "D0001",
        "adm_dept_codg": "0304",
        "adm_dept_name": "神经内科",
        "med_mdtrt_type": "",
        "med_type": med_type,
        "matn_stas": "0",
        "insutype": insutype,
        "reim_flag": "1",
        "out_setl_flag": "2",
        "fsi_diagnose_dtos": [
            {"dise_id": "1", "maindise_flag": "1", "dise_codg": "I63.9", "dise_name": "脑梗死"}
        ],
        "fsi_order_dtos": orders,
        "fsi_operation_dtos": [],
    }


def payload(*encounters, gend="1", brdy="1980-05-01", current="M1", infno="3101", rule_ids=None):
    return {
        "infno": infno,
        "msgid": uuid.uuid4().hex,
        "input": {
            "data": {
                "syscode": "HIS",
                "task_id": "T-0001",
                "trig_scen": "5",
                "rule_ids": rule_ids,
                "patient_dtos": [
                    {
                        "patn_id": "P0001",
                        "patn_name": "测试患者（虚构）",
                        "gend": gend,
                        "brdy": brdy,
                        "poolarea": "410400",
                        "curr_mdtrt_id": current,
                        "fsi_encounter_dtos": list(encounters),
                        "fsi_his_data_dto": "",
                    }
                ],
            }
        },
    }


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    (home / "local_maps" / "items").mkdir(parents=True)
    (home / "local_maps" / "items" / "his.csv").write_text(
        "source_system,source_code,source_name,target_code\nhosplist,HIS-WARD-VISIT,住院诊查费,001102000050000\n",
        encoding="utf-8",
    )
    with served(home) as service:
        yield service


def post(url, body, infno="3101", **kw):
    response = requests.post(f"{url}/yb/{infno}", json=body, timeout=10, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def rule_ids(answer) -> list[str]:
    assert answer["infcode"] == 0, answer["err_msg"]
    return sorted(r["rule_id"] for r in answer["output"]["result"])


T = "2026-11-22 09:00:00"

# kind → (payload that breaks the rule, payload that keeps it, rule id)
CASES = {
    "sex": (
        payload(encounter("M1", [order("1", APALUTAMIDE, T)]), gend="2"),
        payload(encounter("M1", [order("1", APALUTAMIDE, T)]), gend="1"),
        "B01-DSEX-0001",
    ),
    "age_group": (
        payload(encounter("M1", [order("1", CHILD_SYRUP, T)]), brdy="1980-01-01"),
        payload(encounter("M1", [order("1", CHILD_SYRUP, T)]), brdy="2018-01-01"),
        "B01-DAGEG-0001",
    ),
    "age_group_newborn": (
        payload(encounter("M1", [order("1", NEWBORN_CARE, T)]), brdy="2026-08-01"),
        payload(encounter("M1", [order("1", NEWBORN_CARE, T)]), brdy="2026-11-10"),
        "B01-IAGEG-0014",
    ),
    "insurance": (
        payload(encounter("M1", [order("1", SCAR_CREAM, T)], insutype="310")),
        payload(encounter("M1", [order("1", SCAR_CREAM, T)], insutype="工伤")),
        "B03-DINS-0001",
    ),
    "care_setting": (
        payload(encounter("M1", [order("1", FISH_OIL, T)], med_type="11")),
        payload(encounter("M1", [order("1", FISH_OIL, T)], med_type="21")),
        "B04-DSET-0002",
    ),
    "hospital_level": (
        payload(encounter("M1", [order("1", SHENFU, T)], medins_lv="08")),
        payload(encounter("M1", [order("1", SHENFU, T)], medins_lv="05")),
        "B05-DLVL-0002",
    ),
    "drug_course": (
        payload(
            encounter(
                "M1",
                [
                    order("h", OZAGREL, "2026-11-08 10:00:00", current=False, stop="2026-11-21 10:00:00"),
                    order("1", OZAGREL, T),
                ],
            )
        ),
        payload(
            encounter(
                "M1",
                [
                    order("h", OZAGREL, "2026-11-09 10:00:00", current=False, stop="2026-11-21 10:00:00"),
                    order("1", OZAGREL, T),
                ],
            )
        ),
        "B06-DDAYS-0002",
    ),
    "duplicate": (
        payload(
            encounter(
                "M1", [order("h", ICU_CARE, "2026-11-22 00:30:00", current=False), order("1", ORAL_CARE, T)]
            )
        ),
        payload(
            encounter(
                "M1", [order("h", ICU_CARE, "2026-11-21 00:30:00", current=False), order("1", ORAL_CARE, T)]
            )
        ),
        "B07-IDUP-0033",
    ),
    "frequency": (
        payload(
            encounter(
                "M1",
                [order("h", WARD_VISIT, "2026-11-22 08:00:00", current=False), order("1", WARD_VISIT, T)],
            )
        ),
        payload(
            encounter(
                "M1",
                [order("h", WARD_VISIT, "2026-11-21 08:00:00", current=False), order("1", WARD_VISIT, T)],
            )
        ),
        "B08-1-IFREQ-0002",
    ),
    "cycle_across_encounters": (
        payload(
            encounter(
                "M0",
                [order("h", HBA1C, "2026-11-12 07:30:00", current=False)],
                med_type="11",
                adm="2026-11-12 07:00:00",
            ),
            encounter("M1", [order("1", HBA1C, T)]),
        ),
        payload(
            encounter(
                "M0",
                [order("h", HBA1C, "2026-11-07 07:30:00", current=False)],
                med_type="11",
                adm="2026-11-07 07:00:00",
            ),
            encounter("M1", [order("1", HBA1C, T)]),
        ),
        "B08-4-ICYC-0002",
    ),
    "course": (
        payload(
            encounter(
                "M1",
                [
                    order(f"h{i}", WEIGHT_TRAINING, f"2026-10-{i + 1:02d} 10:00:00", current=False)
                    for i in range(30)
                ]
                + [order("1", WEIGHT_TRAINING, T)],
            )
        ),
        payload(
            encounter(
                "M1",
                [
                    order(f"h{i}", WEIGHT_TRAINING, f"2026-10-{i + 1:02d} 10:00:00", current=False)
                    for i in range(29)
                ]
                + [order("1", WEIGHT_TRAINING, T)],
            )
        ),
        "B08-3-ICRS-0004",
    ),
    "main_secondary": (
        payload(
            encounter(
                "M1",
                [
                    order("1", APPENDECTOMY, T, pric="980.00", list_price="980.00"),
                    order("2", ADHESIOLYSIS, "2026-11-22 10:00:00", pric="720.00", list_price="720.00"),
                ],
            )
        ),
        payload(
            encounter(
                "M1",
                [
                    order("1", APPENDECTOMY, T, pric="980.00", list_price="980.00"),
                    order("2", ADHESIOLYSIS, "2026-11-22 10:00:00", pric="360.00", list_price="720.00"),
                ],
            )
        ),
        "B02-IOPS-0001",
    ),
}


@pytest.mark.parametrize("infno", ["3101", "3102"])
@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_rule_kind_is_found_and_not_when_the_order_keeps_the_rule(url, kind, infno):
    broken, kept, rule_id = (copy.deepcopy(p) for p in CASES[kind])
    broken["infno"] = kept["infno"] = infno
    assert rule_ids(post(url, broken, infno)) == [rule_id]
    assert rule_ids(post(url, kept, infno)) == []


def test_the_text_age_rule_is_a_suspicious_reminder(url):
    [result] = post(url, payload(encounter("M1", [order("1", WORK_TRAINING, T)]), brdy="1950-01-01"))[
        "output"
    ]["result"]
    assert result["rule_id"] == "B08-2-IAGE-0001" and result["sev_deg"] == "2"
    assert result["vola_cont"].startswith("【限定年龄】") and "需人工核对" in result["vola_cont"]


def test_the_result_has_every_national_field_typed_as_the_interface_says(url):
    answer = post(url, CASES["frequency"][0])
    assert answer["infcode"] == 0 and answer["err_msg"] is None and answer["inf_refmsgid"]
    [result] = answer["output"]["result"]
    assert set(result) == RESULT_FIELDS
    assert (result["patn_id"], result["mdtrt_id"], result["task_id"]) == ("P0001", "M1", "T-0001")
    assert result["vola_amt"] == 10.0 and result["vola_amt_stas"] == "1" and result["sev_deg"] == "1"
    assert (
        result["vola_bhvr_type"] == "2" and result["rule_name"] == "限定频次：住院诊查费（每日不超过 1 次）"
    )
    assert result["vola_evid"].startswith("规则原文：限制数量 1，数量单位 日")
    details = {(d["rx_id"], d["vola_item_type"], d["vola_amt"]) for d in result["judge_result_detail_dtos"]}
    assert details == {("1", "1", 10.0), ("h", "2", 0.0)}  # the violating order and the earlier one involved
    assert "测试患者" not in str(answer)


def test_3101_reports_the_current_orders_3102_every_order_of_the_current_encounter(url):
    body = payload(
        encounter(
            "M1",
            [
                order("h1", WARD_VISIT, "2026-11-21 08:00:00", current=False),
                order("h2", WARD_VISIT, "2026-11-21 09:00:00", current=False),  # yesterday's double visit
                order("1", APALUTAMIDE, T),
            ],
        ),
        gend="2",
    )
    assert rule_ids(post(url, body)) == ["B01-DSEX-0001"]
    during = copy.deepcopy(body)
    during["infno"] = "3102"
    assert rule_ids(post(url, during, "3102")) == ["B01-DSEX-0001", "B08-1-IFREQ-0002"]


def test_rule_ids_restrict_the_rules_and_unknown_ones_are_said_in_warn_msg(url):
    body = payload(
        encounter("M1", [order("1", APALUTAMIDE, T), order("2", FISH_OIL, T)], med_type="11"), gend="2"
    )
    assert rule_ids(post(url, body)) == ["B01-DSEX-0001", "B04-DSET-0002"]
    body["input"]["data"]["rule_ids"] = ["限定性别", "R999"]
    answer = post(url, body)
    assert rule_ids(answer) == ["B01-DSEX-0001"] and answer["warn_msg"] == "未知的 rule_ids 已忽略：R999"
    body["input"]["data"]["rule_ids"] = "R001,R002"
    answer = post(url, body)
    assert len(rule_ids(answer)) == 2 and "均不是本系统的规则" in answer["warn_msg"]


def test_a_hospital_code_reaches_the_national_code_through_the_local_map(url):
    dto = order("1", None, T)
    dto["hosplist_code"] = "HIS-WARD-VISIT"
    del dto["hilist_code"]
    body = payload(encounter("M1", [order("h", WARD_VISIT, "2026-11-22 08:00:00", current=False), dto]))
    assert rule_ids(post(url, body)) == ["B08-1-IFREQ-0002"]


def test_the_bare_data_object_is_accepted_too(url):
    body = {"data": CASES["sex"][0]["input"]["data"]}
    assert rule_ids(post(url, body)) == ["B01-DSEX-0001"]


def test_missing_and_mistyped_fields_are_all_named_in_the_national_error_shape(url):
    body = copy.deepcopy(CASES["frequency"][0])  # CASES is shared by the other tests
    patient = body["input"]["data"]["patient_dtos"][0]
    del patient["gend"]
    patient["brdy"] = "1980/13/45"
    enc = patient["fsi_encounter_dtos"][0]
    enc["insutype"] = {"code": "310"}
    enc["fsi_order_dtos"][1]["cnt"] = "两"
    del enc["fsi_order_dtos"][1]["drord_begn_date"]
    answer = post(url, body)
    assert answer["infcode"] == -1 and answer["output"] is None
    assert answer["err_msg"] == (
        "3101 入参校验失败（5 处）："
        "data.patient_dtos[0].gend 缺失；"
        "data.patient_dtos[0].brdy 日期格式无效「1980/13/45」（yyyy-MM-dd 或 yyyy-MM-dd HH:mm:ss）；"
        "data.patient_dtos[0].fsi_encounter_dtos[0].insutype 应为字符串；"
        "data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1].cnt 应为数值，而不是「两」；"
        "data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1].drord_begn_date 缺失"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "请求体不是有效的 JSON"),
        (b"[1, 2]", "请求体应为 JSON 对象"),
        (b'{"input": {}}', "input.data 缺失"),
        (b'{"infno": "3102", "input": {"data": {"patient_dtos": []}}}', "infno 为 3102，本接口为 3101"),
        (
            b'{"data": {"patient_dtos": [{"patn_id": "P", "gend": "1", "brdy": "1980-01-01", "curr_mdtrt_id": "X", "fsi_encounter_dtos": []}]}}',
            "fsi_encounter_dtos 缺失",
        ),
    ],
)
def test_unreadable_requests_get_the_error_shape_too(url, raw, problem):
    response = requests.post(
        f"{url}/yb/3101", data=raw, headers={"Content-Type": "application/json"}, timeout=5
    )
    answer = response.json()
    assert response.status_code == 200 and answer["infcode"] == -1 and problem in answer["err_msg"]


def test_each_call_publishes_the_assessment_event_with_the_national_channel(url):
    EVENTS.clear()
    post(url, CASES["sex"][0])
    [event] = [e for e in EVENTS if e["channel"] == "3101"]
    assert (event["kind"], event["service"], event["patient_id"], event["encounter_id"]) == (
        "audit",
        "yb-audit-3101",
        "P0001",
        "M1",
    )
    assert event["department"] == {"code": "0304", "name": "神经内科"} and event["attending"]["id"] == "D0001"
    assert [f["rule_id"] for f in event["findings"]] == ["B01-DSEX-0001"]
    record = to_record({**event, "event_id": "e1"})  # the console takes it as it is
    assert record.head["channel"] == "3101" and record.findings[0]["rule_id"] == "B01-DSEX-0001"


def test_with_api_keys_configured_the_endpoints_need_one(tmp_path):
    key = "k" * 32
    with served(tmp_path, audit={"national_api_keys": [key]}) as service:
        body = CASES["sex"][0]
        assert requests.post(f"{service}/yb/3101", json=body, timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 32}
        assert requests.post(f"{service}/yb/3101", json=body, headers=wrong, timeout=5).status_code == 401
        ok = requests.post(
            f"{service}/yb/3101", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=5
        )
        assert ok.status_code == 200 and rule_ids(ok.json()) == ["B01-DSEX-0001"]


RULE_ID = re.compile(r"B\d{2}(?:-[0-9A-Z]+)+")
# what the browser plugin's FHIR view of a 3101 payload cannot carry: orders of other encounters
# (the panel shows the current stay), a history order's stop date (a charge has one date) and a
# draft's own price (FHIR orders have none: the hospital price list prices them)
PLUGIN_CANNOT = {"cycle_across_encounters", "drug_course", "main_secondary"}


@pytest.mark.parametrize("kind", sorted(set(CASES) - PLUGIN_CANNOT))
def test_a_3101_payload_sent_to_the_browser_plugin_gets_the_finding_3101_reports(url, kind):
    """``/plugin/v1/check`` turns the payload into an order-sign request (险种 → Coverage, medins_lv →
    the hospital level) for every order-sign service: the 智能审核 card names the same rule."""
    broken, kept, rule_id = (copy.deepcopy(p) for p in CASES[kind])
    for body, expected in ((broken, [rule_id]), (kept, [])):
        answer = requests.post(f"{url}/plugin/v1/check", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        cards = [c for c in answer.json()["cards"] if c["service"] == "yb-audit-order-sign"]
        found = {rid for c in cards for rid in RULE_ID.findall(c["detail"].replace("\\", ""))}
        assert sorted(found) == expected, [c["summary"] for c in cards]
