"""Shared helpers for the terminology and mapping tests: where the real reference data lives."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TERMINOLOGY_DIR = SHARED_DATA / "terminology"

DX_LIST = TERMINOLOGY_DIR / "icd10-yb2.0.tsv"
PX_LIST = TERMINOLOGY_DIR / "icd9cm3-yb2.0.tsv"
DX_MAP = TERMINOLOGY_DIR / "icd10-gl2.0-to-yb2.0.csv"
PX_MAP = TERMINOLOGY_DIR / "icd9cm3-gl3.0-to-yb2.0.csv"
DX_MAP_XLSX = TERMINOLOGY_DIR / "ICD10国临版2.0对照医保版2.0.xlsx"
PX_MAP_XLSX = TERMINOLOGY_DIR / "ICD9国临版3.0对照医保版2.0.xlsx"
REAL_FILES = (DX_LIST, PX_LIST, DX_MAP, PX_MAP)


def require_real_data() -> None:
    missing = [p.name for p in REAL_FILES if not p.exists()]
    if missing:
        pytest.skip(f"real reference data absent: {', '.join(missing)}")


def read_tsv_codes(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as fh:
        next(fh)
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in fh if line.strip()]


def read_map_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[1:]


def to_full_width(text: str) -> str:
    """ASCII → full-width forms, as typed with a Chinese IME in full-width mode."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


_REAL_HOME: list[Path] = []


def real_home() -> Path:
    """A data home with the four real tables imported, built once per test session.

    Import costs a few seconds (pinyin initials), so every real-data test shares it.
    """
    require_real_data()
    if not _REAL_HOME:
        import atexit
        import shutil
        import tempfile

        from terminology.loader import import_files

        home = Path(tempfile.mkdtemp(prefix="dipcds-term-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        reports = import_files(home, [DX_LIST, PX_LIST, DX_MAP, PX_MAP], version="2.0")
        assert all(r.error is None for r in reports), [r.error for r in reports]
        _REAL_HOME.append(home)
    return _REAL_HOME[0]


_REAL_TERM: list = []


def real_terminology():
    if not _REAL_TERM:
        from terminology.loader import load_terminology

        _REAL_TERM.append(load_terminology(real_home()))
    return _REAL_TERM[0]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --- the everyday-phrase table (issue 9 item 7) -----------------------------------------------------
PHRASES = Path(__file__).with_name("data") / "text_mapping_phrases.csv"


def read_phrases() -> list[dict[str, str]]:
    """Rows of ``data/text_mapping_phrases.csv``: kind, phrase, expected 医保版 code, set
    ('tuning': written while the ranking was built; 'holdout': written before it was measured),
    must ('yes': the issue's cases, which must rank first), note."""
    with PHRASES.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def rank_phrases(term, rows: list[dict[str, str]], limit: int = 3) -> list[dict[str, object]]:
    """Each phrase searched as a coder would (its kind, top ``limit``) and resolved as the mapping
    layer would (assigned or left for confirmation)."""
    from mappings.resolve import resolve_text

    out = []
    for row in rows:
        hits = [h for _k, h in term.search(row["phrase"], kind=row["kind"], limit=limit)]
        resolved = resolve_text(term, row["kind"], row["phrase"])
        out.append({**row, "hits": hits, "codes": [h.code for h in hits], "assigned": resolved.code})
    return out


def phrase_rates(ranked: list[dict[str, object]]) -> dict[str, float]:
    n = len(ranked) or 1
    return {
        "n": len(ranked),
        "top1": sum(r["codes"][:1] == [r["expected"]] for r in ranked) / n,
        "top3": sum(r["expected"] in r["codes"][:3] for r in ranked) / n,
        "assigned": sum(r["assigned"] is not None for r in ranked) / n,
        "assigned_other": sum(r["assigned"] not in (None, r["expected"]) for r in ranked) / n,
    }
