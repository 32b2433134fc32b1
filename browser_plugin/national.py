"""The national 3101/3102 request → the CDS Hooks order-sign request the panel's services answer.

HIS vendors already build the 3101 明细审核事前分析 payload for the national platform; the plugin
API accepts it as it is, so such a HIS gets DIP cards without writing FHIR. Pure functions: the
payload becomes a request **with the whole prefetch** built from it (nothing is fetched), which then
runs through the same pipeline as every hook call.

Field by field (the rest is ignored; ``patn_name`` and other personal data are never read):

| 3101 | becomes |
|---|---|
| ``data.patient_dtos[0]`` (exactly one patient: a panel shows one) ``patn_id``, ``gend`` (1 男, 2 女), ``brdy`` | ``Patient`` id, gender, birthDate |
| ``curr_mdtrt_id`` → its ``fsi_encounter_dtos[]`` entry: ``mdtrt_id``, ``adm_date``, ``dscg_date``, ``med_type`` / ``med_mdtrt_type``, ``adm_dept_codg``/``adm_dept_name``, ``dr_codg`` | ``Encounter`` id, period, status (finished when ``dscg_date``), class (住院 when ``med_type`` starts with 2 or ``med_mdtrt_type`` is 2), serviceType, the user |
| its ``insutype`` (险种) | an active ``Coverage`` of that type (DIP pricing's 职工 / 居民, the 智能审核 insurance rules) |
| its ``medins_lv`` (医院等级) | the request extension ``yb-audit-hospital-level`` (the 智能审核 限定机构等级 rules) |
| ``fsi_diagnose_dtos[]`` ``dise_codg``, ``dise_name``, ``maindise_flag``, ``dias_srt_no``, ``inout_dise_type`` (1 入院, 2 出院) | ``Condition`` (医保版 ICD-10), ``Encounter.diagnosis`` rank (main = 1) and use (AD / DD) |
| ``fsi_operation_dtos[]`` ``oprn_code``, ``oprn_name``, ``main_oprn_flag``, ``oprn_date`` | ``Procedure`` (医保版 ICD-9-CM-3), the main one first |
| ``fsi_order_dtos[]`` with ``curr_drord_flag`` = 1 (all orders of the current encounter when none is flagged; 3102: all) | draft ``MedicationRequest`` (``hilist_type`` 1xx: drugs) / ``ServiceRequest``, coded with ``hosplist_code`` (the hospital's price list) and ``hilist_code``, quantity ``cnt``, ``authoredOn`` from ``drord_begn_date`` (no price: the hospital price list prices drafts, as on every path) |
| the other orders of the current encounter ``sumamt``, ``cnt``, ``drord_begn_date`` | ``ChargeItem`` (the cost so far); ``medicationRequests`` / ``medicationAdministrations`` are empty (every earlier order is a ChargeItem) |
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

YB_DX = "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0"
YB_PX = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0"
NHSA_LIST = "http://www.nhsa.gov.cn/CodeSystem/hilist"  # 医保目录编码 (hilist_code)
HOSPITAL_LIST = "http://hospital.example.cn/CodeSystem/charge-item"
INSUTYPE = "http://www.nhsa.gov.cn/CodeSystem/insutype"  # 险种类型  # the hospital's own codes
GENDER = {"1": "male", "2": "female", "男": "male", "女": "female"}
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
TZ = "+08:00"


class NationalPayloadError(ValueError):
    """Every problem of a payload, each with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def data_of(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``data`` of a 3101/3102 request, bare or inside the national envelope's ``input``."""
    container = body.get("input", body)
    data = container.get("data") if isinstance(container, Mapping) else None
    return data if isinstance(data, Mapping) and "patient_dtos" in data else None


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value).strip() == "":
        return None
    return str(value).strip()


def _when(value: str | None) -> str | None:
    """National ``yyyy-MM-dd[ HH:mm:ss]`` (China time) → FHIR dateTime."""
    if not value:
        return None
    if len(value) == 10:
        return value
    return value.replace(" ", "T")[:19] + TZ if len(value) >= 19 else None


def _list(
    obj: Mapping[str, Any], key: str, path: str, problems: list[str]
) -> list[tuple[str, Mapping[str, Any]]]:
    value = obj.get(key)
    if value in (None, ""):
        return []
    if isinstance(value, Mapping):  # a single object where the spec has a list (seen in the field)
        value = [value]
    if not isinstance(value, list):
        problems.append(f"{path}.{key}: must be an array")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            out.append((f"{path}.{key}[{i}]", item))
        else:
            problems.append(f"{path}.{key}[{i}]: must be an object")
    return out


def _required(obj: Mapping[str, Any], key: str, path: str, problems: list[str]) -> str:
    value = _text(obj, key)
    if value is None:
        problems.append(f"{path}.{key}: required")
    return value or ""


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}  # fmt: skip


def _order(
    order: Mapping[str, Any], path: str, ids: tuple[str, str], draft: bool, problems: list[str]
) -> dict[str, Any]:
    patient_id, encounter_id = ids
    rx_id = _required(order, "rx_id", path, problems)
    name = _text(order, "hosplist_name") or _text(order, "hilist_name") or rx_id
    codings = [
        {"system": system, "code": code, "display": name}
        for system, code in (
            (HOSPITAL_LIST, _text(order, "hosplist_code")),
            (NHSA_LIST, _text(order, "hilist_code")),
        )
        if code
    ]
    try:
        count = Decimal(_text(order, "cnt") or "1")
    except InvalidOperation:
        problems.append(f"{path}.cnt: not a number")
        count = Decimal(1)
    refs: dict[str, Any] = {"subject": {"reference": f"Patient/{patient_id}"}}
    if not draft:
        item: dict[str, Any] = {"resourceType": "ChargeItem", "id": f"ci-{rx_id}", "status": "billable",
                                "code": {"coding": codings, "text": name}, "quantity": {"value": float(count)},
                                "context": {"reference": f"Encounter/{encounter_id}"}, **refs}  # fmt: skip
        try:
            total = Decimal(_text(order, "sumamt") or "")
            item["priceOverride"] = {"value": float(total), "currency": "CNY"}
        except InvalidOperation:
            problems.append(f"{path}.sumamt: required for an order already given (a number)")
        if _when(_text(order, "drord_begn_date")):
            item["occurrenceDateTime"] = _when(_text(order, "drord_begn_date"))
        return item
    refs["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    if _when(_text(order, "drord_begn_date")):  # the day the order applies (frequency, duplicates)
        refs["authoredOn"] = _when(_text(order, "drord_begn_date"))
    concept = {"coding": codings, "text": name}
    if (_text(order, "hilist_type") or "").startswith("1"):  # 101 西药, 102 中成药, 103 中药饮片
        return {"resourceType": "MedicationRequest", "id": f"rx-{rx_id}", "status": "draft", "intent": "order",
                "medicationCodeableConcept": concept, "dispenseRequest": {"quantity": {"value": float(count)}}, **refs}  # fmt: skip
    return {"resourceType": "ServiceRequest", "id": f"rx-{rx_id}", "status": "draft", "intent": "order",
            "code": concept, "quantityQuantity": {"value": float(count)}, **refs}  # fmt: skip


def to_order_sign(body: Mapping[str, Any], hook_instance: str) -> dict[str, Any]:
    """The CDS Hooks order-sign request (full prefetch) of a 3101/3102 payload's one patient."""
    problems: list[str] = []
    data = data_of(body) or {}
    infno = _text(body, "infno")
    patients = _list(data, "patient_dtos", "data", problems)
    if len(patients) != 1:
        raise NationalPayloadError(
            problems or [f"data.patient_dtos: the panel checks one patient at a time, got {len(patients)}"]
        )
    ppath, dto = patients[0]
    patient_id = _required(dto, "patn_id", ppath, problems)
    current = _required(dto, "curr_mdtrt_id", ppath, problems)
    encounters = _list(dto, "fsi_encounter_dtos", ppath, problems)
    found = [(path, enc) for path, enc in encounters if _text(enc, "mdtrt_id") == current]
    if current and not found:
        problems.append(f"{ppath}.curr_mdtrt_id: {current!r} is not among fsi_encounter_dtos")
    if problems or not found:
        raise NationalPayloadError(problems or [f"{ppath}.fsi_encounter_dtos: required"])
    epath, enc = found[0]
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
    if GENDER.get(_text(dto, "gend") or ""):
        patient["gender"] = GENDER[_text(dto, "gend") or ""]
    if _text(dto, "brdy"):
        patient["birthDate"] = (_text(dto, "brdy") or "")[:10]

    conditions: list[dict[str, Any]] = []
    diagnosis: list[tuple[int, dict[str, Any]]] = []
    for i, (path, dx) in enumerate(_list(enc, "fsi_diagnose_dtos", epath, problems)):
        code = _required(dx, "dise_codg", path, problems)
        cid = f"dx-{_text(dx, 'dise_id') or i + 1}"
        conditions.append({"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{patient_id}"},
                           "encounter": {"reference": f"Encounter/{current}"},
                           "code": {"coding": [{"system": YB_DX, "code": code, "display": _text(dx, "dise_name")}],
                                    "text": _text(dx, "dise_name")}})  # fmt: skip
        main = _text(dx, "maindise_flag") == "1"
        number = _text(dx, "dias_srt_no") or ""
        rank = int(number) if number.isdigit() else i + 1
        use = {"1": "AD", "2": "DD"}.get(_text(dx, "inout_dise_type") or "", "DD")
        diagnosis.append((0 if main else rank, {"condition": {"reference": f"Condition/{cid}"},
                                                  "use": {"coding": [{"system": ROLE, "code": use}]}}))  # fmt: skip
    diagnosis.sort(key=lambda d: d[0])
    procedures = []
    operations = sorted(
        _list(enc, "fsi_operation_dtos", epath, problems), key=lambda o: _text(o[1], "main_oprn_flag") != "1"
    )
    for i, (path, op) in enumerate(operations):
        proc: dict[str, Any] = {"resourceType": "Procedure", "id": f"op-{_text(op, 'setl_list_oprn_id') or i + 1}", "status": "completed",
                "subject": {"reference": f"Patient/{patient_id}"}, "encounter": {"reference": f"Encounter/{current}"},
                "code": {"coding": [{"system": YB_PX, "code": _required(op, "oprn_code", path, problems),
                                     "display": _text(op, "oprn_name")}]}}  # fmt: skip
        if _when(_text(op, "oprn_date")):
            proc["performedDateTime"] = _when(_text(op, "oprn_date"))
        procedures.append(proc)

    orders = _list(enc, "fsi_order_dtos", epath, problems)
    flagged = {i for i, (_, o) in enumerate(orders) if _text(o, "curr_drord_flag") == "1"}
    drafts: list[dict[str, Any]] = []
    charges: list[dict[str, Any]] = []
    for i, (path, order) in enumerate(orders):
        draft = infno == "3102" or not flagged or i in flagged
        (drafts if draft else charges).append(_order(order, path, (patient_id, current), draft, problems))
    if problems:
        raise NationalPayloadError(problems)

    inpatient = (_text(enc, "med_type") or "").startswith("2") or _text(enc, "med_mdtrt_type") == "2"
    period = {
        k: v
        for k, v in (("start", _when(_text(enc, "adm_date"))), ("end", _when(_text(enc, "dscg_date"))))
        if v
    }
    encounter: dict[str, Any] = {
        "resourceType": "Encounter", "id": current, "status": "finished" if period.get("end") else "in-progress",
        "class": {"system": ACT, "code": "IMP" if inpatient else "AMB"}, "subject": {"reference": f"Patient/{patient_id}"},
        "diagnosis": [d for _, d in diagnosis],
    }  # fmt: skip
    if period:
        encounter["period"] = period
    if _text(enc, "adm_dept_name"):
        encounter["serviceType"] = {"text": _text(enc, "adm_dept_name")}
    context: dict[str, Any] = {"patientId": patient_id, "encounterId": current,
                               "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                               "entry": [{"resource": r} for r in drafts]}}  # fmt: skip
    if _text(enc, "dr_codg"):
        context["userId"] = f"Practitioner/{_text(enc, 'dr_codg')}"
    coverages = []
    if _text(enc, "insutype"):  # 险种 (310 职工, 390 居民, …): the insurance DIP prices and rules check
        coverages.append({"resourceType": "Coverage", "id": f"cov-{current}", "status": "active",
                          "type": {"coding": [{"system": INSUTYPE, "code": _text(enc, "insutype")}]},
                          "beneficiary": {"reference": f"Patient/{patient_id}"}})  # fmt: skip
    request: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": hook_instance,
        "context": context,
        "prefetch": {
            "patient": patient,
            "encounter": encounter,
            "coverage": _searchset(coverages),
            "conditions": _searchset(conditions),
            "procedures": _searchset(procedures),
            "chargeItems": _searchset(charges),
            # every earlier order of the encounter is a ChargeItem above: nothing else to fetch
            "medicationRequests": _searchset([]),
            "medicationAdministrations": _searchset([]),
        },
    }
    if _text(enc, "medins_lv"):  # the hospital's level for the 智能审核 限定机构等级 rules
        request["extension"] = {"yb-audit-hospital-level": _text(enc, "medins_lv")}
    return request
