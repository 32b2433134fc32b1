"""The FHIR data of the stay a request is about: from the prefetch, or read from the FHIR server
when the client named no encounter (the CDS Hooks Sandbox, patient-view)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.fhir_client import FetchError
from cds_service.registry import HookRequest
from costing.fhir_input import iter_resources

INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC", "inpatient", "住院"})
OPEN_STATUSES = ("in-progress", "arrived", "onleave")


@dataclass(frozen=True)
class EncounterData:
    """The FHIR data of one stay. ``coverage`` is the patient's insurance (``Coverage`` search);
    ``problem`` says why part of the data could not be obtained."""

    encounter: Mapping[str, Any] | None
    conditions: Any = None
    procedures: Any = None
    charge_items: Any = None
    coverage: Any = None
    problem: str | None = None

    @property
    def encounter_id(self) -> str | None:
        eid = self.encounter.get("id") if self.encounter else None
        return eid if isinstance(eid, str) else None


def is_inpatient(encounter: Mapping[str, Any] | None) -> bool:
    """DIP pays inpatient stays: an encounter whose class says otherwise gets no DIP card."""
    if not encounter:
        return False
    klass = encounter.get("class")
    klass = klass[0] if isinstance(klass, list) and klass else klass  # R5: list of CodeableConcepts
    if isinstance(klass, Mapping) and "coding" in klass:
        coding = klass.get("coding")
        found = [c.get("code") for c in coding if isinstance(c, Mapping)] if isinstance(coding, list) else []
    elif isinstance(klass, Mapping):
        found = [klass.get("code")]
    else:
        return True  # class not given: assume the EMR asked about a stay
    codes = {code for code in found if isinstance(code, str)}
    return not codes or bool(codes & INPATIENT_CLASSES)


def open_inpatient(bundle: Any) -> Mapping[str, Any] | None:
    """The most recently started open inpatient encounter of a search result."""
    found = [
        e for e in iter_resources(bundle)
        if e.get("resourceType") == "Encounter" and e.get("status") in OPEN_STATUSES and is_inpatient(e)
    ]  # fmt: skip
    found.sort(key=lambda e: str((e.get("period") or {}).get("start") or ""), reverse=True)
    return found[0] if found else None


def encounter_data(req: HookRequest, *, find_open: bool = False) -> EncounterData:
    """The stay the request is about. With an ``encounterId`` it is the prefetch's; without one and
    ``find_open``, the patient's open inpatient encounter (``openEncounters`` prefetch or a search),
    whose diagnoses, procedures and charges are then read from the FHIR server."""
    coverage = req.prefetch.get("coverage")  # patient-scoped: prefetched (or fetched) either way
    if req.encounter_id or not find_open:
        missing = {k: v for k, v in req.unavailable_prefetch().items() if k in ("conditions", "procedures")}
        return EncounterData(
            req.resource("encounter"),
            req.prefetch.get("conditions"),
            req.prefetch.get("procedures"),
            req.prefetch.get("chargeItems"),
            coverage,
            problem="、".join(f"{k}：{v}" for k, v in missing.items()) or None,
        )
    bundle = req.prefetch.get("openEncounters") if req.available("openEncounters") else None
    try:
        if bundle is None and req.fhir is not None:
            bundle = req.fhir.search(
                "Encounter", {"patient": req.patient_id, "status": "in-progress", "_count": "20"}
            )
        encounter = open_inpatient(bundle)
        eid = encounter.get("id") if encounter is not None else None
        if encounter is None or req.fhir is None or not isinstance(eid, str):
            return EncounterData(encounter, coverage=coverage)  # no id: no linked data to read
        base = {"patient": req.patient_id}
        return EncounterData(
            encounter,
            req.fhir.search("Condition", {**base, "encounter": eid, "_count": "200"}),
            req.fhir.search("Procedure", {**base, "encounter": eid, "_count": "200"}),
            req.fhir.search("ChargeItem", {**base, "context": f"Encounter/{eid}", "_count": "1000"}),
            coverage,
        )
    except FetchError as exc:
        return EncounterData(open_inpatient(bundle), coverage=coverage, problem=str(exc))
