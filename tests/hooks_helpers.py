"""Shared pieces of the hook-service tests (tests/test_hooks_e2e.py, tests/test_hooks_bad_input.py).

Small FHIR builders (so every scenario reads as the record a hospital would send), the service app
as production serves it (reference data preloaded, so the 0.4 s prefetch deadline is not spent on
a cold load), a demo FHIR server that records what it was asked, and the golden form of a card.
"""

from __future__ import annotations

import copy
import re
import threading
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from hooks.demo_fhir import create_app as create_demo_fhir_app
from tests.service_helpers import searchset  # noqa: F401 - re-exported for the hook tests

PINNED_TODAY = date(2026, 11, 22)  # the demo stays are "today" on this day; LOS must not drift
GOLDEN_DIR = Path(__file__).with_name("golden")

YB_DX = "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0"
YB_PX = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0"
GL_DX = "http://www.nhc.gov.cn/CodeSystem/icd10-gl2.0"
LOINC = "http://loinc.org"


def pin_today(monkeypatch: Any, today: date = PINNED_TODAY) -> None:
    """Make ``hooks.stay.current_date`` return ``today`` (length of stay of ongoing stays)."""
    import hooks.stay

    monkeypatch.setattr(hooks.stay, "current_date", lambda: today)


def service_app(home: Path):
    """The real CDS service on a temp data home, reference data loaded as ``dip-cds serve`` does."""
    app = create_app(settings=settings_from_mapping({"logging": {"level": "WARNING"}}), home=home)
    problems = preload(app)
    assert problems == [], problems
    return app


class RecordingFhir:
    """The demo FHIR app, recording (path, query) of every request it answers."""

    def __init__(self) -> None:
        self.app = create_demo_fhir_app()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        with self._lock:
            self.requests.append((environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")))
        return self.app(environ, start_response)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def paths(self) -> set[str]:
        return {path for path, _ in self.requests}

    def queries(self, path: str) -> list[str]:
        """The (percent-decoded) query strings of the requests to ``path``."""
        return [unquote_plus(query) for p, query in self.requests if p == path]


# ----------------------------------------------------------------------------- the golden form of a card


def golden_card(card: dict[str, Any]) -> dict[str, Any]:
    """What a card says, without what changes per call (uuids) or per server (full resources)."""
    out: dict[str, Any] = {
        key: copy.deepcopy(card[key])
        for key in ("summary", "indicator", "detail", "source", "selectionBehavior", "overrideReasons")
        if key in card
    }
    if "suggestions" in card:
        out["suggestions"] = [
            {
                "label": s["label"],
                "actions": [
                    {
                        "type": a["type"],
                        "description": a.get("description"),
                        "resource": (
                            f"{a['resource']['resourceType']}/{a['resource'].get('id')}"
                            if "resource" in a
                            else a.get("resourceId")
                        ),
                    }
                    for a in s.get("actions", [])
                ],
            }
            for s in card["suggestions"]
        ]
    return out


def golden_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [golden_card(c) for c in cards]


# ----------------------------------------------------------------------------- reading card markdown

_UNESCAPE = re.compile(r"\\(.)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def plain(markdown: str) -> str:
    """Card markdown with the backslash escapes removed (HTML entities are kept)."""
    return _UNESCAPE.sub(r"\1", markdown)


def table_after(detail: str, heading: str) -> list[list[str]]:
    """The rows (cells, unescaped) of the first markdown table after the line containing ``heading``."""
    lines = detail.split("\n")
    start = next(i for i, line in enumerate(lines) if heading in line)
    rows: list[list[str]] = []
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            cells = [plain(c).strip() for c in _CELL_SPLIT.split(line)[1:-1]]
            if not all(set(c) <= {"-"} for c in cells):
                rows.append(cells)
        elif in_table:
            break
    return rows[1:]  # without the header row


def bullets_after(detail: str, heading: str) -> list[str]:
    """The "- " list items (unescaped) after the line containing ``heading``."""
    lines = detail.split("\n")
    start = next(i for i, line in enumerate(lines) if heading in line)
    items: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("- "):
            items.append(plain(line[2:]))
        elif items and line.strip():
            break
    return items


# ----------------------------------------------------------------------------- FHIR builders


def patient(pid: str = "p1", gender: str = "male", birth_date: str = "1970-05-16") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth_date}


def encounter(
    eid: str = "e1",
    *,
    diagnoses: list[tuple[str, int | None]] | None = None,
    start: str = "2026-11-10T08:00:00+08:00",
    end: str | None = None,
    status: str = "in-progress",
    pid: str = "p1",
) -> dict[str, Any]:
    """An inpatient Encounter; ``diagnoses`` = [(condition id, rank or None)] in documented order."""
    period = {"start": start, **({"end": end} if end else {})}
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": period,
    }
    if diagnoses:
        enc["diagnosis"] = [
            {"condition": {"reference": f"Condition/{cid}"}, **({"rank": rank} if rank is not None else {})}
            for cid, rank in diagnoses
        ]
    return enc


def condition(
    cid: str,
    code: str | None = None,
    *,
    text: str | None = None,
    system: str = YB_DX,
    display: str | None = None,
    verification: str = "confirmed",
    eid: str | None = "e1",
    pid: str = "p1",
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code is not None:
        concept["coding"] = [{"system": system, "code": code, **({"display": display} if display else {})}]
    if text is not None:
        concept["text"] = text
    cond: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "verificationStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}
            ]
        },
        "code": concept,
        "subject": {"reference": f"Patient/{pid}"},
    }
    if eid is not None:
        cond["encounter"] = {"reference": f"Encounter/{eid}"}
    return cond


def procedure(
    prid: str,
    code: str,
    *,
    performed: str | None = "2026-11-11T10:00:00+08:00",
    eid: str = "e1",
    reason: str | None = None,
    pid: str = "p1",
) -> dict[str, Any]:
    proc: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": prid,
        "status": "completed",
        "code": {"coding": [{"system": YB_PX, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "encounter": {"reference": f"Encounter/{eid}"},
    }
    if performed:
        proc["performedDateTime"] = performed
    if reason:
        proc["reasonReference"] = [{"reference": f"Condition/{reason}"}]
    return proc


def birth_weight(grams: float, unit: str = "g", pid: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "bw",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8339-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": grams, "unit": unit, "code": unit},
    }


def encounter_request(
    hook: str,
    enc: dict[str, Any],
    conditions: list[dict[str, Any]],
    procedures: list[dict[str, Any]] = (),
    *,
    pat: dict[str, Any] | None = None,
    charge_items: dict[str, Any] | None = None,
    draft_orders: list[dict[str, Any]] | None = None,
    coverage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A hook request with the full prefetch of one stay (no fhirServer: nothing is fetched);
    ``coverage``: the patient's insurance search result (default: none on file)."""
    pat = pat or patient(pid=enc["subject"]["reference"].split("/")[-1])
    context: dict[str, Any] = {"userId": "Practitioner/dr", "patientId": pat["id"], "encounterId": enc["id"]}
    if hook in ("order-sign", "order-select"):
        orders = draft_orders or []
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": o} for o in orders]}  # fmt: skip
        if hook == "order-select":
            context["selections"] = [f"{o['resourceType']}/{o['id']}" for o in orders[:1]]
    prefetch: dict[str, Any] = {
        "patient": pat,
        "encounter": enc,
        "conditions": searchset(*conditions),
        "procedures": searchset(*procedures),
        "chargeItems": charge_items if charge_items is not None else searchset(),
        "coverage": coverage if coverage is not None else searchset(),
    }
    if hook == "patient-view":
        prefetch["openEncounters"] = searchset(enc)
    return {
        "hookInstance": "0f2b7c1e-6a53-4c1e-9a0d-3f6e2b7c1e10",
        "hook": hook,
        "context": context,
        "prefetch": prefetch,
    }
