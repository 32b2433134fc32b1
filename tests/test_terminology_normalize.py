"""Normalisation: every spelling people type becomes the canonical 医保版 code, with the reasons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminology.normalize import combine_dagger_asterisk, normalize_diagnosis, normalize_procedure
from terminology.structure import (
    dx_hierarchy,
    icd9_chapter,
    icd10_block,
    icd10_chapter,
    leimu,
    procedure_leimu,
    px_hierarchy,
    yamu,
)
from tests.terminology_helpers import DX_LIST, PX_LIST, read_tsv_codes, require_real_data, to_full_width


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ｋ３５．９", "K35.9"),
        ("k35300X001", "K35.300x001"),
        ("K35.300X001", "K35.300x001"),
        (" K35.300 x001 ", "K35.300x001"),
        ("a33X00", "A33.x00"),
        ("A33.X00X001", "A33.x00x001"),
        ("K35900", "K35.900"),
        ("K353", "K35.3"),
        ("K35.", "K35"),
        ("x59.900", "X59.900"),
        ("K35。300", "K35.300"),
    ],
)
def test_diagnosis_spellings_become_canonical(raw: str, expected: str) -> None:
    result = normalize_diagnosis(raw)
    assert result.ok
    assert result.code == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("44.1300X001", "44.1300x001"),
        ("441300x001", "44.1300x001"),
        ("４７．０１００", "47.0100"),
        ("01.6X00", "01.6x00"),
        ("17.912a0", "17.912A0"),
        ("4701", "47.01"),
        ("86.700X0013", "86.700x0013"),
    ],
)
def test_procedure_spellings_become_canonical(raw: str, expected: str) -> None:
    result = normalize_procedure(raw)
    assert result.ok
    assert result.code == expected


def test_each_change_is_explained() -> None:
    result = normalize_diagnosis("ｋ３５３００Ｘ００１")
    assert result.code == "K35.300x001"
    assert "全角字符转为半角" in result.changes
    assert "字母转为大写" in result.changes
    assert "扩展码标记 X 改为小写 x" in result.changes
    assert "补充小数点" in result.changes
    assert normalize_diagnosis("K35.300x001").changes == ()


def test_dagger_asterisk_combination_is_split_into_halves() -> None:
    result = normalize_diagnosis("A01.000X005†J17.0*")
    assert result.code == "A01.000x005+J17.0*"
    assert (result.dagger, result.asterisk) == ("A01.000x005", "J17.0")
    assert result.parts == ("A01.000x005", "J17.0")


def test_halves_given_separately_are_recognised_and_combined() -> None:
    dagger = normalize_diagnosis("A01.000x005†")
    asterisk = normalize_diagnosis("J17.0*")
    assert dagger.dagger == "A01.000x005" and dagger.asterisk is None
    assert asterisk.asterisk == "J17.0" and asterisk.dagger is None
    assert combine_dagger_asterisk("A01.000x005†", "j17.0*").code == "A01.000x005+J17.0*"


def test_clinical_version_oddities_keep_a_stable_key() -> None:
    assert normalize_diagnosis("B37.600I39.8").code == "B37.600+I39.8*"
    assert normalize_diagnosis("K74.300x011+I98.2").code == "K74.300x011+I98.2*"
    assert normalize_diagnosis("C22.101M81600/3").code == "C22.101M81600/3"


@pytest.mark.parametrize(
    "garbage",
    ["", "   ", "abc", "阑尾炎", "K" * 10_000, "1", "K35.300x001x001x001", "K35.300x001; DROP TABLE"],
)
def test_garbage_is_not_a_code_and_never_raises(garbage: str) -> None:
    assert normalize_diagnosis(garbage).code is None
    assert normalize_diagnosis(garbage).ok is False
    assert normalize_procedure(garbage).ok is False


def test_non_string_input_is_rejected_not_raised() -> None:
    for junk in (None, 5, ["K35"], {"code": "K35"}, b"K35"):
        assert normalize_diagnosis(junk).ok is False  # type: ignore[arg-type]
        assert normalize_procedure(junk).ok is False  # type: ignore[arg-type]


def test_structure_of_a_diagnosis_code() -> None:
    assert icd10_chapter("K35.300x001") == 11
    assert icd10_chapter("S72.000") == 19 and icd10_chapter("T98.300") == 19
    assert icd10_chapter("V01.000") == 20 and icd10_chapter("Y98.x00") == 20
    assert icd10_chapter("Z51.100") == 21
    assert icd10_chapter("U07.100") == 22
    assert icd10_chapter("not a code") is None
    assert yamu("K35.300x001") == "K35.3"
    assert yamu("A33.x00") == "A33.x"
    assert yamu("k35.300X001") == "K35.3"
    assert yamu("K35") is None
    assert leimu("K35.300x001") == "K35"
    assert icd10_block("K35.300x001").name == "阑尾疾病"
    assert dx_hierarchy("J18.900")["chapter"] == "10"


def test_structure_of_a_procedure_code() -> None:
    assert procedure_leimu("47.0100") == "47"
    assert icd9_chapter("47.0100").name == "消化系统手术"
    assert icd9_chapter("17.912A0").number == "3A"
    assert px_hierarchy("01.6x00")["yamu"] == "01.6"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "normalize"), [(DX_LIST, normalize_diagnosis), (PX_LIST, normalize_procedure)]
)
def test_every_official_code_round_trips_from_messy_variants(path, normalize) -> None:
    require_real_data()
    failures = []
    for code, _name in read_tsv_codes(path):
        variants = {
            code,
            code.lower(),
            code.upper(),
            f"  {code}\t",
            code.replace(".", ""),
            to_full_width(code),
            to_full_width(code.upper()).replace("．", ""),
            code.replace(".", " . "),
        }
        for variant in variants:
            if normalize(variant).code != code:
                failures.append((variant, code))
        if normalize(code).changes:
            failures.append(("changes on canonical", code))
    assert failures == []


@pytest.mark.slow
def test_every_official_diagnosis_has_a_chapter_block_and_yamu() -> None:
    require_real_data()
    for code, _ in read_tsv_codes(DX_LIST):
        assert icd10_chapter(code) is not None, code
        assert icd10_block(code) is not None, code
        assert yamu(code) == code[:5], code


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_normalisation_never_raises_and_is_idempotent(raw: str) -> None:
    for normalize in (normalize_diagnosis, normalize_procedure):
        first = normalize(raw)
        if first.ok:
            again = normalize(first.code)
            assert again.code == first.code
            assert again.changes in ((), ("识别为星号（表现）编码",))
        else:
            assert first.code is None


@pytest.mark.slow
def test_every_official_procedure_has_a_chapter_and_category() -> None:
    require_real_data()
    for code, _ in read_tsv_codes(PX_LIST):
        assert icd9_chapter(code) is not None, code
        assert procedure_leimu(code) == code[:2], code
