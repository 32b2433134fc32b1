"""Input formats, bad rows, configuration errors and the ``dip-cds settle`` command line."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from cds_service.cli import main
from tests.settlement_helpers import (
    CASE_HEADER,
    RULES,
    TWO_FUNDS,
    case,
    import_real_catalog,
    read_rows,
    settle,
    write_cases,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return import_real_catalog(tmp_path_factory.mktemp("inputs-home"), RULES)


def _rows():
    return [
        case("a1", "K35.3", "47.0100", "9000.00", "H3", "3"),
        case("a2", "K35.3", "47.0100|54.5101", "12000.50", "H3", "3", insurance="居民"),
        case("a3", "C34.1", "32.4100|33.3903|40.5914", "60000.00", "H1", "1"),
        case("a4", "J18.9", "", "2500.00", "H1", "1", insurance="居民"),
    ]


def test_jsonl_and_xlsx_inputs_settle_exactly_like_csv(home, tmp_path):
    from openpyxl import Workbook

    csv_path = write_cases(tmp_path / "b.csv", _rows())
    jsonl_path = tmp_path / "b.jsonl"
    jsonl_path.write_text(
        "\n".join(
            json.dumps(
                {**r, "procedures": r["procedures"].split("|") if r["procedures"] else []}, ensure_ascii=False
            )
            for r in _rows()
        )
        + "\n",
        encoding="utf-8",
    )
    wb = Workbook()
    ws = wb.active
    ws.append(list(CASE_HEADER))
    for r in _rows():
        ws.append([float(r[k]) if k == "total_cost" else r[k] for k in CASE_HEADER])
    xlsx_path = tmp_path / "b.xlsx"
    wb.save(xlsx_path)

    outputs = {}
    for path in (csv_path, jsonl_path, xlsx_path):
        out = tmp_path / f"out-{path.suffix[1:]}"
        assert settle(home, [path], out, TWO_FUNDS, region="410400").result.ok
        outputs[path.suffix] = [
            {k: v for k, v in r.items() if k not in ("source_file", "line")}
            for r in read_rows(out / "cases.csv")
        ]
    assert outputs[".csv"] == outputs[".jsonl"] == outputs[".xlsx"]
    assert [r["dip_code"] for r in outputs[".csv"]] == [
        "K35.3:47.0100",
        "K35.3:47.0100_54.5101",
        "C34.1:32.4100_33.3903+40.5914",
        "J18.9",
    ]


def test_bad_rows_go_to_rejects_with_line_and_reason_and_the_run_continues(home, tmp_path):
    good = _rows()
    path = tmp_path / "bad.csv"
    lines = [",".join(CASE_HEADER)]
    for r in good[:2]:
        lines.append(",".join(r[k] for k in CASE_HEADER))
    lines.append("x1,男,40,6,K35.3,,47.0100,9000.00,H3,3,职工")  # too few fields
    lines.append(",".join({**good[2], "case_id": "x2", "total_cost": "-3"}[k] for k in CASE_HEADER))
    lines.append(",".join({**good[2], "case_id": "x3", "insurance_type": "商保"}[k] for k in CASE_HEADER))
    lines.append(",".join({**good[2], "case_id": "x4", "age": "abc"}[k] for k in CASE_HEADER))
    lines.append(",".join({**good[2], "case_id": "a1"}[k] for k in CASE_HEADER))  # duplicate id
    lines.append(",".join(good[3][k] for k in CASE_HEADER))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"case_id": "j1", "main_diagnosis": "K35.3"\n[1, 2]\n', encoding="utf-8")

    out = tmp_path / "out"
    report = settle(home, [path, jsonl], out, TWO_FUNDS, region="410400")
    rejects = {
        (r["source_file"].rsplit("/", 1)[-1], r["line"]): r["reason"] for r in read_rows(out / "rejects.csv")
    }
    assert "expected 13 fields, found 11" in rejects[("bad.csv", "4")]
    assert "total_cost" in rejects[("bad.csv", "5")]
    assert "matches no configured fund" in rejects[("bad.csv", "6")]
    assert "age" in rejects[("bad.csv", "7")]
    assert "duplicate case_id" in rejects[("bad.csv", "8")]
    assert "invalid JSON" in rejects[("bad.jsonl", "1")]
    assert "not an object" in rejects[("bad.jsonl", "2")]
    counts = report.result.counts
    assert counts["rows_in"] == 10 and counts["rejected"] == 7 and counts["settled"] == 3
    assert report.result.ok


def test_cost_breakdown_must_add_up_to_total_cost(home, tmp_path):
    header = (*CASE_HEADER, "cost_01", "cost_09", "fund_paid")
    ok = {**_rows()[0], "cost_01": "1000.00", "cost_09": "8000.00", "fund_paid": "6750.00"}
    bad = {**_rows()[2], "cost_01": "1000.00", "cost_09": "100.00"}
    out = tmp_path / "out"
    settle(
        home,
        [write_cases(tmp_path / "c.csv", [ok, bad], header)],
        out,
        TWO_FUNDS.split("[settlement.funds.resident]")[0],
        region="410400",
    )
    (reject,) = read_rows(out / "rejects.csv")
    assert reject["case_id"] == "a3" and "add up to 1100.00" in reject["reason"]
    (settled,) = read_rows(out / "cases.csv")
    assert settled["fund_paid"] == "6750.00"


def test_cli_settle_writes_every_report_and_prints_reconciliation(home, tmp_path):
    src = write_cases(tmp_path / "b.csv", _rows())
    config = tmp_path / "settle.toml"
    config.write_text(TWO_FUNDS, encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["--home", str(home), "settle", "--period", "2025", "--config", str(config), "--input", str(src),
         "--output", str(out), "--workers", "1", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "对账检查" in result.output and "不通过" not in result.output
    for name in (
        "cases.csv",
        "rejects.csv",
        "hospitals.csv",
        "departments.csv",
        "groups.csv",
        "settlement.xlsx",
        "report.html",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    from openpyxl import load_workbook

    wb = load_workbook(out / "settlement.xlsx", read_only=True)
    assert wb.sheetnames == ["说明", "医疗机构", "科室", "病种", "对账", "质控规则", "拒收与质控"]
    header = next(wb["医疗机构"].iter_rows(values_only=True))
    assert "盈亏(元)" in header and "CMI" in header
    html = (out / "report.html").read_text(encoding="utf-8")
    assert (
        "<svg" in html
        and "点值敏感性" in html
        and "亏损最多的病种" in html
        and "http" not in html.split("<svg", 1)[0]
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--period", "25"], "period must be a year"),
        (["--period", "2025", "--month", "2024-06"], "month must be YYYY-MM within --period"),
        (["--period", "2025", "--config", "MISSING.toml"], "config file not found"),
    ],
)
def test_cli_rejects_bad_arguments_with_a_clear_message(home, tmp_path, args, message):
    src = write_cases(tmp_path / "b.csv", _rows())
    result = CliRunner().invoke(
        main, ["--home", str(home), "settle", *args, "--input", str(src), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and message in result.output


def test_config_with_unknown_key_or_bad_ratio_is_refused(tmp_path):
    from settlement.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="unknown settlement keys: budgett"):
        parse_config({"settlement": {"budgett": 1}})
    with pytest.raises(ConfigError, match="payment_ratio must be ≤ 1"):
        parse_config({"settlement": {"funds": {"x": {"payment_ratio": "1.5", "budget": "10"}}}})


def test_hostile_text_is_escaped_in_the_html_report(home, tmp_path):
    rows = _rows()
    rows[0]["department"] = "<script>alert(1)</script>"
    rows[0]["hospital_id"] = "<b>H</b>"
    out = tmp_path / "out"
    config = TWO_FUNDS.replace(
        "[settlement.funds.employee]",
        '[settlement.hospitals."<b>H</b>"]\nname = "<img src=x>"\n\n[settlement.funds.employee]',
    )
    settle(home, [write_cases(tmp_path / "h.csv", rows)], out, config, region="410400")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "<b>H</b>" not in html and "<img" not in html
    assert "&lt;b&gt;H&lt;/b&gt;" in html


def test_gbk_encoded_export_with_chinese_headers_is_read(home, tmp_path):
    """Many HIS exports are GBK with Chinese column names."""
    header = "病案号,主要诊断,手术及操作,总费用,医疗机构编码,医院等级,险种,科室,出院日期"
    lines = [
        header,
        "g1,K35.3,47.0100,9000.00,H3,3,职工,普外科,2025-06-01",
        "g2,J18.9,,2500.00,H1,1,居民,呼吸内科,2025-06-02",
    ]
    path = tmp_path / "gbk.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    out = tmp_path / "out"
    report = settle(home, [path], out, TWO_FUNDS, region="410400")
    cases = {r["case_id"]: r for r in read_rows(out / "cases.csv")}
    assert report.result.counts["rejected"] == 0
    assert cases["g1"]["dip_code"] == "K35.3:47.0100" and cases["g1"]["department"] == "普外科"
    assert cases["g2"]["dip_code"] == "J18.9"


def test_header_only_file_gives_empty_reports_not_a_crash(home, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(",".join(CASE_HEADER) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    report = settle(home, [path], out, region="410400")
    assert report.result.counts["rows_in"] == 0
    assert read_rows(out / "cases.csv") == [] and (out / "report.html").is_file()


def test_broken_xlsx_is_a_clear_error(home, tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"this is not a workbook")
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(home),
            "settle",
            "--period",
            "2025",
            "--input",
            str(path),
            "--output",
            str(tmp_path / "o"),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code != 0 and "not a readable XLSX workbook" in result.output


def test_formula_looking_input_text_stays_text_in_csv_and_excel_outputs(home, tmp_path):
    rows = _rows()
    rows[0]["department"] = '=HYPERLINK("http://x","点我")'
    rows[0]["hospital_id"] = "@H3"
    out = tmp_path / "out"
    settle(home, [write_cases(tmp_path / "f.csv", rows)], out, TWO_FUNDS, region="410400")
    (case_row,) = [r for r in read_rows(out / "cases.csv") if r["case_id"] == "a1"]
    assert case_row["department"].startswith("'=") and case_row["hospital_id"] == "'@H3"
    assert any(d["department"].startswith("'=") for d in read_rows(out / "departments.csv"))
    hospital = {h["hospital_id"]: h for h in read_rows(out / "hospitals.csv")}["'@H3"]
    assert Decimal(hospital["gain_loss"]) == Decimal(hospital["dip_payment"]) - Decimal(
        hospital["total_cost"]
    )  # numbers untouched
    from openpyxl import load_workbook

    wb = load_workbook(out / "settlement.xlsx")
    departments = [row[1] for row in wb["科室"].iter_rows(min_row=2, values_only=True)]
    assert any(str(d).startswith("'=") for d in departments)
    assert all(cell.data_type != "f" for row in wb["科室"].iter_rows() for cell in row)
