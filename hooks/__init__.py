"""The five DIP CDS hook services, one module each, declared with ``@cds_service`` and listed by
:mod:`hooks.plugin`.

Prefetch templates are shared here so every service asks the FHIR server the same questions in
the same way (and a CDS client that prefetches for one service can reuse it for another).

Required prefetch (→ HTTP 412 when it cannot be obtained): ``patient`` everywhere (age and sex
drive DIP grouping) and ``encounter`` where the hook is about an encounter (encounter-start,
encounter-discharge; for order-sign/order-select whenever an encounterId is given). Conditions,
procedures, charge items and the patient's insurance (``coverage``: 职工 / 居民 selects the point
value) are optional: without them the cards degrade and say so.

Each service builds one :class:`hooks.assessment.Assessment` per request and hands it to its card
builder and to the ``assessment`` event (:mod:`hooks.events`).
"""

from __future__ import annotations

PATIENT = "Patient/{{context.patientId}}"
ENCOUNTER = "Encounter/{{context.encounterId}}"
CONDITIONS = "Condition?patient={{context.patientId}}&encounter={{context.encounterId}}&_count=200"
PROCEDURES = "Procedure?patient={{context.patientId}}&encounter={{context.encounterId}}&_count=200"
CHARGE_ITEMS = (
    "ChargeItem?patient={{context.patientId}}&context=Encounter/{{context.encounterId}}&_count=1000"
)
OPEN_ENCOUNTERS = "Encounter?patient={{context.patientId}}&status=in-progress&_count=20"
COVERAGE = "Coverage?patient={{context.patientId}}&status=active&_count=20"

# Everything an encounter-scoped DIP estimate needs: demographics, the stay, its diagnoses,
# its procedures, its cost so far and the patient's insurance.
ENCOUNTER_PREFETCH = {
    "patient": PATIENT,
    "encounter": ENCOUNTER,
    "conditions": CONDITIONS,
    "procedures": PROCEDURES,
    "chargeItems": CHARGE_ITEMS,
    "coverage": COVERAGE,
}
