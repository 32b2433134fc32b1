"""``dip-cds demo-traffic``: a ward's simulated week of real hook calls against a running service.

Stays are admitted over the week in four departments (respiratory, neurology, cardiology, general
surgery; two doctors each), with diagnoses and operations that group in the sample catalog. Each
simulated day every open stay gets a chart opening (patient-view) and orders signed (order-sign)
while its charges grow towards a per-stay cost level (some stays end far over their standard);
admissions call encounter-start and discharges encounter-discharge. A third of the order signing
comes through the browser plugin's API (``/plugin/v1/check``, as a HIS without a CDS Hooks client
sends it); the rest through CDS Hooks, to the 医保智能审核 service as well when the service offers it.
Some orders break a rule of the sample 智能审核 rule set (a drug for children ordered for an adult, an
examination limited to the other sex). Doctors answer some cards with feedback (accepted, or
overridden with a reason). The service computes every card — the console then shows what the
service really answered. The data is fictitious (no names at all).

The simulated days are compressed into one replay: the admission and charge dates are the week's,
the times the console records are when the service answered.
"""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests

YB_DX = "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0"
YB_PX = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0"
CHARGE_SYSTEM = "http://hospital.example.cn/CodeSystem/charge-item"
DRUG_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/medical-insurance-drug"  # 医保药品代码
ITEM_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/medical-service-item"  # 医疗服务项目代码
AUDIT_SERVICE = "yb-audit-order-sign"
PLUGIN = "plugin"  # the call goes to /plugin/v1/check instead of a hook endpoint
FEE_CATEGORY = "http://dip-cds.example.cn/fhir/StructureDefinition/fee-category"

# department code, name, doctors, cases: (diagnosis, name, operation or None, typical cost in yuan)
WARD = (
    ("0302", "呼吸内科", (("dr-li", "李医生（演示）"), ("dr-zhao", "赵医生（演示）")),
     (("J18.9", "未特指的肺炎", None, 4200), ("J44.1", "慢性阻塞性肺病伴有急性加重", None, 5600))),
    ("0401", "神经内科", (("dr-wang", "王医生（演示）"), ("dr-sun", "孙医生（演示）")),
     (("I63.9", "未特指的脑梗死", None, 8000),)),
    ("0301", "心血管内科", (("dr-zhou", "周医生（演示）"), ("dr-wu", "吴医生（演示）")),
     (("I25.1", "动脉硬化性心脏病", "36.0700", 26000), ("I10.x", "特发性（原发性）高血压", None, 3400))),
    ("0701", "普外科", (("dr-zheng", "郑医生（演示）"), ("dr-feng", "冯医生（演示）")),
     (("K35.3", "急性阑尾炎伴局限性腹膜炎", "47.0100", 9000), ("K80.0", "胆囊结石伴有急性胆囊炎", "51.2300", 10000))),
)  # fmt: skip
DAILY_ITEMS = (  # (code, name, fee category, share of the day's charges)
    ("110900001", "普通病房床位费", "01", Decimal("0.10")),
    ("120100002", "一级护理", "07", Decimal("0.08")),
    ("250101001", "血常规", "04", Decimal("0.12")),
    ("DRUG-001", "药品费", "09", Decimal("0.50")),
    ("MAT-001", "卫生材料费", "08", Decimal("0.20")),
)
ORDERABLE = (("250305001", "C反应蛋白测定"), ("87.4101", "胸部CT检查"), ("220600001", "彩色多普勒超声检查"))
# orders the sample 智能审核 rules forbid for the demo's adult patients: (gender it is ordered for,
# resource type, system, national code, name); None = any gender
RULE_BREAKING = (
    (None, "MedicationRequest", DRUG_SYSTEM, "ZA04CAE0023010100166", "儿童清肺口服液"),  # 限定年龄对象 儿童
    ("female", "ServiceRequest", ITEM_SYSTEM, "002101030280000", "阴茎海绵体造影"),  # 限定性别 男
    ("male", "ServiceRequest", ITEM_SYSTEM, "002101030300000", "子宫造影"),  # 限定性别 女
)
RULE_BREAKING_SHARE = 0.2
PLUGIN_SHARE = 1 / 3
OVERRIDE = {  # when a card carries no override reasons of its own
    "dip-order-sign": (("clinically-necessary", "临床需要，继续执行"), ("cost-data-wrong", "费用数据有误")),
    "dip-encounter-discharge": (("coding-confirmed", "编码已核对，保持不变"),),
    AUDIT_SERVICE: (("self-pay-informed", "临床必需，已告知患者自费"),),
}


@dataclass
class DemoStay:
    number: int
    department: tuple[str, str]
    doctor: tuple[str, str]
    diagnosis: tuple[str, str]
    operation: str | None
    admitted: date
    los: int
    daily_cost: Decimal
    gender: str
    birth: str
    charges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def patient_id(self) -> str:
        return f"DEMO-P{self.number:04d}"

    @property
    def encounter_id(self) -> str:
        return f"DEMO-E{self.number:04d}"

    def patient(self) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": self.patient_id,
            "gender": self.gender,
            "birthDate": self.birth,
        }

    def encounter(self, day: date, discharged: bool) -> dict[str, Any]:
        start = datetime.combine(self.admitted, datetime.min.time()) + timedelta(hours=9)
        period: dict[str, str] = {"start": start.isoformat() + "+08:00"}
        if discharged:
            period["end"] = f"{day.isoformat()}T10:00:00+08:00"
        return {
            "resourceType": "Encounter",
            "id": self.encounter_id,
            "status": "finished" if discharged else "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": f"Patient/{self.patient_id}"},
            "period": period,
            "serviceType": {"coding": [{"code": self.department[0], "display": self.department[1]}]},
            "participant": [
                {
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "ATND",
                                }
                            ]
                        }
                    ],
                    "individual": {"reference": f"Practitioner/{self.doctor[0]}", "display": self.doctor[1]},
                }
            ],
            "diagnosis": [{"condition": {"reference": f"Condition/{self.encounter_id}-dx1"}, "rank": 1}],
        }

    def conditions(self) -> list[dict[str, Any]]:
        code, name = self.diagnosis
        return [
            {
                "resourceType": "Condition",
                "id": f"{self.encounter_id}-dx1",
                "verificationStatus": {"coding": [{"code": "confirmed"}]},
                "code": {"coding": [{"system": YB_DX, "code": code, "display": name}]},
                "subject": {"reference": f"Patient/{self.patient_id}"},
                "encounter": {"reference": f"Encounter/{self.encounter_id}"},
            }
        ]

    def procedures(self, day: date) -> list[dict[str, Any]]:
        if self.operation is None or day <= self.admitted:
            return []
        return [
            {
                "resourceType": "Procedure",
                "id": f"{self.encounter_id}-px1",
                "status": "completed",
                "code": {"coding": [{"system": YB_PX, "code": self.operation}]},
                "subject": {"reference": f"Patient/{self.patient_id}"},
                "encounter": {"reference": f"Encounter/{self.encounter_id}"},
                "performedDateTime": f"{(self.admitted + timedelta(days=1)).isoformat()}T10:00:00+08:00",
            }
        ]

    def charge_day(self, day: date) -> None:
        """The day's billed charges (ChargeItems) of this stay."""
        for code, name, category, share in DAILY_ITEMS:
            amount = (self.daily_cost * share).quantize(Decimal("0.01"))
            self.charges.append(
                {
                    "resourceType": "ChargeItem",
                    "id": f"{self.encounter_id}-{day.isoformat()}-{code}",
                    "status": "billed",
                    "extension": [{"url": FEE_CATEGORY, "valueCode": category}],
                    "code": {"coding": [{"system": CHARGE_SYSTEM, "code": code, "display": name}]},
                    "subject": {"reference": f"Patient/{self.patient_id}"},
                    "context": {"reference": f"Encounter/{self.encounter_id}"},
                    "occurrenceDateTime": f"{day.isoformat()}T12:00:00+08:00",
                    "quantity": {"value": 1},
                    "priceOverride": {"value": float(amount), "currency": "CNY"},
                }
            )


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def make_ward(days: int, beds: int, seed: int, today: date | None = None) -> list[DemoStay]:
    rng = random.Random(seed)
    first = (today or date.today()) - timedelta(days=days - 1)
    stays = []
    for number in range(1, beds + 1):
        dept_code, dept_name, doctors, cases = WARD[number % len(WARD)]
        code, name, operation, typical = rng.choice(cases)
        los = rng.randint(2, 8)
        level = Decimal(
            str(round(rng.choice((0.55, 0.75, 0.9, 1.0, 1.1, 1.3, 1.6)) * rng.uniform(0.9, 1.1), 3))
        )
        stays.append(
            DemoStay(
                number=number,
                department=(dept_code, dept_name),
                doctor=rng.choice(doctors),
                diagnosis=(code, name),
                operation=operation,
                admitted=first + timedelta(days=rng.randrange(days)),
                los=los,
                daily_cost=(Decimal(typical) * level / los).quantize(Decimal("0.01")),
                gender=rng.choice(("male", "female")),
                birth=f"{rng.randint(1940, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            )
        )
    return stays


def _request(
    hook: str, stay: DemoStay, day: date, orders: list[dict[str, Any]] | None = None, discharged: bool = False
) -> dict[str, Any]:
    enc = stay.encounter(day, discharged)
    context: dict[str, Any] = {
        "userId": f"Practitioner/{stay.doctor[0]}",
        "patientId": stay.patient_id,
        "encounterId": stay.encounter_id,
    }
    if hook == "order-sign":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders or []],
        }
    prefetch = {
        "patient": stay.patient(),
        "encounter": enc,
        "conditions": _searchset(stay.conditions()),
        "procedures": _searchset(stay.procedures(day)),
        "chargeItems": _searchset(list(stay.charges)),
    }
    if hook == "patient-view":
        prefetch["openEncounters"] = _searchset([enc])
    return {"hookInstance": str(uuid.uuid4()), "hook": hook, "context": context, "prefetch": prefetch}


def _orders(stay: DemoStay, day: date, rng: random.Random) -> list[dict[str, Any]]:
    orders = []
    if stay.operation and day == stay.admitted:
        orders.append(("ServiceRequest", stay.operation, "手术", YB_PX))
    for code, name in rng.sample(ORDERABLE, rng.randint(1, 2)):
        orders.append(("ServiceRequest", code, name, CHARGE_SYSTEM))
    if rng.random() < RULE_BREAKING_SHARE:
        kind, system, code, name = rng.choice([r[1:] for r in RULE_BREAKING if r[0] in (None, stay.gender)])
        orders.append((kind, code, name, system))
    out = []
    for i, (kind, code, name, system) in enumerate(orders):
        concept = {"coding": [{"system": system, "code": code, "display": name}]}
        order = {
            "resourceType": kind,
            "id": f"{stay.encounter_id}-{day.isoformat()}-{i}",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": f"Patient/{stay.patient_id}"},
            "encounter": {"reference": f"Encounter/{stay.encounter_id}"},
        }
        order["medicationCodeableConcept" if kind == "MedicationRequest" else "code"] = concept
        out.append(order)
    return out


def plan(
    stays: list[DemoStay], days: int, seed: int, today: date | None = None, audit: bool = False
) -> list[list[tuple[str, DemoStay, dict[str, Any]]]]:
    """The calls of each simulated day, in order: (service id or ``PLUGIN``, stay, request body).
    ``audit``: hook-signed orders go to the 智能审核 service too (a plugin check runs every service)."""
    rng = random.Random(seed + 1)
    first = (today or date.today()) - timedelta(days=days - 1)
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        calls = []
        for stay in stays:
            if stay.admitted > day or day > stay.admitted + timedelta(days=stay.los):
                continue
            if day == stay.admitted:
                calls.append(("dip-encounter-start", stay, _request("encounter-start", stay, day)))
            stay.charge_day(day)
            if day == stay.admitted + timedelta(days=stay.los):
                calls.append(
                    (
                        "dip-encounter-discharge",
                        stay,
                        _request("encounter-discharge", stay, day, discharged=True),
                    )
                )
                continue
            calls.append(("dip-patient-view", stay, _request("patient-view", stay, day)))
            body = _request("order-sign", stay, day, _orders(stay, day, rng))
            if rng.random() < PLUGIN_SHARE:
                calls.append((PLUGIN, stay, body))
                continue
            calls.append(("dip-order-sign", stay, body))
            if audit:
                calls.append((AUDIT_SERVICE, stay, dict(body, hookInstance=str(uuid.uuid4()))))
        out.append(calls)
    return out


def _feedback(service: str, card: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    if service not in OVERRIDE or rng.random() > 0.45:
        return None
    when = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if rng.random() < 0.4:
        return {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": when}
    reasons = card.get("overrideReasons") or [{"code": c, "display": d} for c, d in OVERRIDE[service]]
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": rng.choice(reasons)},
        "outcomeTimestamp": when,
    }


def replay(
    base_url: str,
    *,
    days: int = 7,
    beds: int = 30,
    seed: int = 20261203,
    workers: int = 4,
    today: date | None = None,
) -> dict[str, int]:
    """Send the week's calls (a day's calls in parallel, days in order); returns counts."""
    stays = make_ward(days, beds, seed, today)
    rng = random.Random(seed + 2)
    session = requests.Session()
    session.trust_env = False  # the demo talks to the given service only
    offered = {s["id"] for s in session.get(f"{base_url}/cds-services", timeout=30).json()["services"]}
    counts = {"calls": 0, "plugin": 0, "failed": 0, "feedback": 0, "stays": len(stays)}

    def send(call: tuple[str, DemoStay, dict[str, Any]]) -> tuple[str, int, dict[str, Any] | None]:
        target, _, body = call
        path = "/plugin/v1/check" if target == PLUGIN else f"/cds-services/{target}"
        response = session.post(base_url + path, json=body, timeout=30)
        return target, response.status_code, response.json() if response.ok else None

    def answer(target: str, cards: list[dict[str, Any]]) -> None:
        """Feedback as the doctor gives it: per service, through the channel the cards came by."""
        by_service: dict[str, list[dict[str, Any]]] = {}
        for card in cards:
            service = card.get("service", target)
            item = _feedback(service, card, rng)
            if item:
                by_service.setdefault(service, []).append(item)
        for service, items in by_service.items():
            body: dict[str, Any] = {"feedback": items}
            if target == PLUGIN:
                url, body["service"] = f"{base_url}/plugin/v1/feedback", service
            else:
                url = f"{base_url}/cds-services/{service}/feedback"
            ok = session.post(url, json=body, timeout=30).ok
            counts["feedback"] += len(items) if ok else 0
            counts["failed"] += 0 if ok else 1

    with ThreadPoolExecutor(workers) as pool:
        for calls in plan(stays, days, seed, today, audit=AUDIT_SERVICE in offered):
            for target, status, reply in pool.map(send, calls):
                counts["calls"] += 1
                counts["plugin"] += target == PLUGIN
                if status != 200 or reply is None:
                    counts["failed"] += 1
                    continue
                answer(target, reply.get("cards", []))
    return counts
