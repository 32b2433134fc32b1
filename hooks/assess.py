"""From a hook request to DIP numbers: which catalog, the stay, its group and price, its cost.

The one place where the service core, the mapping layer, the DIP engine and costing meet, so the
five hook modules only decide what their card says. Nothing here invents a number: an unknown cost
stays ``None`` and every input that was guessed or mapped becomes an estimate note.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from cards import GroupView, card, escape_markdown, load_card_templates, source
from cards.render import CardTemplates
from cds_service.config import Settings
from cds_service.registry import HookRequest
from costing import CostSoFar, HisCostClient, HisCostConfig, HisCostError, PriceList, cost_so_far, load_prices
from costing.settings import CostingSettings
from dip_engine.engine import FLAG_NOT_IN_TERMINOLOGY, Engine
from dip_engine.pricing import Pricing
from dip_engine.settings import DipSettings
from grouper import Case, GroupResult, GroupType, OpType
from hooks.stay import Stay, read_stay
from mappings import local_maps_for_home

log = logging.getLogger("dip_cds.hooks")

REGION_EXTENSION = "dip-cds-region"  # request ``extension`` key naming the region's catalog
KINDS = {
    GroupType.CORE: "core",
    GroupType.PRIMARY: "basic",
    GroupType.COMPREHENSIVE: "comprehensive",
    GroupType.CHAPTER: "chapter",
}


CATALOG_ADVICE = "请联系信息科导入该统筹区的 DIP 目录或检查 [dip] region 配置"
FHIR_ADVICE = "请检查 EMR 的 FHIR 服务是否可用"


class NoCatalog(LookupError):
    """The request names a region that has no imported catalog."""


def problem_card(message: str, advice: str) -> dict[str, Any]:
    """The one card a request gets when the DIP answer cannot be computed at all, saying why."""
    return card(
        summary=f"DIP 提示不可用：{message}",
        detail=f"**DIP 提示不可用**：{escape_markdown(message)}。{advice}。",
        indicator="warning",
        source=source("DIP"),
    )


@dataclass
class DipContext:
    """What one request's cards are computed with (shared, read-only reference data + settings)."""

    engine: Engine
    templates: CardTemplates
    home: Path | None
    prices: PriceList
    local_maps: Any
    hospital: dict[str, Any] = field(default_factory=dict)  # hospital_id, hospital_level, insurance_type

    @property
    def label(self) -> str:
        return self.engine.catalog.label

    def card_source(self) -> dict[str, Any]:
        return source(self.label)


def dip_context(req: HookRequest) -> DipContext:
    """The catalog (request extension ``dip-cds-region``, else ``[dip] region``, else the default)."""
    data = req.app_data
    conf = req.settings.section("dip", DipSettings)
    region = None
    if isinstance(req.extension, Mapping) and isinstance(req.extension.get(REGION_EXTENSION), str):
        region = req.extension[REGION_EXTENSION].strip()[:12] or None
    region = region or conf.region
    try:
        engine = data.catalogs.engine(region, data.terminology)
    except KeyError as exc:
        raise NoCatalog(str(exc.args[0]) if exc.args else str(exc)) from exc
    home = data.home
    hospital = {
        k: str(getattr(conf, k))
        for k in ("hospital_id", "hospital_level", "insurance_type")
        if getattr(conf, k, None)
    }
    return DipContext(
        engine=engine,
        templates=load_card_templates(home),
        home=home,
        prices=load_prices(home),
        local_maps=local_maps_for_home(home),
        hospital=hospital,
    )


def stay_of(
    req: HookRequest,
    ctx: DipContext,
    data: EncounterData,
    *,
    at_discharge: bool = False,
) -> Stay:
    """The stay of ``data``'s encounter, every code mapped to 医保版."""
    return read_stay(
        req.resource("patient"),
        data.encounter,
        data.conditions,
        data.procedures,
        req.app_data.terminology,
        local_maps=ctx.local_maps,
        at_discharge=at_discharge,
    )


def case_of(ctx: DipContext, case: Case) -> Case:
    """The case with the hospital's identity (coefficients and point value depend on it)."""
    return replace(case, **ctx.hospital) if ctx.hospital else case


def evaluate(
    ctx: DipContext,
    case: Case,
    cost: Decimal | None = None,
    additional: Decimal | None = None,
) -> tuple[GroupResult, Pricing]:
    case = case_of(ctx, case)
    return ctx.engine.evaluate(case, cost, additional)


def group_view(result: GroupResult, pricing: Pricing | None, estimate: bool) -> GroupView | None:
    """The card's view of a group; None when the case is 未入组."""
    if not result.grouped or result.dip_code is None:
        return None
    group = result.group
    name = result.group_name
    if group is not None and group.procedure_names:
        name = f"{name}：{'、'.join(n for n in group.procedure_names if n)}".rstrip("：")
    elif group is not None and group.op_type in OpType.NAMES and group.op_type != OpType.BSZL:
        name = f"{name}（{OpType.NAMES[group.op_type]}）"
    return GroupView(
        code=result.dip_code,
        name=name,
        kind=KINDS.get(result.group_type, "core"),
        score=result.score,
        standard=pricing.payment_standard if pricing is not None else None,
        avg_los=Decimal(str(group.avg_los)) if group is not None and group.avg_los is not None else None,
        case_count=group.case_count if group is not None else None,
        estimate=estimate,
    )


def _principal_notes(stay: Stay) -> list[str]:
    principal = stay.principal
    notes: list[str] = []
    if principal is None:
        return notes
    if principal.code is None and principal.best_guess:
        notes.append(
            f"主要诊断“{principal.documented}”没有确认的医保版编码，按最接近的 {principal.best_guess} 估算"
        )
    elif principal.code is None:
        notes.append(f"主要诊断“{principal.documented}”无法映射到医保版编码")
    elif principal.resolution.path.startswith("text"):
        notes.append(f"主要诊断仅有文字“{principal.documented}”，按名称对应为 {principal.code}，需编码员确认")
    elif principal.mapped_from_other_system:
        notes.append(f"主要诊断 {principal.documented} 经映射为医保版 {principal.code}")
    if stay.rank_conflict:
        notes.append(f"多个诊断排序相同（{'、'.join(stay.rank_conflict)}），按第一个估算")
    return notes


def estimate_notes(stay: Stay | None, result: GroupResult | None, pricing: Pricing | None) -> list[str]:
    """Why the numbers are estimates: mapped or guessed inputs, default rules, budget point value."""
    notes: list[str] = []
    if stay is not None:
        notes.extend(_principal_notes(stay))
        notes.extend(stay.notes)
    if result is not None:
        if "optype_default" in result.flags:
            notes.append("手术操作类型按默认规则判定（未导入本地手术操作类型表）")
        if FLAG_NOT_IN_TERMINOLOGY in result.flags:
            notes.append("部分编码不在医保版编码表中")
    if pricing is not None and pricing.point_value_estimated and pricing.payment_standard is not None:
        notes.append(
            f"支付标准为估算：点值 {pricing.point_value}（{pricing.point_value_source}），最终以结算点值为准"
        )
    if pricing is not None and pricing.payment_standard is None and result is not None and result.grouped:
        notes.extend(pricing.notes or ("未配置点值，无法计算支付标准",))
    return list(dict.fromkeys(notes))


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


def his_config(settings: Settings) -> HisCostConfig | None:
    """The HIS cost endpoint of ``[costing.his]`` (validated at start-up), or None."""
    return settings.section("costing", CostingSettings).his


def cost_of_stay(req: HookRequest, ctx: DipContext, data: EncounterData) -> CostSoFar | None:
    """Cost so far: the encounter's ChargeItems, else the hospital's HIS cost endpoint, else unknown."""
    encounter_id = data.encounter_id
    items = data.charge_items
    found = cost_so_far(items, encounter_id=encounter_id, prices=ctx.prices) if items is not None else None
    if found is not None:
        return found
    config = his_config(req.settings)
    if config is None:
        return None
    try:
        return HisCostClient(config).fetch(encounter_id=encounter_id, patient_id=req.patient_id)
    except HisCostError as exc:
        req.notes.append(f"HIS 费用接口不可用：{exc}")
        log.warning("HIS cost endpoint failed: %s", exc)
        return None


# ----------------------------------------------------------------------------- the encounter's data

INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC", "inpatient", "住院"})


@dataclass
class EncounterData:
    """The FHIR data of one stay, from the prefetch or fetched when the client did not name it."""

    encounter: Mapping[str, Any] | None
    conditions: Any = None
    procedures: Any = None
    charge_items: Any = None
    problem: str | None = None  # why part of the data could not be obtained

    @property
    def encounter_id(self) -> str | None:
        return self.encounter.get("id") if self.encounter else None


def is_inpatient(encounter: Mapping[str, Any] | None) -> bool:
    """DIP pays inpatient stays: an encounter whose class says otherwise gets no DIP card."""
    if not encounter:
        return False
    klass = encounter.get("class")
    klass = klass[0] if isinstance(klass, list) and klass else klass  # R5: list of CodeableConcepts
    if isinstance(klass, Mapping) and "coding" in klass:
        codes = {c.get("code") for c in klass.get("coding") or [] if isinstance(c, Mapping)}
    elif isinstance(klass, Mapping):
        codes = {klass.get("code")}
    else:
        return True  # class not given: assume the EMR asked about a stay
    codes.discard(None)
    return not codes or bool(codes & INPATIENT_CLASSES)


def _open_inpatient(bundle: Any) -> Mapping[str, Any] | None:
    from costing.fhir_input import iter_resources

    found = [
        e for e in iter_resources(bundle)
        if e.get("resourceType") == "Encounter" and e.get("status") in ("in-progress", "arrived", "onleave")
        and is_inpatient(e)
    ]  # fmt: skip
    found.sort(key=lambda e: str((e.get("period") or {}).get("start") or ""), reverse=True)
    return found[0] if found else None


def encounter_data(req: HookRequest, *, find_open: bool = False) -> EncounterData:
    """The stay the request is about. With an ``encounterId`` it is the prefetch's; without one and
    ``find_open``, the patient's open inpatient encounter (``openEncounters`` prefetch or a search),
    whose diagnoses, procedures and charges are then read from the FHIR server."""
    if req.encounter_id or not find_open:
        missing = {k: v for k, v in req.unavailable_prefetch().items() if k in ("conditions", "procedures")}
        return EncounterData(
            req.resource("encounter"),
            req.prefetch.get("conditions"),
            req.prefetch.get("procedures"),
            req.prefetch.get("chargeItems"),
            problem="、".join(f"{k}：{v}" for k, v in missing.items()) or None,
        )
    from cds_service.fhir_client import FetchError

    bundle = req.prefetch.get("openEncounters") if req.available("openEncounters") else None
    try:
        if bundle is None and req.fhir is not None:
            bundle = req.fhir.search(
                "Encounter", {"patient": req.patient_id, "status": "in-progress", "_count": "20"}
            )
        encounter = _open_inpatient(bundle)
        eid = encounter.get("id") if encounter is not None else None
        if encounter is None or req.fhir is None or not isinstance(eid, str):
            return EncounterData(encounter)  # an encounter without an id has no linked data to read
        base = {"patient": req.patient_id}
        return EncounterData(
            encounter,
            req.fhir.search("Condition", {**base, "encounter": eid, "_count": "200"}),
            req.fhir.search("Procedure", {**base, "encounter": eid, "_count": "200"}),
            req.fhir.search("ChargeItem", {**base, "context": f"Encounter/{eid}", "_count": "1000"}),
        )
    except FetchError as exc:
        return EncounterData(_open_inpatient(bundle), problem=str(exc))


def ungrouped_reason(result: GroupResult, stay: Stay, data: EncounterData) -> str | None:
    """Why there is no group, in the doctor's words; a data problem is named as such, not as 未入组."""
    if result.grouped:
        return None
    if not stay.diagnoses and data.problem:
        return f"未能取得本次住院的诊断数据（{data.problem}），无法预测病种"
    if not stay.diagnoses:
        return "本次住院尚未记录诊断"
    principal = stay.principal
    if principal is not None and principal.best_guess is None:
        return f"主要诊断“{principal.documented}”无法映射到医保版编码"
    return result.reason.removeprefix("未入组：")


def price_group(ctx: DipContext, case: Case, group: Any) -> GroupView | None:
    """A catalog group as the card shows it, priced for this patient (coefficients apply)."""
    from grouper import Trace

    result = GroupResult(
        group.code, group.type, group.name, group.score, "", Trace(None, None, None, None, ()), (), group
    )
    return group_view(result, ctx.engine.price(case_of(ctx, case), result), estimate=False)


StayHandler = Callable[[HookRequest, DipContext, EncounterData], list[dict[str, Any]]]


def for_inpatient_stay(*, find_open: bool) -> Callable[[StayHandler], Callable[[HookRequest], list]]:
    """Wrap a card builder ``fn(req, ctx, data)`` with what every DIP service does first: pick the
    catalog (a warning card when the region has none), get the stay's data (``find_open``: look up the
    open stay when no encounterId is given; a warning card when the FHIR server cannot tell), and
    answer no card unless it is an inpatient stay — DIP pays inpatient stays only."""

    def wrap(fn: StayHandler) -> Callable[[HookRequest], list]:
        @functools.wraps(fn)
        def handler(req: HookRequest) -> list[dict[str, Any]]:
            try:
                ctx = dip_context(req)
            except NoCatalog as exc:
                return [problem_card(str(exc), CATALOG_ADVICE)]
            data = encounter_data(req, find_open=find_open)
            if data.encounter is None and data.problem:
                return [problem_card(f"未能从 FHIR 服务器读取患者的在院就诊（{data.problem}）", FHIR_ADVICE)]
            if not is_inpatient(data.encounter):
                return []
            return fn(req, ctx, data)

        return handler

    return wrap
