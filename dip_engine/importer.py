"""Catalog and procedure-type import with a validation report.

Bureaus publish catalogs as workbooks or CSV with varying headers (``config/headers.toml``, plus a
region's ``<data home>/headers.toml``; files are read by :mod:`cds_service.tables`),
messy codes (``44.1300X001``, ``C56.X``), names with line breaks, and — in 平顶山's case — a score
column that is a VLOOKUP into a statistics sheet. The importer keeps every good row, rejects bad
ones with a reason and a line number, and cross-checks scores against the statistics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cds_service.tables import RawSheet, TableError, TableSpec, read_sheets
from dip_engine.catalog import Catalog
from dip_engine.codes import (
    LIST_SEPARATORS,
    CodeError,
    canonical_dx_key,
    canonical_procedure,
    clean_code,
    clean_text,
    format_procedures,
    parse_group_code,
)
from dip_engine.optypes import OpTypeEntry, type_code_of
from grouper import Group, GroupType

#: Score differences below this (points) are rounding, not disagreement.
SCORE_TOLERANCE = Decimal("0.001")
_TYPE_VALUES = {
    "1": GroupType.CORE, "核心": GroupType.CORE, "核心病种": GroupType.CORE,
    "0": GroupType.COMPREHENSIVE, "2": GroupType.COMPREHENSIVE, "综合": GroupType.COMPREHENSIVE,
    "综合病种": GroupType.COMPREHENSIVE, "3": GroupType.PRIMARY, "基层": GroupType.PRIMARY,
    "基层病种": GroupType.PRIMARY,
}  # fmt: skip


HEADERS = Path(__file__).with_name("config") / "headers.toml"


class CatalogImportError(ValueError):
    """The file as a whole cannot be imported (no usable sheet or columns)."""


def _columns(header: list[object], section: str, home: Path | None) -> dict[str, int]:
    """Field → column index for one sheet's header: the packaged aliases of ``section`` plus the
    region's in ``<home>/headers.toml`` (a broken file raises :class:`TableError`, a ValueError)."""
    extra = Path(home) / "headers.toml" if home else None
    return TableSpec.from_toml(HEADERS, section, extra=extra).match(header)


def _generated_name(code: str, gtype: str, op_type: str | None) -> str:
    """A readable name for statistics-only groups, which the bureau publishes without one."""
    from grouper import OpType

    kind = OpType.NAMES.get(op_type or "", op_type or "")
    if gtype == GroupType.CHAPTER:
        return f"第{code[2:4]}章兜底（{kind}）"
    if gtype == GroupType.COMPREHENSIVE:
        return f"{code.partition(':')[0]} 综合病种（{kind}）"
    return ""


@dataclass
class ImportReport:
    """What happened to every row: kept, rejected (with reason), duplicated, or questionable."""

    source: str
    rows_read: int = 0
    accepted: Counter = field(default_factory=Counter)
    rejected: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    unknown_codes: list[dict] = field(default_factory=list)
    score_check: dict = field(default_factory=dict)
    region_avg_cost: str | None = None

    @property
    def ok(self) -> bool:
        return sum(self.accepted.values()) > 0

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "accepted": dict(self.accepted),
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "warnings": self.warnings,
            "unknown_codes": self.unknown_codes,
            "score_check": self.score_check,
            "region_avg_cost": self.region_avg_cost,
        }

    def render(self, limit: int = 20) -> str:
        """Plain-text report for the CLI (the full lists are in ``as_dict``)."""
        lines = [f"导入 {self.source}: 读取 {self.rows_read} 行"]
        lines.append("  接受: " + (", ".join(f"{k} {v}" for k, v in sorted(self.accepted.items())) or "0"))
        if self.region_avg_cost:
            lines.append(f"  区域次均费用 (REGION_AVE_VAL): {self.region_avg_cost}")
        if self.score_check:
            sc = self.score_check
            lines.append(
                f"  分值核对: {sc.get('checked', 0)} 个病种与统计表一致性检查, 不一致 {sc.get('mismatches', 0)},"
                f" 取自统计表 {sc.get('from_stats', 0)}, 分值=均费/区域均费×1000 不符 {sc.get('formula_mismatches', 0)}"
            )
        for title, items in (
            ("拒绝", self.rejected),
            ("重复", self.duplicates),
            ("警告", self.warnings),
            ("术语库中不存在的编码", self.unknown_codes),
        ):
            if items:
                lines.append(f"  {title}: {len(items)}")
                for item in items[:limit]:
                    lines.append("    " + "; ".join(f"{k}={v}" for k, v in item.items()))
                if len(items) > limit:
                    lines.append(f"    … 另有 {len(items) - limit} 条")
        return "\n".join(lines)


def _dec(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _float(value: object) -> float | None:
    d = _dec(value)
    return float(d) if d is not None else None


def _int(value: object) -> int | None:
    d = _dec(value)
    return int(d) if d is not None else None


def _cell(cells: list[object], cols: dict[str, int], name: str) -> object:
    i = cols.get(name)
    return cells[i] if i is not None and i < len(cells) else None


def _pick_sheets(
    sheets: list[RawSheet], home: Path | None
) -> tuple[RawSheet, dict[str, int], RawSheet | None, dict]:
    catalog: tuple[RawSheet, dict] | None = None
    stats: tuple[RawSheet, dict] | None = None
    for sheet in sheets:
        cat_cols = _columns(sheet.header, "catalog", home)
        st_cols = _columns(sheet.header, "stats", home)
        looks_stats = "code" in st_cols and ("region_avg_cost" in st_cols or "avg_cost" in st_cols)
        looks_catalog = ("code" in cat_cols or "diagnosis" in cat_cols) and (
            "diagnosis" in cat_cols or "type" in cat_cols or not looks_stats
        )
        if looks_catalog and catalog is None:
            catalog = (sheet, cat_cols)
        elif looks_stats and stats is None:
            stats = (sheet, st_cols)
    if catalog is None:
        if stats is None:
            names = ", ".join(f"{s.name}: {[clean_text(h) for h in s.header][:8]}" for s in sheets)
            raise CatalogImportError(f"找不到病种目录表（需要“病种编码”或“主诊断代码”等列）。表头: {names}")
        catalog = (stats[0], _columns(stats[0].header, "catalog", home))
        stats = None
    return catalog[0], catalog[1], (stats[0] if stats else None), (stats[1] if stats else {})


def _read_stats(sheet: RawSheet, cols: dict[str, int], report: ImportReport) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line, cells in sheet.rows:
        code = clean_code(_cell(cells, cols, "code"))
        if not code:
            continue
        out.setdefault(
            code.upper(),
            {
                "code": code,
                "line": line,
                "sheet": sheet.name,
                "score": _dec(_cell(cells, cols, "score")),
                "avg_cost": _dec(_cell(cells, cols, "avg_cost")),
                "region_avg_cost": _dec(_cell(cells, cols, "region_avg_cost")),
                "avg_los": _float(_cell(cells, cols, "avg_los")),
                "cv": _float(_cell(cells, cols, "cv")),
                "case_count": _int(_cell(cells, cols, "case_count")),
            },
        )
    return out


def _split_list(value: object) -> list[str]:
    text = clean_text(value)
    return [p for p in LIST_SEPARATORS.split(text) if p] if text else []


def _codes_from_columns(dx: str, main: str, others: list[str]) -> str:
    if not main:
        return dx
    return f"{dx}:{main}" + ("_" + "+".join(others) if others else "")


def import_catalog(
    path: str | Path,
    region: str,
    name: str,
    year: int | None = None,
    stats_path: str | Path | None = None,
    version: str = "",
    effective_from: date | None = None,
    effective_to: date | None = None,
    known_code=None,
    home: Path | None = None,
) -> tuple[Catalog, ImportReport]:
    """Read a published catalog into a :class:`Catalog` and say what happened to every row.

    ``known_code(kind, code) -> bool | None`` checks codes against the terminology (``kind`` is
    ``'dx'`` for a 亚目/类目 or ``'px'``); None when it cannot tell.
    """
    path = Path(path)
    sheets = read_sheets(path)
    if stats_path is not None:
        sheets = sheets + read_sheets(stats_path)
    cat_sheet, cols, stats_sheet, st_cols = _pick_sheets(sheets, home)
    report = ImportReport(source=path.name)
    stats = _read_stats(stats_sheet, st_cols, report) if stats_sheet else {}
    if "score" not in cols and not stats:
        raise CatalogImportError(
            f"{cat_sheet.name}: 没有分值列（如“病种分值”），也没有统计表（--stats）可取分值"
        )

    region_avgs = Counter(s["region_avg_cost"] for s in stats.values() if s["region_avg_cost"] is not None)
    region_avg = region_avgs.most_common(1)[0][0] if region_avgs else None
    if region_avg is not None:
        report.region_avg_cost = str(region_avg)

    groups: dict[str, Group] = {}
    first_line: dict[str, int] = {}
    check: Counter[str] = Counter()
    max_diff = Decimal(0)
    unknown_seen: set[tuple[str, str]] = set()

    def note_unknown(line: int, kind: str, code: str) -> None:
        if known_code is None or (kind, code) in unknown_seen:
            return
        verdict = known_code(kind, code)
        if verdict is False:
            unknown_seen.add((kind, code))
            report.unknown_codes.append(
                {"line": line, "kind": "诊断" if kind == "dx" else "手术操作", "code": code}
            )

    for line, cells in cat_sheet.rows:
        report.rows_read += 1
        code = clean_code(_cell(cells, cols, "code"))
        dx_col = clean_code(_cell(cells, cols, "diagnosis"))
        main_col = clean_code(_cell(cells, cols, "main_procedure"))
        others_col = _split_list(_cell(cells, cols, "other_procedures"))
        if not code:
            if not dx_col:
                report.rejected.append({"line": line, "code": "", "reason": "病种编码和主诊断代码均为空"})
                continue
            code = _codes_from_columns(dx_col, main_col, others_col)
        try:
            parsed = parse_group_code(code)
        except CodeError as exc:
            report.rejected.append({"line": line, "code": code, "reason": str(exc)})
            continue
        if parsed.bad_procedures:
            report.rejected.append(
                {
                    "line": line,
                    "code": code,
                    "reason": f"操作编码格式错误: {', '.join(parsed.bad_procedures)}",
                }
            )
            continue

        gtype = parsed.group_type
        type_cell = clean_text(_cell(cells, cols, "type"))
        declared = _TYPE_VALUES.get(type_cell)
        if type_cell and declared is None:
            report.warnings.append(
                {"line": line, "code": code, "message": f"未知的病种类型 {type_cell!r}，按编码判断"}
            )
        elif declared == GroupType.PRIMARY and gtype == GroupType.CORE:
            gtype = GroupType.PRIMARY
        elif (
            declared and declared != gtype and not (declared == GroupType.CORE and gtype == GroupType.PRIMARY)
        ):
            report.warnings.append(
                {
                    "line": line,
                    "code": code,
                    "message": f"病种类型列为 {type_cell}，与编码（{gtype}）不符，按编码",
                }
            )
        primary_flag = clean_text(_cell(cells, cols, "primary_care"))
        if primary_flag in ("1", "是", "Y", "y", "true", "TRUE") and gtype == GroupType.CORE:
            gtype = GroupType.PRIMARY

        # columns must agree with the code (the code is authoritative for grouping)
        if (
            dx_col
            and canonical_dx_key(dx_col) not in (parsed.dx_key, None)
            and dx_col.upper() != parsed.dx_key.upper()
        ):
            report.warnings.append(
                {"line": line, "code": code, "message": f"主诊断代码列 {dx_col} 与病种编码不符"}
            )
        if parsed.procedures and (main_col or others_col):
            col_main = canonical_procedure(main_col)[0].upper() if main_col else ""
            col_others = sorted(canonical_procedure(o)[0].upper() for o in others_col)
            code_main = "|".join(parsed.procedures[0]).upper()
            code_others = sorted("|".join(s).upper() for s in parsed.procedures[1:])
            if col_main != code_main or col_others != code_others:
                report.warnings.append(
                    {"line": line, "code": code, "message": "操作列与病种编码中的操作不一致，按病种编码"}
                )

        key = code.upper()
        st = stats.get(key)
        score_cell = _cell(cells, cols, "score")
        score = _dec(score_cell)  # None for a formula without a cached value: the statistics supply it
        if st is not None and st["score"] is not None:
            check["checked"] += 1
            if score is None:
                score = st["score"]
                check["from_stats"] += 1
            else:
                diff = abs(score - st["score"])
                max_diff = max(max_diff, diff)
                if diff > SCORE_TOLERANCE:
                    check["mismatches"] += 1
                    report.warnings.append(
                        {
                            "line": line,
                            "code": code,
                            "message": f"目录分值 {score} 与统计表 {st['score']} 不一致，用目录分值",
                        }
                    )
        if score is None:
            report.rejected.append(
                {"line": line, "code": code, "reason": f"分值缺失或非数字: {clean_text(score_cell)!r}"}
            )
            continue
        if score <= 0:
            report.rejected.append({"line": line, "code": code, "reason": f"分值必须为正数: {score}"})
            continue

        if key in groups:
            prev = groups[key]
            report.duplicates.append(
                {"line": line, "code": code, "first_line": first_line[key], "identical": prev.score == score}
            )
            continue

        note_unknown(line, "dx", parsed.dx_key)
        for slot in parsed.procedures:
            for p in slot:
                note_unknown(line, "px", p)

        names = []
        if parsed.procedures:
            main_name = clean_text(_cell(cells, cols, "main_procedure_name"))
            other_names = clean_text(_cell(cells, cols, "other_procedure_names"))
            names = [n for n in (main_name, other_names) if n]
        avg_cost = _dec(_cell(cells, cols, "avg_cost")) or (st["avg_cost"] if st else None)
        groups[key] = Group(
            code=code,
            type=gtype,
            dx_key=parsed.dx_key,
            score=score,
            name=clean_text(_cell(cells, cols, "diagnosis_name")),
            slots=tuple(frozenset(c.upper() for c in s) for s in parsed.procedures),
            procedures=parsed.procedures,
            procedure_names=tuple(names),
            op_type=parsed.op_type,
            avg_cost=avg_cost,
            avg_los=_float(_cell(cells, cols, "avg_los")) or (st["avg_los"] if st else None),
            cv=_float(_cell(cells, cols, "cv")) or (st["cv"] if st else None),
            case_count=_int(_cell(cells, cols, "case_count")) or (st["case_count"] if st else None),
        )
        first_line[key] = line
        report.accepted[gtype] += 1

    # rows only in the statistics sheet: chapter fallback (CPnn:TYPE), extra 类目:TYPE groups, others
    for key, st in stats.items():
        if key in groups:
            continue
        where = f"{st['sheet']}:{st['line']}"
        try:
            st_parsed = parse_group_code(st["code"])
        except CodeError:
            report.warnings.append(
                {
                    "line": where,
                    "code": st["code"],
                    "message": "仅见于统计表且不是分组编码，保留为参考，不参与入组",
                }
            )
            st_parsed = None
        if st["score"] is None or st["score"] <= 0:
            report.rejected.append({"line": where, "code": st["code"], "reason": "统计表行缺少有效分值"})
            continue
        if st_parsed is not None and st_parsed.group_type == GroupType.CORE:
            report.warnings.append(
                {"line": where, "code": st["code"], "message": "核心病种仅见于统计表，未列入目录，不参与入组"}
            )
            gtype, st_parsed = GroupType.OTHER, None
        elif st_parsed is None:
            gtype = GroupType.OTHER
        else:
            gtype = st_parsed.group_type
            if gtype == GroupType.COMPREHENSIVE:
                report.warnings.append(
                    {"line": where, "code": st["code"], "message": "综合病种仅见于统计表，按统计表导入"}
                )
        groups[key] = Group(
            code=st["code"], type=gtype, dx_key=st_parsed.dx_key if st_parsed else st["code"], score=st["score"],
            name=_generated_name(st["code"], gtype, st_parsed.op_type if st_parsed else None),
            op_type=st_parsed.op_type if st_parsed else None, avg_cost=st["avg_cost"], avg_los=st["avg_los"],
            cv=st["cv"], case_count=st["case_count"],
        )  # fmt: skip
        report.accepted[gtype] += 1

    if region_avg:
        bad = 0
        for st in stats.values():
            if st["avg_cost"] is not None and st["score"] is not None:
                expected = st["avg_cost"] / region_avg * 1000
                if abs(expected - st["score"]) > Decimal("0.01"):
                    bad += 1
        check["formula_mismatches"] = bad
    report.score_check = {**dict(check), "max_diff": str(max_diff)}
    for k in ("checked", "mismatches", "from_stats", "formula_mismatches"):
        report.score_check.setdefault(k, 0)

    if not groups:
        raise CatalogImportError(f"{path.name}: 没有可导入的病种（{len(report.rejected)} 行被拒绝）")
    catalog = Catalog(
        region=region, name=name, groups=tuple(groups.values()), version=version or (str(year) if year else ""),
        year=year, effective_from=effective_from, effective_to=effective_to, region_avg_cost=region_avg,
        source=path.name,
    )  # fmt: skip
    return catalog, report


def terminology_checker(term):
    """``known_code(kind, code)`` for :func:`import_catalog` backed by a loaded terminology.

    A 亚目/类目 is known when some 医保版 code starts with it; a procedure when the exact code exists.
    Returns None for the built-in sample terminology (too small to judge a real catalog).
    """
    if term is None or getattr(term, "is_sample", False):
        return None

    def known(kind: str, code: str) -> bool | None:
        try:
            if kind == "dx":
                return bool(term.dx.with_prefix(code, 1))
            return term.px.get(code) is not None
        except Exception:  # a terminology without these lookups cannot judge
            return None

    return known


def import_optypes(path: str | Path, home: Path | None = None) -> tuple[list[OpTypeEntry], ImportReport]:
    """Read a procedure-type table (code, type or type_code, optional 入选类型 and name)."""
    path = Path(path)
    sheets = read_sheets(path)
    report = ImportReport(source=path.name)
    for sheet in sheets:
        cols = _columns(sheet.header, "optypes", home)
        if "code" in cols and ("type" in cols or "type_code" in cols):
            break
    else:
        raise CatalogImportError(f"{path.name}: 需要“编码”和“类别”（或 type_code）列")
    entries: dict[str, OpTypeEntry] = {}
    for line, cells in sheet.rows:
        report.rows_read += 1
        raw = clean_code(_cell(cells, cols, "code"))
        if not raw:
            report.rejected.append({"line": line, "code": "", "reason": "编码为空"})
            continue
        code, ok = canonical_procedure(raw)
        if not ok:
            report.rejected.append({"line": line, "code": raw, "reason": "不是 ICD-9-CM-3 编码"})
            continue
        type_text = clean_text(_cell(cells, cols, "type"))
        tcode = type_code_of(type_text, clean_text(_cell(cells, cols, "type_code")))
        if tcode is None and (type_text or clean_text(_cell(cells, cols, "type_code"))):
            report.warnings.append(
                {"line": line, "code": code, "message": f"未知类别 {type_text!r}，按默认规则"}
            )
        option = clean_text(_cell(cells, cols, "entry_option")) or None
        if code.upper() in entries:
            report.duplicates.append({"line": line, "code": code})
            continue
        entries[code.upper()] = OpTypeEntry(
            code, tcode, option, clean_text(_cell(cells, cols, "name")) or None
        )
        report.accepted[tcode or "未分类"] += 1
    if not entries:
        raise CatalogImportError(f"{path.name}: 没有可导入的行")
    return list(entries.values()), report


__all__ = [
    "ImportReport",
    "CatalogImportError",
    "TableError",
    "import_catalog",
    "import_optypes",
    "format_procedures",
]
