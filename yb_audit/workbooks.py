"""NHSA rule-library workbooks (and hospital CSVs in the same layouts) → rules, with a report.

A workbook is recognised by the *roles* of its header cells, not by its name: ``国标代码`` /
``药品代码`` / ``项目编码`` / ``项目代码`` are all "code", ``限定对象`` / ``限定性别`` / ``限定值域``
are "target", and so on (:data:`ROLE_ALIASES`). Layouts:

* drug restrictions: one sheet names a drug (``药品通用名``) with ``限定类型`` and its value, another
  lists the drug's 医保药品代码 under the same name — joined by name;
* item (or drug) restrictions on one sheet: name, code, ``限定类型``, value;
* 重复收费: ``频度``, ``主项编码``, ``从项编码`` (+ names, ``备注``);
* 限定频次: code, ``限制数量``, ``数量单位``;  限定周期: code, ``频次上限``, ``疗程周期``;
* text rules: code + ``备注`` — the kind (限定年龄 / 限定疗程) from the sheet title or file name.

Anything else is rejected as a whole with the reason (:class:`LayoutError`); within a recognised
layout a bad row is rejected with its line and reason and the rest is kept. Pure: sheets in, a
:class:`ParsedRuleSet` out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cds_service.tables import header_key
from yb_audit import kinds
from yb_audit.codes import is_national_code
from yb_audit.model import DRUG, ITEM, Rule
from yb_audit.tables import HEADER_SCAN_ROWS, Sheet, code_text, fold
from yb_audit.textrules import (
    age_bounds,
    also_emergency,
    cn_number,
    course_checks,
    duplicate_window,
    duration_days,
    level_number,
)

ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("药品通用名", "通用名", "药品名称", "项目名称", "名称"),
    "text": ("药品说明", "项目说明", "说明", "限定说明", "规则说明", "备注", "知识点说明"),
    "kind": ("限定类型", "规则类型"),
    "target": ("限定对象", "限定性别", "限定值域", "限定范围", "限定值"),
    "code": (
        "国标代码",
        "药品代码",
        "项目编码",
        "项目代码",
        "医保编码",
        "医保代码",
        "医保目录编码",
        "国家编码",
        "编码",
        "代码",
    ),
    "seq": ("序号",),
    "window": ("频度", "重复频度"),
    "main_name": ("主项名称",),
    "main_code": ("主项编码", "主项代码"),
    "sub_name": ("从项名称",),
    "sub_code": ("从项编码", "从项代码"),
    "limit": ("限制数量", "频次上限", "数量上限", "次数上限"),
    "unit": ("数量单位", "计量单位", "单位"),
    "period": ("疗程周期", "周期天数", "周期"),
    "severity": ("严重程度",),
    "rule_id": ("规则编号", "规则ID"),
}
_ALIAS_ROLE = {header_key(alias): role for role, aliases in ROLE_ALIASES.items() for alias in aliases}
_DRUG_NAME_HEADERS = {"药品通用名", "通用名", "药品名称"}
_AGE_GROUPS = ("儿童", "小儿", "新生儿", "婴幼儿", "婴儿")
_CARE_SETTINGS = ("住院", "门诊", "急诊")
_INSURANCE_TARGETS = ("工伤", "生育", "职工", "居民", "离休")
_FREQUENCY_UNITS = {"日": "日", "天": "日", "小时": "小时"}
_NOTE_PREFIXES = ("备注", "注：", "注:", "说明：", "说明:")
_TITLE_KINDS = (("年龄", kinds.AGE.key), ("疗程", kinds.COURSE.key))
#: Roles whose values are matched, not shown: compared in their NFKC form.
_FOLDED_ROLES = frozenset({"kind", "target", "window", "limit", "unit", "period", "severity", "seq"})


class LayoutError(ValueError):
    """The file's layout is not one we know: nothing of it is imported."""


@dataclass(frozen=True)
class Reject:
    sheet: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.sheet} 第 {self.line} 行" if self.line else self.sheet
        return f"{where}：{self.reason}"


@dataclass
class ParsedRuleSet:
    name: str
    batch: str
    title: str
    layout: str
    rules: list[Rule] = field(default_factory=list)
    rows: int = 0
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def codes(self) -> int:
        return len({c for r in self.rules for c in (*r.codes, *r.codes2)})

    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.rules})


# ----------------------------------------------------------------------------- names


def split_name(stem: str) -> tuple[str, str, str]:
    """File stem → (rule-set name, batch, title): '【第一批】药品规则库(限定性别对象)' →
    ('【第一批】药品规则库(限定性别对象)', '第一批', '药品规则库(限定性别对象)')."""
    name = " ".join(unicodedata.normalize("NFKC", stem).split())
    match = re.match(r"^[【\[]\s*([^】\]]+?)\s*[】\]]\s*(.*)$", name)
    if match:
        return name, match.group(1), match.group(2) or match.group(1)
    return name, name, name


def id_prefix(batch: str) -> str:
    """'第一批' → 'B01', '第八批-1' → 'B08-1'; other names are kept (spaces removed)."""
    match = re.fullmatch(r"第\s*(\d+|[一二两三四五六七八九十]+)\s*批\s*(?:[-－—_]\s*(\d+))?", batch)
    if match:
        number = cn_number(match.group(1))
        if number is not None:
            return f"B{number:02d}" + (f"-{match.group(2)}" if match.group(2) else "")
    return re.sub(r"\s+", "", batch)


# ----------------------------------------------------------------------------- headers and layouts


@dataclass(frozen=True)
class Header:
    line_index: int  # index into sheet.rows
    roles: dict[str, int]  # role → column
    labels: dict[str, str]  # role → header text as published


def find_header(sheet: Sheet) -> Header | None:
    best: Header | None = None
    for index, (_, cells) in enumerate(sheet.rows[:HEADER_SCAN_ROWS]):
        roles: dict[str, int] = {}
        labels: dict[str, str] = {}
        for column, cell in enumerate(cells):
            role = _ALIAS_ROLE.get(header_key(cell))
            if role and role not in roles:
                roles[role] = column
                labels[role] = cell
        if len(roles) >= 2 and (best is None or len(roles) > len(best.roles)):
            best = Header(index, roles, labels)
    return best


def _layout_of(header: Header) -> str | None:
    roles = set(header.roles)
    if {"main_code", "sub_code", "window"} <= roles:
        return "duplicate"
    if {"code", "limit", "period"} <= roles:
        return "cycle"
    if {"code", "limit", "unit"} <= roles:
        return "frequency"
    if {"code", "kind", "target"} <= roles:
        return "restriction"
    if {"name", "kind", "target"} <= roles:
        return "drug_restrictions"
    if {"code", "text"} <= roles:
        return "text"
    if {"name", "code"} <= roles:
        return "code_list"
    return None


def _describe(sheet: Sheet, header: Header | None) -> str:
    if header is None:
        first = next((cells for _, cells in sheet.rows[:3]), ())
        return f"工作表「{sheet.title}」找不到表头（前几行：{' | '.join(c for c in first if c)[:80]}）"
    cells = sheet.rows[header.line_index][1]
    return f"工作表「{sheet.title}」表头 {' | '.join(c for c in cells if c)[:120]}"


# ----------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    sheet: str
    line: int
    values: dict[str, str]

    def get(self, role: str) -> str:
        return self.values.get(role, "")


def _rows(sheet: Sheet, header: Header, parsed: ParsedRuleSet) -> list[Row]:
    """Data rows below the header; totals and the bureau's footnotes go to ``parsed.notes``."""
    out: list[Row] = []
    for line, cells in sheet.rows[header.line_index + 1 :]:
        values = {role: cells[col] if col < len(cells) else "" for role, col in header.roles.items()}
        values.update({role: fold(v) for role, v in values.items() if role in _FOLDED_ROLES})
        filled = [c for c in cells if c]
        if not filled:
            continue
        first = filled[0]
        if len(filled) == 1 and first.startswith(_NOTE_PREFIXES):
            parsed.notes.append(first)
            continue
        if first in ("合计", "总计", "小计") and not values.get("code"):
            continue
        if all(not v for role, v in values.items() if role != "seq"):
            continue
        out.append(Row(sheet.title, line, values))
    return out


def _subject(header: Header, codes: Sequence[str], title: str) -> str:
    if header.labels.get("name") in _DRUG_NAME_HEADERS:
        return DRUG
    drug = sum(1 for c in codes if is_national_code(c, DRUG))
    item = sum(1 for c in codes if is_national_code(c, ITEM))
    if drug or item:
        return DRUG if drug > item else ITEM
    return DRUG if "药品" in title else ITEM


def _code(raw: str, subject: str) -> tuple[str | None, str | None]:
    """(normalised code, problem)."""
    code = code_text(raw, 15 if subject == ITEM else None)
    if not code:
        return None, "编码为空"
    if not is_national_code(code, subject):
        expected = "20 或 23 位医保药品代码" if subject == DRUG else "15 位医疗服务项目代码"
        return None, f"编码 {code} 不是{expected}"
    return code, None


# ----------------------------------------------------------------------------- per-kind values


def _target_params(kind: str, target: str, text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The parameters a 限定类型 value states, or the reason it cannot be read."""
    value = target.strip()
    if kind == kinds.SEX.key:
        sex = {"男": "男", "男性": "男", "女": "女", "女性": "女"}.get(value)
        return ({"sex": sex}, None) if sex else (None, f"限定性别应为 男 或 女，而不是「{value}」")
    if kind == kinds.AGE_GROUP.key:
        group = "儿童" if value == "小儿" else value
        if group in _AGE_GROUPS:
            return {"group": group}, None
        bounds = age_bounds(value)
        if bounds:
            return {"group": value, **bounds}, None
        return None, f"限定对象「{value}」不是已知的年龄人群（{'、'.join(_AGE_GROUPS)}）"
    if kind == kinds.INSURANCE.key:
        insurance = value.removesuffix("保险")
        if insurance in _INSURANCE_TARGETS:
            return {"insurance": insurance}, None
        return None, f"限定保险类型「{value}」无法识别"
    if kind == kinds.CARE_SETTING.key:
        settings = [s for s in _CARE_SETTINGS if s in value]
        if not settings:
            return None, f"限定就医方式「{value}」无法识别（住院 / 门诊 / 急诊）"
        if settings == ["住院"] and also_emergency(text):
            settings.append("急诊")
        return {"settings": settings}, None
    if kind == kinds.HOSPITAL_LEVEL.key:
        level = level_number(value)
        return ({"min_level": level}, None) if level else (None, f"限定机构等级「{value}」无法识别")
    if kind == kinds.DRUG_COURSE.key:
        days = duration_days(value)
        return ({"max_days": days}, None) if days else (None, f"限定支付疗程「{value}」不是天数")
    if kind == kinds.MAIN_SECONDARY.key:
        return ({"group": value}, None) if value else (None, "限定值域（手术组）为空")
    return None, f"限定类型「{kinds.KINDS[kind].label}」不能用「限定值」表达"


def _text_params(kind: str, text: str) -> dict[str, Any]:
    """限定年龄 / 限定疗程 stated in words: the numbers it states, else a manual-check rule."""
    if kind == kinds.AGE.key:
        bounds = age_bounds(text)
        return bounds if bounds else {"manual": True}
    checks = course_checks(text)
    return {"checks": checks} if checks else {"manual": True}


def _severity(row: Row, kind: str, params: dict[str, Any]) -> tuple[str, str | None]:
    stated = row.get("severity")
    if stated:
        return (
            (stated, None) if stated in kinds.SEVERITIES else (kinds.VIOLATION, f"严重程度「{stated}」无效")
        )
    if params.get("manual"):
        return kinds.SUSPICIOUS, None
    return kinds.KINDS[kind].severity, None


# ----------------------------------------------------------------------------- building rules


class _Builder:
    """Collects rules of one file with ids ``<prefix>-<D|I><kind code>-<nnnn>`` (reading order)."""

    def __init__(self, parsed: ParsedRuleSet, prefix: str, source: str) -> None:
        self.parsed = parsed
        self.prefix = prefix
        self.source = source
        self.count = 0

    def add(
        self,
        row: Row,
        kind: str,
        subject: str,
        codes: Sequence[str],
        params: dict[str, Any],
        name: str,
        text: str,
        item_name: str,
        codes2: Sequence[str] = (),
        item_name2: str = "",
    ) -> None:
        severity, problem = _severity(row, kind, params)
        if problem:
            self.parsed.rejects.append(Reject(row.sheet, row.line, problem))
            return
        self.count += 1
        kind_def = kinds.KINDS[kind]
        rule_id = (
            row.get("rule_id")
            or f"{self.prefix}-{'D' if subject == DRUG else 'I'}{kind_def.code}-{self.count:04d}"
        )
        self.parsed.rules.append(
            Rule(
                rule_id=rule_id,
                kind=kind,
                batch=self.parsed.batch,
                ruleset=self.parsed.name,
                name=name[:200],
                subject=subject,
                codes=tuple(dict.fromkeys(codes)),
                params=params,
                text=text,
                severity=severity,
                codes2=tuple(dict.fromkeys(codes2)),
                source=f"{self.source} {row.sheet} 第 {row.line} 行",
                item_name=item_name,
                item_name2=item_name2,
            )
        )


def _restriction_name(kind: str, item: str, params: dict[str, Any], target: str) -> str:
    label = kinds.KINDS[kind].label
    if kind == kinds.MAIN_SECONDARY.key:
        return f"{label}：{params['group']}"
    if kind == kinds.HOSPITAL_LEVEL.key:
        limit = f"限{target}及以上医疗机构" if "以上" not in target else f"限{target}"
    elif kind == kinds.DRUG_COURSE.key:
        limit = f"支付不超过{target}"
    elif kind == kinds.SEX.key:
        limit = f"限{target}性"
    else:
        limit = f"限{target}"
    return f"{label}：{item}（{limit}）" if item else f"{label}：{limit}"


def _kind_of_row(row: Row, fallback: str | None) -> tuple[str | None, str | None]:
    stated = row.get("kind")
    if stated:
        kind = kinds.kind_of(stated)
        return (kind, None) if kind else (None, f"限定类型「{stated}」不支持")
    if fallback:
        return fallback, None
    return None, "缺少限定类型"


def _parse_restrictions(sheet: Sheet, header: Header, parsed: ParsedRuleSet, build: _Builder) -> None:
    """One sheet with name, code, 限定类型 and value: rows with the same drug / restriction form one
    rule (a drug listed with each of its codes); 限定主次操作 rows form one rule per operation group."""
    rows = _rows(sheet, header, parsed)
    parsed.rows += len(rows)
    subject = _subject(header, [code_text(r.get("code")) for r in rows], sheet.title + parsed.title)
    groups: dict[tuple, tuple[Row, str, dict[str, Any], list[str]]] = {}
    for row in rows:
        kind, problem = _kind_of_row(row, None)
        if kind is None:
            parsed.rejects.append(Reject(row.sheet, row.line, problem or ""))
            continue
        code, problem = _code(row.get("code"), subject)
        if code is None:
            parsed.rejects.append(Reject(row.sheet, row.line, problem or ""))
            continue
        params, problem = _target_params(kind, row.get("target"), row.get("text"))
        if params is None:
            parsed.rejects.append(Reject(row.sheet, row.line, problem or ""))
            continue
        if kind == kinds.MAIN_SECONDARY.key:
            key: tuple = (kind, params["group"])
        elif subject == DRUG:
            key = (kind, row.get("name"), row.get("target"), row.get("text"))
        else:
            key = (kind, code, row.line)
        if key not in groups:
            groups[key] = (row, kind, params, [])
        groups[key][3].append(code)
    for row, kind, params, codes in groups.values():
        item = "" if kind == kinds.MAIN_SECONDARY.key else row.get("name")
        name = _restriction_name(kind, item, params, row.get("target"))
        text = row.get("text") or f"{row.get('kind') or kinds.KINDS[kind].label}：{row.get('target')}"
        build.add(row, kind, subject, codes, params, name, text, item)


def _parse_drug_pair(
    restrictions: tuple[Sheet, Header],
    code_sheets: list[tuple[Sheet, Header]],
    parsed: ParsedRuleSet,
    build: _Builder,
) -> None:
    """Restrictions by 药品通用名 on one sheet, the drug's codes on the others, joined by name."""
    sheet, header = restrictions
    drugs: dict[str, tuple[Row, str, dict[str, Any]]] = {}
    order: list[str] = []
    rows = _rows(sheet, header, parsed)
    parsed.rows += len(rows)
    for row in rows:
        name = row.get("name")
        if not name:
            parsed.rejects.append(Reject(row.sheet, row.line, "药品通用名为空"))
            continue
        kind, problem = _kind_of_row(row, None)
        params = None
        if kind is not None:
            params, problem = _target_params(kind, row.get("target"), row.get("text"))
        if kind is None or params is None:
            parsed.rejects.append(Reject(row.sheet, row.line, problem or ""))
            continue
        if name in drugs:
            parsed.rejects.append(
                Reject(row.sheet, row.line, f"药品「{name}」重复（已在第 {drugs[name][0].line} 行）")
            )
            continue
        drugs[name] = (row, kind, params)
        order.append(name)
    codes: dict[str, list[str]] = {name: [] for name in order}
    owner: dict[str, str] = {}
    for code_sheet, code_header in code_sheets:
        code_rows = _rows(code_sheet, code_header, parsed)
        parsed.rows += len(code_rows)
        for row in code_rows:
            name = row.get("name")
            if name not in drugs:
                parsed.rejects.append(Reject(row.sheet, row.line, f"药品「{name}」不在限定规则表中"))
                continue
            stated = row.get("kind")
            if stated and kinds.kind_of(stated) != drugs[name][1]:
                parsed.rejects.append(Reject(row.sheet, row.line, f"限定类型「{stated}」与限定规则表不一致"))
                continue
            code, problem = _code(row.get("code"), DRUG)
            if code is None:
                parsed.rejects.append(Reject(row.sheet, row.line, problem or ""))
                continue
            if code in owner and owner[code] != name:
                parsed.rejects.append(Reject(row.sheet, row.line, f"代码 {code} 已属于药品「{owner[code]}」"))
                continue
            owner[code] = name
            codes[name].append(code)
    for name in order:
        row, kind, params = drugs[name]
        if not codes[name]:
            parsed.rejects.append(Reject(row.sheet, row.line, f"药品「{name}」没有任何医保药品代码"))
            continue
        text = row.get("text") or f"{row.get('kind')}：{row.get('target')}"
        build.add(
            row,
            kind,
            DRUG,
            codes[name],
            params,
            _restriction_name(kind, name, params, row.get("target")),
            text,
            name,
        )


def _parse_duplicates(sheet: Sheet, header: Header, parsed: ParsedRuleSet, build: _Builder) -> None:
    rows = _rows(sheet, header, parsed)
    parsed.rows += len(rows)
    seen: dict[tuple, int] = {}
    for row in rows:
        main, problem = _code(row.get("main_code"), ITEM)
        sub, problem2 = (None, None) if main is None else _code(row.get("sub_code"), ITEM)
        window = duplicate_window(row.get("window"))
        reason = problem or problem2
        if main is None or sub is None:
            parsed.rejects.append(Reject(row.sheet, row.line, reason or ""))
            continue
        if window is None:
            parsed.rejects.append(Reject(row.sheet, row.line, f"频度「{row.get('window')}」无法识别"))
            continue
        if main == sub:
            parsed.rejects.append(Reject(row.sheet, row.line, "主项与从项编码相同"))
            continue
        key = (main, sub, window)
        if key in seen:
            parsed.rejects.append(Reject(row.sheet, row.line, f"与第 {seen[key]} 行重复"))
            continue
        seen[key] = row.line
        params = {"window": window[0], "hours": window[1], "frequency": row.get("window")}
        main_name, sub_name = row.get("main_name"), row.get("sub_name")
        name = f"重复收费：{main_name or main} 含 {sub_name or sub}（{row.get('window')}）"
        text = row.get("text") or f"{row.get('window')}内收取「{main_name}」时不得另收「{sub_name}」"
        build.add(row, kinds.DUPLICATE.key, ITEM, [main], params, name, text, main_name, [sub], sub_name)


def _positive_int(text: str) -> int | None:
    value = cn_number(text.removesuffix(".0")) if text else None
    return value if value and value > 0 else None


def _parse_limits(sheet: Sheet, header: Header, parsed: ParsedRuleSet, build: _Builder, layout: str) -> None:
    """限定频次 (limit per 日 / 小时 of a day) and 限定周期 (limit per N days)."""
    rows = _rows(sheet, header, parsed)
    parsed.rows += len(rows)
    subject = _subject(header, [code_text(r.get("code")) for r in rows], sheet.title + parsed.title)
    for row in rows:
        code, problem = _code(row.get("code"), subject)
        limit = _positive_int(row.get("limit"))
        if code is None or limit is None:
            parsed.rejects.append(
                Reject(row.sheet, row.line, problem or f"数量上限「{row.get('limit')}」不是正整数")
            )
            continue
        item = row.get("name")
        if layout == "frequency":
            unit = _FREQUENCY_UNITS.get(row.get("unit"))
            if unit is None:
                parsed.rejects.append(
                    Reject(row.sheet, row.line, f"数量单位「{row.get('unit')}」不支持（日 / 天 / 小时）")
                )
                continue
            params: dict[str, Any] = {"limit": limit, "unit": unit}
            name = f"限定频次：{item or code}（每日不超过 {limit} {'次' if unit == '日' else unit}）"
            text = (
                row.get("text")
                or f"{header.labels['limit']} {limit}，{header.labels['unit']} {row.get('unit')}"
            )
            build.add(row, kinds.FREQUENCY.key, subject, [code], params, name, text, item)
        else:
            days = _positive_int(row.get("period")) or duration_days(row.get("period"))
            if days is None:
                parsed.rejects.append(Reject(row.sheet, row.line, f"疗程周期「{row.get('period')}」不是天数"))
                continue
            params = {"limit": limit, "days": days}
            name = f"限定周期：{item or code}（{days} 天内不超过 {limit} 次）"
            text = row.get("text") or f"{header.labels['limit']} {limit}，{header.labels['period']} {days}"
            build.add(row, kinds.CYCLE.key, subject, [code], params, name, text, item)


def _title_kind(*titles: str) -> str | None:
    for title in titles:
        for word, kind in _TITLE_KINDS:
            if word in title:
                return kind
    return None


def _parse_text_rules(sheet: Sheet, header: Header, parsed: ParsedRuleSet, build: _Builder) -> None:
    rows = _rows(sheet, header, parsed)
    parsed.rows += len(rows)
    subject = _subject(header, [code_text(r.get("code")) for r in rows], sheet.title + parsed.title)
    fallback = _title_kind(sheet.title, parsed.title)
    for row in rows:
        kind, problem = _kind_of_row(row, fallback)
        if kind is None or kind not in (kinds.AGE.key, kinds.COURSE.key):
            parsed.rejects.append(
                Reject(
                    row.sheet,
                    row.line,
                    problem
                    or f"{kinds.KINDS[kind or ''].label if kind else ''} 需要限定值，不能只有文字说明",
                )
            )
            continue
        code, problem = _code(row.get("code"), subject)
        text = row.get("text")
        if code is None or not text:
            parsed.rejects.append(Reject(row.sheet, row.line, problem or "备注（规则文字）为空"))
            continue
        item = row.get("name")
        build.add(
            row,
            kind,
            subject,
            [code],
            _text_params(kind, text),
            f"{kinds.KINDS[kind].label}：{item or code}",
            text,
            item,
        )


# ----------------------------------------------------------------------------- entry point


def parse_rule_tables(
    sheets: Sequence[Sheet], stem: str, source: str, prefix: str | None = None
) -> ParsedRuleSet:
    """Rules of one file (its sheets), named after its stem. Raises :class:`LayoutError`."""
    name, batch, title = split_name(stem)
    if not sheets:
        raise LayoutError("文件中没有任何数据")
    headed = [(sheet, find_header(sheet)) for sheet in sheets]
    layouts = [(sheet, header, _layout_of(header) if header else None) for sheet, header in headed]
    partial = [(s, h) for s, h, layout in layouts if h is not None and layout is None]
    if partial:
        raise LayoutError("无法识别的表格格式：" + "；".join(_describe(s, h) for s, h in partial))
    recognised = [(s, h, layout) for s, h, layout in layouts if layout is not None and h is not None]
    if not recognised:
        raise LayoutError("无法识别的表格格式：" + "；".join(_describe(s, h) for s, h in headed))
    parsed = ParsedRuleSet(name, batch, title, "")
    parsed.notes += [f"工作表「{s.title}」没有表头，已忽略" for s, h in headed if h is None]
    build = _Builder(parsed, prefix or id_prefix(batch), source)
    restriction_sheets = [(s, h) for s, h, layout in recognised if layout == "drug_restrictions"]
    code_sheets = [(s, h) for s, h, layout in recognised if layout == "code_list"]
    if restriction_sheets or code_sheets:
        if len(restriction_sheets) != 1 or not code_sheets:
            raise LayoutError(
                "药品规则应有一张限定规则表（药品通用名、限定类型、限定对象）和至少一张代码表（药品通用名、国标代码）；"
                f"实际为 {len(restriction_sheets)} 张规则表、{len(code_sheets)} 张代码表"
            )
        _parse_drug_pair(restriction_sheets[0], code_sheets, parsed, build)
        parsed.layout = "drug_restrictions+codes"
    handlers: dict[str, Callable[[Sheet, Header, ParsedRuleSet, _Builder], None]] = {
        "restriction": _parse_restrictions,
        "duplicate": _parse_duplicates,
        "frequency": lambda s, h, p, b: _parse_limits(s, h, p, b, "frequency"),
        "cycle": lambda s, h, p, b: _parse_limits(s, h, p, b, "cycle"),
        "text": _parse_text_rules,
    }
    for sheet, header, layout in recognised:
        if layout in handlers:
            handlers[layout](sheet, header, parsed, build)
            parsed.layout = "+".join(x for x in (parsed.layout, layout) if x)
    if not parsed.rules:
        reasons = "；".join(str(r) for r in parsed.rejects[:5])
        raise LayoutError(
            f"没有读到任何有效规则（共 {parsed.rows} 行）" + (f"：{reasons}" if reasons else "")
        )
    return parsed
