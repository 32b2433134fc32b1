"""FHIR update actions for the coder's suggestions, on the demo lung-cancer stay."""

from __future__ import annotations

import copy

import pytest

from cards import add_coding_action, card, principal_diagnosis_action, source, suggestion
from hooks.demo_fhir import DEMO_DATA_DIR, FhirStore

YB10 = "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0"


@pytest.fixture(scope="module")
def store() -> FhirStore:
    return FhirStore.from_directory(DEMO_DATA_DIR)


def test_adding_the_yibao_coding_keeps_the_original_and_leaves_the_input_untouched(store):
    condition = store.read("Condition", "demo-cond-pneu-1")
    before = copy.deepcopy(condition)
    action = add_coding_action(condition, {"system": YB10, "code": "J18.803", "display": "阻塞性肺炎"})
    assert condition == before
    assert action["type"] == "update" and "J18.803" in action["description"]
    codes = [(c["system"], c["code"]) for c in action["resource"]["code"]["coding"]]
    assert codes == [("http://www.nhc.gov.cn/CodeSystem/icd10-gl2.0", "J18.800x003"), (YB10, "J18.803")]


def test_a_text_only_condition_gets_its_first_coding(store):
    action = add_coding_action(
        store.read("Condition", "demo-cond-pneu-2"), {"system": YB10, "code": "J44.100"}
    )
    assert action["resource"]["code"]["text"] == "慢性阻塞性肺疾病急性加重"
    assert action["resource"]["code"]["coding"] == [{"system": YB10, "code": "J44.100"}]


def test_adding_a_coding_twice_or_to_something_else_is_refused(store):
    with pytest.raises(ValueError, match="already"):
        add_coding_action(
            store.read("Condition", "demo-cond-lung-1"), {"system": YB10, "code": "C34.100x004"}
        )
    with pytest.raises(ValueError):
        add_coding_action(store.read("Encounter", "demo-enc-lungcancer"), {"system": YB10, "code": "C34.100"})


@pytest.mark.parametrize("code", ["9e999999", {"coding": "x"}, {"coding": ["9e999999"]}])
def test_a_condition_with_a_malformed_code_is_not_updated(store, code):
    condition = {**store.read("Condition", "demo-cond-lung-1"), "code": code}
    with pytest.raises(ValueError, match="malformed"):
        add_coding_action(condition, {"system": YB10, "code": "C34.100"})


def ranks(action) -> list[tuple[str, int]]:
    return [(e["condition"]["reference"], e["rank"]) for e in action["resource"]["diagnosis"]]


def test_principal_change_reranks_encounter_diagnoses(store):
    encounter = store.read("Encounter", "demo-enc-lungcancer")
    before = copy.deepcopy(encounter)
    action = principal_diagnosis_action(encounter, "demo-cond-lung-2")
    assert encounter == before
    order = ranks(action)
    assert order[0] == ("Condition/demo-cond-lung-2", 1)
    assert [rank for _, rank in order] == list(range(1, len(order) + 1))
    assert {ref for ref, _ in order} == {e["condition"]["reference"] for e in encounter["diagnosis"]}


def test_a_documented_condition_missing_from_encounter_diagnosis_is_added(store):
    encounter = copy.deepcopy(store.read("Encounter", "demo-enc-lungcancer"))
    encounter["diagnosis"] = encounter["diagnosis"][:1]
    action = principal_diagnosis_action(encounter, store.read("Condition", "demo-cond-lung-3"))
    assert ranks(action) == [("Condition/demo-cond-lung-3", 1), ("Condition/demo-cond-lung-1", 2)]


def test_an_undocumented_diagnosis_is_never_suggested(store):
    encounter = store.read("Encounter", "demo-enc-lungcancer")
    with pytest.raises(ValueError, match="not a diagnosis"):
        principal_diagnosis_action(encounter, "demo-cond-stroke-1")
    with pytest.raises(ValueError, match="not documented"):
        principal_diagnosis_action(encounter, store.read("Condition", "demo-cond-stroke-1"))


def test_actions_ride_in_suggestions_with_uuids(store):
    action = add_coding_action(
        store.read("Condition", "demo-cond-pneu-1"), {"system": YB10, "code": "J18.803"}
    )
    built = card(
        "1 个编码需核对",
        "info",
        source("DIP 平顶山2025"),
        suggestions=[suggestion("补充医保版编码 J18.803", [action])],
    )
    assert built["suggestions"][0]["uuid"] and built["suggestions"][0]["actions"] == [action]


def test_every_action_resource_is_valid_fhir_r4(store):
    """What the EHR is asked to write back must be a valid resource of its FHIR version (the demo
    data and the CDS Hooks Sandbox are R4): validated with fhir.resources' R4B models."""
    from fhir.resources.R4B import get_fhir_model_class

    actions = [
        add_coding_action(store.read("Condition", "demo-cond-pneu-1"), {"system": YB10, "code": "J18.803"}),
        add_coding_action(store.read("Condition", "demo-cond-pneu-2"), {"system": YB10, "code": "J44.100"}),
        principal_diagnosis_action(store.read("Encounter", "demo-enc-lungcancer"), "demo-cond-lung-2"),
    ]
    encounter = copy.deepcopy(store.read("Encounter", "demo-enc-lungcancer"))
    encounter["diagnosis"] = encounter["diagnosis"][:1]
    actions.append(principal_diagnosis_action(encounter, store.read("Condition", "demo-cond-lung-3")))
    for action in actions:
        resource = action["resource"]
        model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert model.id == resource["id"]
