"""The coder-facing CLI: import with a report, lookup, search, map."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cds_service.cli import main
from tests.terminology_helpers import write


@pytest.fixture()
def run(tmp_path):
    home = tmp_path / "home"

    def invoke(*args: str):
        return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)

    invoke.home = home
    return invoke


def test_import_prints_a_report_with_rejected_lines_and_continues(run, tmp_path) -> None:
    good = write(tmp_path / "dx.tsv", "code\tname\nK35.300\t急性阑尾炎伴局限性腹膜炎\nbad\t坏行\n")
    broken = write(tmp_path / "broken.csv", "foo,bar\n")
    result = run("data", "import-terminology", str(good), str(broken), "--version", "2.0")
    assert result.exit_code == 1  # one file failed, and the command says so
    assert "导入 1 行" in result.output and "拒绝 1 行" in result.output
    assert "第 3 行" in result.output
    assert "无法识别表头" in result.output
    assert (run.home / "terminology.sqlite").exists()
    versions = run("data", "terminology-versions")
    assert "* dx" in versions.output


def test_lookup_shows_structure_and_fails_for_unknown_codes(run) -> None:
    ok = run("code", "lookup", "k35.300")
    assert ok.exit_code == 0 and "急性阑尾炎伴局限性腹膜炎" in ok.output and "阑尾疾病" in ok.output
    bad = run("code", "lookup", "K35.3", "--json")
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["status"] == "unknown" and data["suggestions"][0]["code"] == "K35.300"


def test_search_by_pinyin_and_by_system(run) -> None:
    result = run("code", "search", "JXLWY", "--limit", "3")
    assert result.exit_code == 0 and result.stdout.splitlines()[0].startswith("K35.800x001")
    px = run("code", "search", "阑尾", "--system", "px", "--json")
    hits = json.loads(px.stdout)
    assert hits and all(h["kind"] == "px" for h in hits)


def test_map_codes_from_other_systems_and_text(run) -> None:
    clinical = run("code", "map", "I21.100x002", "--system", "urn:oid:2.16.156.10011.2.3.3.11")
    assert (
        clinical.exit_code == 0 and "I21.103" in clinical.output and "gl2.0-official-map" in clinical.output
    )
    text = run("code", "map", "阑尾发炎")
    assert text.exit_code == 1 and "候选" in text.output and "需要" in text.output
    garbage = run("code", "map", "x" * 10_000, "--json")
    assert garbage.exit_code == 1
    assert json.loads(garbage.stdout)["code"] is None
