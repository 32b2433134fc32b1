"""The Engine: one grouper + pricing behind a small API for the hook services and batch settlement.

``engine.group(case)`` normalises (and, with a terminology, maps 国临版 → 医保版) the case's codes,
then runs the pure grouper. Code resolution is cached per distinct raw code, so a million cases
cost one lookup per distinct code plus the grouping itself. The engine pickles without its caches
and terminology; a worker process reloads the terminology from the data home it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from dip_engine.catalog import Catalog
from dip_engine.optypes import OpTypeTable
from dip_engine.pricing import Pricing, hospital_coefficient, point_value_for, price
from dip_engine.rules import RegionRules, load_rules
from grouper import Case, GroupResult, GroupType, Trace, group_case

_CACHE_LIMIT = 500_000

# flags the engine adds to results (the grouper adds "optype_default")
FLAG_MAPPED = "mapped_from_gl"
FLAG_COMPLETED = "code_completed"
FLAG_NORMALISED = "code_normalised"
FLAG_NOT_IN_TERMINOLOGY = "code_not_in_terminology"
FLAG_INVALID_PROCEDURE = "invalid_procedure_dropped"


class _Dx:
    __slots__ = ("code", "yamu", "leimu", "chapter", "flags", "notes", "asterisk_only")

    def __init__(self, code, yamu, leimu, chapter, flags, notes, asterisk_only=False):
        self.code, self.yamu, self.leimu, self.chapter = code, yamu, leimu, chapter
        self.flags, self.notes, self.asterisk_only = flags, notes, asterisk_only


class Engine:
    """Group and price cases under one catalog and its region rules."""

    def __init__(
        self,
        catalog: Catalog,
        terminology=None,
        rules: RegionRules | None = None,
        optypes: OpTypeTable | None = None,
        home: Path | None = None,
    ) -> None:
        self.catalog = catalog
        self.terminology = terminology
        home = home if home is not None else catalog.home
        self.home = Path(home) if home else None
        self.rules = rules if rules is not None else load_rules(catalog.region, self.home)
        names = self._names_lookup()
        if optypes is None:
            from dip_engine import load_optype_table

            optypes = load_optype_table(self.home, sample=catalog.is_sample)
        if names is not None and optypes._names is None:
            optypes._names = names
        self.optypes = optypes
        catalog_codes = frozenset(c for g in catalog.groups for s in g.slots for c in s)
        options = self.rules.ignore_entry_options
        optional = self.optypes.codes_with_option(options) if options else frozenset()
        self.policy = self.rules.policy(catalog_codes, optional)
        self._dx_cache: dict[str, _Dx] = {}
        self._px_cache: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {}
        self._pv_cache: dict = {}
        self._hc_cache: dict = {}

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_home(
        cls, home: Path | None, region: str | None = None, terminology=None, rules_path: Path | None = None
    ) -> Engine:
        """Engine for a region's catalog in a data home (sample data when nothing is imported)."""
        from dip_engine import load_catalogs, load_optype_table

        catalogs = load_catalogs(home)
        catalog = catalogs.get(region)
        rules = load_rules(catalog.region, home, rules_path)
        return cls(catalog, terminology, rules, load_optype_table(home, sample=catalog.is_sample), home)

    # ``Engine(catalog, terminology)`` alone also works: rules and procedure types come from the data
    # home the catalog was loaded from (sample ones for the sample catalog).

    def _names_lookup(self):
        term = self.terminology
        if term is None or not hasattr(term, "display"):
            return None

        def name(code: str) -> str | None:
            return term.display("px", code)

        return name

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_dx_cache"], state["_px_cache"], state["_pv_cache"], state["_hc_cache"] = {}, {}, {}, {}
        state["_reload_terminology"] = self.terminology is not None and self.home is not None
        state["terminology"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        reload = state.pop("_reload_terminology", False)
        self.__dict__.update(state)
        if reload:
            from terminology import load_terminology

            self.terminology = load_terminology(self.home)
            self.optypes._names = self._names_lookup()

    # --- code resolution -----------------------------------------------------------------------
    def _resolve(self, kind: str, raw: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        """(医保版 code or best normalised code, flags, notes)."""
        from terminology.normalize import normalize_diagnosis, normalize_procedure

        norm = (normalize_diagnosis if kind == "dx" else normalize_procedure)(raw)
        what = "诊断" if kind == "dx" else "手术操作"
        term = self.terminology
        if term is not None and norm.ok and norm.code and not self._mappable(kind, norm.code):
            # nothing in the code lists could stand for it: skip the mapping layer's (slow) search for
            # suggestions — grouping only needs the code; the coder card asks the mapping layer itself
            return norm.code, (FLAG_NOT_IN_TERMINOLOGY,), (f"{what} {norm.code} 不在医保版编码表中",)
        if term is not None:
            from mappings import resolve_code

            res = resolve_code(term, kind, raw)
            if res.code:
                flags: list[str] = []
                notes: list[str] = []
                if "official-map" in res.path:
                    flags.append(FLAG_MAPPED)
                    notes.append(f"{what} {raw} 按国临版映射为医保版 {res.code}")
                elif "completed" in res.path:
                    flags.append(FLAG_COMPLETED)
                    notes.append(f"{what} {raw} 补全为 {res.code}")
                elif res.changes:
                    flags.append(FLAG_NORMALISED)
                    notes.append(f"{what} {raw} 规范为 {res.code}")
                return res.code, tuple(flags), tuple(notes)
            if norm.ok and norm.code:
                why = res.reasons[0] if res.reasons else "不在医保版编码表中"
                return norm.code, (FLAG_NOT_IN_TERMINOLOGY,), (f"{what} {norm.code}：{why}",)
            return None, (), (f"{what} {raw!r} 无效：{'；'.join(res.reasons or norm.changes)}",)
        if norm.ok and norm.code:
            if norm.changes:
                return norm.code, (FLAG_NORMALISED,), (f"{what} {raw} 规范为 {norm.code}",)
            return norm.code, (), ()
        return None, (), (f"{what} {raw!r} 无效：{'；'.join(norm.changes)}",)

    def _mappable(self, kind: str, code: str) -> bool:
        """Whether the terminology has the code, a 国临版 map row for it, or a completion of it."""
        term = self.terminology
        try:
            check = code.partition("+")[0] if kind == "dx" else code
            return bool(
                term.table(kind).get(code) is not None
                or term.translate(kind, code) is not None
                or term.completions(kind, code)
                or (check != code and term.table(kind).get(check) is not None)
            )
        except Exception:  # a terminology without these lookups: let the mapping layer decide
            return True

    def _dx(self, raw: str) -> _Dx:
        hit = self._dx_cache.get(raw)
        if hit is not None:
            return hit
        from terminology.normalize import normalize_diagnosis
        from terminology.structure import icd10_chapter, leimu, yamu

        code, flags, notes = self._resolve("dx", raw) if raw else (None, (), ("缺少主要诊断",))
        given = normalize_diagnosis(raw) if raw else None
        asterisk_only = bool(given and given.asterisk and not given.dagger)
        if code:
            n = normalize_diagnosis(code)
            if n.dagger:
                code = n.dagger
            elif n.asterisk:
                asterisk_only = True
        hit = _Dx(
            code, yamu(code) if code else None, leimu(code) if code else None,
            icd10_chapter(code) if code else None, flags, notes, asterisk_only,
        )  # fmt: skip
        if len(self._dx_cache) < _CACHE_LIMIT:
            self._dx_cache[raw] = hit
        return hit

    def _px(self, raw: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        hit = self._px_cache.get(raw)
        if hit is None:
            hit = self._resolve("px", raw)
            if hit[0] is None:
                hit = (None, (FLAG_INVALID_PROCEDURE,), hit[2])
            if len(self._px_cache) < _CACHE_LIMIT:
                self._px_cache[raw] = hit
        return hit

    # --- API -----------------------------------------------------------------------------------
    def group(self, case: Case) -> GroupResult:
        """The DIP group of a case, with the trace and flags (never raises on bad codes)."""
        dx = self._dx(case.main_diagnosis or "")
        flags = dx.flags
        notes = dx.notes
        procs: list[str] = []
        for raw in case.procedures:
            if not raw:
                continue
            code, f, n = self._px(raw)
            if code is not None:
                procs.append(code)
            if f:
                flags = flags + f
                notes = notes + n
        if dx.code is None and case.main_diagnosis:
            trace = Trace(
                None, None, None, None, tuple(procs), rule="ungrouped.invalid_diagnosis", notes=notes
            )
            why = notes[0] if notes else "主要诊断编码无效"
            return GroupResult(None, GroupType.UNGROUPED, "", None, f"未入组：{why}", trace, flags)
        if dx.asterisk_only:
            trace = Trace(
                dx.code,
                dx.yamu,
                dx.leimu,
                dx.chapter,
                tuple(procs),
                rule="ungrouped.asterisk_principal",
                notes=notes,
            )
            return GroupResult(
                None,
                GroupType.UNGROUPED,
                "",
                None,
                f"未入组：{dx.code} 是星号（表现）编码，不能作为主要诊断",
                trace,
                flags,
            )
        result = group_case(
            self.catalog.index,
            self.policy,
            self.optypes.classify,
            dx.code,
            dx.yamu,
            dx.leimu,
            dx.chapter,
            procs,
            notes,
        )
        if flags:
            result = result.with_flags(tuple(dict.fromkeys(flags)))
        return result

    def price(
        self,
        case: Case,
        result: GroupResult,
        cost_so_far: Decimal | None = None,
        additional_cost: Decimal | None = None,
    ) -> Pricing:
        """Payment standard, deviation band and remaining budget for a grouped case."""
        secondary = tuple(c for c in (self._dx(d).code for d in case.other_diagnoses if d) if c)
        point = self._pv_cache.get(case.insurance_type)
        if point is None:
            point = point_value_for(self.rules, case.insurance_type, self.catalog.region_avg_cost)
            if len(self._pv_cache) < 1000:
                self._pv_cache[case.insurance_type] = point
        hkey = (case.hospital_id, case.hospital_level, result.group_type)
        hospital = self._hc_cache.get(hkey)
        if hospital is None:
            hospital = hospital_coefficient(self.rules, case, result.group_type)
            if len(self._hc_cache) < 10_000:
                self._hc_cache[hkey] = hospital
        return price(
            self.rules,
            self.catalog.region_avg_cost,
            case,
            result,
            secondary,
            cost_so_far,
            additional_cost,
            point,
            hospital,
        )

    def evaluate(
        self, case: Case, cost_so_far: Decimal | None = None, additional_cost: Decimal | None = None
    ) -> tuple[GroupResult, Pricing]:
        result = self.group(case)
        return result, self.price(case, result, cost_so_far, additional_cost)

    def group_alternatives(
        self, case: Case, principal_diagnoses: Iterable[str]
    ) -> list[tuple[str, GroupResult]]:
        """Group variants of a case with other principal diagnoses (the coder card compares them)."""
        out = []
        for dx in principal_diagnoses:
            others = tuple(d for d in (case.main_diagnosis, *case.other_diagnoses) if d and d != dx)
            out.append((dx, self.group(replace(case, main_diagnosis=dx, other_diagnoses=others))))
        return out

    def group_many(self, cases: Iterable[Case]) -> Iterator[GroupResult]:
        group = self.group
        for case in cases:
            yield group(case)

    def evaluate_many(self, cases: Iterable[Case]) -> Iterator[tuple[GroupResult, Pricing]]:
        evaluate = self.evaluate
        for case in cases:
            yield evaluate(case)
