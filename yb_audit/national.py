"""The national 3101 明细审核事前分析 / 3102 明细审核事中分析 interface: payload → cases, findings → result.

Pure functions. The request may be the whole national envelope (``{"infno": "3101", …, "input":
{"data": {…}}}``) or only ``{"data": {…}}``. README ("医保智能审核 / 3101 / 3102") maps every field,
states which are ignored, and the dictionaries used for ``sev_deg`` and ``vola_bhvr_type``.

* 3101 (事前): the orders of the current encounter (``curr_mdtrt_id``) flagged ``curr_drord_flag =
  1`` are the drafts (all orders of the current encounter when none is flagged); findings involve a
  draft. Other orders and other encounters of the patient are history.
* 3102 (事中): every order of the current encounter is checked; other encounters are history.

A missing or mistyped field is named with its path (``data.patient_dtos[0].fsi_encounter_dtos[0]
.fsi_order_dtos[2].cnt``); all problems are collected and answered together in the national error
shape (``infcode = -1``, ``err_msg``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from yb_audit import kinds
from yb_audit.codes import ValueTables, normalize_code, subject_of_code
from yb_audit.fhir_input import CHINA
from yb_audit.model import Case, Finding, Line, Patient, Stay

SEV_DEG = {kinds.VIOLATION: "1", kinds.SUSPICIOUS: "2"}  # 1 明确违规, 2 可疑 (see README)
#: 违规行为分类 used in ``vola_bhvr_type``: 1 超限定范围使用 (restrictions on who / where / how long),
#: 2 违规收费 (charging rules). See README.
BEHAVIOUR = {
    kinds.SEX.key: "1",
    kinds.AGE_GROUP.key: "1",
    kinds.AGE.key: "1",
    kinds.INSURANCE.key: "1",
    kinds.CARE_SETTING.key: "1",
    kinds.HOSPITAL_LEVEL.key: "1",
    kinds.DRUG_COURSE.key: "1",
    kinds.COURSE.key: "1",
    kinds.DUPLICATE.key: "2",
    kinds.FREQUENCY.key: "2",
    kinds.CYCLE.key: "2",
    kinds.MAIN_SECONDARY.key: "2",
}
TEXT_LIMIT = 500


class PayloadError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("；".join(problems))


# ----------------------------------------------------------------------------- reading fields


class _Reader:
    """Typed access to the payload that records every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def obj(
        self, parent: Mapping[str, Any], key: str, path: str, required: bool = True
    ) -> Mapping[str, Any] | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problems.append(f"{path}.{key} 缺失")
            return None
        if not isinstance(value, Mapping):
            self.problems.append(f"{path}.{key} 应为对象")
            return None
        return value

    def items(
        self, parent: Mapping[str, Any], key: str, path: str, required: bool = True
    ) -> list[tuple[str, Mapping[str, Any]]]:
        value = parent.get(key)
        if value is None or value == "" or value == []:
            if required:
                self.problems.append(f"{path}.{key} 缺失")
            return []
        if isinstance(value, Mapping):  # some HIS send a single object where the spec has a list
            value = [value]
        if not isinstance(value, list):
            self.problems.append(f"{path}.{key} 应为数组")
            return []
        out = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                out.append((f"{path}.{key}[{index}]", item))
            else:
                self.problems.append(f"{path}.{key}[{index}] 应为对象")
        return out

    def text(
        self, parent: Mapping[str, Any], key: str, path: str, required: bool = False, limit: int = 200
    ) -> str | None:
        value = parent.get(key)
        if type(value) is str:  # the usual case, fast
            text = value.strip()
            if text and len(text) <= limit:
                return text
        if value is None or value == "" or (type(value) is str and not value.strip()):
            if required:
                self.problems.append(f"{path}.{key} 缺失")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.problems.append(f"{path}.{key} 应为字符串")
            return None
        text = str(value).strip()
        if len(text) > limit:
            self.problems.append(f"{path}.{key} 超过 {limit} 个字符")
            return None
        return text or None

    def number(
        self, parent: Mapping[str, Any], key: str, path: str, required: bool = False
    ) -> Decimal | None:
        value = parent.get(key)
        if type(value) is int:  # the usual cases, fast
            return Decimal(value)
        if type(value) is str and value:
            try:
                number = Decimal(value)
                if number.is_finite():
                    return number
            except InvalidOperation:
                pass
        if value is None or value == "":
            if required:
                self.problems.append(f"{path}.{key} 缺失")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.problems.append(f"{path}.{key} 应为数值")
            return None
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            self.problems.append(f"{path}.{key} 应为数值，而不是「{str(value)[:20]}」")
            return None
        if not number.is_finite():
            self.problems.append(f"{path}.{key} 应为有限数值")
            return None
        return number

    def moment(
        self, parent: Mapping[str, Any], key: str, path: str, required: bool = False
    ) -> datetime | None:
        value = parent.get(key)
        if value is None or value == "":
            if required:
                self.problems.append(f"{path}.{key} 缺失")
            return None
        if not isinstance(value, str):
            self.problems.append(f"{path}.{key} 应为日期字符串（yyyy-MM-dd 或 yyyy-MM-dd HH:mm:ss）")
            return None
        text = value.strip().replace("T", " ")
        try:  # the usual forms, fast
            moment = datetime.fromisoformat(text)
            return moment.astimezone(CHINA).replace(tzinfo=None) if moment.tzinfo else moment
        except (ValueError, OverflowError):  # OverflowError: 0001-01-01 00:00+14:00 is before year 1 in UTC
            pass
        for fmt in (
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%d",
            "%Y%m%d%H%M%S",
            "%Y%m%d",
            "%Y-%m-%d %H:%M:%S.%f",
        ):
            try:
                return datetime.strptime(text, fmt)
            except ValueError:
                continue
        self.problems.append(
            f"{path}.{key} 日期格式无效「{value[:30]}」（yyyy-MM-dd 或 yyyy-MM-dd HH:mm:ss）"
        )
        return None


# ----------------------------------------------------------------------------- request → cases


@dataclass
class NationalCase:
    """One patient's current encounter to audit, with what the response must echo."""

    case: Case
    patient_id: str
    current_encounter: str
    drafts_only: bool
    department: dict[str, str | None] | None = None
    attending: dict[str, str | None] | None = None
    encounter_type: str | None = None


@dataclass
class NationalRequest:
    infno: str
    cases: list[NationalCase]
    rule_ids: list[str] = field(default_factory=list)
    task_id: str | None = None
    trig_scen: str | None = None
    msgid: str | None = None


def _data(body: Any, reader: _Reader) -> tuple[Mapping[str, Any] | None, str | None, str | None]:
    """(data, infno of the envelope, msgid)."""
    if not isinstance(body, Mapping):
        reader.problems.append("请求体应为 JSON 对象")
        return None, None, None
    infno = body.get("infno") if isinstance(body.get("infno"), str) else None
    msgid = body.get("msgid") if isinstance(body.get("msgid"), str) else None
    if "input" in body:
        container = reader.obj(body, "input", "$")
        if container is None:
            return None, infno, msgid
        return reader.obj(container, "data", "input"), infno, msgid
    return reader.obj(body, "data", "$"), infno, msgid


def _rule_ids(data: Mapping[str, Any], reader: _Reader) -> list[str]:
    value = data.get("rule_ids")
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    reader.problems.append("data.rule_ids 应为字符串数组或逗号分隔的字符串")
    return []


def _order_line(
    reader: _Reader,
    path: str,
    order: Mapping[str, Any],
    stay_id: str,
    seq: int,
    draft: bool,
    local_code: Callable[[str], str | None],
    relevant: Callable[[str], bool],
) -> Line | None:
    """The order as a line; None when it is invalid (the problems are recorded) or cannot matter:
    a code no rule names (an unknown code of a current order is kept, for the note)."""
    rx_id = reader.text(order, "rx_id", path, required=True, limit=50)
    raw_code = reader.text(order, "hilist_code", path, required=False, limit=50)
    hosp_code = reader.text(order, "hosplist_code", path, limit=50)
    count = reader.number(order, "cnt", path, required=True)
    price = reader.number(order, "pric", path, required=True)
    total = reader.number(order, "sumamt", path, required=True)
    begin = reader.moment(order, "drord_begn_date", path, required=True)
    stop = reader.moment(order, "drord_stop_date", path)
    list_price = reader.number(order, "hilist_pric", path)
    name = reader.text(order, "hilist_name", path, limit=200) or reader.text(
        order, "hosplist_name", path, limit=200
    )
    department = reader.text(order, "drord_dept_codg", path, limit=30)
    doctor = reader.text(order, "drord_dr_codg", path, limit=30)
    if raw_code is None and hosp_code is None:
        reader.problems.append(f"{path}.hilist_code 缺失")
    if rx_id is None or count is None or price is None or total is None or begin is None:
        return None
    code: str | None = normalize_code(raw_code) if raw_code else None
    subject = subject_of_code(code)
    local = None
    if subject is None and hosp_code:
        local, code = hosp_code, local_code(hosp_code)
        subject = subject_of_code(code)
    if subject is None:
        code = None
    if code is None and not draft or code is not None and not relevant(code):
        return None
    days = 1
    if subject == "drug" and stop is not None and stop.date() >= begin.date():
        days = min((stop.date() - begin.date()).days + 1, 400)
    return Line(
        ref=rx_id,
        code=code,
        subject=subject,
        name=name or "",
        at=begin,
        quantity=count if count > 0 else Decimal(1),
        unit_price=price,
        amount=total,
        days=days,
        draft=draft,
        stay_id=stay_id,
        reference_price=list_price,
        local_code=local,
        department=department,
        doctor=doctor,
        seq=seq,
    )


def parse_request(
    body: Any,
    infno: str,
    tables: ValueTables,
    *,
    hospital_level: int | None,
    local_code: Callable[[str], str | None] = lambda code: None,
    relevant: Callable[[str], bool] = lambda code: True,
) -> NationalRequest:
    """Validate a 3101 / 3102 request and build the cases; raises :class:`PayloadError` naming every problem."""
    reader = _Reader()
    data, envelope_infno, msgid = _data(body, reader)
    if envelope_infno and envelope_infno != infno:
        reader.problems.append(f"infno 为 {envelope_infno}，本接口为 {infno}")
    if data is None:
        raise PayloadError(reader.problems)
    request = NationalRequest(
        infno,
        [],
        _rule_ids(data, reader),
        reader.text(data, "task_id", "data", limit=100),
        reader.text(data, "trig_scen", "data", limit=3),
        msgid,
    )
    for ppath, dto in reader.items(data, "patient_dtos", "data"):
        patient_id = reader.text(dto, "patn_id", ppath, required=True, limit=50)
        current = reader.text(dto, "curr_mdtrt_id", ppath, required=True, limit=50)
        gend = reader.text(dto, "gend", ppath, required=True, limit=3)
        birth = reader.moment(dto, "brdy", ppath, required=True)
        sex = tables.sex_of(gend) if gend else None
        if gend and sex is None and gend not in ("0", "9"):
            reader.problems.append(f"{ppath}.gend 值「{gend}」无效（1 男，2 女，0 未知，9 未说明）")
        stays: dict[str, Stay] = {}
        lines: list[Line] = []
        current_stay: Stay | None = None
        encounter_info: dict[str, Any] = {}
        encounters = reader.items(dto, "fsi_encounter_dtos", ppath)
        for epath, enc in encounters:
            stay_id = reader.text(enc, "mdtrt_id", epath, required=True, limit=50)
            med_type = reader.text(enc, "med_type", epath, limit=6)
            mdtrt_type = reader.text(enc, "med_mdtrt_type", epath, limit=3)
            if med_type is None and mdtrt_type is None:
                reader.problems.append(f"{epath}.med_type 缺失")
            insutype = reader.text(enc, "insutype", epath, required=True, limit=6)
            reader.moment(enc, "adm_date", epath, required=True)
            level_raw = reader.text(enc, "medins_lv", epath, limit=6)
            orders = reader.items(enc, "fsi_order_dtos", epath)
            for name in ("fsi_diagnose_dtos", "fsi_operation_dtos"):
                reader.items(enc, name, epath, required=False)
            if stay_id is None:
                continue
            setting = (tables.encounter_type_of(mdtrt_type, "med_mdtrt_type") if mdtrt_type else None) or (
                tables.encounter_type_of(med_type, "med_type") if med_type else None
            )
            insurance = tables.insurance_of(insutype) if insutype else None
            if insutype and insurance is None:
                reader.problems.append(
                    f"{epath}.insutype 值「{insutype}」无法识别（310 职工、390 居民、510 生育…）"
                )
            level = tables.level_of(level_raw) if level_raw else None
            stay = Stay(
                stay_id, patient_id, setting, insurance, level or hospital_level, level_assumed=level is None
            )
            stays[stay_id] = stay
            is_current = stay_id == current
            if is_current:
                current_stay = stay
                encounter_info = {
                    "department": {
                        "code": reader.text(enc, "adm_dept_codg", epath, limit=30)
                        or reader.text(enc, "dscg_dept_codg", epath, limit=30),
                        "name": reader.text(enc, "adm_dept_name", epath, limit=50)
                        or reader.text(enc, "dscg_dept_name", epath, limit=50),
                    },
                    "attending": {"id": reader.text(enc, "dr_codg", epath, limit=30), "name": None},
                }
            flagged = {
                i for i, (_, o) in enumerate(orders) if str(o.get("curr_drord_flag", "")).strip() == "1"
            }
            for index, (opath, order) in enumerate(orders):
                draft = is_current and (infno == "3102" or not flagged or index in flagged)
                line = _order_line(reader, opath, order, stay_id, len(lines), draft, local_code, relevant)
                if line is not None:
                    lines.append(line)
        if current is not None and current_stay is None and stays and len(stays) == len(encounters):
            reader.problems.append(f"{ppath}.curr_mdtrt_id「{current}」不在 fsi_encounter_dtos 中")
        if current_stay is None or patient_id is None:
            continue
        case = Case(Patient(sex, birth.date() if birth else None), current_stay, tuple(lines), stays)
        request.cases.append(
            NationalCase(
                case,
                patient_id,
                current_stay.stay_id or "",
                drafts_only=infno == "3101",
                department=encounter_info.get("department")
                if any(encounter_info.get("department", {}).values())
                else None,
                attending=encounter_info.get("attending")
                if encounter_info.get("attending", {}).get("id")
                else None,
                encounter_type=current_stay.encounter_type,
            )
        )
    if not request.cases and not reader.problems:
        reader.problems.append("data.patient_dtos 为空")
    if reader.problems:
        raise PayloadError(reader.problems)
    return request


def keep_finding(finding: Finding, national: NationalCase) -> bool:
    """3101: findings involving a draft; 3102: findings on lines of the current encounter."""
    if national.drafts_only:
        return finding.draft
    return finding.stay_id == national.current_encounter


# ----------------------------------------------------------------------------- findings → result


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def result_entry(finding: Finding, patient_id: str, task_id: str | None) -> dict[str, Any]:
    """One ``result[]`` entry of the national output for one finding."""
    amount = finding.amount_at_risk
    details = [
        {
            "jrd_id": uuid.uuid4().hex,
            "patn_id": patient_id,
            "mdtrt_id": finding.stay_id,
            "rx_id": finding.line_ref,
            "vola_item_type": "1",
            "vola_amt": float(amount) if amount is not None else 0.0,
        }
    ]
    details += [
        {
            "jrd_id": uuid.uuid4().hex,
            "patn_id": patient_id,
            "mdtrt_id": finding.stay_id,
            "rx_id": ref,
            "vola_item_type": "2",
            "vola_amt": 0.0,
        }
        for ref in finding.related
    ]
    evidence = "；".join((f"规则原文：{finding.rule_text}", *finding.evidence))
    label = kinds.KINDS[finding.kind].label
    return {
        "jr_id": uuid.uuid4().hex,
        "rule_id": finding.rule_id,
        "rule_name": _clip(finding.rule_name, 200),
        "vola_cont": _clip(f"【{label}】{finding.item_name}：{finding.message}"),
        "patn_id": patient_id,
        "mdtrt_id": finding.stay_id,
        "judge_result_detail_dtos": details,
        "vola_amt": float(amount) if amount is not None else 0.0,
        "vola_amt_stas": "1" if amount is not None else "0",
        "sev_deg": SEV_DEG[finding.severity],
        "vola_evid": _clip(evidence),
        "vola_bhvr_type": BEHAVIOUR[finding.kind],
        "task_id": task_id,
    }


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def envelope(
    output: dict[str, Any] | None,
    received: datetime,
    responded: datetime,
    err_msg: str | None = None,
    warn_msg: str | None = None,
) -> dict[str, Any]:
    """The national response envelope: ``infcode`` 0 with ``output``, or -1 with ``err_msg``."""
    return {
        "infcode": 0 if err_msg is None else -1,
        "inf_refmsgid": uuid.uuid4().hex,
        "refmsg_time": _stamp(received),
        "respond_time": _stamp(responded),
        "err_msg": err_msg,
        "warn_msg": warn_msg,
        "output": output,
    }


def error_message(infno: str, problems: list[str]) -> str:
    return f"{infno} 入参校验失败（{len(problems)} 处）：" + "；".join(problems)
