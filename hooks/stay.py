"""The stay as the FHIR context describes it: the patient, the diagnoses and procedures of the
encounter, each mapped to 医保版 codes — the input every DIP card is computed from.

Pure functions over raw FHIR JSON (R4/R4B/R5 shapes): hospital servers send sloppy resources and
a full fhir.resources parse of hundreds of resources would cost more than the whole latency budget.

Which diagnosis is principal (主要诊断), in order:
1. ``Encounter.diagnosis`` entries, chief complaints (role ``CC``) left out; at discharge the
   discharge diagnoses (``DD``/``discharge``) first, else the entry with the lowest ``rank``;
2. without ``Encounter.diagnosis``: the encounter's Conditions in the order the server sent them,
   which is noted as an estimate.
Two entries sharing the lowest rank are a conflict the card reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from costing.fhir_input import iter_resources, reference_id
from grouper import Case
from mappings import Resolution, map_codeable_concept

CHIEF_COMPLAINT_ROLES = frozenset({"CC", "chief-complaint"})
DISCHARGE_ROLES = frozenset({"DD", "discharge"})
NOT_DONE_PROCEDURE = frozenset({"not-done", "entered-in-error", "stopped", "preparation", "unknown"})
REFUTED = frozenset({"refuted", "entered-in-error"})
BIRTH_WEIGHT_LOINC = frozenset({"8339-4", "29463-7"})  # birth weight measured / body weight
YB_PATH_PREFIX = "yb"  # yb2.0-exact, yb2.0-completed, yb2.0-dagger-asterisk…


@dataclass(frozen=True, slots=True)
class StayDiagnosis:
    """One documented diagnosis and the 医保版 code it stands for."""

    condition_id: str | None
    condition: Mapping[str, Any] | None
    documented: str  # the code or text as written in the record (shown to the coder)
    resolution: Resolution
    rank: int | None = None
    role: str | None = None
    verification: str | None = None
    in_encounter: bool = True  # documented for this encounter (not a problem-list entry of another stay)

    @property
    def code(self) -> str | None:
        """The 医保版 code grouping may use: confirmed mappings only (a fuzzy text match is not one)."""
        return self.resolution.code if self.resolution.mapped else None

    @property
    def best_guess(self) -> str | None:
        """The code to estimate with when nothing is confirmed (top text candidate), else None."""
        if self.code:
            return self.code
        if self.resolution.code:
            return self.resolution.code
        return self.resolution.candidates[0].code if self.resolution.candidates else None

    @property
    def name(self) -> str:
        return self.resolution.display or self.documented

    @property
    def mapped_from_other_system(self) -> bool:
        """The code was not sent as 医保版: mapped from 国临版, a local code, WHO ICD-10 or text."""
        return not self.resolution.path.startswith(YB_PATH_PREFIX)

    @property
    def refuted(self) -> bool:
        return self.verification in REFUTED


@dataclass(frozen=True, slots=True)
class StayProcedure:
    procedure_id: str | None
    procedure: Mapping[str, Any] | None
    documented: str
    resolution: Resolution
    performed: datetime | None = None
    status: str | None = None

    @property
    def code(self) -> str | None:
        return self.resolution.code if self.resolution.mapped else None

    @property
    def name(self) -> str:
        return self.resolution.display or self.documented


@dataclass(frozen=True)
class Stay:
    """Everything DIP grouping needs about one stay, plus what the cards say about its inputs."""

    patient: Mapping[str, Any] | None
    encounter: Mapping[str, Any] | None
    diagnoses: tuple[StayDiagnosis, ...]  # principal first, then in documented order
    procedures: tuple[StayProcedure, ...]  # performed during the stay, documented order
    sex: str | None = None  # "M" | "F"
    age: int | None = None  # years at admission
    age_days: int | None = None
    birth_weight_g: int | None = None
    admitted: datetime | None = None
    discharged: datetime | None = None
    principal_explicit: bool = True  # False: no ranked Encounter.diagnosis, principal taken by order
    rank_conflict: tuple[str, ...] = ()  # documented texts sharing the lowest rank
    procedures_outside: tuple[StayProcedure, ...] = ()  # dated outside the stay: not grouped
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def principal(self) -> StayDiagnosis | None:
        return self.diagnoses[0] if self.diagnoses else None

    def los_days(self, today: date | None = None) -> int | None:
        """Length of stay in days (admission day to discharge day, at least 1; ongoing: to today)."""
        if self.admitted is None:
            return None
        end = self.discharged.date() if self.discharged else (today or current_date())
        return max((end - self.admitted.date()).days, 1)

    def case(
        self,
        principal: StayDiagnosis | None = None,
        extra_procedures: Iterable[str] = (),
        estimate_principal: bool = True,
    ) -> Case:
        """The grouper's Case; ``principal`` replaces the documented principal (the coder's comparison)."""
        main = principal or self.principal
        main_code = (main.best_guess if estimate_principal else main.code) if main else None
        others = tuple(d.code for d in self.diagnoses if d is not main and d.code and d.code != main_code)
        procedures = tuple(p.code for p in self.procedures if p.code) + tuple(extra_procedures)
        return Case(
            main_diagnosis=main_code or "",
            other_diagnoses=others,
            procedures=procedures,
            sex=self.sex,
            age=self.age,
            age_days=self.age_days,
            birth_weight_g=self.birth_weight_g,
            los_days=self.los_days() if self.admitted else None,
            code_system="yb",  # every code went through the mapping layer: all are 医保版
            principal_conflict=self.rank_conflict,
            principal_unranked=bool(self.diagnoses) and not self.principal_explicit,
        )


def current_date() -> date:
    """Today in the service's clock (one place, so tests and replays can pin it)."""
    return date.today()


# ----------------------------------------------------------------------------- small FHIR readers


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date or dateTime; None when absent or unreadable (never raises)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text + "T00:00:00")
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _local_naive(moment: datetime) -> datetime:
    """Drop the offset keeping the wall-clock time: stays are compared in the hospital's local time."""
    return moment.replace(tzinfo=None)


def _list(value: Any) -> list[Any]:
    """A FHIR array element as sent, or [] when a client sent something else in its place."""
    return value if isinstance(value, list) else []


def _code_of(concept: Any, system_suffix: str = "") -> str | None:
    if not isinstance(concept, Mapping):
        return None
    for coding in _list(concept.get("coding")):
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
            if not system_suffix or str(coding.get("system", "")).endswith(system_suffix):
                return coding["code"]
    return None


def documented_text(concept: Any) -> str:
    """How a CodeableConcept reads in the record: its first code (with display), else its text."""
    if not isinstance(concept, Mapping):
        return ""
    for coding in _list(concept.get("coding")):
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str) and coding["code"].strip():
            display = coding.get("display")
            code = coding["code"].strip()[:64]
            return f"{code} {display}".strip()[:120] if isinstance(display, str) else code
    text = concept.get("text")
    return text.strip()[:120] if isinstance(text, str) else ""


def _sex(patient: Mapping[str, Any] | None) -> str | None:
    gender = (patient or {}).get("gender")
    return {"male": "M", "female": "F"}.get(gender) if isinstance(gender, str) else None


def _age(patient: Mapping[str, Any] | None, on: date) -> tuple[int | None, int | None]:
    birth = parse_datetime((patient or {}).get("birthDate"))
    if birth is None or birth.date() > on:
        return None, None
    born = birth.date()
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return years, (on - born).days


def birth_weight_grams(observations: Any) -> int | None:
    """Birth weight from an Observation (LOINC 8339-4) in g or kg; None when there is none."""
    for obs in iter_resources(observations):
        if obs.get("resourceType") != "Observation" or obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        code = obs.get("code")
        codes = {c.get("code") for c in _list(code.get("coding") if isinstance(code, Mapping) else None)
                 if isinstance(c, Mapping) and isinstance(c.get("code"), str)}  # fmt: skip
        value = obs.get("valueQuantity")
        if not codes & BIRTH_WEIGHT_LOINC or not isinstance(value, Mapping):
            continue
        amount = value.get("value")
        if not isinstance(amount, int | float) or amount <= 0:
            continue
        unit = str(value.get("code") or value.get("unit") or "g").lower()
        grams = amount * 1000 if unit in ("kg", "千克", "公斤") else amount
        if 100 <= grams <= 10000:
            return int(round(grams))
    return None


# ----------------------------------------------------------------------------- assembling the stay


def _role(entry: Mapping[str, Any]) -> str | None:
    use = entry.get("use")
    if isinstance(use, list):  # R5: use is a list of CodeableConcepts
        use = use[0] if use else None
    return _code_of(use)


def _rank(entry: Mapping[str, Any]) -> int | None:
    rank = entry.get("rank")
    return rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 else None


def _condition_ref(entry: Mapping[str, Any]) -> str | None:
    ref = entry.get("condition")
    if isinstance(ref, Mapping) and isinstance(ref.get("reference"), Mapping):  # R5 CodeableReference
        ref = ref["reference"]
    return reference_id(ref, "Condition")


def _verification(condition: Mapping[str, Any]) -> str | None:
    return _code_of(condition.get("verificationStatus"))


def _belongs(resource: Mapping[str, Any], encounter_id: str | None) -> bool:
    if encounter_id is None:
        return True
    ref = resource.get("encounter") or resource.get("context")
    return ref is None or reference_id(ref, "Encounter") == encounter_id


def read_stay(
    patient: Mapping[str, Any] | None,
    encounter: Mapping[str, Any] | None,
    conditions: Any,
    procedures: Any,
    terminology: Any,
    *,
    local_maps: Any = None,
    at_discharge: bool = False,
    observations: Any = None,
    today: date | None = None,
) -> Stay:
    """Assemble the stay; every code goes through the mapping layer once (never raises on bad input)."""
    encounter = encounter if isinstance(encounter, Mapping) else None
    encounter_id = encounter.get("id") if encounter else None
    period = (encounter or {}).get("period") or (encounter or {}).get("actualPeriod") or {}
    admitted = parse_datetime(period.get("start")) if isinstance(period, Mapping) else None
    discharged = parse_datetime(period.get("end")) if isinstance(period, Mapping) else None
    admitted = _local_naive(admitted) if admitted else None
    discharged = _local_naive(discharged) if discharged else None
    notes: list[str] = []

    by_id: dict[str, Mapping[str, Any]] = {}
    ordered_conditions: list[Mapping[str, Any]] = []
    for resource in iter_resources(conditions):
        if resource.get("resourceType") != "Condition":
            continue
        if isinstance(resource.get("id"), str):
            if resource["id"] in by_id:
                continue
            by_id[resource["id"]] = resource
        ordered_conditions.append(resource)

    def diagnosis(cond: Mapping[str, Any] | None, cid: str | None, rank=None, role=None) -> StayDiagnosis:
        concept = (cond or {}).get("code")
        resolution = map_codeable_concept(terminology, "dx", concept, local_maps)
        return StayDiagnosis(
            condition_id=cid,
            condition=cond,
            documented=documented_text(concept) or (f"Condition/{cid}" if cid else "（无编码）"),
            resolution=resolution,
            rank=rank,
            role=role,
            verification=_verification(cond) if cond else None,
            in_encounter=_belongs(cond, encounter_id) if cond else True,
        )

    entries = [e for e in _list((encounter or {}).get("diagnosis")) if isinstance(e, Mapping)]
    ranked: list[tuple[tuple[int, int, int], StayDiagnosis]] = []
    used: set[str] = set()
    missing = 0
    for position, entry in enumerate(entries[:100]):
        cid = _condition_ref(entry)
        if cid is None or cid in used:
            continue
        used.add(cid)
        cond = by_id.get(cid)
        if cond is None:
            missing += 1
            continue
        role, rank = _role(entry), _rank(entry)
        d = diagnosis(cond, cid, rank, role)
        if d.refuted:
            notes.append(f"诊断 {d.documented} 已被否定（{d.verification}），不参与分组")
            continue
        order = 2 if role in CHIEF_COMPLAINT_ROLES else (0 if at_discharge and role in DISCHARGE_ROLES else 1)
        ranked.append(((order, rank if rank is not None else 10_000 + position, position), d))
    if missing:
        notes.append(f"Encounter.diagnosis 引用的 {missing} 个 Condition 未取得，已忽略")
    ranked.sort(key=lambda item: item[0])
    principal_explicit = bool(ranked) and ranked[0][0][0] < 2
    conflict: tuple[str, ...] = ()
    if ranked and ranked[0][1].rank is not None:
        top = ranked[0][0][:2]
        same = [d.documented for key, d in ranked if key[:2] == top]
        if len(same) > 1:
            conflict = tuple(same)
    diagnoses = [d for _key, d in ranked]
    # Conditions of the encounter that Encounter.diagnosis does not list: documented, unranked.
    for cond in ordered_conditions[:200]:
        cid = cond.get("id") if isinstance(cond.get("id"), str) else None
        if cid in used or not _belongs(cond, encounter_id):
            continue
        d = diagnosis(cond, cid)
        if d.refuted:
            continue
        diagnoses.append(d)
    if diagnoses and not principal_explicit:
        notes.append("Encounter.diagnosis 未标明主要诊断，按诊断记录顺序取第一个（估算）")

    procs: list[StayProcedure] = []
    outside: list[StayProcedure] = []
    for proc in list(iter_resources(procedures))[:200]:
        if proc.get("resourceType") != "Procedure" or not _belongs(proc, encounter_id):
            continue
        status = proc.get("status") if isinstance(proc.get("status"), str) else None
        if status in NOT_DONE_PROCEDURE:
            continue
        when = proc.get("performedDateTime") or proc.get("occurrenceDateTime")
        if when is None:
            span = proc.get("performedPeriod") or proc.get("occurrencePeriod")
            when = span.get("start") if isinstance(span, Mapping) else None
        performed = parse_datetime(when)
        performed = _local_naive(performed) if performed else None
        concept = proc.get("code")
        item = StayProcedure(
            procedure_id=proc.get("id") if isinstance(proc.get("id"), str) else None,
            procedure=proc,
            documented=documented_text(concept) or "（无编码）",
            resolution=map_codeable_concept(terminology, "px", concept, local_maps),
            performed=performed,
            status=status,
        )
        if (
            performed
            and admitted
            and (performed.date() < admitted.date() or (discharged and performed.date() > discharged.date()))
        ):
            outside.append(item)
        else:
            procs.append(item)

    on = (admitted or datetime.combine(today or current_date(), datetime.min.time())).date()
    age, age_days = _age(patient, on)
    weight = birth_weight_grams(observations) if observations is not None else None
    return Stay(
        patient=patient,
        encounter=encounter,
        diagnoses=tuple(diagnoses),
        procedures=tuple(procs),
        sex=_sex(patient),
        age=age,
        age_days=age_days,
        birth_weight_g=weight,
        admitted=admitted,
        discharged=discharged,
        principal_explicit=principal_explicit,
        rank_conflict=conflict,
        procedures_outside=tuple(outside),
        notes=tuple(notes),
    )
