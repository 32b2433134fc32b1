"""事后审核 in batch: seeded synthetic fee details are audited with recall and precision 1.0, the SQL
gives the evaluator's answers line for line, DuckDB and Spark write identical outputs, and bad lines
are listed with their reason while the rest is audited."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from cds_service.cli import main
from tests.yb_audit_helpers import RULE_LIBRARY, SAMPLE, SETTINGS
from yb_audit.batch.run import run_audit
from yb_audit.codes import value_tables
from yb_audit.evaluate import evaluate
from yb_audit.importer import import_paths
from yb_audit.model import Case, Line, Patient, Stay
from yb_audit.store import load_rules
from yb_audit.synth import write_synth_fees

OUTPUTS = ("findings.csv", "rejects.csv", "by_rule.csv", "departments.csv", "doctors.csv")


def keyed(path: Path) -> set[tuple[str, str, str, str, str]]:
    with path.open(encoding="utf-8") as fh:
        return {
            (r["rule_id"], r["check"], r["feedetl_sn"], r["severity"], r["amount_at_risk"])
            for r in csv.DictReader(fh)
        }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Synthetic data on the built-in sample rules, every kind seeded, and its DuckDB audit."""
    root = tmp_path_factory.mktemp("seeded")
    synth = write_synth_fees(
        SAMPLE, root / "data", stays=1500, seed=11, rates=None, lines_per_stay=12, bad_lines=10
    )
    summary = run_audit(synth.fees, synth.stays, root / "out", home=None, settings=SETTINGS, rules=SAMPLE)
    return synth, summary, root / "out"


def test_every_seeded_violation_is_found_and_nothing_else(seeded):
    synth, summary, out = seeded
    expected, found = keyed(synth.expected), keyed(out / "findings.csv")
    assert len(expected) == synth.expected_findings > 150
    true_positives = expected & found
    recall, precision = len(true_positives) / len(expected), len(true_positives) / len(found)
    assert (recall, precision) == (1.0, 1.0), (sorted(expected - found)[:5], sorted(found - expected)[:5])
    manifest = json.loads((synth.fees.parent / "manifest.json").read_text(encoding="utf-8"))
    assert all(n["positive"] > 0 for n in manifest["scenarios"].values())  # every kind was seeded
    assert {r["rule_kind"] for r in csv.DictReader((out / "findings.csv").open(encoding="utf-8"))} == {
        "sex", "age_group", "age", "insurance", "care_setting", "hospital_level", "drug_course",
        "duplicate", "frequency", "cycle", "course", "main_secondary",
    }  # fmt: skip


def test_bad_lines_are_listed_with_their_reason_and_the_rest_is_audited(seeded):
    synth, summary, out = seeded
    rows = list(csv.DictReader((out / "rejects.csv").open(encoding="utf-8")))
    assert len(rows) == synth.bad_lines == summary["counts"]["fee_rejected"]
    assert {r["reason"].split("：")[0].split("（")[0] for r in rows} == {
        "fee_ocur_time 不是有效时间",
        "缺少 med_list_codg",
        "cnt 不是数值",
        "列数与表头不符",
        "退费明细",
    }
    with synth.fees.open(encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for row in rows:  # the line number is the file's own
        assert lines[int(row["line"]) - 1].startswith(row["record"])
    assert summary["counts"]["fee_valid"] == summary["counts"]["fee_lines"] - synth.bad_lines


def test_outputs_totals_rankings_workbook_and_an_offline_report_without_patient_ids(seeded):
    synth, summary, out = seeded
    findings = list(csv.DictReader((out / "findings.csv").open(encoding="utf-8")))
    by_line: dict[str, Decimal] = defaultdict(Decimal)
    for f in findings:
        by_line[f["feedetl_sn"]] = max(by_line[f["feedetl_sn"]], Decimal(f["amount_at_risk"]))
    assert Decimal(summary["totals"]["amount_at_risk"]) == sum(by_line.values())
    departments = list(csv.DictReader((out / "departments.csv").open(encoding="utf-8")))
    amounts = [Decimal(d["amount_at_risk"]) for d in departments]
    assert amounts == sorted(amounts, reverse=True) and sum(amounts) == sum(by_line.values())
    assert [int(d["rank"]) for d in departments] == list(range(1, len(departments) + 1))
    by_rule = list(csv.DictReader((out / "by_rule.csv").open(encoding="utf-8")))
    assert sum(int(r["findings"]) for r in by_rule) == len(findings)
    workbook = load_workbook(out / "findings.xlsx", read_only=True)
    assert workbook.sheetnames == ["说明", "按规则汇总", "科室排名", "医生排名", "违规明细", "未审核行"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "医保智能审核 事后审核报告" in html and "内置示例规则" in html
    assert (
        "src=" not in html and "<script" not in html and "http://" not in html.replace('xmlns="http://', "")
    )
    assert not any(f["psn_no"] in html or f["mdtrt_id"] in html for f in findings)
    assert set(summary["timings"]) >= {"read", "join", "rank", "report", "total"}


def _decimal(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def cases_from_files(fees: Path, stays: Path) -> list[Case]:
    """The evaluator's cases (one per patient) straight from the files, refunds netted."""
    tables = value_tables(None)
    stay_rows = {r["mdtrt_id"]: r for r in csv.DictReader(stays.open(encoding="utf-8"))}
    with fees.open(encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [
            (reader.line_num, dict(zip(header, cells, strict=True)))
            for cells in reader
            if len(cells) == len(header) and not cells[0].startswith("BAD")  # the seeded bad lines
        ]
    refunds: dict[str, tuple[Decimal, Decimal]] = defaultdict(lambda: (Decimal(0), Decimal(0)))
    for _, r in rows:
        if r["cnt"].startswith("-") and r["init_feedetl_sn"]:
            cnt, amt = refunds[r["init_feedetl_sn"]]
            refunds[r["init_feedetl_sn"]] = (cnt + Decimal(r["cnt"]), amt + Decimal(r["det_item_fee_sumamt"]))
    by_patient: dict[str, list[Line]] = defaultdict(list)
    stays_of: dict[str, dict[str, Stay]] = defaultdict(dict)
    births: dict[str, Patient] = {}
    for number, r in rows:
        code = r["med_list_codg"]
        if not code or code not in SAMPLE.codes() or r["cnt"].startswith("-"):
            continue
        refund_cnt, refund_amt = refunds.get(r["feedetl_sn"], (Decimal(0), Decimal(0)))
        cnt = Decimal(r["cnt"]) + refund_cnt
        if cnt <= 0:
            continue
        s = stay_rows[r["mdtrt_id"]]
        stays_of[r["psn_no"]][r["mdtrt_id"]] = Stay(
            r["mdtrt_id"],
            r["psn_no"],
            tables.encounter_type_of(s["med_type"], "med_type"),
            tables.insurance_of(s["insutype"]),
            tables.level_of(s["medins_lv"]),
        )
        births[r["psn_no"]] = Patient(tables.sex_of(s["gend"]), date.fromisoformat(s["brdy"]))
        by_patient[r["psn_no"]].append(
            Line(
                ref=r["feedetl_sn"],
                code=code,
                subject=None,
                name="",
                at=datetime.fromisoformat(r["fee_ocur_time"]),
                quantity=cnt,
                unit_price=Decimal(r["pric"]),
                amount=Decimal(r["det_item_fee_sumamt"]) + refund_amt,
                stay_id=r["mdtrt_id"],
                reference_price=_decimal(r["pric_uplmt_amt"]),
                seq=number,
            )
        )
    return [Case(births[p], Stay(), tuple(lines), stays_of[p]) for p, lines in by_patient.items()]


def test_the_set_based_sql_gives_the_evaluators_answers_line_for_line(seeded):
    synth, _, out = seeded
    python = {
        (f.rule_id, f.check, f.line_ref, f.severity, f"{f.amount_at_risk:.2f}")
        for c in cases_from_files(synth.fees, synth.stays)
        for f in evaluate(SAMPLE, c, SETTINGS).findings
    }
    assert python == keyed(out / "findings.csv")


@pytest.mark.skipif(not RULE_LIBRARY.is_dir(), reason="../shared/data/rules not present")
def test_seeded_violations_of_the_whole_published_library_are_found_exactly(tmp_path):
    import_paths(tmp_path / "home", [RULE_LIBRARY])
    rules = load_rules(tmp_path / "home")
    synth = write_synth_fees(rules, tmp_path / "data", stays=2000, seed=5, lines_per_stay=10)
    run_audit(synth.fees, synth.stays, tmp_path / "out", home=tmp_path / "home", settings=SETTINGS)
    assert keyed(tmp_path / "out" / "findings.csv") == keyed(synth.expected) and synth.expected_findings > 200


def test_the_spark_engine_writes_the_same_outputs(tmp_path):
    pytest.importorskip("pyspark", reason="pyspark not installed (pip install -e '.[spark]')")
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark")
    synth = write_synth_fees(SAMPLE, tmp_path / "data", stays=400, seed=3, lines_per_stay=8, bad_lines=5)
    with synth.fees.open("a", encoding="utf-8") as fh:  # a quoted field with a comma, and a blank line
        fh.write(
            'Q1,,QM1,QP1,2026-03-01 10:00:00,001102000050000,,"住院诊查费,加急",1,20.00,20.00,,0301,"内科, 一病区",D1,医生\n\n'
        )
    with synth.stays.open("a", encoding="utf-8") as fh:
        fh.write("QM1,QP1,1,1970-01-01,310,21,02\n")
    embedded = run_audit(
        synth.fees, synth.stays, tmp_path / "duck", home=None, settings=SETTINGS, rules=SAMPLE
    )
    spark = run_audit(
        synth.fees,
        synth.stays,
        tmp_path / "spark",
        home=None,
        settings=SETTINGS,
        rules=SAMPLE,
        engine="spark",
    )
    for name in OUTPUTS:
        assert (tmp_path / "duck" / name).read_bytes() == (tmp_path / "spark" / name).read_bytes(), name
    assert embedded["counts"] == spark["counts"] and embedded["totals"] == spark["totals"]
    assert keyed(tmp_path / "duck" / "findings.csv") == keyed(synth.expected)


def test_gb18030_and_crlf_files_are_read_with_their_own_line_numbers(tmp_path):
    fees = tmp_path / "fees.csv"
    stays = tmp_path / "stays.csv"
    header = (
        "费用明细流水号,就诊ID,人员编号,费用发生时间,医疗目录编码,数量,单价,明细项目费用总额,开单科室名称\r\n"
    )
    body = (
        "A1,M1,P1,2026-11-22 08:00:00,001102000050000,1,20,20,心内科\r\n"
        "\r\n"
        "A2,M1,P1,2026/11/22 09:00:00,001102000050000,1,20,20,心内科\r\n"
        "A3,M1,P1,20261122,001102000050000,1,20,20,心内科\r\n"
        "A4,M1,P1,2026-02-30 09:00,001102000050000,1,20,20,心内科\r\n"
    )
    fees.write_bytes((header + body).encode("gb18030"))
    stays.write_text(
        "就诊ID,人员编号,性别,出生日期,险种,医疗类别,医疗机构等级\nM1,P1,男,1970-01-01,职工,21,三级\n",
        encoding="utf-8",
    )
    summary = run_audit(fees, stays, tmp_path / "out", home=None, settings=SETTINGS, rules=SAMPLE)
    assert summary["meta"]["编码转换"] == [str(fees)]
    [reject] = list(csv.DictReader((tmp_path / "out" / "rejects.csv").open(encoding="utf-8")))
    assert (reject["line"], reject["record"], reject["reason"]) == (
        "6",
        "A4",
        "fee_ocur_time 不是有效时间：2026-02-30 09:00",
    )
    lines = sorted(
        int(f["source_line"])
        for f in csv.DictReader((tmp_path / "out" / "findings.csv").open(encoding="utf-8"))
    )
    assert lines == [
        2,
        4,
    ]  # A3 (a date only: midnight) is the day's first 住院诊查费, A1 and A2 are over the limit


def test_cli_synth_fees_and_audit(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "home")
    made = runner.invoke(
        main,
        [
            "--home",
            home,
            "synth-fees",
            "--output",
            str(tmp_path / "d"),
            "--stays",
            "300",
            "--rate",
            "frequency=0.05",
            "--rate",
            "sex=0",
        ],
    )
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        main,
        [
            "--home",
            home,
            "audit",
            "--fees",
            str(tmp_path / "d" / "fees.csv"),
            "--stays",
            str(tmp_path / "d" / "stays.csv"),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "违规" in result.output and "rejects.csv" in result.output
    assert keyed(tmp_path / "o" / "findings.csv") == keyed(tmp_path / "d" / "expected.csv")
    bad = runner.invoke(
        main, ["--home", home, "synth-fees", "--output", str(tmp_path / "x"), "--rate", "nonsense=1"]
    )
    assert bad.exit_code == 2 and "KIND=RATE" in bad.output
    missing = tmp_path / "bad.csv"
    missing.write_text("a,b\n1,2\n", encoding="utf-8")
    refused = runner.invoke(
        main,
        [
            "--home",
            home,
            "audit",
            "--fees",
            str(missing),
            "--stays",
            str(missing),
            "--output",
            str(tmp_path / "o2"),
        ],
    )
    assert refused.exit_code == 1 and "表头缺少列 feedetl_sn" in refused.output
