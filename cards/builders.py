"""Spec-conformant CDS Hooks 2.0 card, suggestion and action dicts.

Every builder omits optional fields that are ``None`` or empty (the spec forbids ``null``, ``""``,
``[]`` and ``{}`` for optional fields) and gives cards and suggestions a uuid4 so feedback works.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable, Mapping
from typing import Any

from cards.escape import plain_text

INDICATORS = ("info", "warning", "critical")
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
SUMMARY_LIMIT = 140  # the spec: summary "<140 characters"
ELLIPSIS = "…"

# Where override reasons, topics and feedback codes of this product live.
DIP_CDS_CODE_SYSTEM = "http://dip-cds.example.cn/CodeSystem/dip-cds"


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Drop optional fields that are None or empty."""
    return {key: value for key, value in fields.items() if not _is_empty(value)}


def new_uuid() -> str:
    return str(uuid_module.uuid4())


def truncate_summary(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Plain one-line text strictly shorter than ``limit`` characters, cut with "…" when too long."""
    text = plain_text(text)
    if len(text) < limit:
        return text
    return text[: limit - 2].rstrip() + ELLIPSIS


def coding(code: str, display: str | None = None, system: str | None = DIP_CDS_CODE_SYSTEM) -> dict[str, str]:
    """A FHIR Coding (used for ``source.topic`` and ``overrideReasons``)."""
    if _is_empty(code):
        raise ValueError("a Coding needs a code")
    return compact({"system": system, "code": code, "display": display})


def override_reason(code: str, display: str, system: str = DIP_CDS_CODE_SYSTEM) -> dict[str, str]:
    """An override reason; the display is required so clients can show it."""
    if _is_empty(display):
        raise ValueError(f"override reason {code!r} needs a display")
    return coding(code, display, system)


def source(
    label: str, url: str | None = None, topic: Mapping[str, str] | None = None, icon: str | None = None
) -> dict[str, Any]:
    """``source``: ``label`` names the catalog in use, e.g. "DIP 平顶山2025"."""
    if _is_empty(label):
        raise ValueError("source.label is required")
    return compact(
        {"label": plain_text(label), "url": url, "icon": icon, "topic": dict(topic) if topic else None}
    )


def action(
    type: str,  # noqa: A002 - the spec's field name
    description: str,
    resource: Mapping[str, Any] | None = None,
    resource_id: str | None = None,
) -> dict[str, Any]:
    """One action; create/update carry a ``resource``, delete a ``resourceId`` ("Type/id")."""
    if type not in ACTION_TYPES:
        raise ValueError(f"action type must be one of {ACTION_TYPES}, not {type!r}")
    if _is_empty(description):
        raise ValueError("an action needs a description")
    if type in ("create", "update") and not resource:
        raise ValueError(f"a {type} action needs a resource")
    if type == "delete" and not resource_id:
        raise ValueError("a delete action needs a resourceId")
    if type == "update" and not (resource or {}).get("id"):
        raise ValueError("an update action needs a resource with an id")
    return compact(
        {
            "type": type,
            "description": plain_text(description),
            "resource": dict(resource) if resource is not None and type != "delete" else None,
            "resourceId": resource_id if type == "delete" else None,
        }
    )


def create_action(description: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    return action("create", description, resource=resource)


def update_action(description: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    return action("update", description, resource=resource)


def delete_action(description: str, resource_id: str) -> dict[str, Any]:
    return action("delete", description, resource_id=resource_id)


def suggestion(
    label: str,
    actions: Iterable[Mapping[str, Any]] = (),
    is_recommended: bool | None = None,
    uuid: str | None = None,
) -> dict[str, Any]:
    """A suggestion (one button); its actions are applied by the client as one transaction."""
    if _is_empty(label):
        raise ValueError("a suggestion needs a label")
    return compact(
        {
            "label": plain_text(label),
            "uuid": uuid or new_uuid(),
            "isRecommended": is_recommended,
            "actions": [dict(a) for a in actions],
        }
    )


def link(
    label: str,
    url: str,
    type: str = "absolute",
    app_context: str | None = None,  # noqa: A002
) -> dict[str, Any]:
    if type not in LINK_TYPES:
        raise ValueError(f"link type must be one of {LINK_TYPES}")
    if _is_empty(label) or _is_empty(url):
        raise ValueError("a link needs a label and a url")
    return compact({"label": plain_text(label), "url": url, "type": type, "appContext": app_context})


def card(
    summary: str,
    indicator: str,
    source: Mapping[str, Any],
    detail: str | None = None,
    suggestions: Iterable[Mapping[str, Any]] = (),
    selection_behavior: str | None = None,
    override_reasons: Iterable[Mapping[str, Any]] = (),
    links: Iterable[Mapping[str, Any]] = (),
    uuid: str | None = None,
) -> dict[str, Any]:
    """A card. ``summary`` is cut below 140 characters; ``selectionBehavior`` defaults to
    ``at-most-one`` when there are suggestions (required then) and is omitted otherwise."""
    if indicator not in INDICATORS:
        raise ValueError(f"indicator must be one of {INDICATORS}, not {indicator!r}")
    if not source or _is_empty(source.get("label")):
        raise ValueError("source.label is required")
    suggestion_list = [dict(s) for s in suggestions]
    if suggestion_list:
        selection_behavior = selection_behavior or "at-most-one"
        if selection_behavior not in SELECTION_BEHAVIORS:
            raise ValueError(f"selectionBehavior must be one of {SELECTION_BEHAVIORS}")
    else:
        selection_behavior = None
    summary_text = truncate_summary(summary)
    if not summary_text:
        raise ValueError("a card needs a summary")
    return compact(
        {
            "uuid": uuid or new_uuid(),
            "summary": summary_text,
            "detail": detail.strip() if detail else None,
            "indicator": indicator,
            "source": dict(source),
            "suggestions": suggestion_list,
            "selectionBehavior": selection_behavior,
            "overrideReasons": [dict(r) for r in override_reasons],
            "links": [dict(li) for li in links],
        }
    )
