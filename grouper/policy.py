"""Local grouping rules (规则因统筹区而异) as data, so a region changes configuration, not code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Tie-break criteria among core groups that the national order (principal procedure, full match,
#: most related procedures) leaves equal; the first criterion that separates them decides.
TIE_BREAKS = ("higher_score", "lower_score", "more_cases", "code")
DEFAULT_TIE_BREAK = ("higher_score", "code")
#: How the procedure type of a comprehensive / chapter group is chosen.
TYPE_SELECTIONS = ("principal", "highest")

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class GroupingPolicy:
    """Everything local about grouping. All code sets hold upper-cased match keys.

    - ``excluded_principal``: diagnoses not allowed as principal, code → the rule that says so
      (full codes, 亚目, 类目, a single letter ``V`` or a 类目 range ``V01-Y98`` all work).
    - ``ignored_procedures``: procedures ignored for grouping everywhere (the case is grouped as
      if they were absent).
    - ``simple_operations``: 简单操作, code → why it is one. Ignored for grouping like the above,
      except where the catalog names the code in a core group of the case's 亚目 (the bureau's
      catalog is its word for that diagnosis).
    - ``tie_break``: order of criteria among candidate core groups still equal after the national
      order (see ``TIE_BREAKS``).
    - ``type_selection``: ``principal`` = the type of the principal procedure (national rule),
      ``highest`` = the highest-ranked type among all procedures (``type_rank``).
    - ``conservative_types``: procedure types that still let a case into its 亚目's 保守 core group
      when no procedure group matched (empty = only cases without procedures, the spec's rule).
    - ``primary_care``: codes of core groups that are 基层病种.
    - ``chapter_fallback``: whether ``CPnn:TYPE`` groups are used.
    """

    excluded_principal: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    ignored_procedures: frozenset[str] = frozenset()
    simple_operations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    tie_break: tuple[str, ...] = DEFAULT_TIE_BREAK
    type_selection: str = "principal"
    type_rank: tuple[str, ...] = ("SS", "ZLXCZ", "ZDXCZ")
    conservative_types: frozenset[str] = frozenset()
    primary_care: frozenset[str] = frozenset()
    chapter_fallback: bool = True
    _ranges: tuple[tuple[str, str, str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tie_break if t not in TIE_BREAKS]
        if unknown:
            raise ValueError(f"unknown tie-break rule(s) {unknown}; known: {', '.join(TIE_BREAKS)}")
        if self.type_selection not in TYPE_SELECTIONS:
            raise ValueError(f"type_selection must be one of {TYPE_SELECTIONS}, not {self.type_selection!r}")
        if not isinstance(self.excluded_principal, Mapping):  # a plain set of codes: no stated rule
            object.__setattr__(self, "excluded_principal", {c: "" for c in self.excluded_principal})
        # plain dicts: looked up for every procedure of every case (treated as read-only)
        object.__setattr__(self, "excluded_principal", dict(self.excluded_principal))
        object.__setattr__(self, "simple_operations", dict(self.simple_operations))
        ranges = []
        for key, why in self.excluded_principal.items():
            lo, sep, hi = key.partition("-")
            if sep and len(lo) == len(hi) == 3:
                ranges.append((lo, hi, why))
        object.__setattr__(self, "_ranges", tuple(ranges))

    def exclusion(self, dx: str, yamu: str | None, leimu: str | None) -> tuple[str, str] | None:
        """(matching entry, its rule) when ``dx`` may not be principal, else None."""
        ex = self.excluded_principal
        if not ex:
            return None
        for key in (dx, yamu, leimu, dx[:1]):
            if key and key in ex:
                return key, ex[key]
        if leimu:
            for lo, hi, why in self._ranges:
                if lo <= leimu <= hi:
                    return f"{lo}-{hi}", why
        return None

    def excludes(self, dx: str, yamu: str | None, leimu: str | None) -> str | None:
        """The exclusion entry that forbids ``dx`` as principal, or None."""
        hit = self.exclusion(dx, yamu, leimu)
        return hit[0] if hit else None
