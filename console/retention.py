"""Retention: closed stays (with their history, findings and cards) older than the setting go.

Run at start, hourly by the recorder, and by ``dip-cds console purge``. Open stays are never purged.
Old sessions and audit-log rows follow the same clock (the audit log is kept twice as long).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from console.models import assessments, cards, findings, sessions, stays, view_log


def purge(engine: Engine, retention_days: int, session_max_hours: int = 12) -> dict[str, int]:
    """Delete what is past retention; returns the counts deleted."""
    now = datetime.now(UTC)
    counts = {"stays": 0, "sessions": 0, "view_log": 0}
    with engine.begin() as conn:
        counts["sessions"] = conn.execute(
            delete(sessions).where(sessions.c.created_at < now - timedelta(hours=session_max_hours))
        ).rowcount
        if retention_days <= 0:
            return counts
        cutoff = now - timedelta(days=retention_days)
        old = select(stays.c.id).where(stays.c.is_open.is_(False), stays.c.closed_at < cutoff)
        ids = [i for (i,) in conn.execute(old)]
        for start in range(0, len(ids), 500):  # children first: no reliance on ON DELETE CASCADE
            chunk = ids[start : start + 500]
            done = select(assessments.c.id).where(assessments.c.stay_id.in_(chunk))
            conn.execute(delete(cards).where(cards.c.assessment_id.in_(done)))
            conn.execute(delete(findings).where(findings.c.stay_id.in_(chunk)))
            conn.execute(delete(assessments).where(assessments.c.stay_id.in_(chunk)))
            counts["stays"] += conn.execute(delete(stays).where(stays.c.id.in_(chunk))).rowcount
        counts["view_log"] = conn.execute(
            delete(view_log).where(view_log.c.at < now - timedelta(days=2 * retention_days))
        ).rowcount
    return counts
