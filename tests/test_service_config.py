"""Configuration: TOML file + env overrides, validated with one clear message per bad setting."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cds_service.config import CORE_SECTIONS, ConfigError, load_settings, settings_from_mapping
from cds_service.plugins import PluginSet, discover
from costing.settings import CostingSettings, HisSchema
from dip_engine.settings import DipSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_safe_for_local_development():
    settings = load_settings(environ={})
    assert settings.security.jwt == "off"
    assert settings.prefetch.deadline_seconds < 0.5  # inside the spec's ~500 ms budget
    assert settings.source == "defaults"


def test_toml_file_is_read(tmp_path):
    path = write(
        tmp_path,
        """
[server]
public_base_url = "http://127.0.0.1:8080"

[security]
jwt = "required"
trust_sandbox = true
redis_url = "redis://cache:6379/0"

[prefetch]
deadline_seconds = 0.3
""",
    )
    settings = load_settings(path, environ={})
    assert settings.security.jwt == "required" and settings.security.redis_url == "redis://cache:6379/0"
    assert settings.prefetch.deadline_seconds == 0.3
    assert "https://sandbox.cds-hooks.org" in settings.security.trusted_issuers()


def test_home_config_toml_is_used_when_present(tmp_path):
    write(tmp_path, '[logging]\nlevel = "DEBUG"\n')
    assert load_settings(home=tmp_path, environ={}).logging.level == "DEBUG"


def test_env_overrides_win_over_the_file_and_parse_types(tmp_path):
    path = write(tmp_path, "[prefetch]\nretries = 2\n")
    env = {
        "DIP_CDS_PREFETCH__RETRIES": "0",
        "DIP_CDS_SECURITY__TRUST_SANDBOX": "true",
        "DIP_CDS_SECURITY__JWT": "required",
        "DIP_CDS_SERVER__PUBLIC_BASE_URL": "https://cds.hospital.cn/dip",
        "DIP_CDS_PREFETCH__ALLOWED_FHIR_SERVERS": '["https://fhir.hospital.cn/"]',
    }
    settings = load_settings(path, environ=env)
    assert settings.prefetch.retries == 0
    assert settings.security.trust_sandbox is True
    assert settings.server.public_base_url == "https://cds.hospital.cn/dip"
    assert settings.prefetch.allowed_fhir_servers == ("https://fhir.hospital.cn/",)
    assert settings.source.endswith("+ environment")


def test_every_bad_setting_gets_its_own_message(tmp_path):
    path = write(
        tmp_path,
        """
[security]
jwt = "sometimes"
redis_url = "localhost:6379"

[prefetch]
deadline_seconds = -1
retries = "many"

[feedback]
database_url = "feedback.db"

[typo_section]
x = 1
""",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    text = "\n".join(err.value.problems)
    for name in (
        "security.jwt",
        "security.redis_url",
        "prefetch.deadline_seconds",
        "prefetch.retries",
        "feedback.database_url",
        "typo_section",
    ):
        assert name in text, name
    assert len(err.value.problems) >= 6


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"prefetch\.deadline_ms"):
        settings_from_mapping({"prefetch": {"deadline_ms": 300}})


def test_jwt_required_without_any_issuer_is_rejected():
    with pytest.raises(ConfigError, match="needs at least one"):
        settings_from_mapping({"security": {"jwt": "required"}})


def test_issuer_without_keys_is_rejected():
    with pytest.raises(ConfigError, match=r"security\.issuers\.0"):
        settings_from_mapping({"security": {"issuers": [{"iss": "https://ehr"}]}})


def test_broken_toml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[security\njwt="), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_the_documented_example_config_is_valid_and_documents_every_key():
    settings = load_settings(EXAMPLE, environ={})
    assert settings.security.jwt == "required"
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = tomllib.loads(text)
    for section, schema in {**CORE_SECTIONS, **PluginSet(discover()).sections()}.items():
        for key in schema().fields:
            assert key in documented.get(section, {}) or f"{key} =" in text, f"{section}.{key} undocumented"


def test_issuers_can_come_from_the_environment_as_a_toml_inline_array():
    env = {
        "DIP_CDS_SECURITY__JWT": "required",
        "DIP_CDS_SERVER__PUBLIC_BASE_URL": "https://cds.hospital.cn/dip",
        "DIP_CDS_SECURITY__ISSUERS": '[{iss = "https://emr.hospital.cn", jwks_url = "https://emr.hospital.cn/jwks"}]',
    }
    settings = load_settings(environ=env)
    issuer = settings.security.trusted_issuers()["https://emr.hospital.cn"]
    assert issuer.jwks_url == "https://emr.hospital.cn/jwks"


def test_costing_his_section_is_validated_and_feeds_his_cost_config(tmp_path):
    from costing import HisCostConfig

    path = write(
        tmp_path,
        """
[costing.his]
url_template = "https://his.hospital.cn/api/{patient_id}/stays/{encounter_id}/cost"
timeout_seconds = 0.5
headers = { "X-Api-Key" = "secret-key" }
""",
    )
    settings = load_settings(path, environ={})
    config = settings.section("costing", CostingSettings).his  # what a hook handler does
    assert config == HisCostConfig(
        "https://his.hospital.cn/api/{patient_id}/stays/{encounter_id}/cost", 0.5, {"X-Api-Key": "secret-key"}
    )
    # the API key never reaches a log line via repr
    assert "secret-key" not in repr(settings) and "secret-key" not in repr(config)
    # absent section: no HIS client, costing from FHIR ChargeItems only
    assert load_settings(environ={}).section("costing", CostingSettings).his is None


def test_costing_his_can_come_from_the_environment():
    env = {"DIP_CDS_COSTING__HIS": '{url_template = "http://his:8080/cost/{encounter_id}"}'}
    his = load_settings(environ=env).section("costing", CostingSettings).his
    assert his is not None
    assert his.url_template == "http://his:8080/cost/{encounter_id}" and his.timeout_seconds == 2.0


HIS_URL = "https://his/{encounter_id}"


@pytest.mark.parametrize(
    ("his", "where"),
    [
        ({}, "costing.his.url_template"),  # a [costing.his] table without a URL is a mistake, not "off"
        ({"url_template": "ftp://his/{encounter_id}"}, "costing.his.url_template"),
        ({"url_template": "https://his/cost"}, "costing.his.url_template"),  # no placeholder
        ({"url_template": "https://his/{stay}"}, "costing.his.url_template"),
        ({"url_template": "https://his/{encounter_id"}, "costing.his.url_template"),
        ({"url_template": HIS_URL, "timeout_seconds": 0}, "costing.his.timeout_seconds"),
        ({"url_template": HIS_URL, "timeout_seconds": 31}, "costing.his.timeout_seconds"),
        ({"url_template": HIS_URL, "headers": {"Bad Name": "x"}}, "costing.his.headers"),
        ({"url_template": HIS_URL, "headers": {"K": "a\r\nX: b"}}, "costing.his.headers"),
        ({"url_template": HIS_URL, "headers": {"K": 1}}, "costing.his.headers"),
        ({"url_template": HIS_URL, "url": "x"}, "costing.his.url"),
    ],
)
def test_bad_costing_his_settings_are_named(his, where):
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"costing": {"his": his}})
    assert any(line.startswith(where) for line in err.value.problems), err.value.problems
    assert not any("a\r\nX" in line for line in err.value.problems)  # header values are not echoed


def test_unknown_costing_key_and_non_table_are_rejected():
    with pytest.raises(ConfigError, match=r"costing\.prices"):
        settings_from_mapping({"costing": {"prices": "x"}})
    with pytest.raises(ConfigError, match=r"costing: must be a table"):
        settings_from_mapping({"costing": "his"})


def test_the_example_documents_every_costing_his_key():
    his = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["costing"]["his"]
    assert set(HisSchema().fields) == set(his)


def test_dip_section_gives_the_hospital_defaults_and_names_bad_values():
    settings = settings_from_mapping(
        {"dip": {"region": "410400", "hospital_level": "三级", "insurance_type": "城镇职工"}}
    )
    dip = settings.section("dip", DipSettings)
    assert dip.region == "410400" and dip.hospital_level == "三级"
    assert dip.insurance_type == "城镇职工" and dip.hospital_id is None
    assert settings_from_mapping({}).section("dip", DipSettings).region is None
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"dip": {"region": "../etc", "insurance_type": "商保", "hospital_id": ""}})
    text = "\n".join(err.value.problems)
    for name in ("dip.region", "dip.insurance_type", "dip.hospital_id"):
        assert name in text, name
