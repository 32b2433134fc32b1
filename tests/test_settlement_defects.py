"""Regression tests for the settlement defects an outside audit found (issue 13), and the rule that a
case the quality gate rejects is listed with its reason in every report (issue 9).

They run on the built-in sample data (catalog + terminology of region 999999), so codes are checked
against a real 医保版 table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from settlement.inputs import InputError
from tests.settlement_helpers import case, read_rows, settle, write_cases

HOSPITAL = "H999999001"


def rows(*extra: dict) -> list[dict]:
    return [
        case("ok1", "K35.300", "47.0100", "9000.00", HOSPITAL, "3"),
        case("ok2", "K35.300", "47.0100", "7000.00", HOSPITAL, "3", department="普外二科"),
        *extra,
    ]


def outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_control_characters_in_a_department_name_do_not_abort_the_xlsx_report(tmp_path):
    batch = rows(case("cc", "K35.300", "47.0100", "8000.00", HOSPITAL, "3", department="急诊\x00外科\x0b"))
    out = tmp_path / "out"
    report = settle(tmp_path / "home", [write_cases(tmp_path / "b.csv", batch)], out)
    assert report.result.ok
    sheet = load_workbook(out / "settlement.xlsx", read_only=True)["科室"]
    names = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "急诊\ufffd外科" in names  # visible, never silently dropped (the trailing one is blank space)


def test_a_report_that_fails_half_way_leaves_the_previous_report_untouched(tmp_path, monkeypatch):
    home, out = tmp_path / "home", tmp_path / "out"
    settle(home, [write_cases(tmp_path / "a.csv", rows())], out)
    before = outputs(out)
    assert set(before) == {
        "cases.csv", "rejects.csv", "hospitals.csv", "departments.csv", "groups.csv", "settlement.xlsx",
        "report.html", "summary.json",
    }  # fmt: skip

    from settlement import reports

    def broken_writer(*args, **kwargs):  # the failure the audit saw: the XLSX writer raising mid-run
        raise ValueError("cannot write the workbook")

    monkeypatch.setattr(reports, "write_xlsx", broken_writer)
    second = rows(case("new", "K35.300", "47.0100", "5000.00", HOSPITAL, "3"))
    with pytest.raises(ValueError, match="cannot write the workbook"):
        settle(home, [write_cases(tmp_path / "b.csv", second)], out)
    assert outputs(out) == before  # no new CSV beside the old report
    assert [p.name for p in out.iterdir() if p.name.startswith(".report-staging")] == []

    monkeypatch.undo()
    settle(home, [write_cases(tmp_path / "b.csv", second)], out)
    assert "new" in (out / "cases.csv").read_text(encoding="utf-8")
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["counts"]["settled"] == 3


def test_a_missing_required_column_is_one_file_level_error(tmp_path):
    header = ("case_id", "sex", "age", "los_days", "main_diagnosis", "procedures", "department")
    src = write_cases(tmp_path / "no-cost.csv", rows(), header=header)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        settle(tmp_path / "home", [src], out)
    message = str(err.value)
    assert "no-cost.csv" in message and "total_cost" in message and "hospital_id" in message
    assert not (out / "rejects.csv").exists()


def test_impossible_dates_zero_cost_and_absurd_stays_are_rejected_or_flagged_with_a_reason(tmp_path):
    batch = rows(
        case("feb30", "K35.300", "47.0100", "8000.00", HOSPITAL, "3", discharge_date="2025-02-30"),
        case("free", "K35.300", "47.0100", "0", HOSPITAL, "3"),
        case("forever", "K35.300", "47.0100", "8000.00", HOSPITAL, "3", los_days="40000"),
    )
    out = tmp_path / "out"
    report = settle(tmp_path / "home", [write_cases(tmp_path / "b.csv", batch)], out)
    rejects = {r["case_id"]: r for r in read_rows(out / "rejects.csv")}
    assert rejects["feb30"]["stage"] == "拒收" and "2025-02-30" in rejects["feb30"]["reason"]
    assert "不存在" in rejects["feb30"]["reason"]
    assert "total_cost 为 0" in rejects["free"]["reason"]
    cases = {r["case_id"]: r for r in read_rows(out / "cases.csv")}
    assert cases["forever"]["qc_flags"] == "los.implausible:40000"
    assert report.result.counts["rejected"] == 2 and report.result.ok


def test_a_case_the_quality_gate_rejects_is_in_every_report_with_rule_and_code(tmp_path):
    batch = rows(
        case("fall", "W19.x00", "", "3000.00", HOSPITAL, "3"),  # external cause: never principal
        case("typo", "K35.399", "47.0100", "6000.00", HOSPITAL, "3"),  # no such 医保版 code
    )
    out = tmp_path / "out"
    report = settle(tmp_path / "home", [write_cases(tmp_path / "b.csv", batch)], out)
    expected = {"fall": "dx.never_principal:W19.x00", "typo": "dx.not_in_table:K35.399"}

    cases = {r["case_id"]: r for r in read_rows(out / "cases.csv")}
    rejects = {r["case_id"]: r for r in read_rows(out / "rejects.csv")}
    html = (out / "report.html").read_text(encoding="utf-8")
    sheet = load_workbook(out / "settlement.xlsx", read_only=True)["拒收与质控"]
    listed = {row[2]: row[4] for row in sheet.iter_rows(min_row=2, values_only=True)}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for case_id, flag in expected.items():
        rule, code = flag.split(":")
        assert cases[case_id]["qc_flags"] == flag and cases[case_id]["basis"] == "不予支付(质控不通过)"
        assert cases[case_id]["dip_payment"] == "0.00"  # never paid at cost silently
        assert rejects[case_id]["stage"] == "质控不通过"
        for text in (rejects[case_id]["reason"], listed[case_id]):
            assert rule in text and code in text
        assert case_id in html
    assert summary["counts"]["qc_rejected"] == 2
    assert {q["rule"] for q in summary["qc_rules"]} >= {"dx.never_principal", "dx.not_in_table"}
    assert "不予支付" in summary["payment_rules"]["rejected"] and report.result.ok


def test_report_html_escapes_every_value_from_the_input(tmp_path):
    batch = rows(
        case("loss", "K35.300", "47.0100", "16000.00", HOSPITAL, "3", department="<script>alert(1)</script>"),
        case("<img src=x>", "W19.x00", "", "3000.00", HOSPITAL, "3"),
    )
    out = tmp_path / "out"
    settle(tmp_path / "home", [write_cases(tmp_path / "b.csv", batch)], out)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # 亏损最多的科室
    assert "<img" not in html and "&lt;img src=x&gt;" in html  # 拒收与质控 list


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (now init) has not reaped it yet


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_worker_processes_exit_when_the_settle_process_is_killed(tmp_path):
    from dip_engine import sample_catalog
    from settlement.synth import write_synth
    from terminology import load_terminology

    src = tmp_path / "big.csv"
    write_synth(src, sample_catalog(), 40_000, 5, seed=7, terminology=load_terminology(None))
    cli = Path(sys.executable).with_name("dip-cds")
    proc = subprocess.Popen(
        [str(cli), "--home", str(tmp_path / "home"), "settle", "--period", "2025", "--input", str(src),
         "--output", str(tmp_path / "out"), "--workers", "2", "--chunk-size", "500", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = _children(proc.pid)
        assert len(workers) >= 2, "the settlement never started its workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "worker processes outlived the killed parent"
    finally:  # whatever happened, leave no process of this test behind
        for pid in [proc.pid, *_children(proc.pid), *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
