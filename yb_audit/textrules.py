"""Numbers the bureau states in words: 限定值域 values and the 备注 of text rules.

Only what a sentence states explicitly is read; anything else leaves the rule as a manual-check
reminder. Chinese statutory convention applies: 以上 / 以下 include the number (GB, 民法典 第1259条),
未满 / 不满 / 小于 exclude it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_CN_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


def cn_number(text: str) -> int | None:
    """'14' / '十四' / '一' / '二十' → int; None when not a number up to 99."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _CN_DIGITS and ch != "十" for ch in text):
        return None
    if "十" not in text:
        return _CN_DIGITS[text] if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    value = (_CN_DIGITS.get(tens, 0) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)
    return value if (not tens or tens in _CN_DIGITS) and (not ones or ones in _CN_DIGITS) else None


_NUM = r"(\d+|[一二两三四五六七八九十]+)"
_UNIT_DAYS = {"天": 1, "日": 1, "周": 7, "星期": 7, "个月": 30, "月": 30, "年": 365}


def duration_days(text: str) -> int | None:
    """'14天' / '2周' / '12个月' / '一年' → days (month = 30, year = 365); None when not a duration."""
    match = re.fullmatch(rf"\s*{_NUM}\s*(天|日|周|星期|个月|月|年)\s*", text or "")
    if not match:
        return None
    number = cn_number(match.group(1))
    return None if number is None or number <= 0 else number * _UNIT_DAYS[match.group(2)]


def level_number(text: str) -> int | None:
    """'二级' / '二级及以上' / '三级医院' → 2 / 2 / 3."""
    match = re.match(r"\s*([一二三123])\s*级", text or "")
    return {"一": 1, "二": 2, "三": 3, "1": 1, "2": 2, "3": 3}[match.group(1)] if match else None


def age_bounds(text: str) -> dict[str, Any] | None:
    """Age limits a sentence states, as ``{"min_age": "N"|None, "max_age": "N"|None,
    "max_inclusive": bool}`` (years, as decimal strings so rules stay plain JSON); None when it
    states none (e.g. "超出法定就业年龄")."""
    text = text or ""
    match = re.search(rf"{_NUM}\s*(?:周?岁)?\s*(?:至|到|-|~|—|－)\s*{_NUM}\s*周?岁", text)
    if match:
        low, high = cn_number(match.group(1)), cn_number(match.group(2))
        if low is not None and high is not None and low <= high:
            return {"min_age": str(low), "max_age": str(high), "max_inclusive": True}
    found: dict[str, Any] = {"min_age": None, "max_age": None, "max_inclusive": True}
    for number, word in re.findall(rf"{_NUM}\s*周?岁\s*(及以上|以上|及以下|以下)", text):
        value = cn_number(number)
        if value is None:
            continue
        if word.endswith("以上"):
            found["min_age"] = str(value)
        else:
            found["max_age"], found["max_inclusive"] = str(value), True
    for number in re.findall(rf"(?:未满|不满|小于|低于){_NUM}\s*周?岁", text):
        value = cn_number(number)
        if value is not None:
            found["max_age"], found["max_inclusive"] = str(value), False
    for number in re.findall(rf"(?:满|大于等于|不小于){_NUM}\s*周?岁", text):
        value = cn_number(number)
        if value is not None and found["min_age"] is None:
            found["min_age"] = str(value)
    if found["min_age"] is None and found["max_age"] is None:
        return None
    return found


def course_checks(text: str) -> list[dict[str, Any]]:
    """The limits a 限定疗程 remark states, each one check:

    * ``{"check": "paid_days", "days": N}`` — 支付不超过 N 天: at most N distinct charged days;
    * ``{"check": "span_days", "days": N}`` — 总时间不超过 N 天 / 支付不超过 N 个月、N 年: no charge
      on or after the N-th day counted from the first charge;
    * ``{"check": "cycle", "limit": K, "days": M}`` — 间隔时间不短于 M 天 (K = 1) / 每周最多支付 K 次
      (M = 7): at most K in any M consecutive days.
    """
    text = unicodedata.normalize("NFKC", text or "")
    checks: list[dict[str, Any]] = []
    span = re.search(rf"总时间不超过\s*{_NUM}\s*(天|日|周|个月|月|年)", text)
    if span:
        days = duration_days(span.group(1) + span.group(2))
        if days:
            checks.append({"check": "span_days", "days": days})
    for number, unit in re.findall(rf"支付不超过\s*{_NUM}\s*(天|日|周|个月|月|年)", text):
        days = duration_days(number + unit)
        if days:
            kind = "paid_days" if unit in ("天", "日") else "span_days"
            checks.append({"check": kind, "days": days})
    interval = re.search(rf"间隔(?:时间)?不(?:短|少)于\s*{_NUM}\s*(天|日|周)", text)
    if interval:
        days = duration_days(interval.group(1) + interval.group(2))
        if days:
            checks.append({"check": "cycle", "limit": 1, "days": days})
    weekly = re.search(rf"每(?:周|星期)最多(?:支付|收费)?\s*{_NUM}\s*次", text)
    if weekly:
        limit = cn_number(weekly.group(1))
        if limit:
            checks.append({"check": "cycle", "limit": limit, "days": 7})
    unique: list[dict[str, Any]] = []
    for check in checks:
        if check not in unique:
            unique.append(check)
    return unique


def also_emergency(text: str) -> bool:
    """A 限定就医方式 住院 rule whose text also admits 急诊 ("限急诊或住院患者")."""
    text = unicodedata.normalize("NFKC", text or "")
    return bool(re.search(r"急诊\s*(?:或|和|、|及)\s*住院|住院\s*(?:或|和|、|及)\s*急诊", text))


_WINDOWS = {
    "单日": ("day", 0),
    "同日": ("day", 0),
    "当日": ("day", 0),
    "同一天": ("day", 0),
    "每日": ("day", 0),
    "单次就诊": ("stay", 0),
    "同次就诊": ("stay", 0),
    "单次住院": ("stay", 0),
    "一次住院": ("stay", 0),
    "同一小时": ("hours", 1),
    "同一次": ("stay", 0),
}


def duplicate_window(text: str) -> tuple[str, int] | None:
    """频度 of 重复收费 → ("day", 0) | ("stay", 0) | ("hours", N); None when unknown."""
    value = "".join((text or "").split())
    if value in _WINDOWS:
        return _WINDOWS[value]
    match = re.fullmatch(rf"(?:同一)?{_NUM}(?:个)?小时(?:内)?", value)
    if match:
        hours = cn_number(match.group(1))
        return ("hours", hours) if hours else None
    return None
