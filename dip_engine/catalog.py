"""Catalog model: one region's DIP catalog (a year's 分组目录库) and the set of catalogs in a data home."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from grouper import Group, GroupIndex, GroupType

SAMPLE_REGION = "999999"


@dataclass(eq=False)
class Catalog:
    """A DIP catalog. ``index`` is the grouper's lookup structure, built once at construction."""

    region: str
    name: str
    groups: tuple[Group, ...]
    version: str = ""
    year: int | None = None
    effective_from: date | None = None
    effective_to: date | None = None
    region_avg_cost: Decimal | None = None
    is_sample: bool = False
    source: str = ""
    home: Path | None = field(default=None, repr=False)  # data home it was loaded from (rules, optypes)
    index: GroupIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.groups = tuple(self.groups)
        self.index = GroupIndex(self.groups)

    @property
    def label(self) -> str:
        """Human label for cards: "DIP 平顶山2025", or the sample's own name."""
        if self.is_sample:
            return self.name
        year = str(self.year) if self.year and str(self.year) not in self.name else ""
        return f"DIP {self.name}{year}"

    def group(self, code: str) -> Group | None:
        return self.index.get(code)

    @cached_property
    def _lookups(self) -> tuple[dict[str, list[Group]], dict[str, list[Group]]]:
        """(groups by 亚目, groups by 类目), built on first use; not pickled to worker processes."""
        by_yamu: dict[str, list[Group]] = defaultdict(list)
        by_leimu: dict[str, list[Group]] = defaultdict(list)
        for g in self.groups:
            key = g.dx_key.upper()
            if g.type in (GroupType.CORE, GroupType.PRIMARY):
                by_yamu[key].append(g)
                by_leimu[key[:3]].append(g)
            elif g.type == GroupType.COMPREHENSIVE:
                by_leimu[key].append(g)
        order = {GroupType.CORE: 0, GroupType.PRIMARY: 0, GroupType.COMPREHENSIVE: 1}
        for table in (by_yamu, by_leimu):
            for groups in table.values():
                groups.sort(key=lambda g: (order.get(g.type, 2), bool(g.slots), g.score, g.code))
        return dict(by_yamu), dict(by_leimu)

    def groups_for_yamu(self, yamu: str) -> list[Group]:
        """Core groups of a 亚目: the 保守 group first, then procedure groups by ascending score."""
        return list(self._lookups[0].get((yamu or "").upper(), ()))

    def groups_for_leimu(self, leimu: str) -> list[Group]:
        """Core groups of every 亚目 under a 类目, then its comprehensive groups (incl. 类目 ranges)."""
        key = (leimu or "").upper()
        out = list(self._lookups[1].get(key, ()))
        out += [g for lo, hi, g in self.index.ranges if lo <= key <= hi]
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for g in self.groups:
            out[g.type] += 1
        return dict(out)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lookups", None)
        return state


class CatalogSet:
    """All catalogs of a data home; each request names a region or gets the default one."""

    def __init__(self, catalogs: list[Catalog], default_region: str | None = None) -> None:
        if not catalogs:
            raise ValueError("a CatalogSet needs at least one catalog")
        self._by_region: dict[str, list[Catalog]] = defaultdict(list)
        for c in catalogs:
            self._by_region[c.region].append(c)
        for lst in self._by_region.values():
            lst.sort(key=lambda c: (c.year or 0, c.effective_from or date.min), reverse=True)
        self.default_region: str = (
            default_region
            if default_region is not None and default_region in self._by_region
            else catalogs[0].region
        )
        self._engines: dict = {}

    def regions(self) -> list[str]:
        return sorted(self._by_region)

    def all(self) -> list[Catalog]:
        return [c for lst in self._by_region.values() for c in lst]

    def get(self, region: str | None = None, year: int | None = None, on: date | None = None) -> Catalog:
        """The region's catalog: of ``year``, else the one in force ``on`` a date, else the newest.

        KeyError names what exists, so a misconfigured request says which regions are available.
        """
        key = region or self.default_region
        options = self._by_region.get(key)
        if not options:
            raise KeyError(f"no DIP catalog for region {key!r}; available: {', '.join(self.regions())}")
        if year is not None:
            for c in options:
                if c.year == year:
                    return c
            raise KeyError(f"no {year} catalog for region {key!r}; years: {[c.year for c in options]}")
        if on is not None:
            for c in options:
                if (c.effective_from is None or c.effective_from <= on) and (
                    c.effective_to is None or on <= c.effective_to
                ):
                    return c
        return options[0]

    def engine(self, region: str | None = None, terminology=None):
        """A shared :class:`~dip_engine.engine.Engine` per region (and terminology) — build once, reuse."""
        catalog = self.get(region)
        key = (catalog.region, catalog.year, id(terminology))
        hit = self._engines.get(key)
        if hit is None:
            from dip_engine.engine import Engine

            hit = self._engines[key] = Engine(catalog, terminology)
        return hit

    def __contains__(self, region: str) -> bool:
        return region in self._by_region
