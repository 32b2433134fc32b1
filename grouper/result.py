"""What the grouper answers: the group, why, and everything it looked at."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from grouper.model import Group, GroupType


# Trace and GroupResult are read-only by convention rather than ``frozen``: a frozen dataclass pays
# one ``object.__setattr__`` per field on construction (≈ 2 µs for these two), and every one of a
# million cases builds both.
@dataclass(slots=True)
class Trace:
    """The explanation a coder card shows: normalised inputs, candidates, the deciding rule.

    ``candidates``: groups whose pattern the case fully matched (best first);
    ``partial``: groups of the 亚目 whose 主要操作 is the case's principal procedure but whose
    related procedures are not all present (what a missing code would change);
    ``later_main``: core groups of the 亚目 the case would match if a later-listed procedure were
    its principal one (the coder checks the principal procedure; grouping never re-orders).
    """

    diagnosis: str | None
    yamu: str | None
    leimu: str | None
    chapter: int | None
    procedures: tuple[str, ...]
    ignored_procedures: tuple[str, ...] = ()
    principal_procedure: str | None = None
    procedure_type: str | None = None
    candidates: tuple[str, ...] = ()
    partial: tuple[str, ...] = ()
    rule: str = ""
    notes: tuple[str, ...] = ()
    later_main: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "diagnosis": self.diagnosis,
            "yamu": self.yamu,
            "leimu": self.leimu,
            "chapter": self.chapter,
            "procedures": list(self.procedures),
            "ignored_procedures": list(self.ignored_procedures),
            "principal_procedure": self.principal_procedure,
            "procedure_type": self.procedure_type,
            "candidates": list(self.candidates),
            "partial": list(self.partial),
            "later_main": list(self.later_main),
            "rule": self.rule,
            "notes": list(self.notes),
        }


class Severity:
    """How a settlement-list quality finding (结算清单质控) weighs."""

    REJECT = "reject"  # 质控不通过: the case cannot be grouped (未入组) until the list is corrected
    ERROR = "error"  # an error on the list; the group is computed but the list must be corrected
    WARNING = "warning"  # to be checked by the coder
    INFO = "info"
    ORDER = (REJECT, ERROR, WARNING, INFO)


@dataclass(frozen=True, slots=True)
class QcFlag:
    """One finding of the settlement-list quality gate: which rule, on which code, and why."""

    rule: str  # e.g. "dx.external_cause"
    severity: str  # see Severity
    message: str  # Chinese, for the coder / 医保办
    code: str = ""  # the code (or value) the finding is about

    @property
    def key(self) -> str:
        """``rule:code`` as the batch outputs' ``qc_flags`` column lists it."""
        return f"{self.rule}:{self.code}" if self.code else self.rule

    def as_dict(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "code": self.code, "message": self.message}


@dataclass(slots=True)
class GroupResult:
    """The group a case falls into (``dip_code`` None when 未入组) with its explanation."""

    dip_code: str | None
    group_type: str
    group_name: str
    score: Decimal | None
    reason: str
    trace: Trace
    flags: tuple[str, ...] = ()
    group: Group | None = None
    qc: tuple[QcFlag, ...] = ()  # settlement-list quality findings (结算清单质控), worst first

    @property
    def grouped(self) -> bool:
        return self.group_type != GroupType.UNGROUPED

    @property
    def rejected(self) -> bool:
        """The quality gate kept the case out of grouping (质控不通过)."""
        return any(f.severity == Severity.REJECT for f in self.qc)

    @property
    def qc_flags(self) -> str:
        """The findings as one ``|``-separated ``rule:code`` cell for batch outputs."""
        return "|".join(f.key for f in self.qc)

    def with_flags(self, extra: tuple[str, ...]) -> GroupResult:
        if not extra:
            return self
        merged = self.flags + tuple(f for f in extra if f not in self.flags)
        return replace(self, flags=merged)

    def as_dict(self) -> dict:
        return {
            "dip_code": self.dip_code,
            "group_type": self.group_type,
            "group_name": self.group_name,
            "score": str(self.score) if self.score is not None else None,
            "reason": self.reason,
            "flags": list(self.flags),
            "qc": [f.as_dict() for f in self.qc],
            "trace": self.trace.as_dict(),
        }
