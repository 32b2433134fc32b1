"""Hierarchy of the two code systems: chapter, block, 类目 and 亚目.

DIP keys diagnoses on the 4-character 亚目 (core groups) and the 3-character 类目
(comprehensive groups), and the chapter-fallback groups on the ICD-10 chapter, so these helpers sit
on the grouper's hot path: they are pure string functions with cached table lookups. The chapter
and block tables are CSV files under ``terminology/tables`` so a region can correct a name without
touching code.
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from terminology.normalize import normalize_diagnosis, normalize_procedure

__all__ = [
    "Chapter",
    "Block",
    "icd10_chapter",
    "icd10_chapters",
    "icd10_block",
    "icd10_blocks",
    "yamu",
    "leimu",
    "icd9_chapter",
    "icd9_chapters",
    "procedure_leimu",
    "procedure_yamu",
    "dx_hierarchy",
    "px_hierarchy",
]

TABLES = Path(__file__).with_name("tables")

_DX_CATEGORY = re.compile(r"^[A-Z]\d{2}")
_DX_SUB = re.compile(r"^([A-Z]\d{2})\.([0-9x])")
_PX_CATEGORY = re.compile(r"^(\d{2})(?:\.([0-9x]))?")


@dataclass(frozen=True, slots=True)
class Chapter:
    """An ICD chapter: ``number`` as printed (``'1'``…``'22'``, ``'00'``…``'16'``, ``'3A'``)."""

    number: str
    first: str
    last: str
    name: str

    @property
    def range(self) -> str:
        return self.first if self.first == self.last else f"{self.first}–{self.last}"


@dataclass(frozen=True, slots=True)
class Block:
    first: str
    last: str
    name: str

    @property
    def range(self) -> str:
        return self.first if self.first == self.last else f"{self.first}–{self.last}"


def _read(name: str) -> list[dict[str, str]]:
    with (TABLES / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@cache
def icd10_chapters() -> tuple[Chapter, ...]:
    return tuple(Chapter(r["chapter"], r["first"], r["last"], r["name"]) for r in _read("icd10_chapters.csv"))


@cache
def icd10_blocks() -> tuple[Block, ...]:
    return tuple(
        sorted(
            (Block(r["first"], r["last"], r["name"]) for r in _read("icd10_blocks.csv")),
            key=lambda b: b.first,
        )
    )


@cache
def icd9_chapters() -> tuple[Chapter, ...]:
    return tuple(
        Chapter(r["chapter"], r["first"], r["last"], r["name"]) for r in _read("icd9cm3_chapters.csv")
    )


def _category(code: str | None) -> str | None:
    """The 3-character 类目 of an already canonical or a raw diagnosis code."""
    if not code:
        return None
    m = _DX_CATEGORY.match(code)
    if m:
        return m.group(0)
    n = normalize_diagnosis(code)
    return n.code[:3] if n.ok and n.code else None


@lru_cache(maxsize=8192)
def icd10_chapter(code: str) -> int | None:
    """Chapter number 1..22 by the WHO / 医保版 ranges (19 = S00–T98, 22 = U00–U85)."""
    cat = _category(code)
    if cat is None:
        return None
    for ch in icd10_chapters():
        if ch.first <= cat <= ch.last:
            return int(ch.number)
    return None


def icd10_block(code: str) -> Block | None:
    """The narrowest block (节) containing the code's 类目."""
    cat = _category(code)
    if cat is None:
        return None
    blocks = icd10_blocks()
    i = bisect.bisect_right([b.first for b in blocks], cat) - 1
    # blocks may nest (V01–X59 inside chapter 20), scan back for the first one that contains it
    while i >= 0:
        if blocks[i].first <= cat <= blocks[i].last:
            return blocks[i]
        i -= 1
    return None


@lru_cache(maxsize=131072)
def yamu(code: str) -> str | None:
    """The 4-character 亚目: ``K35.300x001`` → ``K35.3``, ``A33.x00`` → ``A33.x`` (published lower-case x)."""
    if not code:
        return None
    m = _DX_SUB.match(code)
    if m is None:
        n = normalize_diagnosis(code)
        if not n.ok or not n.code:
            return None
        m = _DX_SUB.match(n.dagger or n.code)
        if m is None:
            return None
    return f"{m.group(1)}.{m.group(2)}"


@lru_cache(maxsize=131072)
def leimu(code: str) -> str | None:
    """The 3-character 类目: ``K35.300x001`` → ``K35``."""
    return _category(code)


def procedure_leimu(code: str) -> str | None:
    """ICD-9-CM-3 类目 = the two-digit category: ``47.0100`` → ``47``."""
    n = normalize_procedure(code) if code else None
    return n.code[:2] if n and n.ok and n.code else None


def procedure_yamu(code: str) -> str | None:
    """ICD-9-CM-3 亚目 = category plus first digit: ``47.0100`` → ``47.0``."""
    n = normalize_procedure(code) if code else None
    if not (n and n.ok and n.code):
        return None
    m = _PX_CATEGORY.match(n.code)
    return f"{m.group(1)}.{m.group(2)}" if m and m.group(2) else None


def icd9_chapter(code: str) -> Chapter | None:
    cat = procedure_leimu(code)
    if cat is None:
        return None
    for ch in icd9_chapters():
        if ch.first <= cat <= ch.last:
            return ch
    return None


def dx_hierarchy(code: str) -> dict[str, str | None]:
    """Chapter, block, 类目, 亚目 of a diagnosis code, for display and FHIR $lookup."""
    ch_no = icd10_chapter(code)
    chapter = next((c for c in icd10_chapters() if ch_no is not None and int(c.number) == ch_no), None)
    block = icd10_block(code)
    return {
        "chapter": f"{ch_no:02d}" if ch_no else None,
        "chapter_range": chapter.range if chapter else None,
        "chapter_name": chapter.name if chapter else None,
        "block": block.range if block else None,
        "block_name": block.name if block else None,
        "leimu": leimu(code),
        "yamu": yamu(code),
    }


def px_hierarchy(code: str) -> dict[str, str | None]:
    chapter = icd9_chapter(code)
    return {
        "chapter": chapter.number if chapter else None,
        "chapter_range": chapter.range if chapter else None,
        "chapter_name": chapter.name if chapter else None,
        "leimu": procedure_leimu(code),
        "yamu": procedure_yamu(code),
    }
