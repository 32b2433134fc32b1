"""FHIR update actions for coder suggestions (encounter-discharge).

Pure functions on plain FHIR JSON dicts: they return a CDS Hooks ``update`` action carrying a
modified deep copy and never touch the input. They refuse what the compliance rules forbid
(DIP-RULES.md §7): a principal diagnosis must be a diagnosis documented for this encounter.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cards.builders import update_action

DIAGNOSIS_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/diagnosis-role"


def _reference_id(reference: Any, resource_type: str) -> str | None:
    if isinstance(reference, Mapping):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference:
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return parts[0] if len(parts) == 1 else None


def add_coding_action(
    condition: Mapping[str, Any], coding: Mapping[str, str], description: str | None = None
) -> dict[str, Any]:
    """Update a Condition so its ``code`` also carries ``coding`` (e.g. the 医保版 code mapped from a
    国临版 or local code). The existing codings and text are kept."""
    if condition.get("resourceType") != "Condition" or not condition.get("id"):
        raise ValueError("add_coding_action needs a Condition with an id")
    if not coding.get("system") or not coding.get("code"):
        raise ValueError("the coding to add needs a system and a code")
    updated = copy.deepcopy(dict(condition))
    code = updated.setdefault("code", {})
    codings = code.setdefault("coding", []) if isinstance(code, dict) else None
    if not isinstance(codings, list) or not all(isinstance(c, dict) for c in codings):
        # an update would have to repair or drop what the client sent: suggest nothing instead
        raise ValueError(f"Condition/{updated['id']} has a malformed code; not updated")
    if any(c.get("system") == coding["system"] and c.get("code") == coding["code"] for c in codings):
        raise ValueError(f"Condition/{updated['id']} already carries {coding['code']}")
    codings.append({k: v for k, v in coding.items() if v})
    label = coding.get("display") or ""
    text = description or f"为诊断补充医保版编码 {coding['code']} {label}".strip()
    return update_action(text, updated)


def principal_diagnosis_action(
    encounter: Mapping[str, Any],
    condition: Mapping[str, Any] | str,
    description: str | None = None,
    use_code: str = "DD",
) -> dict[str, Any]:
    """Update Encounter.diagnosis so ``condition`` is rank 1; the others keep their order from rank 2.

    ``condition`` is a Condition id (must already be in Encounter.diagnosis) or a Condition resource
    documented for this encounter (added with role ``use_code`` when missing). Anything else is
    refused: a suggestion may never introduce an undocumented diagnosis."""
    if encounter.get("resourceType") != "Encounter" or not encounter.get("id"):
        raise ValueError("principal_diagnosis_action needs an Encounter with an id")
    condition_id = condition if isinstance(condition, str) else condition.get("id")
    if not condition_id:
        raise ValueError("the new principal diagnosis needs a Condition id")
    updated = copy.deepcopy(dict(encounter))
    diagnosis = updated.get("diagnosis")
    entries = [e for e in diagnosis if isinstance(e, dict)] if isinstance(diagnosis, list) else []
    chosen = [e for e in entries if _reference_id(e.get("condition"), "Condition") == condition_id]
    if not chosen:
        if isinstance(condition, str):
            raise ValueError(f"Condition/{condition_id} is not a diagnosis of Encounter/{updated['id']}")
        if (
            condition.get("resourceType") != "Condition"
            or _reference_id(condition.get("encounter"), "Encounter") != updated["id"]
        ):
            raise ValueError(f"Condition/{condition_id} is not documented for Encounter/{updated['id']}")
        entry = {
            "condition": {"reference": f"Condition/{condition_id}"},
            "use": {"coding": [{"system": DIAGNOSIS_ROLE_SYSTEM, "code": use_code}]},
        }
        entries.append(entry)
        chosen = [entry]
    others = [e for e in entries if e is not chosen[0]]
    others.sort(key=_rank)
    ordered = [chosen[0], *others]
    for rank, entry in enumerate(ordered, start=1):
        entry["rank"] = rank
    updated["diagnosis"] = ordered
    return update_action(description or f"将 Condition/{condition_id} 设为主要诊断（排序第 1）", updated)


def _rank(entry: dict[str, Any]) -> int:
    """An entry's rank for ordering; unranked entries go last."""
    rank = entry.get("rank")
    return rank if isinstance(rank, int) else 10**6
