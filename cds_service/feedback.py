"""Card feedback storage (SQLAlchemy Core): SQLite under the data home by default, any URL in production.

Clients resend feedback (retries, double clicks), so each item has a natural unique key
(service, card, outcome, outcomeTimestamp) and duplicates are ignored, not double counted in
the 医保办's accept/override statistics.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from cds_service.sqlite_wal import use_wal

metadata = MetaData()

# (system, code) of an override reason → its display as the service offers it, or None
ReasonDisplay = Callable[[str | None, str | None], str | None]


def _no_display(_system: str | None, _code: str | None) -> None:
    return None


feedback_table = Table(
    "cds_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(100), nullable=False),
    Column("card_uuid", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("outcome_timestamp", String(40), nullable=False),  # ISO-8601 UTC, exact as a key
    Column("accepted_suggestions", Text, nullable=True),  # JSON array of suggestion uuids
    Column("override_system", String(512), nullable=True),
    Column("override_code", String(256), nullable=True),
    Column("override_display", String(512), nullable=True),
    Column("user_comment", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("service_id", "card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_item"),
)


def default_database_url(home: Path) -> str:
    return f"sqlite:///{Path(home) / 'feedback.sqlite'}"


class FeedbackStore:
    """Per-process engine (created lazily, after gunicorn forks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    self._engine = self._create()
                    self._pid = os.getpid()
        return self._engine

    def _create(self) -> Engine:
        is_sqlite = self.url.startswith("sqlite")
        engine = create_engine(
            self.url,
            pool_pre_ping=not is_sqlite,
            connect_args={"timeout": 10} if is_sqlite else {},
        )
        if is_sqlite:

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                use_wal(dbapi_conn)

        for attempt in range(3):  # several workers may race to create the table
            try:
                metadata.create_all(engine, checkfirst=True)
                break
            except OperationalError:
                if attempt == 2:
                    raise
        return engine

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(func.count()).select_from(feedback_table).limit(1))

    def store(
        self, service_id: str, items: list[dict[str, Any]], display_of: ReasonDisplay = _no_display
    ) -> tuple[int, int]:
        """Insert validated feedback items; returns (stored, duplicates). A reason sent without its
        display is stored with the display the service offered (``display_of``): what the user saw."""
        stored = duplicates = 0
        now = datetime.now(UTC)
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            row = {
                "service_id": service_id,
                "card_uuid": item["card"],
                "outcome": item["outcome"],
                "outcome_timestamp": item["outcomeTimestamp"].astimezone(UTC).isoformat(),
                "accepted_suggestions": json.dumps([s["id"] for s in item.get("acceptedSuggestions") or []])
                if item.get("acceptedSuggestions")
                else None,
                "override_system": reason.get("system"),
                "override_code": reason.get("code"),
                "override_display": reason.get("display")
                or display_of(reason.get("system"), reason.get("code")),
                "user_comment": (item.get("overrideReason") or {}).get("userComment"),
                "received_at": now,
            }
            try:
                with self.engine.begin() as conn:
                    conn.execute(feedback_table.insert().values(**row))
                stored += 1
            except IntegrityError:
                duplicates += 1
        return stored, duplicates

    def summary(
        self,
        service_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        display_of: ReasonDisplay = _no_display,
    ) -> dict[str, Any]:
        """Counts, accept/override rates and override reasons for one service (reasons stored without
        a display, e.g. before the service declared its reasons, are named through ``display_of``)."""
        t = feedback_table
        query = select(
            t.c.card_uuid,
            t.c.outcome,
            t.c.override_system,
            t.c.override_code,
            t.c.override_display,
            t.c.user_comment,
        ).where(t.c.service_id == service_id)
        if since is not None:
            query = query.where(t.c.outcome_timestamp >= since.astimezone(UTC).isoformat())
        if until is not None:
            query = query.where(t.c.outcome_timestamp < until.astimezone(UTC).isoformat())
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        outcomes = Counter(r.outcome for r in rows)
        total = len(rows)
        stored: Counter[tuple[str | None, str | None, str | None]] = Counter(
            (r.override_system, r.override_code, r.override_display)
            for r in rows
            if r.outcome == "overridden" and (r.override_code or r.override_display)
        )
        reasons: Counter[tuple[str | None, str | None, str | None]] = Counter()
        for (system, code, display), n in stored.items():
            reasons[system, code, display or display_of(system, code)] += n
        return {
            "service": service_id,
            "total": total,
            "cards": len({r.card_uuid for r in rows}),
            "accepted": outcomes.get("accepted", 0),
            "overridden": outcomes.get("overridden", 0),
            "acceptRate": round(outcomes.get("accepted", 0) / total, 4) if total else None,
            "overrideRate": round(outcomes.get("overridden", 0) / total, 4) if total else None,
            "overridesWithComment": sum(1 for r in rows if r.outcome == "overridden" and r.user_comment),
            "overrideReasons": [
                {"system": s, "code": c, "display": d, "count": n}
                for (s, c, d), n in sorted(reasons.items(), key=lambda kv: (-kv[1], str(kv[0])))
            ],
        }
