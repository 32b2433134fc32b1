"""What the grouper answers: the group, why, and everything it looked at."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from grouper.model import Group, GroupType


@dataclass(frozen=True, slots=True)
class Trace:
    """The explanation a coder card shows: normalised inputs, candidates, the deciding rule.

    ``candidates``: groups whose pattern the case fully matched (best first);
    ``partial``: groups of the 亚目 whose 主要操作 the case has but not all related procedures
    (useful to tell a coder what a missing code would change).
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
            "rule": self.rule,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
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

    @property
    def grouped(self) -> bool:
        return self.group_type != GroupType.UNGROUPED

    def with_flags(self, extra: tuple[str, ...]) -> GroupResult:
        if not extra:
            return self
        merged = self.flags + tuple(f for f in extra if f not in self.flags)
        return GroupResult(
            self.dip_code,
            self.group_type,
            self.group_name,
            self.score,
            self.reason,
            self.trace,
            merged,
            self.group,
        )

    def as_dict(self) -> dict:
        return {
            "dip_code": self.dip_code,
            "group_type": self.group_type,
            "group_name": self.group_name,
            "score": str(self.score) if self.score is not None else None,
            "reason": self.reason,
            "flags": list(self.flags),
            "trace": self.trace.as_dict(),
        }
