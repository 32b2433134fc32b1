"""Serialising handler results into a CDS Hooks response.

The spec forbids ``null``, ``""``, ``[]`` and ``{}`` for optional fields, so they are stripped
recursively (``cards: []`` itself stays). A card a handler built without its required fields is a
bug: it is dropped and logged rather than breaking the doctor's workflow with a 500.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

log = logging.getLogger("dip_cds.responses")

INDICATORS = frozenset({"info", "warning", "critical"})
SUMMARY_MAX = 140


class HandlerResultError(TypeError):
    """A handler returned something that is not a card list or a response dict."""


def prune(value: Any) -> Any:
    """Drop None / empty strings / empty containers recursively; Decimal → str (money stays exact)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = prune(v)
            if v is None or v == "" or v == [] or v == {}:
                continue
            out[k] = v
        return out
    if isinstance(value, (list, tuple)):
        items = [prune(v) for v in value]
        return [v for v in items if not (v is None or v == "" or v == [] or v == {})]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _card_problems(card: Any) -> list[str]:
    if not isinstance(card, dict):
        return ["card is not an object"]
    problems = []
    if not isinstance(card.get("summary"), str) or not card["summary"].strip():
        problems.append("summary missing")
    if card.get("indicator") not in INDICATORS:
        problems.append("indicator must be info|warning|critical")
    source = card.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("label"), str) or not source["label"]:
        problems.append("source.label missing")
    if card.get("suggestions") and card.get("selectionBehavior") not in ("at-most-one", "any"):
        problems.append("selectionBehavior required with suggestions")
    return problems


def normalise_card(card: dict[str, Any]) -> dict[str, Any]:
    card = prune(card)
    card.setdefault("uuid", str(uuid.uuid4()))  # needed for feedback
    if len(card["summary"]) > SUMMARY_MAX:
        card["summary"] = card["summary"][: SUMMARY_MAX - 1] + "…"
    return card


def build_response(service_id: str, result: Any) -> dict[str, Any]:
    """Handler result (card list or response dict) → the response body."""
    from cds_service import metrics

    if result is None:
        result = []
    if isinstance(result, list):
        body: dict[str, Any] = {"cards": result}
    elif isinstance(result, dict) and isinstance(result.get("cards", []), list):
        body = dict(result)
        body.setdefault("cards", [])
    else:
        raise HandlerResultError(f"{service_id}: handler returned {type(result).__name__}")

    cards = []
    for i, card in enumerate(body["cards"]):
        problems = _card_problems(card)
        if problems:
            metrics.INVALID_CARDS.labels(service_id).inc()
            log.error(
                "dropped invalid card", extra={"service": service_id, "card_index": i, "reason": problems}
            )
            continue
        cards.append(normalise_card(card))
    rest = prune({k: v for k, v in body.items() if k != "cards"})
    out = {"cards": cards}
    out.update(rest)
    metrics.observe_cards(service_id, cards)
    return out
