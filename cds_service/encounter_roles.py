"""Who and where of a stay, as every ``assessment`` event names them (DIP hooks, 智能审核, plugin):
the department and the attending doctor read from a FHIR Encounter the same way for every publisher,
whatever shape the HIS sent (R4 or R5, codings or references, malformed parts ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ATTENDING = "ATND"


def _first_coding(concept: Any) -> tuple[str | None, str | None]:
    if isinstance(concept, list):  # R5: serviceType is a list of CodeableReferences
        concept = concept[0] if concept else None
    if isinstance(concept, Mapping) and isinstance(concept.get("concept"), Mapping):
        concept = concept["concept"]
    if not isinstance(concept, Mapping):
        return None, None
    text = concept.get("text") if isinstance(concept.get("text"), str) else None
    for coding in _items(concept.get("coding")):
        if isinstance(coding, Mapping):
            code, display = _str(coding.get("code")), _str(coding.get("display"))
            if code or display:
                return code, display or text
    return None, text


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _reference(ref: Any) -> tuple[str | None, str | None]:
    """(id, display) of a Reference; the id is the last path segment, as the HIS sent it."""
    if not isinstance(ref, Mapping):
        return None, None
    target = ref.get("reference")
    ident = target.rsplit("/", 1)[-1] if isinstance(target, str) and target else None
    if ident is None and isinstance(ref.get("identifier"), Mapping):
        ident = _str(ref["identifier"].get("value"))
    return ident, _str(ref.get("display"))


def department(encounter: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    """Encounter.serviceType, else serviceProvider, else the first location."""
    enc = encounter if isinstance(encounter, Mapping) else {}
    code, name = _first_coding(enc.get("serviceType"))
    if not (code or name):
        code, name = _reference(enc.get("serviceProvider"))
    if not (code or name):
        locations = [loc for loc in _items(enc.get("location")) if isinstance(loc, Mapping)]
        code, name = _reference(locations[0].get("location")) if locations else (None, None)
    return {"code": code or name, "name": name or code} if (code or name) else None


def attending(encounter: Mapping[str, Any] | None, user_id: str | None) -> dict[str, str | None] | None:
    """The participant typed ATND, else the only untyped one, else the signed-in user."""
    enc = encounter if isinstance(encounter, Mapping) else {}
    people = [p for p in _items(enc.get("participant")) if isinstance(p, Mapping)]

    def typed(p: Mapping[str, Any]) -> set[str | None]:
        return {
            _str(c.get("code"))
            for t in _items(p.get("type"))
            if isinstance(t, Mapping)
            for c in _items(t.get("coding"))
            if isinstance(c, Mapping)
        }

    chosen = next((p for p in people if ATTENDING in typed(p)), None)
    if chosen is None:
        untyped = [p for p in people if not p.get("type")]
        chosen = untyped[0] if len(untyped) == 1 else None
    if chosen is not None:
        ident, name = _reference(chosen.get("individual") or chosen.get("actor"))
        if ident or name:
            return {"id": ident or name, "name": name}
    if isinstance(user_id, str) and user_id:
        return {"id": user_id.rsplit("/", 1)[-1], "name": None}
    return None
