"""The principal procedure of a prediction made before the settlement list exists.

FHIR gives procedures no rank, and the draft orders of order-sign none either, so a doctor's card
cannot know which one the coder will list first. DIP-RULES.md §2: take as principal the procedure of
the highest type (手术/介入 > 治疗性操作 > 诊断性操作), then the one the catalog prices highest (the
group it leads to scores highest), and label the choice as an estimate. The coder's card at
discharge never does this: it groups the list as coded and checks the order instead
(:mod:`hooks.procedure_order_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from dip_engine.engine import Engine
from grouper import Case
from hooks.procedure_types import type_rank

MAX_TRIALS = 20  # procedures of one type tried as principal (a stay rarely has more)


@dataclass(frozen=True, slots=True)
class PrincipalEstimate:
    """The procedure chosen as principal among ``competing`` distinct procedures of the stay."""

    code: str
    competing: int


def with_estimated_principal(engine: Engine, case: Case) -> tuple[Case, PrincipalEstimate | None]:
    """``case`` with its procedures re-ordered so the estimated principal is first (the others keep
    their order); the estimate is None when there was nothing to choose (fewer than two procedures)."""
    procedures = tuple(dict.fromkeys(p for p in case.procedures if p))
    if len(procedures) < 2:
        return case, None
    by_rank: dict[int, list[str]] = {}
    for code in procedures:
        by_rank.setdefault(type_rank(engine.optypes.classify(code)[0]), []).append(code)
    for rank in sorted(by_rank):
        best: tuple[Decimal, int, str] | None = None
        for position, code in enumerate(by_rank[rank][:MAX_TRIALS]):
            trial = replace(case, procedures=(code, *(p for p in procedures if p != code)))
            result = engine.group(trial)
            principal = result.trace.principal_procedure
            if principal is None or principal.upper() != code.upper():
                continue  # a simple operation or an invalid code never becomes principal
            key = (-(result.score or Decimal(0)), position, code)
            if best is None or key < best:
                best = key
        if best is not None:
            code = best[2]
            return replace(case, procedures=(code, *(p for p in procedures if p != code))), PrincipalEstimate(
                code, len(procedures)
            )
    return case, None
