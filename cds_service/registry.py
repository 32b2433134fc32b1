"""CDS Hooks services: how a plugin declares one, the registry an app answers from, the handler's view.

```python
@cds_service(id="dip-order-sign", hook="order-sign", title=..., description=...,
             prefetch={"patient": "Patient/{{context.patientId}}"}, required_prefetch={"patient"})
def handle(req: HookRequest) -> list[dict]:
    return []          # cards; or a full response dict {"cards": [...], "systemActions": [...]}
```

The decorator turns the function into a :class:`ServiceDefinition` (still callable as the
handler); a plugin lists its definitions in ``Plugin.services`` and each app builds its own
:class:`ServiceRegistry` from the installed plugins, so there is no process-global registry.

The handler receives a :class:`HookRequest` with the validated context, the resolved prefetch
(raw FHIR JSON dicts: the hooks read a few fields of many resources, and a full model parse would
cost more than the latency budget), a FHIR client for further reads that shares the request's token
and deadline, the typed settings, the process-wide data and the event bus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cds_service.config import Settings
from cds_service.prefetch import Outcome, Status, check_template

if TYPE_CHECKING:
    from cds_service.appdata import AppData
    from cds_service.events import EventBus
    from cds_service.fhir_client import FhirClient

HOOKS = ("patient-view", "order-select", "order-sign", "encounter-start", "encounter-discharge")

HandlerResult = list[dict[str, Any]] | dict[str, Any]
Handler = Callable[["HookRequest"], HandlerResult]
OverrideReasons = Callable[["AppData"], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ServiceDefinition:
    """One CDS service: its discovery entry and its handler (calling the definition calls the handler)."""

    id: str
    hook: str
    title: str
    description: str
    handler: Handler
    prefetch: Mapping[str, str] = field(default_factory=dict)
    required_prefetch: frozenset[str] = frozenset()
    usage_requirements: str | None = None
    # the override reasons (Codings) its cards offer, for the data home: feedback that names a reason
    # by code alone (the CDS Hooks Sandbox sends only code and system) is stored with their display
    override_reasons: OverrideReasons | None = None

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ValueError(f"invalid service id {self.id!r}")
        if self.hook not in HOOKS:  # each hook needs a context schema (cds_service.schemas)
            raise ValueError(f"{self.id}: unsupported hook {self.hook!r} (supported: {', '.join(HOOKS)})")
        for template in self.prefetch.values():
            check_template(template)
        unknown = self.required_prefetch - set(self.prefetch)
        if unknown:
            raise ValueError(f"{self.id}: required_prefetch names unknown keys {sorted(unknown)}")

    def __call__(self, req: HookRequest) -> HandlerResult:
        return self.handler(req)

    def reason_display(self, app_data: AppData, system: str | None, code: str | None) -> str | None:
        """The display of the override reason ``code`` (of ``system``, when given) this service offers."""
        if self.override_reasons is None or not code:
            return None
        for reason in self.override_reasons(app_data):
            if reason.get("code") == code and system in (None, reason.get("system")):
                display = reason.get("display")
                return display if isinstance(display, str) else None
        return None

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
        }
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


def cds_service(
    *,
    id: str,  # noqa: A002 - the CDS Hooks field name
    hook: str,
    title: str,
    description: str,
    prefetch: Mapping[str, str] | None = None,
    required_prefetch: Iterable[str] = (),
    usage_requirements: str | None = None,
    override_reasons: OverrideReasons | None = None,
) -> Callable[[Handler], ServiceDefinition]:
    """Declare ``handler`` as the CDS service ``id`` answering ``hook`` (checked here, at import)."""

    def declare(handler: Handler) -> ServiceDefinition:
        return ServiceDefinition(
            id=id,
            hook=hook,
            title=title,
            description=description,
            handler=handler,
            prefetch=dict(prefetch or {}),
            required_prefetch=frozenset(required_prefetch),
            usage_requirements=usage_requirements,
            override_reasons=override_reasons,
        )

    return declare


class ServiceRegistry:
    """The services one app answers; ids are unique across all plugins."""

    def __init__(self, services: Iterable[ServiceDefinition] = ()) -> None:
        self._services: dict[str, ServiceDefinition] = {}
        for service in services:
            self.add(service)

    def add(self, service: ServiceDefinition) -> None:
        if not isinstance(service, ServiceDefinition):
            raise TypeError(f"not a ServiceDefinition: {service!r} (declare it with @cds_service)")
        if service.id in self._services:
            raise ValueError(f"CDS service id {service.id!r} registered twice")
        self._services[service.id] = service

    def get(self, service_id: str) -> ServiceDefinition | None:
        return self._services.get(service_id)

    def __iter__(self) -> Iterator[ServiceDefinition]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def ids(self) -> list[str]:
        return sorted(self._services)

    def discovery_document(self) -> dict[str, Any]:
        return {"services": [self._services[sid].discovery() for sid in self.ids()]}


# ----------------------------------------------------------------------------- the handler's view


@dataclass
class HookRequest:
    """Everything a handler needs for one hook call (see module docstring for the contract)."""

    service: ServiceDefinition
    hook: str
    hook_instance: str
    context: dict[str, Any]
    fhir_server: str | None
    prefetch: dict[str, dict[str, Any] | None]
    prefetch_outcomes: dict[str, Outcome]
    settings: Settings
    app_data: AppData
    events: EventBus
    fhir: FhirClient | None = None  # further reads with the same token + deadline
    fhir_authorization: dict[str, Any] | None = field(default=None, repr=False)  # never log
    extension: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # degradation notes a handler may show on a card
    # the request's absolute deadline (``time.monotonic()``) for every outbound call: the FHIR
    # client's, and the one a handler passes to other systems (e.g. a HIS endpoint)
    deadline: float | None = None
    channel: str = "cds-hooks"  # how the call came in: "cds-hooks", "plugin" (the browser panel's API), …

    @property
    def patient_id(self) -> str:
        return self.context["patientId"]

    @property
    def encounter_id(self) -> str | None:
        return self.context.get("encounterId")

    @property
    def user_id(self) -> str | None:
        return self.context.get("userId")

    def available(self, key: str) -> bool:
        outcome = self.prefetch_outcomes.get(key)
        return bool(outcome and outcome.available)

    def resources(self, key: str) -> list[dict[str, Any]]:
        """Raw resources of a prefetch key; searchset Bundles are unpacked into their matches."""
        return unpack(self.prefetch.get(key))

    def resource(self, key: str) -> dict[str, Any] | None:
        found = self.resources(key)
        return found[0] if found else None

    def draft_orders(self) -> list[dict[str, Any]]:
        """Raw draft order resources of order-sign / order-select (shape-checked, not model-validated)."""
        return unpack(self.context.get("draftOrders"))

    def unavailable_prefetch(self) -> dict[str, str]:
        """Keys that could not be obtained → reason (for a "data incomplete" note on cards)."""
        return {
            k: o.reason or o.status.value
            for k, o in self.prefetch_outcomes.items()
            if o.status is Status.FAILED
        }

    def publish(self, event: str, payload: Mapping[str, Any]) -> None:
        """Hand an event (e.g. ``"assessment"``) to the plugins subscribed to it. Never raises for a
        subscriber's failure: the doctor's cards do not depend on who records them."""
        self.events.publish(event, payload)


def unpack(resource: Any) -> list[dict[str, Any]]:
    """A searchset/collection Bundle → its entry resources; a single resource → ``[resource]``."""
    if not isinstance(resource, dict):
        return []
    if resource.get("resourceType") == "Bundle":
        out = []
        entries = resource.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            res = entry.get("resource")
            # searchset "include"/"outcome" entries are not matches of the query
            search = entry.get("search")
            mode = search.get("mode") if isinstance(search, dict) else None
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str) and mode in (None, "match"):
                out.append(res)
        return out
    return [resource] if isinstance(resource.get("resourceType"), str) else []
