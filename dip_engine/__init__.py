"""DIP engine: catalogs, procedure types, region rules, pricing and the ``Engine`` API.

``load_catalogs(home)`` reads the catalogs imported into a data home, falling back to the
built-in sample catalog (fictional region 999999) when none has been imported.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dip_engine.catalog import SAMPLE_REGION, Catalog, CatalogSet
from dip_engine.optypes import OpTypeTable

SAMPLE_DIR = Path(__file__).with_name("sample")
SAMPLE_NAME = "示例市 DIP 2.0 (样例数据)"

__all__ = ["Catalog", "CatalogSet", "load_catalogs", "load_optype_table", "sample_catalog", "SAMPLE_REGION"]


@lru_cache(maxsize=1)
def sample_catalog() -> Catalog:
    """The built-in sample catalog, imported from its CSV files by the regular importer."""
    from dip_engine.importer import import_catalog

    catalog, _ = import_catalog(
        SAMPLE_DIR / "sample-catalog.csv",
        SAMPLE_REGION,
        SAMPLE_NAME,
        2025,
        stats_path=SAMPLE_DIR / "sample-stats.csv",
    )
    catalog.is_sample = True
    return catalog


def load_catalogs(home: Path | None = None) -> CatalogSet:
    """All catalogs imported into ``home``; the sample catalog when there are none."""
    from dip_engine.store import load_stored_catalogs

    catalogs, default = load_stored_catalogs(Path(home)) if home else ([], None)
    if not catalogs:
        return CatalogSet([sample_catalog()], SAMPLE_REGION)
    return CatalogSet(catalogs, default)


def load_optype_table(home: Path | None = None, sample: bool = False) -> OpTypeTable:
    """The imported procedure-type table. With none imported: the sample table when ``sample``
    (the sample catalog is in use), else an empty table (the documented default rule types every code)."""
    from dip_engine.store import load_optypes

    entries, source = load_optypes(Path(home)) if home else ({}, None)
    if entries:
        return OpTypeTable(entries, source)
    if not sample:
        return OpTypeTable()
    from dip_engine.importer import import_optypes

    sample_file = SAMPLE_DIR / "optypes.csv"
    if sample_file.is_file():
        rows, _ = import_optypes(sample_file)
        return OpTypeTable({e.code: e for e in rows}, "sample")
    return OpTypeTable()
