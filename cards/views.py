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
    """A draft operation moves the stay to another group."""

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


@dataclass(frozen=True, slots=True)
class EncounterStartView:
    """encounter-start planning card: the groups the admitting diagnosis can lead to."""

    catalog_label: str
    diagnosis_code: str
    diagnosis_name: str = ""
    yamu: str = ""
    conservative: GroupView | None = None  # the 保守 group of the 亚目
    procedure_groups: list[GroupView] = field(default_factory=list)  # most common first
    comprehensive: GroupView | None = None  # fallback 类目 group for other procedures
    estimate_notes: list[str] = field(default_factory=list)


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
