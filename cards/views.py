"""View-models the hook handlers fill and the card templates read.

They are deliberately plain (no dependency on the DIP engine's or costing's classes) so templates
stay stable while the engine evolves; handlers translate engine results into these.
Amounts are ``Decimal`` yuan; ``None`` means unknown and is shown as unknown, never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class GroupView:
    """One DIP group as a card shows it."""

    code: str
    name: str = ""
    kind: str = "core"  # core | basic (基层) | comprehensive (综合) | chapter (CPnn) | ungrouped
    score: Decimal | None = None
    standard: Decimal | None = None  # payment standard (支付标准), yuan
    avg_los: Decimal | None = None  # average length of stay of the group (catalog statistics)
    case_count: int | None = None  # cases behind the group's statistics
    estimate: bool = False  # grouped from uncertain input (mapped / text-only codes) → label as estimate
    procedure_label: str = ""  # the group's procedures (or its procedure type) in words; "" = 保守治疗


@dataclass(frozen=True, slots=True)
class PricingBasis:
    """What a payment standard was computed with, so the card can say which inputs were the
    patient's own and which were defaults (DIP-RULES.md §3–§5).

    ``insurance_source``: ``coverage`` (the patient's FHIR Coverage), ``default`` (the hospital's
    configured insurance type) or ``unknown``. ``point_value_kind``: ``budget`` | ``settlement`` |
    ``catalog_estimate`` | None (no point value). The deviation thresholds are the region's
    (2.0 or 3.0 rule); the cards' cost bands are drawn at them."""

    insurance_type: str | None = None  # 职工 | 居民 | None
    insurance_source: str = "unknown"
    insurance_detail: str = ""  # how the Coverage named it, e.g. 职工基本医疗保险
    point_value: Decimal | None = None
    point_value_kind: str | None = None
    hospital_coefficient: Decimal = Decimal(1)
    hospital_coefficient_configured: bool = True
    hospital_coefficient_source: str = ""
    aux_coefficient: Decimal | None = None  # 辅助分型系数 (age, ICU days, severity…), 1 when none applies
    aux_reason: str = ""
    deviation_rule: str = "2.0"
    deviation_low: Decimal = Decimal("0.5")
    deviation_high: Decimal = Decimal(2)
    deviation_special: Decimal = Decimal(5)


@dataclass(frozen=True, slots=True)
class CostPosition:
    """Where the stay stands against its payment standard (DIP-RULES.md §6)."""

    reference: Decimal | None  # payment standard / reference cost of the group
    cost_so_far: Decimal | None  # None = unknown (no ChargeItems, no HIS answer)
    order_cost: Decimal | None = None  # priced part of the draft orders
    orders_fully_priced: bool = True  # False when some draft orders had no price
    cost_source: str | None = None  # e.g. "ChargeItem" or "HIS"
    cost_incomplete: bool = False  # some charge items could not be valued

    @property
    def cost_known(self) -> bool:
        return self.cost_so_far is not None

    @property
    def projected(self) -> Decimal | None:
        """Cost so far plus the draft orders; unknown when the cost so far is unknown."""
        if self.cost_so_far is None:
            return None
        return self.cost_so_far + (self.order_cost or Decimal(0))

    @property
    def remaining(self) -> Decimal | None:
        projected = self.projected
        if projected is None or self.reference is None:
            return None
        return self.reference - projected

    @property
    def ratio(self) -> Decimal | None:
        projected = self.projected
        if projected is None or not self.reference:
            return None
        return projected / self.reference

    @property
    def ratio_before_orders(self) -> Decimal | None:
        if self.cost_so_far is None or not self.reference:
            return None
        return self.cost_so_far / self.reference


@dataclass(frozen=True, slots=True)
class UnpricedOrderView:
    description: str
    reason: str


@dataclass(frozen=True, slots=True)
class GroupChangeView:
    """A draft operation (手术/介入) becomes the stay's principal procedure and the predicted group
    changes. Cards name it in neutral words; ``before`` is there for templates that want it."""

    before: GroupView | None
    after: GroupView
    procedure_code: str
    procedure_name: str = ""


@dataclass(frozen=True, slots=True)
class OrderSignView:
    """order-sign / order-select status card."""

    catalog_label: str
    group: GroupView | None
    position: CostPosition
    ungrouped_reason: str | None = None
    group_change: GroupChangeView | None = None
    priced_order_count: int = 0
    unpriced_orders: list[UnpricedOrderView] = field(default_factory=list)
    estimate_notes: list[str] = field(default_factory=list)  # why this is an estimate
    basis: PricingBasis | None = None


@dataclass(frozen=True, slots=True)
class EncounterStartView:
    """encounter-start planning card: the pathways the admitting diagnosis usually takes — the 保守
    group and the most common procedure groups by the region's case count, with their average
    length of stay; never a list ordered by payment."""

    catalog_label: str
    diagnosis_code: str
    diagnosis_name: str = ""
    yamu: str = ""
    pathways: list[GroupView] = field(default_factory=list)  # 保守 and procedure groups, most cases first
    other_operations: GroupView | None = None  # the 类目's comprehensive surgery group
    case_total: int | None = None  # cases of every group of the 亚目 (the share's denominator)
    estimate_notes: list[str] = field(default_factory=list)
    basis: PricingBasis | None = None


@dataclass(frozen=True, slots=True)
class PrincipalOption:
    """One documented diagnosis considered as principal (DIP-RULES.md §7: compliance first)."""

    code: str
    name: str = ""
    current: bool = False  # the principal diagnosis as documented now
    admissible: bool = True
    reasons: list[str] = field(default_factory=list)  # why (not) admissible
    group: GroupView | None = None  # only meaningful when admissible


@dataclass(frozen=True, slots=True)
class MappingView:
    """A code the coder must look at: mapped from 国临版/local/text, or left unmapped."""

    source: str  # the code or text as documented
    source_system: str = ""  # human label: 国临版 2.0, 本院编码, 仅文本…
    target_code: str | None = None
    target_name: str = ""
    path: str = ""  # how the mapping was found
    confidence: Decimal | None = None  # 0..1
    needs_confirmation: bool = False


@dataclass(frozen=True, slots=True)
class CheckView:
    """A settlement-list (结算清单) check that affects grouping."""

    level: str  # error | warning | info
    message: str
    field: str = ""


@dataclass(frozen=True, slots=True)
class ProcedureChoice:
    """One procedure taken as the principal one, and the group the stay then gets."""

    code: str
    name: str = ""
    type_name: str = ""  # 手术 / 介入 / 治疗性操作 / 诊断性操作
    group: GroupView | None = None
    ungrouped_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProcedureOrderCheck:
    """The coded principal procedure may be the wrong one (主要手术操作选择可能不当): a later-listed
    procedure is of a higher type or is the 主操作 of a core group the coded one is not. Both
    groupings side by side; grouping itself never re-orders the coder's list."""

    coded: ProcedureChoice
    alternative: ProcedureChoice
    reasons: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # further later-listed candidates (code name)


@dataclass(frozen=True, slots=True)
class DischargeView:
    """encounter-discharge card for the coder."""

    catalog_label: str
    group: GroupView | None
    ungrouped_reason: str | None = None
    trace: list[str] = field(default_factory=list)
    principal_options: list[PrincipalOption] = field(default_factory=list)
    mappings: list[MappingView] = field(default_factory=list)
    checks: list[CheckView] = field(default_factory=list)
    position: CostPosition | None = None
    estimate_notes: list[str] = field(default_factory=list)
    procedure_check: ProcedureOrderCheck | None = None
    principal_suggestion: PrincipalOption | None = None  # the one change the 填写规范 make compliant
    principal_suggestion_reason: str = ""
    basis: PricingBasis | None = None


@dataclass(frozen=True, slots=True)
class PatientStatusView:
    """patient-view: the current stay's status."""

    catalog_label: str
    group: GroupView | None
    position: CostPosition
    ungrouped_reason: str | None = None
    admitted_on: str | None = None  # date text
    los_days: int | None = None
    estimate_notes: list[str] = field(default_factory=list)
    basis: PricingBasis | None = None


def position_from(reference: Decimal | None, so_far=None, orders=None) -> CostPosition:
    """A CostPosition from costing results (``costing.CostSoFar`` / ``costing.OrderCost``, duck-typed).

    ``so_far`` None means the cost is unknown; the card then shows the standard only."""
    return CostPosition(
        reference=reference,
        cost_so_far=so_far.total if so_far is not None else None,
        order_cost=orders.total if orders is not None else None,
        orders_fully_priced=orders.complete if orders is not None else True,
        cost_source=so_far.source if so_far is not None else None,
        cost_incomplete=not so_far.complete if so_far is not None else False,
    )


def unpriced_from(orders) -> list[UnpricedOrderView]:
    """The unpriced lines of a ``costing.OrderCost`` as card rows."""
    if orders is None:
        return []
    return [UnpricedOrderView(line.description, line.reason) for line in orders.unpriced]
