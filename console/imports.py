"""Loading batch outputs into the console: ``dip-cds audit`` findings and ``dip-cds settle`` runs.

The audit loader reads ``findings.csv`` of an output folder by column name, accepting the
national field names of the fee details (``mdtrt_id``, ``psn_no``, ``fee_ocur_time``,
``med_list_codg``, ``bilg_dept_codg``, ``bilg_dr_codg`` …) as well as the contract's names
(README, 医保办 console → loading audit outputs, lists them). A settlement run is loaded whole
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

from console.ingest import BadEvent, cents
from console.models import findings, imports, settle_rows
from console.queries import SETTLE_TABLES
from terminology.textfile import decode_table_text

MAX_FILE_BYTES = 2 * 1024**3

# contract name → accepted header names (first match wins)
AUDIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "rule_id": ("rule_id", "规则编号", "规则ID"),
    "rule_name": ("rule_name", "规则名称"),
    "rule_kind": ("rule_kind", "规则类别", "规则类型"),
    "batch": ("batch", "批次", "规则批次"),
    "severity": ("severity", "性质", "违规性质"),
    "patient_id": ("patient_id", "psn_no", "人员编号"),
    "encounter_id": ("encounter_id", "mdtrt_id", "就诊ID"),
    "at": ("at", "fee_ocur_time", "费用发生时间"),
    "item_code": ("item_code", "med_list_codg", "medins_list_codg", "医保目录编码"),
    "item_name": ("item_name", "med_list_name", "medins_list_name", "项目名称"),
    "order_ref": ("order_ref", "feedetl_sn", "费用明细流水号"),
    "department_code": ("department_code", "bilg_dept_codg", "科室编码"),
    "department_name": ("department_name", "bilg_dept_name", "科室名称"),
    "attending_id": ("attending_id", "doctor_id", "bilg_dr_codg", "医生编码"),
    "attending_name": ("attending_name", "doctor_name", "bilg_dr_name", "医生姓名"),
    "amount_at_risk": ("amount_at_risk", "涉及金额", "违规金额"),
    "message": ("message", "说明", "提示信息"),
}
REQUIRED = ("rule_id",)


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
    except ValueError:
        raise BadEvent(f"时间无法识别：{text[:30]!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def load_audit(
    engine: Engine, folder: Path, who: str, zone: ZoneInfo, label: str | None = None
) -> dict[str, Any]:
    """Load ``findings.csv`` of a ``dip-cds audit`` output folder; returns the import's summary."""
    path = folder / "findings.csv"
    header, rows = _read_csv(path)
    mapping = {key: next((h for h in names if h in header), None) for key, names in AUDIT_COLUMNS.items()}
    missing = [k for k in REQUIRED if mapping[k] is None]
    if rows and missing:
        raise LoadError(f"findings.csv 缺少列：{'、'.join(AUDIT_COLUMNS[k][0] for k in missing)}")
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    for line, row in enumerate(rows, start=2):

        def get(key: str, row: dict[str, str] = row) -> str | None:
            column = mapping[key]
            value = (row.get(column) or "").strip() if column else ""
            return value or None

        try:
            if not get("rule_id"):
                raise BadEvent("规则编号为空")
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
            raise LoadError(f"findings.csv 第 {line} 行：{exc}") from None
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
