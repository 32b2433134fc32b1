"""Core events a plugin may subscribe to, delivered in-process and never at the caller's expense.

``assessment``: a hook or plugin-API call assessed a stay and publishes what it found (DIP status
and/or 智能审核 findings) as plain JSON-serialisable data without patient names (the shape is in
docs/architecture.md). The console records it; the doctor's response must not depend on that, so
a subscriber that raises is logged (type and place, never the message: it may carry patient data)
and counted, and the publisher carries on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cds_service.appdata import AppData

log = logging.getLogger("dip_cds.events")

ASSESSMENT = "assessment"
EVENTS = frozenset({ASSESSMENT})

# subscriber(app_data, payload): app_data gives the subscriber its home, settings and named data
Subscriber = Callable[["AppData", Mapping[str, Any]], None]


class EventBus:
    """Synchronous delivery to the subscribers each plugin declared for an event."""

    def __init__(
        self, data: AppData, subscribers: Mapping[str, Sequence[tuple[str, Subscriber]]] | None = None
    ):
        self._subscribers = {event: tuple(subs) for event, subs in (subscribers or {}).items()}
        self._data = data

    def subscribers(self, event: str) -> tuple[str, ...]:
        """The names of the plugins subscribed to ``event`` (for diagnostics and tests)."""
        return tuple(name for name, _ in self._subscribers.get(event, ()))

    def publish(self, event: str, payload: Mapping[str, Any]) -> int:
        """Deliver ``payload`` to every subscriber of ``event``; returns how many took it without
        raising. Publishing an event the core does not define is a programming error."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r} (known: {', '.join(sorted(EVENTS))})")
        delivered = 0
        for plugin, subscriber in self._subscribers.get(event, ()):
            try:
                subscriber(self._data, payload)
                delivered += 1
            except Exception as exc:  # noqa: BLE001 - a subscriber never breaks the publisher's response
                from cds_service import metrics

                metrics.EVENT_FAILURES.labels(event, plugin).inc()
                where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
                log.error(
                    "event subscriber failed",
                    extra={
                        "endpoint": f"event:{event}",
                        "service": plugin,
                        "reason": f"{type(exc).__name__} at {where.filename}:{where.lineno}"
                        if where
                        else type(exc).__name__,
                    },
                )
        return delivered
