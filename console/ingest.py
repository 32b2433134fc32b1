"""``assessment`` events → the console's tables, a batch per transaction.

Each event carries an ``event_id`` (given by the recorder when it is spooled), so a batch that is
replayed after a crash inserts nothing twice. Events that break the contract are kept, with the
reason, in ``console_rejected_event``: nothing the service saw is silently dropped.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from console.models import assessments, cards, findings, rejected_events, stays

log = logging.getLogger("dip_cds.console")

KINDS = frozenset({"dip", "audit"})
CLOSED_STATUSES = frozenset({"finished", "cancelled", "entered-in-error"})
CLOSING_HOOKS = frozenset({"encounter-discharge"})
MAX_ITEMS = 500  # findings or cards per event kept (a runaway client cannot fill the disk in one call)


class BadEvent(ValueError):
    """The event breaks the ``assessment`` contract (the reason says how)."""


def cents(value: Any) -> int | None:
    """Decimal yuan (string or number) → integer fen, rounded half-up; None when absent."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadEvent(f"not an amount: {str(value)[:40]!r}") from None
    if not amount.is_finite() or abs(amount) >= Decimal(10) ** 14:
        raise BadEvent(f"amount out of range: {str(value)[:40]!r}")
    return int((amount * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def ratio_e4(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        ratio = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadEvent(f"not a ratio: {str(value)[:40]!r}") from None
    if not ratio.is_finite() or abs(ratio) >= 10**8:
        raise BadEvent(f"ratio out of range: {str(value)[:40]!r}")
    return int((ratio * 10000).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def parse_at(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise BadEvent("'at' must be an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadEvent(f"'at' is not an ISO-8601 time: {value[:40]!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit] or None


def _pair(value: Any, a: str, b: str) -> tuple[str | None, str | None]:
    if not isinstance(value, Mapping):
        return None, None
    return _text(value.get(a), 200), _text(value.get(b), 200)


@dataclass
class Record:
    """One event, checked and in column form."""

    event_id: str
    kind: str
    at: datetime
    patient_id: str
    encounter_id: str
    head: dict[str, Any]  # assessment columns
    dip: dict[str, Any] | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def closes(self) -> bool:
        return self.head["encounter_status"] in CLOSED_STATUSES or self.head["hook"] in CLOSING_HOOKS

    @property
    def risk_cents(self) -> int:
        return sum(f["amount_cents"] or 0 for f in self.findings)


def _dip_columns(dip: Any) -> dict[str, Any] | None:
    if dip is None:
        return None
    if not isinstance(dip, Mapping):
        raise BadEvent("'dip' must be an object or null")
    return {
        "catalog": _text(dip.get("catalog"), 200),
        "group_code": _text(dip.get("group_code"), 100),
        "group_name": _text(dip.get("group_name"), 300),
        "group_kind": _text(dip.get("group_kind"), 30),
        "estimate": bool(dip.get("estimate")),
        "standard_cents": cents(dip.get("standard")),
        "cost_cents": cents(dip.get("cost_so_far")),
        "order_cents": cents(dip.get("order_cost")),
        "projected_cents": cents(dip.get("projected")),
        "ratio_e4": ratio_e4(dip.get("projected_ratio")),
        "band": _text(dip.get("band"), 40),
    }


def _finding(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping) or not item.get("rule_id"):
        raise BadEvent("every finding needs a rule_id")
    return {
        "rule_id": _text(item["rule_id"], 100),
        "rule_kind": _text(item.get("rule_kind"), 60),
        "batch": _text(item.get("batch"), 200),
        "rule_name": _text(item.get("rule_name"), 500),
        "severity": _text(item.get("severity"), 10),
        "order_ref": _text(item.get("order_ref"), 200),
        "item_code": _text(item.get("item_code"), 100),
        "item_name": _text(item.get("item_name"), 300),
        "amount_cents": cents(item.get("amount_at_risk")),
        "message": _text(item.get("message"), 2000),
    }


def _card(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise BadEvent("every card must be an object")
    return {
        "card_uuid": _text(item.get("uuid"), 256),
        "summary": _text(item.get("summary"), 300),
        "indicator": _text(item.get("indicator"), 20),
    }


def to_record(event: Mapping[str, Any]) -> Record:
    """Check one spooled event against the contract; raises :class:`BadEvent`."""
    if not isinstance(event, Mapping):
        raise BadEvent("an event must be a JSON object")
    kind = event.get("kind")
    if kind not in KINDS:
        raise BadEvent(f"'kind' must be one of {sorted(KINDS)}")
    patient_id = event.get("patient_id")
    if not isinstance(patient_id, str) or not patient_id.strip():
        raise BadEvent("'patient_id' is required")
    service = event.get("service")
    if not isinstance(service, str) or not service:
        raise BadEvent("'service' is required")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise BadEvent("'event_id' is missing (events must come through the recorder)")
    dept_code, dept_name = _pair(event.get("department"), "code", "name")
    doc_id, doc_name = _pair(event.get("attending"), "id", "name")
    raw_findings = event.get("findings") or []
    raw_cards = event.get("cards") or []
    if not isinstance(raw_findings, list) or not isinstance(raw_cards, list):
        raise BadEvent("'findings' and 'cards' must be lists")
    return Record(
        event_id=event_id[:40],
        kind=kind,
        at=parse_at(event.get("at")),
        patient_id=patient_id[:200],
        encounter_id=_text(event.get("encounter_id"), 200) or "",
        head={
            "service": service[:100],
            "hook": _text(event.get("hook"), 60),
            "hook_instance": _text(event.get("hook_instance"), 100),
            "channel": _text(event.get("channel"), 20),
            "encounter_status": _text(event.get("encounter_status"), 40),
            "department_code": dept_code,
            "department_name": dept_name,
            "attending_id": doc_id,
            "attending_name": doc_name,
        },
        dip=_dip_columns(event.get("dip")),
        findings=[_finding(f) for f in raw_findings[:MAX_ITEMS]],
        cards=[_card(c) for c in raw_cards[:MAX_ITEMS]],
    )


DIP_KEYS = (
    "catalog",
    "group_code",
    "group_name",
    "group_kind",
    "estimate",
    "standard_cents",
    "cost_cents",
    "order_cents",
    "projected_cents",
    "ratio_e4",
    "band",
)
WHO_KEYS = ("department_code", "department_name", "attending_id", "attending_name")


def _new_stay(record: Record) -> dict[str, Any]:
    return {
        "stay_key": secrets.token_hex(12),
        "patient_id": record.patient_id,
        "encounter_id": record.encounter_id,
        "encounter_status": None,
        "is_open": True,
        "first_at": record.at,
        "last_at": record.at,
        "closed_at": None,
        "last_service": None,
        "dip_at": None,
        "assessments": 0,
        "findings": 0,
        "risk_cents": 0,
        **dict.fromkeys(WHO_KEYS),
        **dict.fromkeys(DIP_KEYS),
    }


def _apply(stay: dict[str, Any], record: Record) -> None:
    """Fold one event into the stay's latest state (events may arrive out of order)."""
    stay["assessments"] += 1
    stay["findings"] += len(record.findings)
    stay["risk_cents"] += record.risk_cents
    stay["first_at"] = min(_utc(stay["first_at"]), record.at)
    if record.at >= _utc(stay["last_at"]):
        stay["last_at"] = record.at
        stay["last_service"] = record.head["service"]
        if record.head["encounter_status"]:
            stay["encounter_status"] = record.head["encounter_status"]
        for key in WHO_KEYS:
            if record.head[key]:
                stay[key] = record.head[key]
    if record.dip is not None and (stay["dip_at"] is None or record.at >= _utc(stay["dip_at"])):
        stay["dip_at"] = record.at
        stay.update(record.dip)
    if record.closes and stay["is_open"]:  # a discharged stay stays closed (a readmission is a new encounter)
        stay["is_open"] = False
        stay["closed_at"] = record.at


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reject(conn: Connection, line: bytes | str, reason: str) -> None:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    conn.execute(
        rejected_events.insert().values(
            received_at=datetime.now(UTC), reason=reason[:500], payload=text[:20000]
        )
    )
    log.warning("console: assessment event rejected", extra={"reason": reason[:200]})


def ingest(conn: Connection, events: Iterable[Mapping[str, Any]]) -> int:
    """Store a batch in the caller's transaction; returns how many new assessments were stored."""
    records: list[Record] = []
    for event in events:
        try:
            records.append(to_record(event))
        except BadEvent as exc:
            reject(conn, json.dumps(event, ensure_ascii=False, default=str), str(exc))
    if not records:
        return 0
    seen = set(
        conn.execute(
            select(assessments.c.event_id).where(assessments.c.event_id.in_([r.event_id for r in records]))
        ).scalars()
    )
    fresh: list[Record] = []
    for record in records:
        if record.event_id not in seen:
            seen.add(record.event_id)
            fresh.append(record)
    if not fresh:
        return 0

    keys = {(r.patient_id, r.encounter_id) for r in fresh}
    existing = {
        (row.patient_id, row.encounter_id): dict(row._mapping)
        for row in conn.execute(
            select(stays).where(tuple_(stays.c.patient_id, stays.c.encounter_id).in_(list(keys)))
        )
    }
    touched: dict[tuple[str, str], dict[str, Any]] = {}
    for record in sorted(fresh, key=lambda r: r.at):
        key = (record.patient_id, record.encounter_id)
        stay = touched.get(key) or existing.get(key)
        if stay is None:
            stay = _new_stay(record)
            stay["id"] = conn.execute(stays.insert().values(**stay).returning(stays.c.id)).scalar_one()
        _apply(stay, record)
        touched[key] = stay
    for stay in touched.values():
        values = {k: v for k, v in stay.items() if k not in ("id", "stay_key", "patient_id", "encounter_id")}
        conn.execute(stays.update().where(stays.c.id == stay["id"]).values(**values))

    rows = [
        {
            "event_id": r.event_id,
            "stay_id": touched[(r.patient_id, r.encounter_id)]["id"],
            "kind": r.kind,
            "at": r.at,
            **r.head,
            **(r.dip or dict.fromkeys(DIP_KEYS)),
        }
        for r in fresh
    ]
    ids: dict[str, int] = dict(
        conn.execute(assessments.insert().returning(assessments.c.event_id, assessments.c.id), rows).all()
    )
    finding_rows = [
        {
            "assessment_id": ids[r.event_id],
            "stay_id": touched[(r.patient_id, r.encounter_id)]["id"],
            "at": r.at,
            "patient_id": r.patient_id,
            "encounter_id": r.encounter_id or None,
            **{k: r.head[k] for k in WHO_KEYS},
            **f,
        }
        for r in fresh
        for f in r.findings
    ]
    if finding_rows:
        conn.execute(findings.insert(), finding_rows)
    card_rows = [{"assessment_id": ids[r.event_id], **c} for r in fresh for c in r.cards]
    if card_rows:
        conn.execute(cards.insert(), card_rows)
    return len(fresh)
