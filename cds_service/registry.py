"""The hook-service registry: each service declares itself in one place with ``@cds_service``.

```python
@cds_service(id="dip-order-sign", hook="order-sign", title=..., description=...,
             prefetch={"patient": "Patient/{{context.patientId}}"}, required_prefetch={"patient"})
def handle(req: HookRequest) -> list[dict]:
    return []          # cards; or a full response dict {"cards": [...], "systemActions": [...]}
```

The handler receives a :class:`HookRequest` with the validated context, the resolved prefetch
(raw dicts, plus tolerant fhir.resources models on demand), a FHIR client for further reads that
shares the request's token and deadline, the settings and the process-wide reference data.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cds_service.prefetch import Outcome, Status, check_template

log = logging.getLogger("dip_cds.registry")

HOOKS = ("patient-view", "order-select", "order-sign", "encounter-start", "encounter-discharge")
SERVICE_PACKAGE = "hooks"  # imported on first use; it imports every hook module

Handler = Callable[["HookRequest"], "list[dict[str, Any]] | dict[str, Any]"]


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    handler: Handler
    prefetch: dict[str, str] = field(default_factory=dict)
    required_prefetch: frozenset[str] = frozenset()
    usage_requirements: str | None = None

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


_REGISTRY: dict[str, ServiceDefinition] = {}
_loaded = False


def cds_service(
    *,
    id: str,  # noqa: A002 - the CDS Hooks field name
    hook: str,
    title: str,
    description: str,
    prefetch: dict[str, str] | None = None,
    required_prefetch: Iterable[str] = (),
    usage_requirements: str | None = None,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as the CDS service ``id`` answering ``hook``."""
    prefetch = dict(prefetch or {})
    required = frozenset(required_prefetch)
    for template in prefetch.values():
        check_template(template)
    unknown = required - set(prefetch)
    if unknown:
        raise ValueError(f"{id}: required_prefetch names unknown keys {sorted(unknown)}")
    if not id or "/" in id:
        raise ValueError(f"invalid service id {id!r}")
    if hook not in HOOKS:  # each hook needs a context schema (cds_service.schemas)
        raise ValueError(f"{id}: unsupported hook {hook!r} (supported: {', '.join(HOOKS)})")

    def register(handler: Handler) -> Handler:
        existing = _REGISTRY.get(id)
        if existing is not None and (existing.handler.__module__, existing.handler.__qualname__) != (
            handler.__module__,
            handler.__qualname__,
        ):
            raise ValueError(f"CDS service id {id!r} registered twice")
        _REGISTRY[id] = ServiceDefinition(
            id=id,
            hook=hook,
            title=title,
            description=description,
            handler=handler,
            prefetch=prefetch,
            required_prefetch=required,
            usage_requirements=usage_requirements,
        )
        return handler

    return register


def unregister(service_id: str) -> None:
    """Remove a service (tests, or a deployment that disables one); unknown ids are ignored."""
    _REGISTRY.pop(service_id, None)


def ensure_loaded() -> None:
    """Import the hook package once so every ``@cds_service`` has run."""
    global _loaded
    if not _loaded:
        pkg = importlib.import_module(SERVICE_PACKAGE)
        loader = getattr(pkg, "load_services", None)
        if callable(loader):
            loader()
        _loaded = True


def services() -> dict[str, ServiceDefinition]:
    ensure_loaded()
    return dict(_REGISTRY)


def get(service_id: str) -> ServiceDefinition | None:
    ensure_loaded()
    return _REGISTRY.get(service_id)


def discovery_document() -> dict[str, Any]:
    return {"services": [s.discovery() for s in sorted(services().values(), key=lambda s: s.id)]}


def register_optional_blueprints(app: Any) -> list[str]:
    """Mount blueprints of packages that may not exist yet (e.g. ``terminology.fhir_api``)."""
    mounted = []
    for module_name, attr in (("terminology.fhir_api", "blueprint"), ("browser_plugin.api", "blueprint")):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        bp = getattr(module, attr, None)
        if bp is not None:
            app.register_blueprint(bp)
            mounted.append(module_name)
    return mounted


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
    settings: Any
    app_data: Any
    fhir: Any = None  # cds_service.fhir_client.FhirClient | None: reads with the same token + deadline
    fhir_authorization: dict[str, Any] | None = field(default=None, repr=False)  # never log
    extension: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # degradation notes a handler may show on a card
    _models: dict[str, list[Any]] = field(default_factory=dict, repr=False)

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
        from cds_service.fhir_parse import unpack

        return unpack(self.prefetch.get(key))

    def resource(self, key: str) -> dict[str, Any] | None:
        found = self.resources(key)
        return found[0] if found else None

    def models(self, key: str) -> list[Any]:
        """Parsed fhir.resources models (R4B, else R5) of a key; unparsable ones dropped + noted."""
        if key not in self._models:
            from cds_service.fhir_parse import parse_all

            self._models[key] = parse_all(self.resources(key), self.notes)
        return self._models[key]

    def model(self, key: str) -> Any | None:
        found = self.models(key)
        return found[0] if found else None

    def draft_orders(self) -> list[dict[str, Any]]:
        """Raw draft order resources of order-sign / order-select (lenient: no model validation)."""
        from cds_service.fhir_parse import unpack

        return unpack(self.context.get("draftOrders"))

    def draft_order_models(self) -> list[Any]:
        from cds_service.fhir_parse import parse_all

        return parse_all(self.draft_orders(), self.notes)

    def unavailable_prefetch(self) -> dict[str, str]:
        """Keys that could not be obtained → reason (for a "data incomplete" note on cards)."""
        return {
            k: o.reason or o.status.value
            for k, o in self.prefetch_outcomes.items()
            if o.status is Status.FAILED
        }
