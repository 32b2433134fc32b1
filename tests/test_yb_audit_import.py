"""Importing rule workbooks as NHSA publishes them, and a hospital's own rules: what is read, the
validation report, versions, and what is refused as a whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cds_service.cli import main
from tests.yb_audit_helpers import RULE_LIBRARY, SAMPLE, workbook
from yb_audit import store
from yb_audit.importer import import_file, import_paths

needs_library = pytest.mark.skipif(not RULE_LIBRARY.is_dir(), reason="../shared/data/rules not present")

# workbook → (kind, rules, distinct codes), as published (batches 1–8)
LIBRARY = {
    "【第一批】药品规则库(限定年龄对象)": ("age_group", 282, 4398),
    "【第一批】药品规则库(限定性别对象)": ("sex", 481, 6472),
    "【第一批】项目规则库(限定年龄对象)": ("age_group", 30, 30),
    "【第一批】项目规则库(限定性别对象)": ("sex", 390, 390),
    "【第二批】项目规则库(限定主次操作)": ("main_secondary", 7, 368),
    "【第三批】药品规则库(限定保险类型)": ("insurance", 12, 112),
    "【第四批】药品规则库(限定就医方式)": ("care_setting", 35, 736),
    "【第五批】药品规则库(限定机构等级)": ("hospital_level", 61, 962),
    "【第六批】药品规则库(限定支付疗程)": ("drug_course", 30, 1147),
    "【第七批】项目规则库(重复收费)": ("duplicate", 900, 528),
    "【第八批-1】项目规则库(限定频次)": ("frequency", 67, 67),
    "【第八批-2】项目规则库(限定年龄)": ("age", 1, 1),
    "【第八批-3】项目规则库(限定疗程)": ("course", 11, 11),
    "【第八批-4】项目规则库(限定周期)": ("cycle", 14, 14),
}


@pytest.fixture(scope="module")
def library_home(tmp_path_factory):
    if not RULE_LIBRARY.is_dir():
        pytest.skip("../shared/data/rules not present")
    home = tmp_path_factory.mktemp("rules-home")
    reports, skipped = import_paths(home, [RULE_LIBRARY])
    return home, reports, skipped


@needs_library
def test_every_published_workbook_imports_with_every_row_read_and_none_rejected(library_home):
    home, reports, _ = library_home
    got = {r.name: (r.kinds, r.rules, r.codes, r.rejects, r.ok) for r in reports}
    assert got == {name: ([kind], rules, codes, [], True) for name, (kind, rules, codes) in LIBRARY.items()}
    rules = store.load_rules(home)
    assert len(rules) == sum(n for _, n, _ in LIBRARY.values()) and not rules.is_sample


@needs_library
def test_drug_restrictions_join_the_codes_of_sheet2_by_generic_name(library_home):
    rules = store.load_rules(library_home[0])
    apalutamide = rules.by_id["B01-DSEX-0001"]
    assert apalutamide.item_name == "阿帕他胺片" and apalutamide.params == {"sex": "男"}
    assert apalutamide.codes == (
        "XL02BBA326A001010102180",
        "XL02BBA326A001010178537",
        "XL02BBA326A001020278537",
    )
    assert all(len(c) in (20, 23) for r in rules.rules if r.subject == "drug" for c in r.codes)
    assert all(
        len(c) == 15 and c.isdigit()
        for r in rules.rules
        if r.subject == "item"
        for c in (*r.codes, *r.codes2)
    )


@needs_library
def test_text_and_values_are_read_as_the_bureau_states_them(library_home):
    rules = store.load_rules(library_home[0])
    assert rules.by_id["B06-DDAYS-0001"].params == {"max_days": 14}
    assert rules.by_id["B05-DLVL-0061"].params == {"min_level": 3}
    assert rules.by_id["B08-1-IFREQ-0039"].params == {"limit": 24, "unit": "小时"}  # 心电监测: 24 hours a day
    assert rules.by_id["B08-3-ICRS-0001"].params == {
        "checks": [{"check": "span_days", "days": 90}, {"check": "cycle", "limit": 1, "days": 14}]
    }
    assert rules.by_id["B08-2-IAGE-0001"].params == {"manual": True}
    assert rules.by_id["B07-IDUP-0291"].params["window"] == "hours"  # 同一小时
    ops = rules.by_id["B02-IOPS-0001"]
    assert ops.params == {"group": "胃肠手术组"} and len(ops.codes) == 87
    assert (
        rules.by_id["B01-DAGEG-0001"].text == "清肺，化痰，止咳。用于面赤身热，咳嗽，痰多，咽痛。"
    )  # not NFKC-folded


@needs_library
def test_the_footnote_of_a_batch_is_kept_with_the_rule_set(library_home):
    [version] = [v for v in store.versions(library_home[0]) if v.name == "【第八批-1】项目规则库(限定频次)"]
    assert version.note.startswith("备注：对于涉及医疗服务项目的智能监管规则和知识点") and version.rows == 67


@needs_library
def test_the_built_in_sample_is_a_faithful_excerpt_of_the_library(library_home):
    real = store.load_rules(library_home[0])
    for rule in SAMPLE.rules:
        published = real.by_id[rule.rule_id]
        assert (rule.kind, dict(rule.params), rule.text, rule.codes2, rule.batch) == (
            published.kind,
            dict(published.params),
            published.text,
            published.codes2,
            published.batch,
        ), rule.rule_id
        assert set(rule.codes) <= set(published.codes)


@needs_library
def test_reimporting_an_unchanged_workbook_keeps_the_version_a_changed_one_adds_one(tmp_path, library_home):
    home = library_home[0]
    path = RULE_LIBRARY / "【第八批-4】项目规则库（限定周期）.xlsx"
    again = import_file(home, path)
    assert again.ok and again.unchanged and again.version == 1
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes() + b"\0")  # same rules, different bytes: a new version
    assert import_file(home, copy).version == 2
    store.activate(home, again.name, 1)
    assert [v.active for v in store.versions(home) if v.name == again.name] == [True, False]


# ----------------------------------------------------------------------------- hand-made workbooks


def _drug_workbook(path: Path, sheet2_rows: list[list]) -> Path:
    return workbook(
        path,
        {
            "Sheet1": [
                ["药品通用名", "药品说明", "限定类型", "限定对象"],
                ["甲药", "限男性。", "限定性别对象", "男"],
                ["乙药", "限女性。", "限定性别对象", "女"],
                ["丙药", "没有代码的药。", "限定性别对象", "女"],
                ["丁药", "对象写错了。", "限定性别对象", "男女"],
            ],
            "Sheet2": [["药品通用名", "序号", "药品代码", "限定类型"], *sheet2_rows],
        },
    )


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_imported(tmp_path):
    path = _drug_workbook(
        tmp_path / "【第九批】药品规则库（限定性别对象）.xlsx",
        [
            ["甲药", 1, "XA01AAA001A001010100001", "限定性别对象"],
            ["乙药", 1, "ZA01AAA0001010100001", "限定性别对象"],
            ["乙药", 2, "ZA01AAA-BAD", "限定性别对象"],
            ["戊药", 1, "ZA01AAA0002010100001", "限定性别对象"],
            ["甲药", 2, "XA01AAA001A001010100002", "限定年龄对象"],
        ],
    )
    report = import_file(tmp_path, path)
    assert report.ok and report.batch == "第九批" and report.rules == 2 and report.codes == 2
    assert report.rejects == [
        "Sheet1 第 5 行：限定性别应为 男 或 女，而不是「男女」",
        "Sheet2 第 4 行：编码 ZA01AAA-BAD 不是20 或 23 位医保药品代码",
        "Sheet2 第 5 行：药品「戊药」不在限定规则表中",
        "Sheet2 第 6 行：限定类型「限定年龄对象」与限定规则表不一致",
        "Sheet1 第 4 行：药品「丙药」没有任何医保药品代码",
    ]
    rules = store.load_rules(tmp_path)
    assert [r.rule_id for r in rules.rules] == ["B09-DSEX-0001", "B09-DSEX-0002"]


def test_a_workbook_of_unknown_layout_is_refused_whole_and_nothing_is_stored(tmp_path):
    path = workbook(tmp_path / "新规则.xlsx", {"规则": [["编号", "名称", "限定对象"], ["1", "甲", "男"]]})
    report = import_file(tmp_path, path)
    assert not report.ok and "无法识别的表格格式" in report.error and "编号 | 名称 | 限定对象" in report.error
    assert store.versions(tmp_path) == [] and store.load_rules(tmp_path).is_sample


def test_a_file_that_is_not_a_workbook_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "rules.xlsx"
    path.write_bytes(b"not a zip")
    report = import_file(tmp_path, path)
    assert not report.ok and report.error and store.versions(tmp_path) == []


def test_item_codes_stored_as_numbers_get_their_leading_zeros_back(tmp_path):
    path = workbook(
        tmp_path / "【第十批】项目规则库（限定频次）.xlsx",
        {
            "知识点明细": [
                ["序号", "项目名称", "限制数量", "数量单位", "项目编码"],
                [1, "住院诊查费", 1, "日", 1102000050000],
            ]
        },
    )
    report = import_file(tmp_path, path)
    assert report.ok, report.error
    assert store.load_rules(tmp_path).rules[0].codes == ("001102000050000",)


def test_a_hospital_csv_in_a_published_layout_is_a_rule_set_of_its_own(tmp_path):
    path = tmp_path / "本院限定频次.csv"
    path.write_text(
        "项目名称,限制数量,数量单位,项目编码\n雾化吸入,3,日,003106070010000\n坏行,x,日,003106070020000\n",
        encoding="gb18030",
    )
    report = import_file(tmp_path, path, prefix="H")
    assert report.ok and report.name == "本院限定频次" and report.rules == 1
    assert report.rejects == ["本院限定频次 第 3 行：数量上限「x」不是正整数"]
    [rule] = store.load_rules(tmp_path).rules
    assert (rule.rule_id, rule.params, rule.batch) == (
        "H-IFREQ-0001",
        {"limit": 3, "unit": "日"},
        "本院限定频次",
    )


HOSPITAL_TOML = """
[ruleset]
name = "本院补充规则"
batch = "本院"

[[rule]]
id = "H-FREQ-0001"
kind = "限定频次"
codes = ["003106070010000"]
item_name = "雾化吸入"
text = "雾化吸入每日限收 3 次"
params = { limit = 3, unit = "日" }

[[rule]]
id = "H-CYC-0001"
kind = "cycle"
codes = ["002503020020000"]
text = "血清果糖胺测定 7 天 1 次"
params = { limit = 1, days = 7 }

[[rule]]
id = "H-BAD-0001"
kind = "frequency"
codes = ["not-a-code"]
text = "坏规则"
params = { limit = 1 }
"""


def test_hospital_rules_in_toml_with_a_rejected_rule_named(tmp_path):
    path = tmp_path / "local.toml"
    path.write_text(HOSPITAL_TOML, encoding="utf-8")
    report = import_file(tmp_path, path)
    assert report.ok and report.rules == 2 and report.batch == "本院"
    assert report.rejects == ["第 3 条规则（H-BAD-0001）：codes 应列出至少一个国家编码"]
    rules = store.load_rules(tmp_path)
    assert {r.rule_id: r.params for r in rules.rules} == {
        "H-FREQ-0001": {"limit": 3, "unit": "日"},
        "H-CYC-0001": {"limit": 1, "days": 7},
    }


def test_rule_ids_clashing_with_another_active_rule_set_refuse_the_import(tmp_path):
    (tmp_path / "a.toml").write_text(HOSPITAL_TOML, encoding="utf-8")
    (tmp_path / "b.toml").write_text(HOSPITAL_TOML.replace("本院补充规则", "另一套规则"), encoding="utf-8")
    assert import_file(tmp_path, tmp_path / "a.toml").ok
    clash = import_file(tmp_path, tmp_path / "b.toml")
    assert not clash.ok and "H-FREQ-0001（本院补充规则）" in clash.error
    assert [v.name for v in store.versions(tmp_path)] == ["本院补充规则"]


def test_cli_import_report_rules_listing_and_exit_code(tmp_path):
    good = tmp_path / "in" / "local.toml"
    good.parent.mkdir()
    good.write_text(HOSPITAL_TOML, encoding="utf-8")
    workbook(tmp_path / "in" / "unknown.xlsx", {"x": [["甲", "乙"], [1, 2]]})
    (tmp_path / "in" / "README.txt").write_text("说明", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(
        main, ["--home", str(tmp_path / "home"), "data", "import-rules", str(tmp_path / "in")]
    )
    assert result.exit_code == 1  # one file refused
    assert "✓" in result.output and "规则 2 条" in result.output and "✗" in result.output
    assert "README.txt: 不是规则文件，已跳过" in result.output
    as_json = runner.invoke(
        main, ["--home", str(tmp_path / "home"), "data", "import-rules", "--json", str(good)]
    )
    assert json.loads(as_json.output)["files"][0]["unchanged"] is True
    listing = runner.invoke(main, ["--home", str(tmp_path / "home"), "data", "rules"])
    assert "● 本院补充规则 第 1 版：规则 2 条" in listing.output
