"""An in-memory index over a catalog's groups, shaped for the grouping algorithm's lookups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from grouper.model import Group, GroupType


class GroupIndex:
    """Lookups by 亚目 + 主要操作, 亚目 (保守), 类目 × type and chapter × type.

    Built once per catalog (a few milliseconds for 4,500 groups) and read-only afterwards, so one
    index serves every thread and is pickled as-is into worker processes.
    """

    __slots__ = (
        "by_code",
        "conservative",
        "core_by_main",
        "core_count",
        "comprehensive",
        "ranges",
        "chapter",
        "groups",
        "named",
    )

    def __init__(self, groups: Iterable[Group]) -> None:
        self.groups: tuple[Group, ...] = tuple(groups)
        self.by_code: dict[str, Group] = {}
        self.conservative: dict[str, Group] = {}
        core_by_main: dict[tuple[str, str], list[Group]] = defaultdict(list)
        self.core_count: dict[str, int] = defaultdict(int)
        self.comprehensive: dict[tuple[str, str], Group] = {}
        self.ranges: list[tuple[str, str, Group]] = []  # comprehensive groups keyed by a 类目 range
        self.chapter: dict[tuple[int, str], Group] = {}
        named: set[tuple[str, str]] = set()
        for g in self.groups:
            self.by_code[g.code.upper()] = g
            key = g.dx_key.upper()
            if g.type in (GroupType.CORE, GroupType.PRIMARY):
                self.core_count[key] += 1
                if not g.slots:
                    self.conservative[key] = g
                else:
                    for alt in g.slots[0]:
                        core_by_main[(key, alt)].append(g)
                    named.update((key, code) for slot in g.slots for code in slot)
            elif g.type == GroupType.COMPREHENSIVE and g.op_type:
                if "-" in key:  # a 类目 range "C00-C14"
                    lo, _, hi = key.partition("-")
                    self.ranges.append((lo, hi, g))
                else:
                    self.comprehensive[(key, g.op_type)] = g
            elif g.type == GroupType.CHAPTER and g.op_type:
                try:
                    number = int(key.removeprefix("CP"))
                except ValueError:
                    continue
                self.chapter[(number, g.op_type)] = g
        self.core_by_main = {k: tuple(v) for k, v in core_by_main.items()}
        #: (亚目, procedure) pairs some core group names: a simple operation counts there
        self.named: frozenset[tuple[str, str]] = frozenset(named)
        self.core_count = dict(self.core_count)

    def comprehensive_for(self, leimu: str, op_type: str) -> Group | None:
        """The 类目:TYPE group, else the narrowest 类目-range group containing the 类目."""
        g = self.comprehensive.get((leimu, op_type))
        if g is not None or not self.ranges:
            return g
        best = None
        for lo, hi, cand in self.ranges:
            if cand.op_type == op_type and lo <= leimu <= hi:
                width = (ord(hi[0]) - ord(lo[0])) * 100 + int(hi[1:]) - int(lo[1:])
                if best is None or width < best[0]:
                    best = (width, cand)
        return best[1] if best else None

    def get(self, code: str) -> Group | None:
        return self.by_code.get(code.upper()) if code else None

    def __len__(self) -> int:
        return len(self.groups)
