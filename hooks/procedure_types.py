"""Procedure types as the cards rank and name them: 手术/介入 > 治疗性操作 > 诊断性操作.

The type of a code is the region's imported table (or its documented default rule), read through
the engine; 介入 (``JR``) ranks with 手术 (``SS``), as DIP groups them.
"""

from __future__ import annotations

from grouper import OpType

JR = "JR"
TYPE_RANK = {OpType.SS: 0, OpType.ZLXCZ: 1, OpType.ZDXCZ: 2}
TYPE_NAMES = {OpType.SS: "手术", JR: "介入", OpType.ZLXCZ: "治疗性操作", OpType.ZDXCZ: "诊断性操作"}


def canonical_type(type_code: str | None) -> str:
    """SS / ZLXCZ / ZDXCZ (介入 counts as 手术; an untyped code as 手术, as the grouper reads it)."""
    if not type_code or type_code == JR:
        return OpType.SS
    return type_code


def type_rank(type_code: str | None) -> int:
    """0 for 手术/介入, 1 治疗性操作, 2 诊断性操作 (lower is higher)."""
    return TYPE_RANK.get(canonical_type(type_code), len(TYPE_RANK))


def type_name(type_code: str | None) -> str:
    return TYPE_NAMES.get(type_code or "", TYPE_NAMES[canonical_type(type_code)])
