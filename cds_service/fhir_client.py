"""HTTP access to the CDS client's FHIR server for prefetch fallback and handler reads.

Bounded by one deadline per hook request: a slow hospital FHIR server must cost the doctor at
most the configured budget, never a hung order screen. GETs are idempotent, so connection
failures, timeouts and 429/502/503/504 are retried (bounded, with backoff) while time remains.
The access token is sent as a Bearer header and never logged or stored.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from cds_service.config import PrefetchSettings

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "session": None, "pool": None, "pool_size": 0}


def _per_process() -> dict[str, Any]:
    """Session and thread pool are per worker process (created after gunicorn forks)."""
    pid = os.getpid()
    if _state["pid"] != pid:
        with _lock:
            if _state["pid"] != pid:
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False  # no surprise proxies for in-hospital FHIR servers
                _state.update(pid=pid, session=session, pool=None, pool_size=0)
    return _state


def http_session() -> requests.Session:
    return _per_process()["session"]


def thread_pool(size: int) -> ThreadPoolExecutor:
    state = _per_process()
    if state["pool"] is None or state["pool_size"] != size:
        with _lock:
            if state["pool"] is None or state["pool_size"] != size:
                state["pool"] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="dip-cds-fhir")
                state["pool_size"] = size
    return state["pool"]


class FetchError(Exception):
    """A FHIR read failed; ``reason`` is safe to log (no URL, no token, no identifiers)."""

    def __init__(self, reason: str, *, status: int | None = None):
        self.reason = reason
        self.status = status
        super().__init__(reason)


class FhirClient:
    """Reads from one FHIR server with one token, all bounded by an absolute ``deadline``."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        settings: PrefetchSettings,
        deadline: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
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
        url = f"{self.base_url}/{relative.lstrip('/')}"
        s = self.settings
        with self._reads_lock:
            self.reads += 1
        last = FetchError("deadline exceeded")
        for attempt in range(s.retries + 1):
            remaining = self.remaining()
            if remaining <= 0.005:
                raise last if attempt else FetchError("deadline exceeded")
            timeout = (min(s.connect_timeout_seconds, remaining), min(s.read_timeout_seconds, remaining))
            try:
                resp = http_session().get(url, headers=self._headers(), timeout=timeout, stream=True)
            except requests.Timeout:
                last = FetchError("timeout")
            except requests.ConnectionError:
                last = FetchError("connection failed")
            except requests.RequestException as exc:
                raise FetchError(f"request failed ({type(exc).__name__})") from None
            else:
                try:
                    if resp.status_code in RETRYABLE_STATUS:
                        last = FetchError(f"HTTP {resp.status_code}", status=resp.status_code)
                    elif resp.status_code >= 400:
                        raise FetchError(f"HTTP {resp.status_code}", status=resp.status_code)
                    else:
                        return _json_resource(resp, self.deadline)
                finally:
                    resp.close()
            backoff = s.retry_backoff_seconds * (2**attempt)
            if attempt < s.retries and self.remaining() > backoff + 0.01:
                time.sleep(backoff)
        raise last

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self.get(f"{resource_type}/{resource_id}")

    def search(self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
        return self.get(f"{resource_type}?{urlencode(params)}")


def _json_resource(resp: requests.Response, deadline: float) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    try:
        while True:  # read1: whatever has arrived, so a trickling server cannot outlast the deadline
            chunk = resp.raw.read1(65536, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise FetchError("response too large")
            if time.monotonic() > deadline:
                raise FetchError("deadline exceeded")
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - socket, urllib3 protocol/timeout and decoding errors
        raise FetchError(f"read failed ({type(exc).__name__})") from None
    body = b"".join(chunks)
    try:
        data = json.loads(body)
    except ValueError:
        raise FetchError("invalid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise FetchError("not a FHIR resource")
    if data["resourceType"] == "OperationOutcome":
        raise FetchError("OperationOutcome")
    return data
