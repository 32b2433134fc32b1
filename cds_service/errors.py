"""HTTP errors carried as FHIR OperationOutcome bodies, the shape CDS Hooks 3.0 recommends.

One exception type per status so handlers and validation can raise and the app turns each into
a consistent JSON body that names every problem (a CDS client developer fixes all at once).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

FHIR_JSON = "application/json"


def operation_outcome(issues: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Build an OperationOutcome from ``(severity, code, diagnostics)`` triples."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": diagnostics}
            for severity, code, diagnostics in issues
        ],
    }


class ServiceError(Exception):
    """An error answered with an OperationOutcome body."""

    status = 400
    code = "invalid"

    def __init__(self, problems: str | list[str], *, code: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems) or ["invalid request"]
        if code:
            self.code = code
        super().__init__("; ".join(self.problems))

    def outcome(self) -> dict[str, Any]:
        return operation_outcome([("error", self.code, p) for p in self.problems])

    def response(self) -> Response:
        return Response(
            json.dumps(self.outcome(), ensure_ascii=False, separators=(",", ":")),
            self.status,
            mimetype=FHIR_JSON,
        )


class BadRequest(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not-found"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "not-supported"


class RequestTimeout(ServiceError):
    status = 408
    code = "timeout"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "not-supported"


class PreconditionFailed(ServiceError):
    """Required prefetch data could not be obtained (CDS Hooks: HTTP 412)."""

    status = 412
    code = "incomplete"


class NotReady(ServiceError):
    status = 503
    code = "transient"


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict → ``"context.draftOrders.entry.0: ..."`` lines."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out += flatten_messages(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list):
        out = []
        for m in messages:
            out += (
                flatten_messages(m, prefix) if not isinstance(m, str) else [f"{prefix}: {m}" if prefix else m]
            )
        return out
    return [f"{prefix}: {messages}" if prefix else str(messages)]
