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
from dip_engine.quality import QcFlag, Severity, case_checks, code_facts, ordered
from dip_engine.rules import REGION_EXCLUSION, RegionRules, load_rules
from grouper import Case, GroupResult, GroupType, Trace, group_case

_HOME = object()  # Engine.from_home: "the data home's terminology"
#: ``Case.code_system`` → how the engine reads the case's codes
_AS_TYPED, _YB, _GL = 0, 1, 2
_SYSTEMS = {None: _AS_TYPED, "yb": _YB, "gl": _GL}


def terminology_for(catalog: Catalog, home: Path | None):
    """The data home's terminology if it can judge this catalog's cases — the imported 医保版 tables,
    or the built-in sample for the sample catalog — else None (codes are then checked for format only)."""
    from terminology import load_terminology

    term = load_terminology(home)
    return None if term.is_sample and not catalog.is_sample else term


def _collisions(terminology) -> dict[str, dict]:
    """kind → {code: 国临版 map row} for codes that exist in both 医保版 and 国临版 with different
    meanings (the 国临版 reading maps elsewhere): sent without a code system they are ambiguous.
    Computed from the loaded tables, so a new version brings its own set."""
    out: dict[str, dict] = {}
    for kind in ("dx", "px"):
        try:
            table, cmap = terminology.table(kind), terminology.code_map(kind)
        except Exception:  # a terminology without maps: nothing can collide
            continue
        if cmap is None:
            continue
        out[kind] = {
            key: cmap.get(key)
            for key, entry in cmap.entries.items()
            if entry[2] != key and table.get(key) is not None
        }
    return out


_CACHE_LIMIT = 500_000

# flags the engine adds to results (the grouper adds "optype_default")
FLAG_MAPPED = "mapped_from_gl"
FLAG_COMPLETED = "code_completed"
FLAG_NORMALISED = "code_normalised"
FLAG_NOT_IN_TERMINOLOGY = "code_not_in_terminology"
FLAG_INVALID_PROCEDURE = "invalid_procedure_dropped"
_WHAT = {"dx": "诊断", "px": "手术操作"}


class _Code:
    """One raw code as the engine read it, resolved once and cached (a million cases repeat a few
    thousand codes). ``code`` is the 医保版 code grouping uses, None when the code cannot be used;
    ``problem`` says why (as principal, for a diagnosis); ``secondary`` why a diagnosis is dropped
    from the other diagnoses; ``reading`` how an ambiguous or 国临版 code was read."""

    __slots__ = (
        "code",
        "yamu",
        "leimu",
        "chapter",
        "flags",
        "notes",
        "problem",
        "secondary",
        "reading",
        "facts",
    )

    def __init__(self, kind, code, flags=(), notes=(), problem=None, secondary=None, reading=(), facts=None):
        from terminology.structure import icd10_chapter, leimu, yamu

        self.code, self.flags, self.notes = code, flags, notes
        self.problem, self.secondary, self.reading = problem, secondary, reading
        self.facts = facts if facts is not None and facts.restricted else None  # only what the checks need
        self.yamu = self.leimu = self.chapter = None
        if code and kind == "dx":
            self.yamu, self.leimu, self.chapter = yamu(code), leimu(code), icd10_chapter(code)


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
        if terminology is not None and getattr(terminology, "is_sample", False) and not catalog.is_sample:
            terminology = None  # the sample code lists cannot judge a real catalog's cases: check format only
        self.terminology = terminology
        home = home if home is not None else catalog.home
        self.home = Path(home) if home else None
        self.rules = rules if rules is not None else load_rules(catalog.region, self.home)
        self.quality = self.rules.quality
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
        self._reset_caches()

    def _reset_caches(self) -> None:
        # per raw code and code system (see _SYSTEMS): codes as typed, 医保版 for sure, 国临版 for sure
        self._dx_cache: tuple[dict[str, _Code], ...] = ({}, {}, {})
        self._px_cache: tuple[dict[str, _Code], ...] = ({}, {}, {})
        self._pv_cache: dict = {}
        self._hc_cache: dict = {}
        self._collisions = _collisions(self.terminology) if self.terminology is not None else {}

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_home(
        cls, home: Path | None, region: str | None = None, terminology=_HOME, rules_path: Path | None = None
    ) -> Engine:
        """Engine for a region's catalog in a data home (sample data when nothing is imported).

        The data home's imported terminology is used unless another (or None) is given: without one
        codes are only checked for their format, not against the 医保版 tables."""
        from dip_engine import load_catalogs, load_optype_table

        catalogs = load_catalogs(home)
        catalog = catalogs.get(region)
        rules = load_rules(catalog.region, home, rules_path)
        if terminology is _HOME:
            terminology = terminology_for(catalog, home)
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
        for key in ("_dx_cache", "_px_cache", "_pv_cache", "_hc_cache", "_collisions"):  # rebuilt on load
            state.pop(key, None)
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
        self._reset_caches()

    # --- code resolution -----------------------------------------------------------------------
    def _read(self, kind: str, raw: str, system: int):
        """(医保版 code or None, flags, notes, problem (rule, message, code) or None, reading findings).

        Strict, as the 结算清单 is: a code is used as given (after spelling normalisation), as the
        official 国临版 → 医保版 map reads it, or — a dagger code without its asterisk half — as the
        one combination code it stands for. Anything else is not a 医保版 code, never a guess
        (``K35.399`` is not completed to a code of K35.3). ``system``: what the case says its codes
        are (:data:`_SYSTEMS`): as typed — a code in both tables with different meanings is then read
        as 医保版 and flagged —, 医保版 for sure, or 国临版 for sure (read through the official map)."""
        from terminology.normalize import normalize_diagnosis, normalize_procedure

        what = _WHAT[kind]
        norm = (normalize_diagnosis if kind == "dx" else normalize_procedure)(raw)
        if not norm.ok or not norm.code:
            why = "；".join(c for c in norm.changes if "不符合" in c) or "不是编码"
            return None, (), (), (f"{kind}.invalid", f"{what}编码 {raw[:40]!r} 无效（{why}）", raw[:40]), ()
        code = norm.code
        respelled = tuple(c for c in norm.changes if not c.startswith("识别为"))
        flags = (FLAG_NORMALISED,) if respelled else ()
        notes = (f"{what} {raw} 规范为 {code}",) if respelled else ()
        term = self.terminology
        if term is None:
            return code, flags, notes, None, ()
        table = term.table(kind)
        if system == _GL:
            read = self._gl_reading(kind, raw, code)
            if read is None:
                message = f"国临版{what}编码 {code} 不在国临版→医保版官方映射表中"
                return None, (), (), (f"{kind}.not_in_table", message, code), ()
            return read
        hit = table.get(code)
        if hit is not None:
            reading: tuple[QcFlag, ...] = ()
            if system == _AS_TYPED and code in self._collisions.get(kind, ()):
                gl = self._collisions[kind][code]
                collision = self.quality.flag(
                    "code.collision",
                    f"{code} 在医保版为“{hit.display}”，在国临版为“{gl.source_name}”（对应医保版 "
                    f"{gl.target_code}）；未注明编码体系，按医保版读取",
                    code,
                )
                reading = (collision,) if collision else ()
            return code, flags, notes, None, reading
        if system == _AS_TYPED and (read := self._gl_reading(kind, raw, code)) is not None:
            return read
        if kind == "dx" and norm.asterisk is None:
            combined = table.by_dagger.get(norm.dagger or code, ())
            if len(combined) == 1:
                full = table.codes[combined[0]]
                return full, (FLAG_COMPLETED,), (f"剑号编码 {raw} 按医保版组合编码 {full} 读取",), None, ()
        near = "、".join(c.code for c in table.nearest(code.partition("+")[0], 3))
        hint = f"（相近编码：{near}）" if near else ""
        message = f"{what}编码 {code} 不在医保版 {table.version} 编码表中{hint}"
        return None, (), (), (f"{kind}.not_in_table", message, code), ()

    def _gl_reading(self, kind: str, raw: str, code: str):
        """``_read``'s answer for a 国临版 code the official map takes to a 医保版 code, else None."""
        term = self.terminology
        mapped = term.translate(kind, code)
        if mapped is None or term.table(kind).get(mapped.target_code) is None:
            return None
        note = f"国临版{_WHAT[kind]} {raw} 按官方映射表读作医保版 {mapped.target_code}"
        found = self.quality.flag("code.gl_mapped", note, code)
        return mapped.target_code, (FLAG_MAPPED,), (note,), None, (found,) if found else ()

    def _dx(self, raw: str, system: int = 0) -> _Code:
        cache = self._dx_cache[system]
        hit = cache.get(raw)
        if hit is not None:
            return hit
        from terminology.normalize import normalize_diagnosis

        quality = self.quality
        if not raw:
            problem = quality.flag("dx.missing", "缺少主要诊断：病例无法入组")
            hit = _Code("dx", None, problem=problem)
        else:
            code, flags, notes, issue, reading = self._read("dx", raw, system)
            given = normalize_diagnosis(raw)
            problem = secondary = None
            if given.ok and given.asterisk and not given.dagger:
                shown = given.code or raw[:40]
                problem = quality.flag("dx.asterisk", f"{shown}* 是星号（表现）编码，不能作为主要诊断", shown)
            if issue is not None:
                rule, message, shown = issue
                problem = problem or quality.flag(rule, message, shown)
                secondary = quality.flag(
                    "dx.secondary_invalid", f"其他诊断{message.removeprefix('诊断')}，未计入", shown
                )
            elif code is not None:
                n = normalize_diagnosis(code)
                if n.asterisk and not n.dagger:
                    problem = problem or quality.flag(
                        "dx.asterisk", f"{code} 是星号（表现）编码，不能作为主要诊断", code
                    )
                elif n.dagger:
                    code = n.dagger  # grouped by its etiology (剑号) half
            if code is not None and problem is None:
                from terminology.structure import leimu, yamu

                excluded = self.policy.exclusion(code.upper(), yamu(code), leimu(code))
                if excluded is not None:
                    entry, rule = excluded
                    if rule == REGION_EXCLUSION:
                        which, why = "dx.region_excluded", f"{rule}：{entry}"
                    else:
                        which, why = "dx.never_principal", rule
                    problem = quality.flag(which, f"{code} 不能作为主要诊断（{why}）", code)
            facts = None
            if code:
                name = (self.terminology.display("dx", code) or "") if self.terminology is not None else ""
                facts = code_facts(code, quality, name)
            hit = _Code("dx", code, flags, notes, problem, secondary, reading, facts)
        if len(cache) < _CACHE_LIMIT:
            cache[raw] = hit
        return hit

    def _px(self, raw: str, system: int = 0) -> _Code:
        cache = self._px_cache[system]
        hit = cache.get(raw)
        if hit is None:
            code, flags, notes, issue, reading = self._read("px", raw, system)
            problem = None
            if issue is not None:
                rule, message, shown = issue
                problem = self.quality.flag(rule, f"{message}，不参与分组", shown)
                flags = (FLAG_INVALID_PROCEDURE if rule == "px.invalid" else FLAG_NOT_IN_TERMINOLOGY,)
                notes = (f"{message}，不参与分组",)
            hit = _Code("px", code, flags, notes, problem, None, reading)
            if len(cache) < _CACHE_LIMIT:
                cache[raw] = hit
        return hit

    # --- API -----------------------------------------------------------------------------------
    def group(self, case: Case) -> GroupResult:
        """The DIP group of a case after the settlement-list quality gate (never raises on bad codes).

        ``result.qc`` lists the gate's findings (worst first); a finding of severity ``reject`` (an
        inadmissible principal diagnosis, or a rule the region made rejecting) leaves the case 未入组
        with that finding as the reason."""
        system = _SYSTEMS.get(case.code_system, _AS_TYPED)
        dx_cache, px_cache = self._dx_cache[system], self._px_cache[system]
        raw = case.main_diagnosis or ""
        dx = dx_cache.get(raw) or self._dx(raw, system)
        flags = dx.flags
        notes = dx.notes
        found: list[QcFlag] = [dx.problem] if dx.problem is not None else []
        if dx.reading:
            found.extend(dx.reading)
        facts = [dx.facts] if dx.facts is not None else []
        for raw in case.other_diagnoses:
            if not raw:
                continue
            other = dx_cache.get(raw) or self._dx(raw, system)
            if other.code is None:
                if other.secondary is not None:
                    found.append(other.secondary)
                flags += (FLAG_NOT_IN_TERMINOLOGY,)
                continue
            if other.reading:
                found.extend(other.reading)
            if other.facts is not None:
                facts.append(other.facts)
        procs: list[str] = []
        for raw in case.procedures:
            if not raw:
                continue
            px = px_cache.get(raw) or self._px(raw, system)
            if px.code is not None:
                procs.append(px.code)
            elif px.problem is not None:
                found.append(px.problem)
            if px.reading:
                found.extend(px.reading)
            if px.flags:
                flags += px.flags
                notes += px.notes
        checks = case_checks(case, facts, self.quality)
        if checks:
            found.extend(checks)
        qc = ordered(found) if found else ()
        if flags and len(flags) > 1:
            flags = tuple(dict.fromkeys(flags))
        if qc and qc[0].severity == Severity.REJECT:
            first = qc[0]
            trace = Trace(
                dx.code,
                dx.yamu,
                dx.leimu,
                dx.chapter,
                tuple(procs),
                rule=f"ungrouped.{first.rule}",
                notes=notes,
            )
            return GroupResult(
                None, GroupType.UNGROUPED, "", None, f"未入组：{first.message}（质控规则 {first.rule}）",
                trace, flags, None, qc,
            )  # fmt: skip
        return group_case(
            self.catalog.index, self.policy, self.optypes.classify, dx.code, dx.yamu, dx.leimu, dx.chapter,
            procs, notes, flags, qc, screened=True,
        )  # fmt: skip

    def price(
        self,
        case: Case,
        result: GroupResult,
        cost_so_far: Decimal | None = None,
        additional_cost: Decimal | None = None,
    ) -> Pricing:
        """Payment standard, deviation band and remaining budget for a grouped case."""
        system = _SYSTEMS.get(case.code_system, _AS_TYPED)
        secondary = tuple(c for c in (self._dx(d, system).code for d in case.other_diagnoses if d) if c)
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
