"""Group-code grammar and code clean-up for catalog import.

病种编码 grammar (DIP 2.0, extended for 3.0):

- core:          ``亚目[:主操作[_相关操作[+相关操作…]]]``, each operation may be ``a|b`` (any of);
- comprehensive: ``类目:TYPE``, TYPE in SS / ZLXCZ / ZDXCZ / BSZL, or a 类目 range ``C00-C14:TYPE``;
- chapter:       ``CPnn:TYPE``.

Catalog import is not on the hot path, so it leans on the terminology layer's normaliser for the
canonical spelling (``44.1300X001`` → ``44.1300x001``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from grouper.model import GroupType, OpType

_WS = re.compile(r"\s+")
_LEIMU = re.compile(r"^[A-Z]\d{2}$")
_YAMU = re.compile(r"^[A-Z]\d{2}\.[0-9X]$")
_CHAPTER = re.compile(r"^CP(\d{2})$")
_RANGE = re.compile(r"^([A-Z]\d{2})[-~–]([A-Z]\d{2})$")
LIST_SEPARATORS = re.compile(r"[,，、;；/\s]+")


def clean_text(value: object) -> str:
    """Cell text without width variants, line breaks or surrounding blanks."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return re.sub(r"\s*[\r\n]+\s*", "", str(value)).strip()


def clean_code(value: object) -> str:
    """Code cell text: also width-normalised (NFKC) and without any blanks."""
    return _WS.sub("", unicodedata.normalize("NFKC", clean_text(value)))


def canonical_dx_key(raw: str) -> str | None:
    """亚目 / 类目 as published (``C56.X`` → ``C56.x``), or None when it is not one."""
    code = raw.upper()
    if _LEIMU.match(code):
        return code
    if _YAMU.match(code):
        return code[:4] + ("x" if code[4] == "X" else code[4])
    return None


def canonical_procedure(raw: str) -> tuple[str, bool]:
    """(canonical code, ok) through the terminology normaliser."""
    from terminology.normalize import normalize_procedure

    n = normalize_procedure(raw)
    if n.ok and n.code:
        return n.code, True
    return raw, False


@dataclass(frozen=True, slots=True)
class ParsedCode:
    group_type: str
    dx_key: str
    op_type: str | None = None
    procedures: tuple[tuple[str, ...], ...] = ()  # slots of alternatives, canonical codes
    bad_procedures: tuple[str, ...] = ()


class CodeError(ValueError):
    """A 病种编码 that does not follow the grammar."""


def split_alternatives(text: str) -> tuple[str, ...]:
    return tuple(a for a in text.split("|") if a)


def parse_group_code(code: str) -> ParsedCode:
    """Parse a cleaned 病种编码; raises CodeError with a reason a bureau clerk understands."""
    if not code:
        raise CodeError("病种编码为空")
    dx, sep, rest = code.partition(":")
    dx_u = dx.upper()
    chapter = _CHAPTER.match(dx_u)
    if chapter:
        if rest.upper() not in OpType.ALL:
            raise CodeError(f"章节兜底病种 {code} 的类型应为 SS/ZLXCZ/ZDXCZ/BSZL")
        number = int(chapter.group(1))
        if not 1 <= number <= 22:
            raise CodeError(f"章节号 {number} 不在 01–22 之间")
        return ParsedCode(GroupType.CHAPTER, dx_u, rest.upper())
    span = _RANGE.match(dx_u)
    if span:
        lo, hi = span.groups()
        if lo > hi or rest.upper() not in OpType.ALL:
            raise CodeError(f"类目范围病种 {code} 应为 起始类目-结束类目:TYPE（如 C00-C14:SS）")
        return ParsedCode(GroupType.COMPREHENSIVE, f"{lo}-{hi}", rest.upper())
    key = canonical_dx_key(dx)
    if key is None:
        raise CodeError(f"诊断部分 {dx!r} 不是 ICD-10 亚目或类目")
    if sep and rest.upper() in OpType.ALL:
        if len(key) != 3:
            raise CodeError(f"综合病种 {code} 的诊断部分应为 3 位类目")
        return ParsedCode(GroupType.COMPREHENSIVE, key, rest.upper())
    if len(key) != 5:
        raise CodeError(f"核心病种 {code} 的诊断部分应为 4 位亚目（如 K35.3）")
    if not sep:
        return ParsedCode(GroupType.CORE, key)
    if not rest:
        raise CodeError(f"{code} 冒号后缺少操作编码")
    main, _, related = rest.partition("_")
    slots_raw = [main] + ([r for r in related.split("+")] if related else [])
    slots: list[tuple[str, ...]] = []
    bad: list[str] = []
    for slot in slots_raw:
        alts = split_alternatives(slot)
        if not alts:
            raise CodeError(f"{code} 含空的操作编码")
        canon = []
        for a in alts:
            c, ok = canonical_procedure(a)
            if not ok:
                bad.append(a)
            canon.append(c)
        slots.append(tuple(canon))
    return ParsedCode(GroupType.CORE, key, None, tuple(slots), tuple(bad))


def format_procedures(slots: tuple[tuple[str, ...], ...]) -> str:
    """Inverse of the procedure part of the grammar: ``main_rel+rel``."""
    parts = ["|".join(s) for s in slots]
    return parts[0] + ("_" + "+".join(parts[1:]) if len(parts) > 1 else "") if parts else ""
