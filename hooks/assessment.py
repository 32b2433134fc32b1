"""One assessment per request: the stay, its cost so far and the draft orders → the DIP prediction
before and after the orders.

Every hook service builds exactly one :class:`Assessment` and hands it to its card builder and to the
``assessment`` event, so a card and the event can never disagree and nothing is computed twice.
Nothing here invents a number: an unknown cost stays ``None``, and what was guessed (a mapped
principal diagnosis, an estimated principal procedure, a default insurance type) is recorded so the
card can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from cds_service.fhir_client import FetchError
from cds_service.registry import HookRequest
from costing import CostSoFar
from dip_engine.pricing import Pricing
from grouper import Case, GroupResult, OpType
from hooks.context import DipContext
from hooks.cost import cost_of_stay
from hooks.coverage import Insurance, insurance_of, load_coverage_types
from hooks.draft_orders import DraftOrders, DraftProcedure, read_draft_orders
from hooks.encounter_data import EncounterData
from hooks.predicted_principal import PrincipalEstimate, with_estimated_principal
from hooks.stay import Stay, birth_weight_grams, read_stay

BIRTH_WEIGHT_SEARCH = {"code": "http://loinc.org|8339-4", "_count": "5"}


@dataclass(frozen=True)
class Prediction:
    """One grouping of the stay and its price. ``estimate``: the group itself is uncertain (a guessed
    or mapped principal diagnosis, unranked diagnoses, default procedure types, or a principal
    procedure that had to be estimated — ``principal``)."""

    case: Case
    result: GroupResult
    pricing: Pricing
    estimate: bool
    principal: PrincipalEstimate | None = None


@dataclass(frozen=True)
class Assessment:
    """What one request knows about the stay and what DIP makes of it."""

    context: DipContext
    data: EncounterData
    stay: Stay
    insurance: Insurance
    cost: CostSoFar | None  # None: unknown
    orders: DraftOrders | None  # order-sign / order-select only
    before: Prediction  # the stay as recorded
    after: Prediction | None = None  # with the draft orders' operations (when there are any)

    @property
    def prediction(self) -> Prediction:
        """What the card shows: with the draft orders when they hold operations, else the stay."""
        return self.after or self.before

    @property
    def cost_so_far(self) -> Decimal | None:
        return self.cost.total if self.cost is not None else None

    @property
    def group_change(self) -> DraftProcedure | None:
        """The draft 手术/介入 that becomes the stay's principal procedure and changes its predicted
        group; None otherwise. Never a simple operation (留置导尿、PICC …), a therapeutic or a
        diagnostic procedure: those may change the prediction, but a card does not announce it."""
        if self.after is None or self.orders is None or not self.after.result.grouped:
            return None
        if self.after.result.dip_code == self.before.result.dip_code:
            return None
        principal = (self.after.result.trace.principal_procedure or "").upper()
        found = next((p for p in self.orders.procedures if p.code.upper() == principal), None)
        if found is None or found.type != OpType.SS:
            return None
        if principal in self.context.engine.policy.simple_operations:
            return None
        return found

    def regroup(self, case: Case) -> tuple[GroupResult, Pricing]:
        """Group and price a variant of the stay's case (the coder's comparisons), at the same cost."""
        return self.context.engine.evaluate(identified(case, self.context, self.insurance), self.cost_so_far)


def identified(case: Case, ctx: DipContext, insurance: Insurance) -> Case:
    """``case`` with this hospital's identity and the patient's insurance type (they set the
    hospital coefficient and the point value)."""
    return replace(
        case, hospital_id=ctx.hospital_id, hospital_level=ctx.hospital_level, insurance_type=insurance.type
    )


def is_estimate(stay: Stay | None, result: GroupResult) -> bool:
    """The group itself is uncertain (not merely the money): guessed or mapped principal, default rules."""
    principal = stay.principal if stay is not None else None
    uncertain_code = principal is not None and (
        principal.code is None
        or principal.resolution.needs_confirmation
        or principal.resolution.path.startswith("text")  # a name match no coder has confirmed
    )
    uncertain_rank = stay is not None and (not stay.principal_explicit or bool(stay.rank_conflict))
    return uncertain_code or uncertain_rank or "optype_default" in result.flags


def _predict(
    ctx: DipContext,
    stay: Stay,
    case: Case,
    cost: Decimal | None,
    additional: Decimal | None,
    *,
    estimate_principal: bool,
) -> Prediction:
    principal = None
    if estimate_principal:
        case, principal = with_estimated_principal(ctx.engine, case)
    result, pricing = ctx.engine.evaluate(case, cost, additional)
    return Prediction(case, result, pricing, is_estimate(stay, result) or principal is not None, principal)


def _with_birth_weight(req: HookRequest, stay: Stay, newborn_days: int) -> Stay:
    """Newborns only: the birth weight Observation, read from the FHIR server (a settlement-list field)."""
    if stay.age_days is None or stay.age_days >= newborn_days or req.fhir is None:
        return stay
    try:
        observations = req.fhir.search("Observation", {"patient": req.patient_id, **BIRTH_WEIGHT_SEARCH})
    except FetchError as exc:
        req.notes.append(f"未能读取新生儿出生体重（{exc}）")
        return stay
    return replace(stay, birth_weight_g=birth_weight_grams(observations))


def assess(
    req: HookRequest,
    ctx: DipContext,
    data: EncounterData,
    *,
    at_discharge: bool = False,
    with_orders: bool = False,
    with_cost: bool = True,
) -> Assessment:
    """The one assessment of a request.

    ``at_discharge``: the coder's view — discharge diagnoses first, the birth weight read for a
    newborn, and procedures grouped in the order they are recorded (the settlement list's). Otherwise
    a doctor's prediction, whose principal procedure is estimated (:mod:`hooks.predicted_principal`).
    ``with_orders``: order-sign / order-select — the draft orders' cost, and their operations make
    the ``after`` prediction. ``with_cost``: read the cost so far (encounter-start plans; it does not)."""
    terminology = req.app_data.terminology
    stay = read_stay(
        req.resource("patient"),
        data.encounter,
        data.conditions,
        data.procedures,
        terminology,
        local_maps=ctx.local_maps,
        at_discharge=at_discharge,
    )
    if at_discharge:
        stay = _with_birth_weight(req, stay, ctx.engine.quality.newborn_days)
    admitted: date | None = stay.admitted.date() if stay.admitted else None
    insurance = insurance_of(
        data.coverage,
        patient_id=req.patient_id,
        on=admitted,
        default=ctx.insurance_type,
        types=load_coverage_types(ctx.home),
    )
    cost = cost_of_stay(req, data, ctx.prices) if with_cost else None
    so_far = cost.total if cost is not None else None
    orders = read_draft_orders(req.draft_orders(), ctx, terminology) if with_orders else None
    additional = orders.cost.total if orders is not None else None
    case = identified(stay.case(), ctx, insurance)
    rank = not at_discharge
    before = _predict(ctx, stay, case, so_far, additional, estimate_principal=rank)
    after = None
    if orders is not None and orders.procedures:
        extended = replace(case, procedures=case.procedures + tuple(p.code for p in orders.procedures))
        after = _predict(ctx, stay, extended, so_far, additional, estimate_principal=rank)
    return Assessment(ctx, data, stay, insurance, cost, orders, before, after)
