"""The in-memory terminology: the active 医保版 code lists and the 国临版 → 医保版 maps.

Loaded once per process (``AppData.terminology``) and then only read, so every structure is a
plain dict/list; nothing here does I/O except the rare "was this code in an older version?"
question, which asks the store.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from terminology.normalize import Normalized, normalize_diagnosis, normalize_procedure
from terminology.search import SearchHit, SearchIndex
from terminology.structure import TABLES, dx_hierarchy, px_hierarchy, yamu
from terminology.systems import GL_ICD9CM3, GL_ICD10, YB_ICD9CM3, YB_ICD10

if TYPE_CHECKING:
    from terminology.store import TerminologyStore

__all__ = ["Concept", "MapEntry", "Validation", "CodeTable", "CodeMap", "Terminology", "normalizer_for"]


@cache
def _synonyms() -> tuple[tuple[str, str], ...]:
    path = TABLES / "synonyms.csv"
    if not path.exists():
        return ()
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [(r["term"].strip(), r["expansion"].strip()) for r in csv.DictReader(fh) if r.get("term")]
    # longest first so 急性心梗 is not also rewritten through a shorter entry inside it
    return tuple(sorted(rows, key=lambda r: -len(r[0])))


def expand_synonyms(text: str) -> list[str]:
    """Alternative wordings of ``text`` with clinical shorthand replaced (at most 4): first every
    shorthand at once (冠脉支架植入 → 冠状动脉支架置入), then each one alone."""
    upper = text.upper()
    if len(upper) != len(text):  # case mapping changed the length (ß → SS): match as typed
        upper = text
    found: list[tuple[int, str, str]] = []  # (position, term, expansion), non-overlapping
    taken: set[int] = set()
    for term, expansion in _synonyms():
        key = term.upper()
        pos = upper.find(key)
        if pos < 0 or expansion in text:
            continue
        span = set(range(pos, pos + len(key)))
        if span & taken:
            continue  # inside a longer shorthand already replaced (terms are longest first)
        taken |= span
        found.append((pos, term, expansion))
    if not found:
        return []

    def replaced(items) -> str:
        out, last = [], 0
        for pos, term, expansion in sorted(items):
            out += [text[last:pos], expansion]
            last = pos + len(term)
        return "".join(out) + text[last:]

    alternatives = [replaced(found)] + ([replaced([one]) for one in found] if len(found) > 1 else [])
    return list(dict.fromkeys(alternatives))[:4]


def _rank_key(kind_hit: tuple[str, SearchHit]) -> tuple[float, int, str]:
    """Higher score first; among equals, code matches in code order, names shorter first."""
    hit = kind_hit[1]
    return (-hit.score, 0 if hit.match.startswith("code") else len(hit.display), hit.code)


def normalizer_for(kind: str):
    if kind not in ("dx", "px"):
        raise ValueError(f"kind must be 'dx' or 'px', not {kind!r}")
    return normalize_diagnosis if kind == "dx" else normalize_procedure


@dataclass(frozen=True, slots=True)
class Concept:
    code: str
    display: str
    kind: str
    system: str
    version: str


@dataclass(frozen=True, slots=True)
class MapEntry:
    source_code: str  # as published
    source_name: str
    target_code: str
    target_name: str
    source_system: str


@dataclass(frozen=True, slots=True)
class Validation:
    """exists / retired / unknown, with the nearest valid codes when it is not valid as given."""

    status: str
    input: str
    code: str | None
    display: str | None
    normalized: Normalized | None
    suggestions: tuple[Concept, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.status == "exists"


@dataclass
class CodeTable:
    """One active code list (dx or px) with its lookup and search structures."""

    kind: str
    version: str
    system: str
    codes: list[str]
    names: list[str]
    initials: list[str]
    index: dict[str, int] = field(init=False)
    by_dagger: dict[str, list[int]] = field(init=False)
    _search: SearchIndex | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.index = {c: i for i, c in enumerate(self.codes)}
        self.by_dagger = {}
        if self.kind == "dx":
            for i, c in enumerate(self.codes):
                plus = c.find("+")
                if plus > 0:
                    self.by_dagger.setdefault(c[:plus], []).append(i)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def search_index(self) -> SearchIndex:
        if self._search is None:
            self._search = SearchIndex(
                self.codes, self.names, self.initials, normalizer_for(self.kind), self.kind
            )
        return self._search

    def concept(self, i: int) -> Concept:
        return Concept(self.codes[i], self.names[i], self.kind, self.system, self.version)

    def get(self, code: str) -> Concept | None:
        i = self.index.get(code)
        return None if i is None else self.concept(i)

    def with_prefix(self, prefix: str, limit: int = 50) -> list[Concept]:
        i = bisect.bisect_left(self.codes, prefix)
        out: list[Concept] = []
        while i < len(self.codes) and self.codes[i].startswith(prefix) and len(out) < limit:
            out.append(self.concept(i))
            i += 1
        return out

    def nearest(self, code: str, limit: int = 5) -> list[Concept]:
        """Valid codes sharing the longest prefix with ``code`` (same 亚目 first, then 类目)."""
        for cut in range(len(code), 2, -1):
            prefix = code[:cut]
            found = self.with_prefix(prefix, limit)
            if found:
                return found
        return []


@dataclass
class CodeMap:
    """国临版 → 医保版 map keyed by the normalised clinical code."""

    kind: str
    version: str
    source_system: str
    entries: dict[str, tuple[str, str, str, str]]  # key -> (source_code, source_name, target, target_name)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> MapEntry | None:
        e = self.entries.get(key)
        return None if e is None else MapEntry(e[0], e[1], e[2], e[3], self.source_system)


_SYSTEM_FOR = {"dx": YB_ICD10, "px": YB_ICD9CM3}
_GL_SYSTEM_FOR = {"dx": GL_ICD10, "px": GL_ICD9CM3}


class Terminology:
    """Everything the mapping layer, the grouper and the FHIR API need about codes."""

    def __init__(
        self,
        dx: CodeTable,
        px: CodeTable,
        dx_map: CodeMap | None,
        px_map: CodeMap | None,
        *,
        is_sample: bool,
        label: str,
        store: TerminologyStore | None = None,
        home=None,
    ) -> None:
        self.dx, self.px = dx, px
        self.dx_map, self.px_map = dx_map, px_map
        self.is_sample = is_sample
        self.label = label
        self._store = store
        self.home = home  # data home it was loaded from (hospital local maps live there); None for the sample

    def __repr__(self) -> str:
        return (
            f"<Terminology {self.label!r} dx={len(self.dx)} px={len(self.px)} "
            f"dx_map={len(self.dx_map or ())} px_map={len(self.px_map or ())}>"
        )

    def summary(self) -> dict[str, object]:
        return {
            "label": self.label,
            "is_sample": self.is_sample,
            "dx": {"version": self.dx.version, "codes": len(self.dx)},
            "px": {"version": self.px.version, "codes": len(self.px)},
            "dx_map": {"version": self.dx_map.version, "rows": len(self.dx_map)} if self.dx_map else None,
            "px_map": {"version": self.px_map.version, "rows": len(self.px_map)} if self.px_map else None,
        }

    # --- access ---------------------------------------------------------------------------------
    def table(self, kind: str) -> CodeTable:
        if kind == "dx":
            return self.dx
        if kind == "px":
            return self.px
        raise ValueError(f"kind must be 'dx' or 'px', not {kind!r}")

    def code_map(self, kind: str) -> CodeMap | None:
        self.table(kind)
        return self.dx_map if kind == "dx" else self.px_map

    def lookup(self, kind: str, raw: str) -> Concept | None:
        """The 医保版 concept for a code typed any way (normalised; exact match only)."""
        n = normalizer_for(kind)(raw)
        return self.table(kind).get(n.code) if n.ok and n.code else None

    def display(self, kind: str, code: str) -> str | None:
        table = self.table(kind)
        i = table.index.get(code)
        return table.names[i] if i is not None else None

    def hierarchy(self, kind: str, code: str) -> dict[str, str | None]:
        return dx_hierarchy(code) if kind == "dx" else px_hierarchy(code)

    def translate(self, kind: str, raw: str) -> MapEntry | None:
        """Official 国临版 → 医保版 map row for a clinical code typed any way."""
        cmap = self.code_map(kind)
        if cmap is None:
            return None
        n = normalizer_for(kind)(raw)
        return cmap.get(n.code) if n.ok and n.code else None

    def completions(self, kind: str, code: str) -> list[Concept]:
        """Valid codes an incomplete but well-formed code stands for: padded forms (K35.3 → K35.300),
        a dagger half (A01.000x005 → A01.000x005+J17.0*)."""
        table = self.table(kind)
        out: list[Concept] = []
        if kind == "dx":
            for i in table.by_dagger.get(code, ()):
                out.append(table.concept(i))
            if len(code) == 5 and code[3] == ".":  # 亚目 form K35.3 → K35.300
                hit = table.get(code + "00")
                if hit:
                    out.append(hit)
            if len(code) == 3:  # 类目 form K35 → K35.x00 or K35.900-style codes are not implied
                hit = table.get(code + ".x00")
                if hit:
                    out.append(hit)
        else:
            if len(code) == 5:  # 47.01 → 47.0100
                hit = table.get(code + "00")
                if hit:
                    out.append(hit)
            elif len(code) == 4:  # 47.0 → 47.00
                hit = table.get(code + "000") or table.get(code + "x00")
                if hit:
                    out.append(hit)
        return out

    # --- validation -----------------------------------------------------------------------------
    def validate(self, kind: str, raw: str) -> Validation:
        normalize = normalizer_for(kind)
        n = normalize(raw) if isinstance(raw, str) else Normalized(None, ("输入不是字符串",))
        shown = raw[:64] if isinstance(raw, str) else repr(raw)[:64]
        if not n.ok or n.code is None:
            return Validation("unknown", shown, None, None, n, (), ("不是有效的编码格式", *n.changes))
        table = self.table(kind)
        hit = table.get(n.code)
        if hit:
            return Validation("exists", shown, hit.code, hit.display, n, (), n.changes)
        reasons: list[str] = []
        suggestions: list[Concept] = []
        older = self._store.find_in_other_versions(kind, n.code, table.version) if self._store else []
        mapped = self.translate(kind, n.code)
        if mapped:
            target = table.get(mapped.target_code)
            if target:
                suggestions.append(target)
            reasons.append(f"{n.code} 是国临版编码，官方映射到医保版 {mapped.target_code}")
        for c in self.completions(kind, n.code):
            if c not in suggestions:
                suggestions.append(c)
        if older:
            versions = "、".join(v for v, _ in older)
            reasons.append(f"{n.code} 在医保版 {versions} 中存在，在当前版本 {table.version} 中已停用")
        reasons.append(f"{n.code} 不在医保版 {table.version} 编码表中")
        for c in table.nearest(n.code.split("+")[0]):
            if c not in suggestions:
                suggestions.append(c)
        status = "retired" if older else "unknown"
        return Validation(
            status,
            shown,
            n.code,
            older[0][1] if older else None,
            n,
            tuple(suggestions[:8]),
            (*n.changes, *reasons),
        )

    # --- search ---------------------------------------------------------------------------------
    def search(self, text: str, kind: str | None = None, limit: int = 20) -> list[tuple[str, SearchHit]]:
        """Ranked hits as (kind, hit); both systems when ``kind`` is None.

        Clinical shorthand (心梗, 慢阻肺, PCI — ``tables/synonyms.csv``) is also searched in its
        official wording; such hits rank just below literal ones."""
        kinds = (kind,) if kind else ("dx", "px")
        queries = [(text, 1.0)]
        if isinstance(text, str):
            queries += [(alt, 0.98) for alt in expand_synonyms(text)]
        best: dict[tuple[str, str], tuple[str, SearchHit]] = {}

        def run(query: str, weight: float, fuzzy: bool) -> None:
            for k in kinds:
                for h in self.table(k).search_index.search(query, limit, fuzzy=fuzzy):
                    if weight != 1.0:
                        h = SearchHit(h.code, h.display, round(h.score * weight, 4), h.match + "+synonym")
                    old = best.get((k, h.code))
                    if old is None or h.score > old[1].score:
                        best[(k, h.code)] = (k, h)

        if len(queries) == 1:
            run(text, 1.0, True)
        else:
            # literal matches of every wording first; fuzzy matching only when they are too few
            for query, weight in queries:
                run(query, weight, False)
            if len(best) < limit:
                run(text, 1.0, True)
        hits = sorted(best.values(), key=_rank_key)
        return hits[:limit]

    def subcategory_members(self, code: str) -> list[Concept]:
        """医保版 diagnosis codes under the 亚目 of ``code`` (WHO ICD-10 → 医保版 candidates)."""
        y = yamu(code)
        if y is None:
            return []
        return self.dx.with_prefix(y, limit=200)
