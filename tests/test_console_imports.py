"""Batch outputs loaded into the console: a real ``dip-cds settle`` run is shown and exported with the
numbers of its files (the console adds nothing and loses nothing), each fund's 结算点值 beside its
年初点值, its data notice and checks; a ``dip-cds audit`` findings file — the real command's output and
hand-made files in the documented columns — loads, and a bad line loads nothing and is named."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from console import auth
from console.imports import LoadError, load_audit, load_settle
from console.models import findings, imports
from tests.console_helpers import PASSWORD, add_users, console_app, settlement_output, signed_in

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "docs" / "settle.example.toml"


@pytest.fixture(scope="module")
def settle_output(tmp_path_factory) -> Path:
    """The example settle.toml on the sample region's synthetic cases (the 结算 screenshot's setup)."""
    config = EXAMPLE_CONFIG.read_text(encoding="utf-8").replace('region = "410400"', 'region = "999999"')
    return settlement_output(tmp_path_factory.mktemp("settle"), config)


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _cells(html: str, table: str, key: str) -> list[str]:
    body = html.split(f'data-table="{table}"')[1].split("</table>")[0]
    return re.findall(rf'<td class="[a-z]*" data-key="{key}">([^<]*)</td>', body)


def test_a_settlement_run_shows_and_exports_exactly_the_numbers_of_its_files(tmp_path, settle_output) -> None:
    app = console_app(tmp_path, cookie_secure=False)
    add_users(app)
    engine = app.extensions["dip_cds.console"].engine
    run = load_settle(engine, settle_output, "test", "示例年度清算")
    departments = _csv(settle_output / "departments.csv")
    assert run["tables"]["departments"] == len(departments)

    client = signed_in(app, "ybb")
    html = client.get(f"/console/settle?run={run['id']}&table=departments").get_data(as_text=True)
    assert _cells(html, "settle-departments", "department") == [r["department"] for r in departments]
    assert _cells(html, "settle-departments", "dip_payment") == [
        f"{Decimal(r['dip_payment']):,.2f}" for r in departments
    ]
    workbook = load_workbook(
        io.BytesIO(client.get(f"/console/export/settle/table.xlsx?run={run['id']}").data)
    )
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    header = rows.index(next(r for r in rows if r and r[0] == "医疗机构编码"))
    paid = [r[list(rows[header]).index("DIP支付总额(元)")] for r in rows[header + 1 :]]
    assert all(isinstance(v, (int, float)) for v in paid), paid  # numbers a spreadsheet can sum, not text
    assert Decimal(str(round(sum(paid), 2))) == sum(Decimal(r["dip_payment"]) for r in departments)

    summary = json.loads((settle_output / "summary.json").read_text(encoding="utf-8"))
    for fund in summary["funds"]:  # each fund's point value beside its year-start value, and the ratio
        point, start = Decimal(fund["point_value"]), Decimal(fund["budget_point_value"])
        assert f"{point:.6f}" in html and f"{start:.6f}" in html
        assert str((point / start).quantize(Decimal("0.01"))) in html
    assert summary["meta"]["数据说明"] in html  # synthetic cases stay labelled as such
    # the example's city-wide budgets over 300 synthetic cases: the run names the implausible point values
    assert summary["notices"] and all(f"注意：{n}" in html for n in summary["notices"])
    assert html.count('<li class="ok">通过：') == len(summary["reconciliation"])
    assert "读入病例" in html and "rows_in" not in html


def test_a_department_head_sees_only_their_departments_settlement_rows(tmp_path, settle_output) -> None:
    app = console_app(tmp_path, cookie_secure=False)
    engine = app.extensions["dip_cds.console"].engine
    auth.create_user(engine, "obstetrics", "dept_head", PASSWORD, "产科", display_name="产科主任")
    run = load_settle(engine, settle_output, "test")
    client = signed_in(app, "obstetrics")
    html = client.get(f"/console/settle?run={run['id']}&table=departments").get_data(as_text=True)
    assert _cells(html, "settle-departments", "department") == ["产科"]
    hospitals = client.get(f"/console/settle?run={run['id']}&table=hospitals").get_data(as_text=True)
    assert 'data-table="settle-hospitals"' not in hospitals and "只能查看本科室" in hospitals


def test_a_folder_that_is_not_a_settlement_output_is_refused(tmp_path) -> None:
    app = console_app(tmp_path)
    engine = app.extensions["dip_cds.console"].engine
    with pytest.raises(LoadError, match="summary.json"):
        load_settle(engine, tmp_path, "test")
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(LoadError, match="summary.json 无法读取"):
        load_settle(engine, tmp_path, "test")


# The documented columns (README → loading `dip-cds audit` outputs), national field names, in GB18030
# as a 医保 export often is. Checked against the contract, not yet against `dip-cds audit` itself.
AUDIT_HEADER = "规则编号,规则名称,违规性质,mdtrt_id,psn_no,fee_ocur_time,med_list_codg,项目名称,bilg_dept_codg,bilg_dept_name,bilg_dr_codg,违规金额\n"  # fmt: skip
AUDIT_ROWS = [
    "R7-0001,重复收费,违规,MD001,P001,2026-11-30 09:15:00,001203000010000,静脉输液,0302,呼吸内科,D01,12.00\n",
    "R1-0042,限定性别,可疑,MD002,P002,2026-11-30 10:00:00,XJ01CAA040A001010100002,某药,0402,妇科,D07,86.50\n",
]


def test_an_audit_output_in_the_documented_columns_loads_with_its_amounts(tmp_path) -> None:
    app = console_app(tmp_path)
    engine = app.extensions["dip_cds.console"].engine
    folder = tmp_path / "audit-out"
    folder.mkdir()
    (folder / "findings.csv").write_bytes((AUDIT_HEADER + "".join(AUDIT_ROWS)).encode("gb18030"))
    result = load_audit(engine, folder, "test", app.extensions["dip_cds.console"].settings.zone())
    assert (result["findings"], result["amount_cents"]) == (2, 9850)
    with engine.connect() as conn:
        rows = conn.execute(select(findings).order_by(findings.c.rule_id)).mappings().all()
    assert [(r["rule_id"], r["department_name"], r["attending_id"], r["amount_cents"]) for r in rows] == [
        ("R1-0042", "妇科", "D07", 8650),
        ("R7-0001", "呼吸内科", "D01", 1200),
    ]
    assert rows[1]["encounter_id"] == "MD001" and rows[1]["item_code"] == "001203000010000"


def test_an_audit_file_with_a_bad_line_loads_nothing_and_names_the_line(tmp_path) -> None:
    app = console_app(tmp_path)
    engine = app.extensions["dip_cds.console"].engine
    folder = tmp_path / "audit-out"
    folder.mkdir()
    bad = AUDIT_ROWS[1].replace("86.50", "八十六")
    (folder / "findings.csv").write_text(AUDIT_HEADER + AUDIT_ROWS[0] + bad, encoding="utf-8")
    with pytest.raises(LoadError, match="第 3 行"):
        load_audit(engine, folder, "test", app.extensions["dip_cds.console"].settings.zone())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(findings)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(imports)).scalar_one() == 0


def test_an_audit_workbook_loads_like_the_csv_and_a_file_without_rule_ids_is_refused(tmp_path) -> None:
    from openpyxl import Workbook

    app = console_app(tmp_path)
    console = app.extensions["dip_cds.console"]
    folder = tmp_path / "audit-xlsx"
    folder.mkdir()
    book = Workbook()
    book.active.append(["智能审核结果"])  # a title row above the header, as exports have
    for line in [AUDIT_HEADER, *AUDIT_ROWS]:
        book.active.append(line.rstrip("\n").split(","))
    book.save(folder / "findings.xlsx")
    assert load_audit(console.engine, folder, "test", console.settings.zone())["amount_cents"] == 9850
    headerless = tmp_path / "no-rule-ids"
    headerless.mkdir()
    (headerless / "findings.csv").write_text("项目名称,违规金额\n静脉输液,12.00\n", encoding="utf-8")
    with pytest.raises(LoadError, match="规则编号"):
        load_audit(console.engine, headerless, "test", console.settings.zone())


def test_a_real_dip_cds_audit_output_loads_with_its_summary_totals(tmp_path) -> None:
    """``dip-cds synth-fees`` + ``dip-cds audit`` (built-in sample rules, DuckDB), then the loader: every
    finding with its rule, department, doctor and amount; the totals are the run's summary.json."""
    from click.testing import CliRunner

    from cds_service.cli import main

    data, out = tmp_path / "data", tmp_path / "audit-out"
    runner = CliRunner()
    for args in (
        ["synth-fees", "--output", str(data), "--stays", "150", "--seed", "3"],
        ["audit", "--fees", str(data / "fees.csv"), "--stays", str(data / "stays.csv"), "--output", str(out)],
    ):
        result = runner.invoke(main, ["--home", str(tmp_path / "home"), *args])
        assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    app = console_app(tmp_path / "console")
    engine = app.extensions["dip_cds.console"].engine
    loaded = load_audit(engine, out, "test", app.extensions["dip_cds.console"].settings.zone())
    expected_cents = int(Decimal(summary["totals"]["amount_at_risk"]) * 100)
    assert (loaded["findings"], loaded["amount_cents"]) == (summary["totals"]["findings"], expected_cents)
    rows = _csv(out / "findings.csv")
    with engine.connect() as conn:
        stored = conn.execute(select(findings).order_by(findings.c.id)).mappings().all()
    assert sorted(
        (r["rule_id"], r["bilg_dept_name"], r["bilg_dr_codg"], r["med_list_codg"]) for r in rows
    ) == sorted((s["rule_id"], s["department_name"], s["attending_id"], s["item_code"]) for s in stored)
    assert all(s["rule_kind"] and s["severity"] in ("违规", "可疑") and s["at"] is not None for s in stored)
