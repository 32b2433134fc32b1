"""The hook services on the real 平顶山 2025 catalog with the real 医保版 tables: one data home per
test session (terminology copied from the shared real home, catalog and procedure types imported)."""

from __future__ import annotations

import shutil
from pathlib import Path

from dip_engine.importer import import_catalog, import_optypes
from dip_engine.store import save_catalog, save_optypes
from tests.dip_helpers import OPTYPES, PDS_XLSX, need_real_data
from tests.terminology_helpers import real_home

PDS_REGION = "410400"
_HOME: list[Path] = []


def real_hooks_home(tmp_path_factory) -> Path:
    """A data home with the real terminology, the 平顶山 catalog and the reference procedure types."""
    need_real_data()
    if not _HOME:
        home = tmp_path_factory.mktemp("real-hooks-home")
        shutil.copy(real_home() / "terminology.sqlite", home / "terminology.sqlite")
        catalog, report = import_catalog(PDS_XLSX, PDS_REGION, "平顶山", 2025)
        save_catalog(home, catalog, report.as_dict())
        entries, _ = import_optypes(OPTYPES)
        save_optypes(home, entries, OPTYPES.name)
        _HOME.append(home)
    return _HOME[0]
