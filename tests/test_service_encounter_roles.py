"""The department and attending doctor every assessment event names, read from whatever Encounter the
HIS sent: R4 and R5 shapes, references or codings, and malformed parts ignored rather than crashing."""

from __future__ import annotations

import pytest

from cds_service.encounter_roles import attending, department

ATND = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}


def test_the_department_is_the_service_type_else_the_provider_else_the_first_location():
    assert department({"serviceType": {"coding": [{"code": "0401", "display": "神经内科"}]}}) == {
        "code": "0401",
        "name": "神经内科",
    }
    r5 = {"serviceType": [{"concept": {"coding": [{"code": "0302"}], "text": "呼吸内科"}}]}
    assert department(r5) == {"code": "0302", "name": "呼吸内科"}
    assert department({"serviceProvider": {"reference": "Organization/dept-7", "display": "普外科"}}) == {
        "code": "dept-7",
        "name": "普外科",
    }
    assert department({"location": [{"location": {"display": "5 病区"}}]}) == {
        "code": "5 病区",
        "name": "5 病区",
    }
    assert department({}) is None and department(None) is None


def test_the_attending_is_the_atnd_participant_else_the_only_untyped_one_else_the_user():
    enc = {
        "participant": [
            {"type": [ATND], "individual": {"reference": "Practitioner/dr-1", "display": "李医生"}}
        ]
    }
    assert attending(enc, "Practitioner/u-9") == {"id": "dr-1", "name": "李医生"}
    untyped = {"participant": [{"individual": {"reference": "Practitioner/dr-2"}}]}
    assert attending(untyped, None) == {"id": "dr-2", "name": None}
    assert attending({}, "Practitioner/u-9") == {"id": "u-9", "name": None}


@pytest.mark.parametrize(
    "encounter",
    [
        {"participant": [{"type": [{"coding": [{"code": []}]}]}]},  # found by the fuzz test: a 500 once
        {"participant": [{"type": [{"coding": 7}]}]},
        {"participant": {"type": "ATND"}},
        {"participant": [{"type": "ATND", "individual": "dr"}]},
        {"serviceType": {"coding": [{"code": {"x": 1}, "display": ["a"]}], "text": 3}},
        {"serviceType": [], "serviceProvider": "x", "location": 5},
        {"location": [{"location": {"identifier": {"value": []}}}]},
        ["not", "an", "encounter"],
    ],
)
def test_malformed_encounters_give_no_roles_and_no_crash(encounter):
    assert department(encounter) is None
    assert attending(encounter, None) is None
