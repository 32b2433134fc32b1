"""Cost so far from a hospital's own billing (HIS) endpoint, for hospitals whose billing is not FHIR.

Configuration (``[costing.his]`` in the service's config.toml)::

    url_template = "https://his.example.cn/api/inpatient/{encounter_id}/cost"   # {encounter_id}, {patient_id}
    timeout_seconds = 2.0          # connect and read timeout each
    headers = { "X-Api-Key" = "…" }  # optional, sent as is (never logged)

``GET`` on the rendered URL (values URL-encoded) must answer ``200`` with JSON::

    {"total": "12345.67",                       # yuan; number or string; required unless by_category
     "currency": "CNY",                         # optional; anything else is rejected
     "by_category": {"01": "300.00", "06": "4200.00"},   # optional; keys 01–14 or category names
     "as_of": "2026-11-21T10:00:00+08:00",      # optional
     "item_count": 57}                          # optional

``404`` means the HIS does not know the stay → ``None`` (cost unknown). Anything else (timeouts,
5xx, non-JSON, a body without an amount) raises :class:`HisCostError`, which a hook handler turns
into "cost unknown". URLs are never logged (they carry patient/encounter ids).

The call goes through the service's one outbound HTTP layer (:mod:`cds_service.outbound`): the
pooled session without environment proxies, the hook request's deadline (when given) on top of
``timeout_seconds``, a response size cap, and no redirect off the configured origin and path.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from cds_service import outbound
from costing.categories import UNCLASSIFIED, normalize_category
from costing.fhir_input import as_decimal
from costing.so_far import CURRENCY, CostSoFar

_CENT = Decimal("0.01")
PLACEHOLDERS = ("encounter_id", "patient_id")
MAX_ANSWER_BYTES = 1024 * 1024  # the documented answer is a few hundred bytes


def endpoint_rule(template: str) -> outbound.UrlRule:
    """Where a rendered template may lead: its origin and its path up to the first placeholder, so
    neither an id from the request nor a redirect can point the call elsewhere. ``ValueError``
    when the placeholders are not in the path or query."""
    parts = urlsplit(template.split("{", 1)[0])
    if not parts.netloc or "{" in urlsplit(template).netloc:
        raise ValueError("costing.his.url_template: placeholders belong in the path or the query")
    path = parts.path if parts.query or "{" not in template.split("?", 1)[0] else parts.path.rsplit("/", 1)[0]
    try:
        return outbound.UrlRule.parse(f"{parts.scheme}://{parts.netloc}{path or '/'}")
    except outbound.UrlError as exc:
        raise ValueError(f"costing.his.url_template: {exc}") from None


class HisCostError(RuntimeError):
    """The HIS cost endpoint could not give a usable answer (reason in the message, no ids)."""


@dataclass(frozen=True)
class HisCostConfig:
    url_template: str
    timeout_seconds: float = 2.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # API keys: kept out of logs

    def __post_init__(self) -> None:
        if not self.url_template.startswith(("http://", "https://")):
            raise ValueError("costing.his.url_template must be an http(s) URL")
        names = {name for _, name, _, _ in string.Formatter().parse(self.url_template) if name}
        unknown = names - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(f"costing.his.url_template has unknown placeholders {sorted(unknown)}")
        if not names:
            raise ValueError("costing.his.url_template needs {encounter_id} or {patient_id}")
        if not (0 < float(self.timeout_seconds) <= 30):
            raise ValueError("costing.his.timeout_seconds must be in (0, 30]")
        endpoint_rule(self.url_template)

    @property
    def placeholders(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.url_template) if name}


def parse_his_cost(body: Any) -> CostSoFar:
    """The documented JSON shape → CostSoFar (raises HisCostError when it carries no amount)."""
    if not isinstance(body, Mapping):
        raise HisCostError("HIS cost answer is not a JSON object")
    currency = body.get("currency")
    if currency not in (None, CURRENCY):
        raise HisCostError(f"HIS cost answer is in {currency!r}, not CNY")
    by_category: dict[str, Decimal] = {}
    raw_categories = body.get("by_category") or {}
    if not isinstance(raw_categories, Mapping):
        raise HisCostError("HIS cost answer: by_category is not an object")
    for key, value in raw_categories.items():
        amount = as_decimal(value)
        if amount is None:
            raise HisCostError(f"HIS cost answer: by_category[{key!r}] is not an amount")
        category = normalize_category(key) or UNCLASSIFIED
        by_category[category] = by_category.get(category, Decimal(0)) + amount.quantize(_CENT)
    total = as_decimal(body.get("total"))
    if body.get("total") is not None and total is None:
        raise HisCostError("HIS cost answer: total is not an amount")
    notes: tuple[str, ...] = ()
    if total is None:
        if not by_category:
            raise HisCostError("HIS cost answer has neither total nor by_category")
        total = sum(by_category.values(), Decimal(0))
    elif by_category and sum(by_category.values(), Decimal(0)) != total.quantize(_CENT):
        notes = ("HIS 分类费用合计与总费用不一致，以总费用为准",)
    item_count = body.get("item_count")
    return CostSoFar(
        total=total.quantize(_CENT),
        by_category=dict(sorted(by_category.items())),
        item_count=item_count if isinstance(item_count, int) and not isinstance(item_count, bool) else 0,
        source="HIS",
        as_of=str(body["as_of"]) if body.get("as_of") else None,
        notes=notes,
    )


class HisCostClient:
    """Fetches the cost so far of one stay from the configured HIS endpoint."""

    def __init__(self, config: HisCostConfig) -> None:
        self.config = config
        self._rule = endpoint_rule(config.url_template)

    def url_for(self, *, encounter_id: str | None, patient_id: str | None) -> str:
        values = {"encounter_id": encounter_id, "patient_id": patient_id}
        missing = [name for name in self.config.placeholders if not values.get(name)]
        if missing:
            raise HisCostError(f"HIS cost endpoint needs {', '.join(sorted(missing))}, not in the request")
        return self.config.url_template.format(**{k: quote(str(v or ""), safe="") for k, v in values.items()})

    def fetch(
        self, *, encounter_id: str | None = None, patient_id: str | None = None, deadline: float | None = None
    ) -> CostSoFar | None:
        """``deadline``: the hook request's (``time.monotonic()``), when the answer is needed by then."""
        timeout = self.config.timeout_seconds
        try:
            url = outbound.canonical_url(self.url_for(encounter_id=encounter_id, patient_id=patient_id))
        except outbound.UrlError as exc:
            raise HisCostError(f"HIS cost endpoint URL refused ({exc})") from None
        if not self._rule.allows(url):
            raise HisCostError("HIS cost endpoint URL refused (outside the configured endpoint)")
        own = time.monotonic() + timeout
        try:
            answer = outbound.get(
                url,
                headers={"Accept": "application/json", **self.config.headers},
                deadline=own if deadline is None else min(own, deadline),
                connect_timeout=timeout,
                read_timeout=timeout,
                allow=self._rule,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except outbound.OutboundError as exc:
            if exc.reason in ("timeout", "deadline exceeded"):
                raise HisCostError("HIS cost endpoint did not answer in time") from None
            raise HisCostError(f"HIS cost endpoint unreachable ({exc.reason})") from None
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise HisCostError(f"HIS cost endpoint answered HTTP {answer.status}")
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            raise HisCostError("HIS cost endpoint answered with something that is not JSON") from None
        return parse_his_cost(body)
