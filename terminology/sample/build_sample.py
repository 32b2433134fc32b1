"""Rebuild the built-in sample terminology from the real national tables in ../shared/data.

How the sample was picked (so it can be reproduced and extended):

* every 医保版 ICD-10 2.0 diagnosis code in the 类目 below (the ones the sample DIP catalog and
  the demo patients use);
* every 国临版 2.0 → 医保版 2.0 diagnosis map row whose target is one of those codes;
* every 医保版 ICD-9-CM-3 2.0 procedure code that the real 平顶山 2025 DIP catalog uses
  (主要操作代码 / 其他操作代码) for groups under those 类目, and the 国临版 3.0 map rows that
  target them;
* every 医保版 code the demo FHIR data and requests (``hooks/demo``) use, so each demo card shows
  real names and rules;
* every procedure code the built-in sample DIP catalog (``dip_engine/sample``) uses, so every
  sample group is reachable with real codes (the engine groups only codes of the active table);
* the default 简单操作 of the region rules (``dip_engine/config/rules/default.toml``), so the
  sample shows them being left out of grouping.

Files are written in the published formats (TSV ``code/name``, CSV with the published Chinese
headers), so loading the sample runs the real importer.

Usage: python terminology/sample/build_sample.py [../shared/data]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

LEIMU = "K35 K80 K81 J18 J44 C34 I63 I21 I25 I10 E11 S72 M16 O80 O82 P07 R10 R50 A01 X59 W19 Z51 N18 J96 I50 C02".split()
HERE = Path(__file__).resolve().parent
DEMO_FHIR = HERE.parents[1] / "hooks" / "demo" / "fhir"
YB_SYSTEMS = {
    "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0": "dx",
    "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0": "px",
}


def demo_codes() -> dict[str, set[str]]:
    """医保版 codes used by the demo FHIR data set, by kind."""
    found: dict[str, set[str]] = {"dx": set(), "px": set()}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            kind = YB_SYSTEMS.get(str(node.get("system")))
            if kind and isinstance(node.get("code"), str):
                found[kind].add(node["code"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted([*DEMO_FHIR.glob("*.json"), *DEMO_FHIR.with_name("requests").glob("*.json")]):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


CATALOG = "catalogs/410400-pingdingshan-2025-dip2.0/目录.csv"
SAMPLE_CATALOG = HERE.parents[1] / "dip_engine" / "sample" / "sample-catalog.csv"
DEFAULT_RULES = HERE.parents[1] / "dip_engine" / "config" / "rules" / "default.toml"


def _read_tsv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as fh:
        return [line.rstrip("\n").split("\t") for line in fh]


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _split_codes(cell: str) -> list[str]:
    return [c.strip() for c in cell.replace("，", ",").split(",") if c.strip()]


def build(data: Path, out: Path = HERE) -> dict[str, int]:
    term = data / "terminology"
    dx = _read_tsv(term / "icd10-yb2.0.tsv")
    demo = demo_codes()
    dx_rows = [dx[0]] + [r for r in dx[1:] if r[0][:3] in LEIMU or r[0] in demo["dx"]]
    dx_codes = {r[0] for r in dx_rows[1:]}

    catalog = _read_csv(data / CATALOG)
    head = catalog[0]
    c_dx, c_main, c_other = head.index("主诊断代码"), head.index("主要操作代码"), head.index("其他操作代码")
    wanted_px: set[str] = set()
    for row in catalog[1:]:
        if row[c_dx][:3] in LEIMU:
            wanted_px.update(c.lower() for c in _split_codes(row[c_main]) + _split_codes(row[c_other]))
    wanted_px.update(c.lower() for c in demo["px"])
    sample = _read_csv(SAMPLE_CATALOG)
    s_main, s_other = sample[0].index("主要操作代码"), sample[0].index("其他操作代码")
    for row in sample[1:]:
        for cell in (row[s_main], row[s_other]):
            wanted_px.update(c.lower() for code in _split_codes(cell) for c in code.split("|"))
    import tomllib

    with DEFAULT_RULES.open("rb") as fh:
        wanted_px.update(c.lower() for c in tomllib.load(fh)["grouping"]["simple_operations"])
    px = _read_tsv(term / "icd9cm3-yb2.0.tsv")
    px_rows = [px[0]] + [r for r in px[1:] if r[0].lower() in wanted_px]
    px_codes = {r[0] for r in px_rows[1:]}

    dx_map = _read_csv(term / "icd10-gl2.0-to-yb2.0.csv")
    dx_map_rows = [dx_map[0]] + [r for r in dx_map[1:] if r[2].strip() in dx_codes]
    px_map = _read_csv(term / "icd9cm3-gl3.0-to-yb2.0.csv")
    px_map_rows = [px_map[0]] + [r for r in px_map[1:] if r[2].strip() in px_codes]

    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("icd10-yb2.0-sample.tsv", dx_rows), ("icd9cm3-yb2.0-sample.tsv", px_rows)):
        (out / name).write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    for name, rows in (
        ("icd10-gl2.0-to-yb2.0-sample.csv", dx_map_rows),
        ("icd9cm3-gl3.0-to-yb2.0-sample.csv", px_map_rows),
    ):
        with (out / name).open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
    return {
        "dx": len(dx_rows) - 1,
        "px": len(px_rows) - 1,
        "dx-map": len(dx_map_rows) - 1,
        "px-map": len(px_map_rows) - 1,
        "px-missing": len(wanted_px - {c.lower() for c in px_codes}),
    }


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
