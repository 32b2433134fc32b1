"""Local grouping rules (规则因统筹区而异) as data, so a region changes configuration, not code."""

from __future__ import annotations

from dataclasses import dataclass

#: Tie-break criteria understood by the grouper, in the default order.
TIE_BREAKS = ("principal_procedure", "higher_score", "lower_score", "more_cases", "code")
DEFAULT_TIE_BREAK = ("principal_procedure", "higher_score", "code")
#: How the procedure type of a comprehensive / chapter group is chosen.
TYPE_SELECTIONS = ("principal", "highest")


@dataclass(frozen=True, slots=True)
class GroupingPolicy:
    """Everything local about grouping. All code sets hold upper-cased match keys.

    - ``excluded_principal``: diagnoses not allowed as principal: full codes, 亚目, 类目 or a single
      letter (``V``) all work.
    - ``ignored_procedures``: procedures ignored for grouping (the case is grouped as if they were
      absent, "按保守治疗入组").
    - ``tie_break``: order of criteria among core groups matching the same number of related
      procedures (see ``TIE_BREAKS``).
    - ``type_selection``: ``principal`` = the type of the principal procedure (national default),
      ``highest`` = the highest-ranked type among all procedures (``type_rank``).
    - ``conservative_types``: procedure types that still let a case into its 亚目's 保守 core group
      when no procedure group matched (empty = only cases without procedures, the spec's rule).
    - ``primary_care``: codes of core groups that are 基层病种.
    - ``chapter_fallback``: whether ``CPnn:TYPE`` groups are used.
    """

    excluded_principal: frozenset[str] = frozenset()
    ignored_procedures: frozenset[str] = frozenset()
    tie_break: tuple[str, ...] = DEFAULT_TIE_BREAK
    type_selection: str = "principal"
    type_rank: tuple[str, ...] = ("SS", "ZLXCZ", "ZDXCZ")
    conservative_types: frozenset[str] = frozenset()
    primary_care: frozenset[str] = frozenset()
    chapter_fallback: bool = True

    def __post_init__(self) -> None:
        unknown = [t for t in self.tie_break if t not in TIE_BREAKS]
        if unknown:
            raise ValueError(f"unknown tie-break rule(s) {unknown}; known: {', '.join(TIE_BREAKS)}")
        if self.type_selection not in TYPE_SELECTIONS:
            raise ValueError(f"type_selection must be one of {TYPE_SELECTIONS}, not {self.type_selection!r}")

    def excludes(self, dx: str, yamu: str | None, leimu: str | None) -> str | None:
        """The exclusion entry that forbids ``dx`` as principal, or None."""
        ex = self.excluded_principal
        if not ex:
            return None
        for key in (dx, yamu, leimu, dx[:1]):
            if key and key in ex:
                return key
        return None
