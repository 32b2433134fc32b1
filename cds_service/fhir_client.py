"""HTTP access to the CDS client's FHIR server for prefetch fallback and handler reads.

Bounded by one deadline per hook request: a slow hospital FHIR server must cost the doctor at
most the configured budget, never a hung order screen. GETs are idempotent, so connection
failures, timeouts and 429/502/503/504 are retried (bounded, with backoff) while time remains.
The access token is sent as a Bearer header and never logged or stored.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode

from cds_service import outbound
from cds_service.config import PrefetchSettings
from cds_service.outbound import CanonicalUrl, UrlRule, http_session, thread_pool

__all__ = ["FetchError", "FhirClient", "PUBLIC_FAILURE", "http_session", "thread_pool"]

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# What a CDS client is told when a read failed, whatever the cause: a timeout, a refused
# connection and an HTTP error would otherwise let a caller map the hospital network through
# ``fhirServer``. The cause goes to the service log.
PUBLIC_FAILURE = "FHIR 读取失败 / FHIR read failed"


class FetchError(Exception):
    """A FHIR read failed. ``reason`` (the cause, safe to log: no URL, token or identifier) is for
    the service log; ``str(exc)`` is :data:`PUBLIC_FAILURE`, what the CDS client may be shown."""

    def __init__(self, reason: str, *, status: int | None = None):
        self.reason = reason
        self.status = status
        super().__init__(PUBLIC_FAILURE)


class FhirClient:
    """Reads from one FHIR server with one token, all bounded by an absolute ``deadline``.

    ``base_url`` must already be allowed for the caller (``cds_service.app`` checks it against the
    JWT issuer's servers); reads stay under it, redirects too (see :mod:`cds_service.outbound`)."""

    def __init__(
        self,
        base_url: str | CanonicalUrl,
        access_token: str | None,
        settings: PrefetchSettings,
        deadline: float,
    ) -> None:
        base = base_url if isinstance(base_url, CanonicalUrl) else outbound.canonical_url(base_url)
        self._rule = UrlRule(base.scheme, base.host, base.port, base.path.rstrip("/") + "/")
        self.base_url = base.geturl().rstrip("/")
        self._token = access_token
        self.settings = settings
        self.deadline = deadline  # time.monotonic() value
        self.reads = 0  # reads attempted (prefetch fallback and the handler's own), for the access log
        self._reads_lock = threading.Lock()  # prefetch reads run in a thread pool

    def __repr__(self) -> str:  # never show the token
        return f"FhirClient(base_url={self.base_url!r})"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json, application/json;q=0.9"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def get(self, relative: str) -> dict[str, Any]:
        """GET ``base/relative`` → a FHIR resource dict; raises :class:`FetchError`."""
        with self._reads_lock:
            self.reads += 1
        try:
            url = outbound.canonical_url(f"{self.base_url}/{relative.lstrip('/')}")
        except outbound.UrlError as exc:
            raise FetchError(f"refused URL ({exc})") from None
        if not self._rule.allows(url):
            raise FetchError("refused URL (outside the FHIR server)")
        s = self.settings
        last = FetchError("deadline exceeded")
        for attempt in range(s.retries + 1):
            if self.remaining() <= 0.005:
                raise last
            try:
                answer = outbound.get(
                    url,
                    headers=self._headers(),
                    deadline=self.deadline,
                    connect_timeout=s.connect_timeout_seconds,
                    read_timeout=s.read_timeout_seconds,
                    allow=self._rule,
                )
            except outbound.OutboundError as exc:
                if exc.reason not in ("timeout", "connection failed"):
                    raise FetchError(exc.reason) from None
                last = FetchError(exc.reason)
            else:
                if answer.status in RETRYABLE_STATUS:
                    last = FetchError(f"HTTP {answer.status}", status=answer.status)
                elif answer.status >= 300:
                    raise FetchError(f"HTTP {answer.status}", status=answer.status)
                else:
                    return _json_resource(answer.body)
            backoff = s.retry_backoff_seconds * (2**attempt)
            if attempt < s.retries and self.remaining() > backoff + 0.01:
                time.sleep(backoff)
        raise last

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self.get(f"{resource_type}/{quote(resource_id, safe='')}")

    def search(self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
        return self.get(f"{resource_type}?{urlencode(params)}")


def _json_resource(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError("invalid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise FetchError("not a FHIR resource")
    if data["resourceType"] == "OperationOutcome":
        raise FetchError("OperationOutcome")
    return data
