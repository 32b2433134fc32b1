"""Loading batch outputs into the console: ``dip-cds audit`` findings and ``dip-cds settle`` runs.

The audit loader reads the findings file of an output folder (CSV or XLSX) with the core's table
reader, by column name: the contract's names and the national field names of the fee details
(``mdtrt_id``, ``psn_no``, ``fee_ocur_time``, ``med_list_codg``, ``bilg_dept_codg`` …), declared as
data in ``audit_headers.toml``. A settlement run is loaded whole
(``summary.json`` and the five CSV tables) so it can be browsed after the folder is gone.
Either load is one transaction: a broken file loads nothing and says which line is wrong.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from cds_service.tables import Row, TableError, TableSpec, decode_table_text, open_table
from console.ingest import BadEvent, cents
from console.models import findings, imports, settle_rows
from console.queries import SETTLE_TABLES

MAX_FILE_BYTES = 2 * 1024**3

AUDIT_HEADERS = Path(__file__).with_name("audit_headers.toml")
AUDIT_FILES = ("findings.csv", "findings.xlsx")


class LoadError(ValueError):
    """The folder cannot be loaded; the message says why (file, line)."""


def check_root(folder: str | Path, roots: tuple[Path, ...]) -> Path:
    """The folder, resolved, when it lies under one of ``roots`` (loads read nothing else)."""
    path = Path(folder).resolve()
    if not any(path == root or root in path.parents for root in roots):
        raise LoadError(f"只能从以下目录导入：{'、'.join(str(r) for r in roots)}")
    if not path.is_dir():
        raise LoadError(f"目录不存在：{path}")
    return path


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise LoadError(f"缺少文件 {path.name}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LoadError(f"{path.name} 过大")
    text = decode_table_text(path.read_bytes())
    if text is None:
        raise LoadError(f"{path.name} 不是 UTF-8 或 GB18030 编码")
    try:
        reader = csv.DictReader(io.StringIO(text))
        return list(reader.fieldnames or []), list(reader)
    except csv.Error as exc:
        raise LoadError(f"{path.name}：CSV 格式错误（{exc}）") from None


def _parse_time(text: str, zone: ZoneInfo, fallback: datetime) -> datetime:
    if not text:
        return fallback
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("/", "-"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a time before year 1 once in UTC
        raise BadEvent(f"时间无法识别：{text[:30]!r}") from None


def load_audit(
    engine: Engine, folder: Path, who: str, zone: ZoneInfo, label: str | None = None
) -> dict[str, Any]:
    """Load the findings file of a ``dip-cds audit`` output folder (``findings.csv``, else
    ``findings.xlsx``; columns by header, aliases in ``audit_headers.toml``); returns the import's
    summary. Every row is checked before anything is stored: one bad row loads nothing."""
    path = next((folder / name for name in AUDIT_FILES if (folder / name).is_file()), None)
    if path is None:
        raise LoadError(f"缺少 {' 或 '.join(AUDIT_FILES)}：这不是 dip-cds audit 的输出目录")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LoadError(f"{path.name} 过大")
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    spec = TableSpec.from_toml(AUDIT_HEADERS, "findings", required=["rule_id"])
    try:
        with open_table(path, spec) as table:
            for row in table:

                def get(key: str, row: Row = row) -> str | None:
                    return row.text(key) or None

                try:
                    records.append(
                        {
                            "at": _parse_time(get("at") or "", zone, now),
                            "patient_id": get("patient_id"),
                            "encounter_id": get("encounter_id"),
                            "department_code": get("department_code") or get("department_name"),
                            "department_name": get("department_name") or get("department_code"),
                            "attending_id": get("attending_id") or get("attending_name"),
                            "attending_name": get("attending_name"),
                            "rule_id": get("rule_id"),
                            "rule_kind": get("rule_kind"),
                            "batch": get("batch"),
                            "rule_name": get("rule_name"),
                            "severity": get("severity"),
                            "order_ref": get("order_ref"),
                            "item_code": get("item_code"),
                            "item_name": get("item_name"),
                            "amount_cents": cents(get("amount_at_risk")),
                            "message": get("message"),
                        }
                    )
                except BadEvent as exc:
                    table.reject(row, str(exc))
    except TableError as exc:
        raise LoadError(str(exc)) from None
    if table.problems:
        more = f"（共 {len(table.problems)} 行有误）" if len(table.problems) > 1 else ""
        raise LoadError(f"{path.name} {table.problems[0]}{more}")
    summary = {"findings": len(records), "amount_cents": sum(r["amount_cents"] or 0 for r in records)}
    with engine.begin() as conn:
        import_id = conn.execute(
            imports.insert()
            .values(
                kind="audit",
                label=(label or folder.name)[:200],
                source=str(folder)[:1000],
                loaded_at=now,
                loaded_by=who,
                rows=len(records),
                summary=json.dumps(summary),
            )
            .returning(imports.c.id)
        ).scalar_one()
        for start in range(0, len(records), 5000):
            conn.execute(
                findings.insert(), [{**r, "import_id": import_id} for r in records[start : start + 5000]]
            )
    return {"id": import_id, **summary}


def load_settle(engine: Engine, folder: Path, who: str, label: str | None = None) -> dict[str, Any]:
    """Load a ``dip-cds settle`` output folder (summary.json + cases/departments/groups/hospitals/rejects)."""
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise LoadError("缺少 summary.json：这不是 dip-cds settle 的输出目录")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"summary.json 无法读取（{exc}）") from None
    read = {
        name: _read_csv(folder / f"{name}.csv")
        for name in SETTLE_TABLES
        if (folder / f"{name}.csv").is_file()
    }
    if "cases" not in read:
        raise LoadError("缺少 cases.csv")
    columns = {name: header for name, (header, _) in read.items()}
    tables = {name: rows for name, (_, rows) in read.items()}
    meta = {
        "columns": columns,
        "counts": summary.get("counts"),
        "mode": summary.get("mode"),
        "meta": summary.get("meta"),
        "funds": summary.get("funds"),
        "reconciliation": summary.get("reconciliation"),
        "notices": summary.get("notices"),
        "ok": summary.get("ok"),
    }
    total = sum(len(rows) for rows in tables.values())
    with engine.begin() as conn:
        import_id = conn.execute(
            imports.insert()
            .values(
                kind="settle",
                label=(label or folder.name)[:200],
                source=str(folder)[:1000],
                loaded_at=datetime.now(UTC),
                loaded_by=who,
                rows=total,
                summary=json.dumps(meta, ensure_ascii=False, default=str),
            )
            .returning(imports.c.id)
        ).scalar_one()
        for name, rows in tables.items():
            dept_column = (
                "department" if "department" in columns[name] else "科室" if "科室" in columns[name] else None
            )
            batch = [
                {
                    "import_id": import_id,
                    "table_name": name,
                    "row_no": number,
                    "department": (row.get(dept_column) or None) if dept_column else None,
                    "data": json.dumps(row, ensure_ascii=False),
                }
                for number, row in enumerate(rows, start=1)
            ]
            for start in range(0, len(batch), 5000):
                conn.execute(settle_rows.insert(), batch[start : start + 5000])
    return {"id": import_id, "rows": total, "tables": {n: len(r) for n, r in tables.items()}}
