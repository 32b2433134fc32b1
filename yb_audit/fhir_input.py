"""FHIR (what a CDS Hooks call carries) → the evaluator's :class:`~yb_audit.model.Case`.

Mapping (README "医保智能审核 / FHIR 映射" lists it with the code systems):

* Patient.gender → 性别; Patient.birthDate → 出生日期.
* Encounter.class → 就医方式 (IMP/ACUTE/NONAC 住院, AMB 门诊, EMER/OBSENC 急诊); Encounter.id → the stay.
* Coverage (active) .type codings → 参保类型 (险种 codes 310/390/510… or names); none → ``[audit]
  default_insurance``, marked as assumed on the card.
* ChargeItems of the encounter → charged lines: ``code`` (else ``productCodeableConcept``), time
  ``occurrenceDateTime`` / ``occurrencePeriod.start`` / ``enteredDate``, ``quantity``, amount as the
  cost-so-far rules say (:func:`costing.so_far.charge_item_amount`). Not counted: ``planned``,
  ``not-billable``, ``aborted``, ``entered-in-error``.
* MedicationAdministrations (``completed`` / ``in-progress``) → one drug-day each at ``effective[x]``.
* MedicationRequests of the encounter (not drafts; ``active`` / ``completed`` / ``on-hold``) → the
  days they cover (bounds or supply duration), for 限定支付疗程.
* Draft orders (MedicationRequest / ServiceRequest) → draft lines: planned days of a drug from
  ``dosageInstruction.timing.repeat.boundsDuration`` / ``boundsPeriod`` /
  ``dispenseRequest.expectedSupplyDuration`` (else 1 day); the quantity of a service from
  ``quantityQuantity``; the price from the hospital price list (``costing``). A draft already marked
  自费 (extension :data:`~yb_audit.codes.SELF_PAY_EXTENSION`) is not audited.

Times with an offset are converted to China time (UTC+8); times without one are taken as local.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from costing.fhir_input import as_decimal, codings, concept_text, iter_resources, reference_id, resource_label
from costing.so_far import charge_item_amount
from yb_audit.codes import SELF_PAY_EXTENSION, Resolved, ValueTables, resolve_coding
from yb_audit.model import DRUG, ITEM, Case, Line, Patient, Stay

CHINA = timezone(timedelta(hours=8))
CHARGE_EXCLUDED = ("planned", "not-billable", "aborted", "entered-in-error")
ADMINISTERED = ("completed", "in-progress")
ORDER_COUNTED = ("active", "completed", "on-hold")
DRAFT_EXCLUDED = ("revoked", "entered-in-error", "completed", "cancelled", "stopped")
MAX_DAYS = 400  # a planned course longer than this is read as this (a typo must not explode the day set)
_UNIT_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "mo": 30, "month": 30, "a": 365, "h": 0}


def now_local() -> datetime:
    """Wall-clock time in China (one place, so tests can pin it)."""
    return datetime.now(UTC).astimezone(CHINA).replace(tzinfo=None)


def local_time(value: Any) -> datetime | None:
    """A FHIR date / dateTime / instant as a naive UTC+8 datetime; None when unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _local_time(value)


@lru_cache(maxsize=8192)  # a stay's charges repeat the same few timestamps (datetimes are immutable)
def _local_time(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text)
        if len(text) == 7:  # YYYY-MM
            return datetime.fromisoformat(text + "-01")
        moment = datetime.fromisoformat(text)
        return moment.astimezone(CHINA).replace(tzinfo=None) if moment.tzinfo else moment
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+14:00 has no UTC instant
        return None


def birth_date(patient: Mapping[str, Any] | None) -> date | None:
    moment = local_time((patient or {}).get("birthDate"))
    return moment.date() if moment else None


def _concept_of_medication(resource: Mapping[str, Any]) -> Any:
    concept = resource.get("medicationCodeableConcept")
    medication = resource.get("medication")  # R5 CodeableReference
    if concept is None and isinstance(medication, Mapping):
        concept = medication.get("concept")
    reference = resource.get("medicationReference") or (
        medication.get("reference") if isinstance(medication, Mapping) else None
    )
    if (
        concept is None
        and isinstance(reference, Mapping)
        and str(reference.get("reference", "")).startswith("#")
    ):
        for contained in _items(resource.get("contained")):
            if isinstance(contained, Mapping) and contained.get("id") == reference["reference"][1:]:
                return contained.get("code")
    return concept


def _start(resource: Mapping[str, Any]) -> datetime | None:
    for key in ("occurrenceDateTime", "effectiveDateTime", "enteredDate", "authoredOn"):
        moment = local_time(resource.get(key))
        if moment:
            return moment
    for key in ("occurrencePeriod", "effectivePeriod"):
        period = resource.get(key)
        if isinstance(period, Mapping) and local_time(period.get("start")):
            return local_time(period.get("start"))
    return None


def _repeat(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    for dosage in _items(resource.get("dosageInstruction")):
        timing = dosage.get("timing") if isinstance(dosage, Mapping) else None
        repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
        if isinstance(repeat, Mapping):
            return repeat
    return {}


def _duration_days(quantity: Any) -> int | None:
    if not isinstance(quantity, Mapping):
        return None
    value = as_decimal(quantity.get("value"))
    unit = str(quantity.get("code") or quantity.get("unit") or "d").lower()
    factor = _UNIT_DAYS.get(unit) or ({"天": 1, "日": 1, "周": 7, "月": 30}.get(unit))
    if value is None or value <= 0 or not factor:
        return None
    return max(1, int((value * factor).to_integral_value()))


def medication_days(resource: Mapping[str, Any], start: datetime | None) -> tuple[datetime | None, int]:
    """(first day, number of days) a MedicationRequest covers."""
    repeat = _repeat(resource)
    bounds = repeat.get("boundsPeriod")
    first = start
    if isinstance(bounds, Mapping) and local_time(bounds.get("start")):
        first = local_time(bounds.get("start"))
    days = _duration_days(repeat.get("boundsDuration"))
    end = local_time(bounds.get("end")) if isinstance(bounds, Mapping) else None
    if days is None and first is not None and end is not None:
        days = (end.date() - first.date()).days + 1
    if days is None:
        dispense = resource.get("dispenseRequest")
        days = (
            _duration_days(dispense.get("expectedSupplyDuration")) if isinstance(dispense, Mapping) else None
        )
    return first, min(max(days or 1, 1), MAX_DAYS)


def _self_pay(resource: Mapping[str, Any]) -> bool:
    for extension in _items(resource.get("extension")):
        if isinstance(extension, Mapping) and extension.get("url") == SELF_PAY_EXTENSION:
            if extension.get("valueBoolean") is True:
                return True
            for part in _items(extension.get("extension")):
                if (
                    isinstance(part, Mapping)
                    and part.get("url") == "selfPay"
                    and part.get("valueBoolean") is True
                ):
                    return True
    return False


@dataclass(frozen=True)
class Pricing:
    """Price of a draft order from the hospital price list: unit price, amount."""

    unit_price: Decimal | None
    amount: Decimal | None


def encounter_type(encounter: Mapping[str, Any] | None, tables: ValueTables) -> str | None:
    if not encounter:
        return None
    classes = encounter.get("class")
    candidates: list[Any] = []
    for item in classes if isinstance(classes, list) else [classes]:
        if isinstance(item, Mapping):
            candidates += [item.get("code"), item.get("display")]
            candidates += [c.get("code") for c in codings(item)]
    for value in candidates:
        found = tables.encounter_type_of(value, "fhir_class") if value else None
        if found:
            return found
    return None


def insurance_of(coverages: Any, tables: ValueTables) -> str | None:
    for coverage in iter_resources(coverages):
        if coverage.get("resourceType") != "Coverage" or coverage.get("status") not in (None, "active"):
            continue
        concept = coverage.get("type")
        values = [c.get("code") for c in codings(concept)] + [c.get("display") for c in codings(concept)]
        values.append(concept_text(concept))
        for value in values:
            found = tables.insurance_of(value) if value else None
            if found:
                return found
    return None


def _items(value: Any) -> list[Any]:
    """A FHIR array as sent, or nothing when the client sent something else in its place."""
    return value if isinstance(value, list) else []


def _hashable(value: Any) -> Any:
    """A coding's system as a cache key: a client may send a list or an object where a string belongs."""
    return value if value is None or isinstance(value, str) else repr(value)


class FhirCaseBuilder:
    """Builds the case of one hook call. Lines of the stay whose code no rule names cannot matter to
    any rule and are left out (a stay's 500 charges are mostly such); drafts are always kept."""

    def __init__(
        self, tables: ValueTables, local_maps: Mapping[str, Any], price_of, relevant: Callable[[str], bool]
    ) -> None:
        self.tables = tables
        self.local_maps = local_maps
        self.price_of = price_of  # (resource, line) -> Pricing | None
        self.relevant = relevant
        self.lines: list[Line] = []
        self._seen: dict[tuple, Resolved | None] = {}

    def _resolve(self, concept: Any, expect: str | None) -> Resolved | None:
        """The concept's national code when a rule names it (else None: the line is left out).
        Resolutions are remembered for the call: a stay charges the same items day after day."""
        found_codings = codings(concept)
        key = (expect, *((_hashable(c.get("system")), c.get("code")) for c in found_codings))
        if key not in self._seen:
            found = resolve_coding(found_codings, self.local_maps, expect)
            self._seen[key] = found if found.code is not None and self.relevant(found.code) else None
        return self._seen[key]

    def _resolve_plain(self, concept: Any) -> Resolved | None | Literal[False]:
        """:meth:`_resolve` for an R4 CodeableConcept of one coding seen before in this call
        (a stay's charges); False when that does not apply (then :meth:`_resolve` answers)."""
        if not isinstance(concept, dict):
            return False
        coding = concept.get("coding")
        if not isinstance(coding, list) or len(coding) != 1 or not isinstance(coding[0], dict):
            return False
        code = coding[0].get("code")
        if not code or not isinstance(code, str):
            return False
        return self._seen.get((None, (_hashable(coding[0].get("system")), code)), False)

    def _line(self, resource: Mapping[str, Any], concept: Any, found: Resolved, **kw: Any) -> Line:
        return Line(
            ref=f"{resource.get('resourceType', '?')}/{resource['id']}"
            if resource.get("id")
            else str(resource.get("resourceType", "?")),
            code=found.code,
            subject=found.subject,
            name=concept_text(concept) or found.display,
            local_code=found.local_code if found.how != "system" else None,
            seq=len(self.lines),
            **kw,
        )

    def charge_items(self, bundle: Any, encounter_id: str | None, fallback: datetime) -> None:
        for item in iter_resources(bundle):
            if item.get("resourceType") != "ChargeItem" or item.get("status") in CHARGE_EXCLUDED:
                continue
            concept = item.get("code")
            found = self._resolve_plain(concept)  # most of a stay's charges stop here, cheaply
            if found is False:
                if not codings(concept) and item.get("productCodeableConcept"):
                    concept = item["productCodeableConcept"]
                found = self._resolve(concept, None)
            if found is None:
                continue
            context = item.get("context") or item.get("encounter")
            if encounter_id and context and reference_id(context, "Encounter") not in (None, encounter_id):
                continue
            raw = item.get("quantity")
            quantity = as_decimal(raw.get("value")) if isinstance(raw, Mapping) else None
            quantity = quantity if quantity is not None and quantity > 0 else Decimal(1)
            amount, _ = charge_item_amount(item)
            unit = (amount / quantity) if amount is not None else None
            at = _start(item) or fallback
            self.lines.append(
                self._line(
                    item,
                    concept,
                    found,
                    at=at,
                    quantity=quantity,
                    amount=amount,
                    unit_price=unit,
                    stay_id=encounter_id,
                )
            )

    def administrations(self, bundle: Any, encounter_id: str | None) -> None:
        for given in iter_resources(bundle):
            if (
                given.get("resourceType") != "MedicationAdministration"
                or given.get("status") not in ADMINISTERED
            ):
                continue
            concept = _concept_of_medication(given)
            found = self._resolve(concept, DRUG)
            at = _start(given)
            if found is not None and at is not None:
                self.lines.append(self._line(given, concept, found, at=at, stay_id=encounter_id))

    def medication_requests(
        self, bundle: Any, encounter_id: str | None, drafts: set[str], until: datetime
    ) -> None:
        for order in iter_resources(bundle):
            if order.get("resourceType") != "MedicationRequest" or order.get("status") not in ORDER_COUNTED:
                continue
            if resource_label(order) in drafts:
                continue
            concept = _concept_of_medication(order)
            found = self._resolve(concept, DRUG)
            first, days = medication_days(order, _start(order))
            if found is None or first is None:
                continue
            if order.get("status") == "active" and not _repeat(order).get("boundsDuration"):
                days = min(days, max((until.date() - first.date()).days, 1))  # given so far
            self.lines.append(self._line(order, concept, found, at=first, days=days, stay_id=encounter_id))

    def drafts(self, orders: list[dict[str, Any]], encounter_id: str | None, now: datetime) -> list[str]:
        """Add the draft orders; returns the refs of drafts that were left out (and why, as notes)."""
        notes = []
        for order in orders:
            rtype = order.get("resourceType")
            if rtype not in ("MedicationRequest", "ServiceRequest") or order.get("status") in DRAFT_EXCLUDED:
                continue
            if _self_pay(order):
                notes.append(f"{resource_label(order)} 已标记为自费，未审核")
                continue
            start = _start(order) or now
            if rtype == "MedicationRequest":
                first, days = medication_days(order, start)
                concept, expect, quantity = _concept_of_medication(order), DRUG, Decimal(1)
                start = first or start
            else:
                days, concept, expect = 1, order.get("code"), ITEM
                raw = order.get("quantityQuantity")
                value = as_decimal(raw.get("value")) if isinstance(raw, Mapping) else None
                quantity = value if value is not None and value > 0 else Decimal(1)
            found = resolve_coding(codings(concept), self.local_maps, expect)
            if found.code is not None and not self.relevant(found.code):
                continue  # a national code no rule names: nothing to check
            line = self._line(
                order,
                concept,
                found,
                at=start,
                quantity=quantity,
                days=days,
                draft=True,
                stay_id=encounter_id,
            )
            if line.code is not None:
                price = self.price_of(order, line)
                if price is not None:
                    line = replace(
                        line,
                        unit_price=price.unit_price,
                        amount=price.amount,
                        reference_price=price.unit_price,
                    )
            self.lines.append(line)
        return notes


def patient_of(patient: Mapping[str, Any] | None, tables: ValueTables) -> Patient:
    return Patient(tables.sex_of((patient or {}).get("gender")), birth_date(patient))


def build_case(
    *,
    patient: Mapping[str, Any] | None,
    encounter: Mapping[str, Any] | None,
    encounter_id: str | None,
    coverages: Any,
    charge_items: Any,
    administrations: Any,
    medication_requests: Any,
    draft_orders: list[dict[str, Any]],
    tables: ValueTables,
    local_maps: Mapping[str, Any],
    price_of,
    relevant: Callable[[str], bool],
    hospital_level: int | None,
    default_insurance: str,
    now: datetime,
    partners: Callable[[str], frozenset[str]] | None = None,
) -> tuple[Case, list[str]]:
    """The case of one order-sign / order-select call, and notes on what was left out. With
    ``partners`` (:meth:`RuleSet.partners`), lines of the stay are kept only when a rule naming a
    draft's code also names theirs (no other line can change a finding on a draft)."""
    insurance = insurance_of(coverages, tables)
    stay = Stay(
        stay_id=encounter_id,
        patient_id=(patient or {}).get("id"),
        encounter_type=encounter_type(encounter, tables),
        insurance=insurance or default_insurance,
        insurance_assumed=insurance is None,
        hospital_level=hospital_level,
    )
    builder = FhirCaseBuilder(tables, local_maps, price_of, relevant)
    notes = builder.drafts(draft_orders, encounter_id, now)
    drafts, builder.lines = builder.lines, []
    if partners is not None:
        wanted: set[str] = set()
        for line in drafts:
            if line.code is not None:
                wanted.update(partners(line.code))
        builder.relevant = wanted.__contains__
    builder.charge_items(charge_items, encounter_id, now)
    builder.administrations(administrations, encounter_id)
    draft_refs = {resource_label(o) for o in draft_orders}
    builder.medication_requests(medication_requests, encounter_id, draft_refs, now)
    history = builder.lines  # the stay's lines first, then the drafts (input order within each)
    lines = (*history, *(replace(line, seq=len(history) + i) for i, line in enumerate(drafts)))
    return Case(patient_of(patient, tables), stay, lines), notes
