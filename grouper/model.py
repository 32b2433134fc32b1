"""The grouper's view of a DIP catalog: groups and the case to group.

These are plain frozen records so a catalog index is cheap to build, to share between threads and
to pickle into worker processes (a million-case settlement run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


class GroupType:
    """Group types as the bureaus name them (also used in outputs and cards)."""

    CORE = "核心"
    PRIMARY = "基层"
    COMPREHENSIVE = "综合"
    CHAPTER = "章节兜底"
    UNGROUPED = "未入组"
    OTHER = "其他"


class OpType:
    """Procedure types that key comprehensive and chapter groups (介入 counts as 手术)."""

    SS = "SS"
    ZLXCZ = "ZLXCZ"
    ZDXCZ = "ZDXCZ"
    BSZL = "BSZL"
    NAMES = {"SS": "相关手术", "ZLXCZ": "治疗性操作", "ZDXCZ": "诊断性操作", "BSZL": "保守治疗"}
    ALL = ("SS", "ZLXCZ", "ZDXCZ", "BSZL")


@dataclass(frozen=True, slots=True)
class Group:
    """One DIP group (病种).

    ``slots`` is the procedure pattern: every slot must be matched ("all of", ``+``) and a slot
    matches when the case has any of its codes ("any of", ``|``, DIP 3.0 并项). The first slot is the
    主要操作. Codes in ``slots`` are upper-cased match keys; ``procedures`` keeps them as published.
    ``dx_key`` is the 亚目 (core), 类目 (comprehensive) or ``CPnn`` (chapter fallback).
    """

    code: str
    type: str
    dx_key: str
    score: Decimal
    name: str = ""
    slots: tuple[frozenset[str], ...] = ()
    procedures: tuple[tuple[str, ...], ...] = ()
    procedure_names: tuple[str, ...] = ()
    op_type: str | None = None
    avg_cost: Decimal | None = None
    avg_los: float | None = None
    cv: float | None = None
    case_count: int | None = None
    primary_care: bool = False
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def is_conservative(self) -> bool:
        """A core group without procedures: the 内科/保守 group of its 亚目."""
        return self.type in (GroupType.CORE, GroupType.PRIMARY) and not self.slots

    @property
    def related_count(self) -> int:
        return max(len(self.slots) - 1, 0)

    @property
    def main_procedure(self) -> str | None:
        return self.procedures[0][0] if self.procedures else None


@dataclass(frozen=True, slots=True)
class Case:
    """One inpatient stay as the 医保结算清单 describes it (only what grouping and pricing need).

    ``procedures``: the first one is the principal procedure (主要手术/操作). Codes may be raw; the
    engine normalises and maps them before grouping. ``code_system`` ``"yb"`` says the codes are
    known to be 医保版 (a FHIR coding or the batch file said so), ``"gl"`` 国临版 (read through the
    official map); None means as typed, where a code that also exists in 国临版 with another
    meaning is read as 医保版 and flagged. ``principal_conflict`` /
    ``principal_unranked``: the record did not say clearly which diagnosis is principal (FHIR ranks).
    """

    case_id: str = ""
    main_diagnosis: str = ""
    other_diagnoses: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    sex: str | None = None
    age: int | None = None
    age_days: int | None = None
    birth_weight_g: int | None = None
    los_days: int | None = None
    icu_days: int | None = None
    discharge_way: str | None = None
    total_cost: Decimal | None = None
    hospital_id: str | None = None
    hospital_level: str | None = None
    insurance_type: str | None = None
    department: str | None = None
    code_system: str | None = None
    principal_conflict: tuple[str, ...] = ()
    principal_unranked: bool = False
