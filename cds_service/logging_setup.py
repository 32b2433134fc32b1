"""Structured JSON-line logs: one object per line, ready for ELK/Loki in a hospital data centre.

Only whitelisted ``extra`` fields are emitted, so a careless ``extra={"patient": ...}`` or a
token in an exception message cannot leak into the logs through this formatter.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

SAFE_EXTRA = (
    "service",
    "hook",
    "hook_instance",
    "endpoint",
    "method",
    "status",
    "outcome",
    "duration_ms",
    "cards",
    "prefetch_fetched",
    "prefetch_failed",
    "fhir_reads",
    "prefetch_key",
    "resource_type",
    "reason",
    "card_index",
    "kid",
    "stored",
    "duplicates",
    "problems",
    "worker_pid",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in SAFE_EXTRA:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (test runners and daemonisers swap it)."""

    @property
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    """Install one stderr handler on the ``dip_cds`` logger tree (idempotent).

    Records still propagate, so an embedding application's root handlers (or pytest) see them too.
    """
    logger = logging.getLogger("dip_cds")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if getattr(handler, "_dip_cds", False):
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler._dip_cds = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)
