"""Prefetch resolution: render templates, use what the CDS client sent, fetch what it did not.

CDS Hooks semantics: a key the client sent is used as is; ``null`` means "no such data" and is
not refetched; an OperationOutcome means the client tried and failed, so we refetch; an absent
key means the client did not try, so we fetch it from ``fhirServer``. All fetches run
concurrently under one deadline. A template whose tokens are absent from the context (the
Sandbox sends no encounterId) is simply not applicable.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import wait
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from cds_service.config import PrefetchSettings
from cds_service.fhir_client import PUBLIC_FAILURE, FetchError, FhirClient, thread_pool

log = logging.getLogger("dip_cds.prefetch")

TOKEN = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}")
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class Status(StrEnum):
    PROVIDED = "provided"  # sent by the CDS client
    FETCHED = "fetched"  # fetched by us from fhirServer
    NULL = "null"  # client says: no such data
    NOT_APPLICABLE = "not-applicable"  # template tokens absent from the context
    FAILED = "failed"  # could not obtain it


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.status in (Status.PROVIDED, Status.FETCHED)


def template_tokens(template: str) -> list[str]:
    return TOKEN.findall(template)


def check_template(template: str) -> None:
    """Registration-time check: only tokens we know how to render."""
    for token in template_tokens(template):
        if not (token.startswith("context.") or token in USER_TOKENS):
            raise ValueError(f"unsupported prefetch token {{{{{token}}}}} in {template!r}")


def _token_value(token: str, context: dict[str, Any]) -> str | None:
    if token.startswith("context."):
        value = context.get(token[len("context.") :])
        return value if isinstance(value, str) and value else None
    wanted = USER_TOKENS.get(token)
    user = context.get("userId")
    if wanted and isinstance(user, str) and user.startswith(wanted + "/"):
        return user.split("/", 1)[1] or None
    return None


def render(template: str, context: dict[str, Any]) -> str | None:
    """Fill the tokens (URL-escaped); ``None`` when any token has no value (not applicable)."""
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        value = _token_value(match.group(1), context)
        if value is None:
            missing = True
            return ""
        return quote(value, safe="")

    rendered = TOKEN.sub(sub, template)
    return None if missing else rendered


def wrong_type(template: str, value: dict[str, Any]) -> str | None:
    """Why ``value`` cannot be what ``template`` asks for, or None. A read (``Patient/{{…}}``) must
    be that type; a search (``Condition?…``) a Bundle (or, from sloppy clients, one such resource)."""
    path, search, _ = template.partition("?")
    wanted = path.split("/", 1)[0]
    got = value.get("resourceType")
    allowed = (wanted, "Bundle") if search else (wanted,)
    if not wanted or got in allowed:
        return None
    return f"resourceType {str(got)[:40]!r}, expected {' or '.join(allowed)}"


def _is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


@dataclass
class Resolution:
    values: dict[str, dict[str, Any] | None]
    outcomes: dict[str, Outcome]
    fetched: int = 0


def resolve(
    templates: Mapping[str, str],
    context: dict[str, Any],
    provided: dict[str, Any],
    client: FhirClient | None,
    settings: PrefetchSettings,
) -> Resolution:
    """Resolve every template; never raises for remote failures (they become FAILED outcomes)."""
    values: dict[str, dict[str, Any] | None] = {}
    outcomes: dict[str, Outcome] = {}
    to_fetch: dict[str, str] = {}
    for key, template in templates.items():
        if key in provided and not _is_operation_outcome(provided[key]):
            value = provided[key]  # what the client sent wins, even for a template we could not render
            problem = wrong_type(template, value) if value is not None else None
            if problem is not None:  # never silently read an Observation as the Patient
                outcomes[key] = Outcome(Status.FAILED, f"预取数据类型错误 / wrong {problem}")
                continue
            values[key] = value
            outcomes[key] = Outcome(Status.NULL if value is None else Status.PROVIDED)
            continue
        rendered = render(template, context)
        if rendered is None:
            outcomes[key] = Outcome(Status.NOT_APPLICABLE)
            continue
        if client is None:
            outcomes[key] = Outcome(Status.FAILED, "no fhirServer to fetch from")
            continue
        to_fetch[key] = rendered

    if to_fetch and client is not None:
        _fetch_all(templates, to_fetch, client, settings, values, outcomes)
    return Resolution(values, outcomes, fetched=len(to_fetch))


def _fetch_all(
    templates: Mapping[str, str],
    to_fetch: dict[str, str],
    client: FhirClient,
    settings: PrefetchSettings,
    values: dict[str, dict[str, Any] | None],
    outcomes: dict[str, Outcome],
) -> None:
    from cds_service import metrics

    def one(key: str, rendered: str) -> tuple[dict[str, Any] | None, str | None, float]:
        started = time.perf_counter()
        try:
            value = client.get(rendered)
        except FetchError as exc:
            return None, exc.reason, time.perf_counter() - started
        problem = wrong_type(templates[key], value)
        elapsed = time.perf_counter() - started
        return (None, problem, elapsed) if problem else (value, None, elapsed)

    # Always through the pool, even for one key: the wait below is a hard deadline that a
    # server trickling its response byte by byte cannot stretch.
    pool = thread_pool(settings.max_concurrency)
    futures = {key: pool.submit(one, key, rendered) for key, rendered in to_fetch.items()}
    wait(futures.values(), timeout=max(client.remaining(), 0) + 0.02)
    results = {}
    for key, fut in futures.items():
        if fut.done():
            results[key] = fut.result()
        else:
            fut.cancel()
            results[key] = (None, "deadline exceeded", settings.deadline_seconds)
    for key, (value, reason, seconds) in results.items():
        if reason is None:
            values[key] = value
            outcomes[key] = Outcome(Status.FETCHED)
            metrics.observe_prefetch("ok", seconds)
        else:  # the cause is logged; the client is told only that the read failed (no network facts)
            outcomes[key] = Outcome(Status.FAILED, PUBLIC_FAILURE)
            metrics.observe_prefetch("failed", seconds)
            log.warning("prefetch fetch failed", extra={"prefetch_key": key, "reason": reason})
