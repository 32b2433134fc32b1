"""Codes of 医保智能审核: the national formats, the code systems and their alternatives, the
hospital's local drug and item codes, the value tables (and a hospital's additions), the settings."""

from __future__ import annotations

import pytest

from cds_service.config import ConfigError, settings_from_mapping
from yb_audit.codes import (
    DRUG_SYSTEM,
    ITEM_SYSTEM,
    local_maps_for,
    resolve_coding,
    subject_of_code,
    value_tables,
)
from yb_audit.settings import AuditSettings, audit_settings


@pytest.mark.parametrize(
    ("code", "subject"),
    [
        ("XL02BBA326A001010102180", "drug"),  # 西药, 23
        ("ZA04CAE0023010100166", "drug"),  # 中成药, 20
        ("001102000050000", "item"),  # 医疗服务项目, 15 digits
        ("00110200005000", None),
        ("XL02BBA326A00101010218", None),
        ("47.0100", None),
    ],
)
def test_national_code_formats(code, subject):
    assert subject_of_code(code) == subject


@pytest.mark.parametrize(
    "system",
    [
        DRUG_SYSTEM,
        DRUG_SYSTEM + "/",
        DRUG_SYSTEM.upper() + "|2024",
        "yb-drug",
        "医保药品代码",
        "http://www.nhsa.gov.cn/CodeSystem/hilist",
    ],
)
def test_drug_codes_are_recognised_under_the_canonical_system_and_its_alternatives(system):
    found = resolve_coding([{"system": system, "code": "xl02bba326a001010102180"}])
    assert (found.code, found.subject, found.how) == ("XL02BBA326A001010102180", "drug", "system")


def test_an_item_code_under_the_drug_system_is_not_taken_for_a_drug():
    assert resolve_coding([{"system": DRUG_SYSTEM, "code": "001102000050000"}]).code is None
    assert resolve_coding([{"system": ITEM_SYSTEM, "code": "001102000050000"}]).subject == "item"


def test_a_code_without_system_counts_only_in_the_exact_national_format():
    assert resolve_coding([{"code": "001102000050000"}]).how == "format"
    assert resolve_coding([{"code": "1102000050000"}]).code is None
    assert resolve_coding([{"system": "http://his.example.cn/item", "code": "001102000050000"}]).code is None


def test_the_hospitals_drug_and_item_codes_through_its_local_maps(tmp_path):
    items = tmp_path / "local_maps" / "items"
    drugs = tmp_path / "local_maps" / "drugs"
    items.mkdir(parents=True)
    drugs.mkdir(parents=True)
    (items / "his-items.csv").write_text(
        "source_system,source_code,source_name,target_code\n"
        "http://his.example.cn/item,ZC001,住院诊查费,001102000050000\n"
        "http://his.example.cn/item,BAD01,坏映射,XL02BBA326A001010102180\n",
        encoding="utf-8",
    )
    (drugs / "his-drugs.csv").write_text(
        "源系统,源编码,源名称,目标编码\nhttp://his.example.cn/drug,YP-APA,阿帕他胺片,XL02BBA326A001010102180\n",
        encoding="gb18030",
    )
    maps = local_maps_for(tmp_path)
    item = resolve_coding([{"system": "http://his.example.cn/item", "code": "ZC001"}], maps, expect="item")
    assert (item.code, item.how, item.local_code) == ("001102000050000", "local-map:his-items", "ZC001")
    drug = resolve_coding([{"system": "http://his.example.cn/drug", "code": "YP-APA"}], maps, expect="drug")
    assert drug.code == "XL02BBA326A001010102180"
    # a map row whose target is not an item code does not make an item
    assert (
        resolve_coding([{"system": "http://his.example.cn/item", "code": "BAD01"}], maps, expect="item").code
        is None
    )
    # the diagnosis/procedure maps in local_maps/ itself are not read for drugs and items
    assert resolve_coding([{"system": "http://his.example.cn/item", "code": "ZC001"}], {}).code is None


def test_value_tables_read_national_codes_names_and_a_hospitals_additions(tmp_path):
    tables = value_tables(None)
    assert (tables.sex_of("2"), tables.sex_of("female"), tables.sex_of("男性")) == ("女", "女", "男")
    assert (tables.insurance_of("310"), tables.insurance_of("390"), tables.insurance_of("工伤保险")) == (
        "职工",
        "居民",
        "工伤",
    )
    assert (
        tables.level_of("02"),
        tables.level_of("三级甲等"),
        tables.level_of("2"),
        tables.level_of("11"),
    ) == (3, 3, 2, None)
    assert (
        tables.encounter_type_of("21", "med_type") == "住院"
        and tables.encounter_type_of("2999", "med_type") == "住院"
    )
    assert tables.encounter_type_of("EMER", "fhir_class") == "急诊"
    assert tables.insurance_of("41") is None
    (tmp_path / "yb_audit_codes.toml").write_text('[insurance]\n"41" = "工伤"\n', encoding="utf-8")
    assert (
        value_tables(tmp_path).insurance_of("41") == "工伤"
        and value_tables(tmp_path).insurance_of("310") == "职工"
    )
    (tmp_path / "yb_audit_codes.toml").write_text("[insurance\n", encoding="utf-8")
    with pytest.raises(ValueError, match="yb_audit_codes.toml"):
        value_tables(tmp_path)


def test_the_audit_section_is_validated_with_every_problem_named():
    settings = settings_from_mapping({"audit": {"hospital_level": "二级甲等", "child_age_limit": 14}})
    assert audit_settings(settings) == AuditSettings(hospital_level=2, child_age_limit=14)
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(
            {
                "audit": {
                    "hospital_level": "特级",
                    "secondary_operation_rate": 2,
                    "colour": "red",
                    "national_api_keys": ["short"],
                }
            }
        )
    assert sorted(p.split(":")[0] for p in err.value.problems) == [
        "audit.colour",
        "audit.hospital_level",
        "audit.national_api_keys.0",
        "audit.secondary_operation_rate",
    ]


def test_api_keys_never_show_in_the_settings_repr():
    settings = AuditSettings(national_api_keys=("a-secret-key-of-some-length",))
    assert "a-secret-key" not in repr(settings)
