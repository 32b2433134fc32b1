"""Mapping: every code the EMR sends becomes a valid 医保版 code, or a clear question."""

from __future__ import annotations

import pytest

from mappings import load_local_maps, map_codeable_concept, resolve_code, resolve_text
from terminology.loader import load_terminology
from terminology.systems import GL_ICD9CM3, GL_ICD10, WHO_ICD10, YB_ICD10, identify_system
from tests.terminology_helpers import DX_MAP, PX_MAP, read_map_rows, real_terminology, write

HIS = "http://hospital.example.cn/CodeSystem/his-dx"


@pytest.fixture(scope="module")
def term():
    return load_terminology(None)


def cc(*codings, text=None) -> dict:
    out: dict = {"coding": [dict(zip(("system", "code", "display"), c, strict=False)) for c in codings]}
    if text is not None:
        out["text"] = text
    return out


# --- raw codes --------------------------------------------------------------------------------


def test_a_yibao_code_is_taken_as_is_with_full_confidence(term) -> None:
    res = resolve_code(term, "dx", "K35.800x001")
    assert (res.code, res.path, res.confidence, res.needs_confirmation) == (
        "K35.800x001",
        "yb2.0-exact",
        1.0,
        False,
    )
    assert res.display == "急性阑尾炎" and res.system == YB_ICD10


def test_a_messy_yibao_code_is_normalised_and_the_changes_are_reported(term) -> None:
    res = resolve_code(term, "dx", "ｋ３５８００Ｘ００１")
    assert res.code == "K35.800x001" and res.path == "yb2.0-exact"
    assert "全角字符转为半角" in res.changes
    assert res.confidence < 1.0


def test_a_clinical_code_goes_through_the_official_map(term) -> None:
    res = resolve_code(term, "dx", "I21.100x002", GL_ICD10)
    assert (res.code, res.path, res.confidence) == ("I21.103", "gl2.0-official-map", 1.0)
    assert "官方映射" in res.reasons[0]


def test_a_clinical_code_without_a_system_is_still_mapped_but_less_surely(term) -> None:
    res = resolve_code(term, "dx", "I21.100x002")
    assert res.code == "I21.103" and res.path == "gl2.0-official-map" and res.confidence < 1.0


def test_a_yibao_code_wins_over_the_map_when_no_system_says_clinical(term) -> None:
    # K35.900 does not exist in 医保版 2.0; codes that do exist are never re-mapped without a system
    exact = resolve_code(term, "dx", "K35.301")
    assert exact.path == "yb2.0-exact"


def test_unpadded_and_dagger_halves_are_completed(term) -> None:
    res = resolve_code(term, "dx", "K35.3")
    assert (res.code, res.path) == ("K35.300", "yb2.0-completed")
    dagger = resolve_code(term, "dx", "A01.000x005†")
    assert dagger.code == "A01.000x005+J17.0*"
    assert resolve_code(term, "px", "47.01").code == "47.0100"


def test_who_icd10_goes_through_the_yamu_candidates(term) -> None:
    res = resolve_code(term, "dx", "K35.3", WHO_ICD10)
    assert (res.code, res.path) == ("K35.300", "who-icd10-yamu")
    assert {c.code for c in res.candidates} == {"K35.300", "K35.301"}
    category = resolve_code(term, "dx", "J18", WHO_ICD10)
    assert category.code is None and category.needs_confirmation
    assert all(c.code.startswith("J18") for c in category.candidates)


@pytest.mark.parametrize(
    ("kind", "raw", "system", "reason"),
    [
        ("dx", "K35.3", "http://unknown.example/cs", "未知的编码系统"),
        ("dx", "47.0100", None, "不是有效的诊断编码格式"),
        ("px", "47.0100", GL_ICD10, "诊断编码"),
        ("dx", "Z99.999", None, "不在医保版"),
        ("dx", "x" * 10_000, None, "编码过长"),
        ("dq", "K35.300", None, "未知的编码类型"),
        ("dx", None, None, "不是字符串"),
        ("dx", "急性阑尾炎", None, "不是有效的诊断编码格式"),
    ],
)
def test_bad_input_is_unmapped_with_a_reason_never_an_exception(term, kind, raw, system, reason) -> None:
    res = resolve_code(term, kind, raw, system)
    assert res.code is None and res.path == "unmapped" and res.confidence == 0.0
    assert any(reason in r for r in res.reasons), res.reasons


def test_alternative_system_uris_are_recognised() -> None:
    assert identify_system("urn:oid:2.16.156.10011.2.3.3.11").uri == GL_ICD10
    assert identify_system("http://hl7.org/fhir/sid/icd-10-cn").uri == GL_ICD10
    assert identify_system("https://hl7.org/fhir/sid/icd-10/").uri == WHO_ICD10
    assert identify_system("http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0|2.0").uri == YB_ICD10
    assert identify_system("urn:oid:2.16.156.10011.2.3.3.12").uri == GL_ICD9CM3
    assert identify_system("http://example.org") is None


# --- CodeableConcepts -------------------------------------------------------------------------


def test_the_best_coding_wins_by_system_priority(term) -> None:
    concept = cc((WHO_ICD10, "K35.8"), (GL_ICD10, "I21.100x002"), (YB_ICD10, "K35.800x001"))
    res = map_codeable_concept(term, "dx", concept)
    assert res.code == "K35.800x001" and res.path == "yb2.0-exact"
    assert any("其他 coding" in r for r in res.reasons)  # the disagreement is not hidden


def test_local_his_codes_use_the_hospital_map_file(term, tmp_path) -> None:
    path = write(
        tmp_path / "HIS1.csv",
        "source system,source code,source name,target code\n"
        f"{HIS},D0001,急性阑尾炎,K35.800X001\n"
        f"{HIS},D0002,坏目标,Z99.999\n"
        f"{HIS},,缺编码,K35.300\n",
    )
    maps = load_local_maps(path)
    assert maps.rejects == [(str(path), 4, "缺少“源编码”")]
    res = map_codeable_concept(term, "dx", cc((HIS, "D0001", "阑尾炎")), local_maps=maps)
    assert (res.code, res.path, res.needs_confirmation) == ("K35.800x001", "local-map:HIS1", False)
    bad_target = map_codeable_concept(term, "dx", cc((HIS, "D0002")), local_maps=maps)
    assert bad_target.code is None and any("不在医保版编码表中" in r for r in bad_target.reasons)
    unknown = map_codeable_concept(term, "dx", cc((HIS, "D9999")), local_maps=maps)
    assert unknown.code is None and any("不在医院映射表中" in r for r in unknown.reasons)


def test_local_maps_are_read_from_the_data_home(tmp_path) -> None:
    home = tmp_path / "home"
    (home / "local_maps").mkdir(parents=True)
    write(
        home / "local_maps" / "HIS1.csv", f"源系统,源编码,源名称,医保编码\n{HIS},P01,腹腔镜阑尾切除,47.0100\n"
    )
    term = load_terminology(home)
    res = map_codeable_concept(term, "px", cc((HIS, "P01")))
    assert (res.code, res.path) == ("47.0100", "local-map:HIS1")


def test_text_only_gives_candidates_that_need_confirmation(term) -> None:
    res = map_codeable_concept(term, "dx", {"text": "阑尾发炎"})
    assert res.code is None and res.needs_confirmation and res.path == "text-fuzzy"
    assert res.candidates and res.candidates[0].code.startswith("K3")
    exact = map_codeable_concept(term, "dx", {"text": "急性阑尾炎"})
    assert (exact.code, exact.needs_confirmation) == ("K35.800x001", False)


def test_the_confidence_threshold_is_configurable(term) -> None:
    strict = resolve_text(term, "dx", "急性阑尾炎", threshold=1.01)
    assert strict.code is None and strict.needs_confirmation
    assert strict.candidates[0].code == "K35.800x001"


def test_an_unmappable_code_falls_back_to_the_display_text(term) -> None:
    res = map_codeable_concept(term, "dx", cc(("http://other.example", "123", "急性阑尾炎")))
    assert res.code == "K35.800x001"
    assert any("display" in r for r in res.reasons)


@pytest.mark.parametrize(
    "concept",
    [
        None,
        "K35.300",
        [],
        {},
        {"coding": "K35"},
        {"coding": [None, 5, "x"]},
        {"coding": [{"system": 5, "code": ["K35"]}]},
        {"coding": [{"system": HIS, "code": "D1"}] * 1000},
        {"text": "y" * 10_000},
        {"text": "急性appendicitis阑尾炎🙂"},
        {"coding": [{"code": ""}], "text": "   "},
    ],
)
def test_broken_codeable_concepts_are_unmapped_or_questions_never_exceptions(term, concept) -> None:
    res = map_codeable_concept(term, "dx", concept)
    assert res.reasons
    assert res.code is None or res.path.startswith("text")


# --- the real official maps -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "path", "system"), [("dx", DX_MAP, GL_ICD10), ("px", PX_MAP, GL_ICD9CM3)])
def test_every_clinical_code_translates_to_its_official_target(kind, path, system) -> None:
    term = real_terminology()
    wrong = []
    for source, _sname, target, _tname in read_map_rows(path):
        res = resolve_code(term, kind, source, system)
        if res.code != target.strip() or res.path != f"{'gl2.0' if kind == 'dx' else 'gl3.0'}-official-map":
            wrong.append((source, target, res.code, res.path))
    assert wrong == []


@pytest.mark.slow
def test_unpadded_and_dagger_only_spellings_of_real_codes_resolve_to_them() -> None:
    term = real_terminology()
    wrong = []
    for kind, table in (("dx", term.dx), ("px", term.px)):
        for code in table.codes:
            if len(code) == 7 and code.endswith("00") and "+" not in code:  # K35.300, A33.x00, 47.0100→ no
                short = code[:5]
                if kind == "px" and short + "00" != code:
                    continue
                res = resolve_code(term, kind, short)
                if res.code != code:
                    wrong.append((short, code, res.code, res.path))
    for code in term.dx.codes:
        if "+" in code:
            dagger = code.split("+")[0]
            if dagger in term.dx.index:
                continue  # the half is a code of its own, nothing to complete
            res = resolve_code(term, "dx", dagger + "†")
            if code not in {res.code, *(c.code for c in res.candidates)}:
                wrong.append((dagger, code, res.code, res.path))
    assert wrong == []


def test_text_in_clinical_shorthand_maps_when_it_equals_an_official_name(term) -> None:
    res = resolve_text(term, "dx", "急性心梗")
    assert (res.code, res.path, res.needs_confirmation) == ("I21.900", "text-synonym", False)


def test_dagger_and_asterisk_halves_sent_as_two_codings_become_one_code(term) -> None:
    concept = cc((YB_ICD10, "A01.000X005†"), (YB_ICD10, "J17.0*"))
    res = map_codeable_concept(term, "dx", concept)
    assert (res.code, res.path) == ("A01.000x005+J17.0*", "yb2.0-dagger-asterisk")
    assert res.display == "伤寒并发肺炎"
