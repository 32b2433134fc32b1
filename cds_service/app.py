"""The Flask application: CDS Hooks 2.0 endpoints, health, metrics.

Request path: JWT (when required) → JSON body → marshmallow validation (every problem named) →
prefetch resolution under one deadline → the service's handler → card serialisation. Bad input
always ends as a 4xx OperationOutcome; only true bugs give a (logged) 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_cors import CORS
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from cds_service import metrics
from cds_service.appdata import AppData, install
from cds_service.config import Settings, load_settings
from cds_service.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceError,
    UnsupportedMediaType,
    flatten_messages,
    operation_outcome,
)
from cds_service.feedback import FeedbackStore, default_database_url
from cds_service.fhir_client import FhirClient
from cds_service.home import resolve_home
from cds_service.logging_setup import configure_logging
from cds_service.plugins import Plugin, PluginSet, discover
from cds_service.prefetch import Status, resolve
from cds_service.registry import HookRequest, ServiceDefinition, ServiceRegistry
from cds_service.responses import build_response
from cds_service.schemas import CONTEXT_SCHEMAS, FeedbackRequestSchema, HookRequestSchema
from cds_service.security import AuthError, JwtVerifier

log = logging.getLogger("dip_cds.service")
access_log = logging.getLogger("dip_cds.access")

STATE_KEY = "dip_cds.state"
_HOOK_SCHEMA = HookRequestSchema()
_CONTEXT_SCHEMAS = {hook: cls() for hook, cls in CONTEXT_SCHEMAS.items()}
_FEEDBACK_SCHEMA = FeedbackRequestSchema()


class ServiceState:
    """Per-app objects built once from the settings and the app's plugin set."""

    def __init__(self, settings: Settings, home: Path, plugins: PluginSet) -> None:
        self.settings = settings
        self.home = home
        self.plugins = plugins
        self.registry = plugins.registry()
        self.data = AppData(home, settings, plugins.loaders())
        self.events = plugins.event_bus(self.data)
        self.verifier = JwtVerifier(settings.security) if settings.security.jwt == "required" else None
        self.feedback = FeedbackStore(settings.feedback.database_url or default_database_url(home))
        self.discovery = json.dumps(self.registry.discovery_document(), ensure_ascii=False).encode()


def _state() -> ServiceState:
    from flask import current_app

    return current_app.extensions[STATE_KEY]


def _json_response(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status, mimetype="application/json"
    )


# ----------------------------------------------------------------------------- request helpers


def _json_body() -> dict[str, Any]:
    mimetype = request.mimetype or ""
    if mimetype and "json" not in mimetype:
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {mimetype}")
    raw = request.get_data(cache=False)
    if not raw:
        raise BadRequest("request body is empty; a JSON object is required")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise BadRequest(f"malformed JSON: {msg}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _audience() -> str:
    base = _state().settings.server.public_base_url
    return f"{base.rstrip('/')}{request.path}" if base else request.base_url


def _authenticate() -> Response | None:
    """``None`` when allowed, else the bare 401 response."""
    verifier = _state().verifier
    if verifier is None:
        return None
    try:
        verifier.verify(request.headers.get("Authorization"), _audience())
        return None
    except AuthError as exc:
        metrics.AUTH_FAILURES.labels(exc.reason.split(" (")[0]).inc()
        log.warning("rejected CDS client token", extra={"reason": exc.reason, "endpoint": request.path})
        return Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _service(service_id: str) -> ServiceDefinition:
    svc = _state().registry.get(service_id)
    if svc is None:
        raise NotFound(f"unknown CDS service {service_id!r}; see GET /cds-services")
    return svc


def _validate_hook_request(svc: ServiceDefinition, body: dict[str, Any]) -> tuple[dict, dict]:
    problems: list[str] = []
    data: dict[str, Any] = {}
    try:
        data = _HOOK_SCHEMA.load(body)
    except ValidationError as exc:
        problems += flatten_messages(exc.messages)
    context: dict[str, Any] = {}
    raw_context = body.get("context")
    if isinstance(raw_context, dict):
        try:
            context = _CONTEXT_SCHEMAS[svc.hook].load(raw_context)
        except ValidationError as exc:
            problems += flatten_messages(exc.messages, "context")
    hook = body.get("hook")
    if isinstance(hook, str) and hook and hook != svc.hook:
        problems.append(f"hook: service {svc.id} answers {svc.hook!r}, not {hook!r}")
    server = body.get("fhirServer")
    allowed = _state().settings.prefetch.allowed_fhir_servers
    if allowed and isinstance(server, str) and not any(server.startswith(p) for p in allowed):
        problems.append("fhirServer: not an allowed FHIR server for this service")
    if problems:
        raise BadRequest(problems)
    return data, context


# ----------------------------------------------------------------------------- views


def _discovery() -> Response:
    return Response(_state().discovery, 200, mimetype="application/json")


def invoke_service(
    svc: ServiceDefinition, body: dict[str, Any], channel: str = "cds-hooks"
) -> dict[str, Any]:
    """One hook call after authentication: validation → prefetch → handler → the response body.

    Shared by ``POST /cds-services/{id}`` and other channels into the same services (the browser
    plugin API), so every way in gets the same checks, the same prefetch rules and the same cards;
    ``channel`` tells the handler (and the ``assessment`` event it publishes) which way it came.
    Raises :class:`ServiceError` (400, 412, …) like the endpoint answers.
    """
    data, context = _validate_hook_request(svc, body)
    g.hook_instance = data["hookInstance"]
    state = _state()
    settings = state.settings
    deadline = time.monotonic() + settings.prefetch.deadline_seconds
    auth = data.get("fhirAuthorization")
    client = (
        FhirClient(
            data["fhirServer"], auth.get("access_token") if auth else None, settings.prefetch, deadline
        )
        if data.get("fhirServer")
        else None
    )
    g.fhir_client = client
    resolution = resolve(svc.prefetch, context, data["prefetch"], client, settings.prefetch)
    failed = {k: o for k, o in resolution.outcomes.items() if o.status is Status.FAILED}
    g.prefetch_fetched = resolution.fetched
    g.prefetch_failed = len(failed)
    missing = [
        f"prefetch {k!r} unavailable: {failed[k].reason}"
        for k in sorted(svc.required_prefetch)
        if k in failed
    ]
    if missing:
        raise PreconditionFailed(missing)
    hook_request = HookRequest(
        service=svc,
        hook=svc.hook,
        hook_instance=data["hookInstance"],
        context=context,
        fhir_server=data.get("fhirServer"),
        prefetch=resolution.values,
        prefetch_outcomes=resolution.outcomes,
        settings=settings,
        app_data=state.data,
        events=state.events,
        fhir=client,
        fhir_authorization=auth,
        extension=data.get("extension"),
        channel=channel,
    )
    for key, outcome in failed.items():
        hook_request.notes.append(f"预取数据 {key} 不可用 / prefetch {key} unavailable ({outcome.reason})")
    return build_response(svc.id, svc.handler(hook_request))


def _invoke(service_id: str) -> Response:
    svc = _service(service_id)
    g.service = svc.id
    denied = _authenticate()
    if denied is not None:
        return denied
    body = invoke_service(svc, _json_body())
    g.cards = len(body["cards"])
    return _json_response(body)


def store_feedback(service_id: str, body: dict[str, Any]) -> dict[str, int]:
    """Validate and store a CDS Hooks feedback body for ``service_id`` (idempotent); shared by channels."""
    svc = _service(service_id)
    try:
        data = _FEEDBACK_SCHEMA.load(body)
    except ValidationError as exc:
        raise BadRequest(flatten_messages(exc.messages)) from None
    stored, duplicates = _state().feedback.store(svc.id, data["feedback"])
    for item in data["feedback"]:
        metrics.FEEDBACK.labels(svc.id, item["outcome"], "yes").inc()
    log.info("feedback stored", extra={"service": svc.id, "stored": stored, "duplicates": duplicates})
    return {"stored": stored, "duplicates": duplicates}


def _feedback(service_id: str) -> Response:
    svc = _service(service_id)
    g.service = svc.id
    denied = _authenticate()
    if denied is not None:
        return denied
    return _json_response(store_feedback(svc.id, _json_body()))


def _parse_time(name: str) -> datetime | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO-8601 date/time") from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _feedback_summary(service_id: str) -> Response:
    svc = _service(service_id)
    g.service = svc.id
    return _json_response(_state().feedback.summary(svc.id, _parse_time("since"), _parse_time("until")))


def _healthz() -> Response:
    return _json_response({"status": "ok"})


def _readyz() -> Response:
    state = _state()
    data, problems = state.plugins.readiness(state.data)
    try:
        state.feedback.ping()
        data["feedback"] = "ok"
    except Exception as exc:  # noqa: BLE001
        problems.append(f"feedback database unavailable ({type(exc).__name__})")
    if problems:
        return NotReady(problems).response()
    return _json_response({"status": "ready", "data": data})


def _metrics() -> Response:
    payload, content_type = metrics.exposition()
    return Response(payload, 200, content_type=content_type)


# ----------------------------------------------------------------------------- for other channels
# Other ways into the same services (the browser plugin API) authenticate and read bodies exactly as
# the hook endpoints do, through these.


def read_json_body() -> dict[str, Any]:
    """The request's JSON object, or the 400/415 the hook endpoints answer."""
    return _json_body()


def request_audience() -> str:
    """The JWT ``aud`` this request must carry: ``server.public_base_url`` + path, else the URL called."""
    return _audience()


def jwt_verifier() -> JwtVerifier | None:
    """The CDS-client JWT verifier, ``None`` when ``security.jwt = "off"``."""
    return _state().verifier


def service_settings() -> Settings:
    return _state().settings


def service_registry() -> ServiceRegistry:
    """The services this app answers."""
    return _state().registry


def service_home() -> Path:
    return _state().home


# ----------------------------------------------------------------------------- error handling + telemetry


def _service_error(exc: ServiceError) -> Response:
    return exc.response()


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 405:
        resp = MethodNotAllowed(f"{request.method} not allowed on {request.path}").response()
        allow = exc.get_response().headers.get("Allow")
        if allow:
            resp.headers["Allow"] = allow
        return resp
    if status == 404:
        return NotFound(f"no such endpoint {request.path}").response()
    if status == 413:
        return PayloadTooLarge("request body too large").response()
    if status == 415:
        return UnsupportedMediaType("unsupported Content-Type").response()
    if status < 500:
        err = BadRequest(exc.description or exc.name)
        err.status = status
        return err.response()
    return _json_response(operation_outcome([("error", "exception", exc.name)]), status)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error", extra={"service": getattr(g, "service", None), "endpoint": request.path})
    return _json_response(
        operation_outcome([("fatal", "exception", "internal error; see service logs")]), 500
    )


def _fhir_reads() -> int | None:
    if "fhir_client" not in g:
        return None  # rejected before the FHIR server was considered
    client: FhirClient | None = g.fhir_client
    return client.reads if client is not None else 0


def _before() -> None:
    g.started = time.perf_counter()


def _after(response: Response) -> Response:
    started = getattr(g, "started", None)
    if started is None:
        return response
    seconds = time.perf_counter() - started
    service = getattr(g, "service", None) or "-"
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    if request.method == "POST":
        response.headers["Cache-Control"] = "no-store"  # cards describe a patient: never cache
    metrics.observe_request(service, rule, response.status_code, seconds)
    if rule.startswith("/cds-services"):
        # W3C Server-Timing: exact per-request time in the app, for load tests and browser devtools.
        response.headers["Server-Timing"] = f"app;dur={seconds * 1000:.3f}"
    if rule.startswith("/cds-services/"):
        access_log.info(
            "request",
            extra={
                "service": service,
                "endpoint": rule,
                "method": request.method,
                "hook_instance": getattr(g, "hook_instance", None),
                "status": response.status_code,
                "outcome": "ok"
                if response.status_code < 400
                else "rejected"
                if response.status_code < 500
                else "error",
                "duration_ms": round(seconds * 1000, 2),
                "cards": getattr(g, "cards", None),
                # prefetch keys the client did not send that the service fetched / could not obtain
                "prefetch_fetched": getattr(g, "prefetch_fetched", None),
                "prefetch_failed": getattr(g, "prefetch_failed", None),
                # every FHIR read of the request: those prefetch fetches plus the handler's own
                # (e.g. the open stay's diagnoses when the client named no encounter)
                "fhir_reads": _fhir_reads(),
            },
        )
    return response


# ----------------------------------------------------------------------------- factory


def create_app(
    settings: Settings | None = None, home: str | Path | None = None, plugins: Iterable[Plugin] | None = None
) -> Flask:
    """Build the service with ``plugins`` (default: the installed ones, see :mod:`cds_service.plugins`).
    ``settings`` default: ``load_settings`` (TOML + env) for the ``home``, validated against the
    sections of the same plugins."""
    home_path = resolve_home(home)
    plugin_set = PluginSet(discover() if plugins is None else plugins)
    settings = settings if settings is not None else load_settings(home=home_path, plugins=plugin_set)
    configure_logging(settings.logging.level, settings.logging.json)

    app = Flask("cds_service")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    state = ServiceState(settings, home_path, plugin_set)
    app.extensions[STATE_KEY] = state
    install(app, state.data)

    CORS(
        app,
        resources={r"/*": {"origins": "*"}},
        send_wildcard=True,
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=86400,
    )
    app.add_url_rule("/cds-services", "discovery", _discovery, methods=["GET"])
    app.add_url_rule("/cds-services/<service_id>", "invoke", _invoke, methods=["POST"])
    app.add_url_rule("/cds-services/<service_id>/feedback", "feedback", _feedback, methods=["POST"])
    app.add_url_rule(
        "/cds-services/<service_id>/feedback/summary", "feedback_summary", _feedback_summary, methods=["GET"]
    )
    app.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", _readyz, methods=["GET"])
    if settings.metrics.enabled:
        app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])

    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.before_request(_before)
    app.after_request(_after)
    for blueprint in plugin_set.blueprints():
        app.register_blueprint(blueprint)
    sec = settings.security
    if sec.jwt == "required" and not sec.redis_url:
        log.warning(
            "JWT replay (jti) cache is in-process: correct only with ONE worker process; "
            "set security.redis_url when running several workers or instances"
        )
    return app


def preload(app: Flask) -> list[str]:
    """Load every plugin's data now (gunicorn worker start) so the first hook call is fast."""
    problems = []
    data: AppData = app.extensions[STATE_KEY].data
    for name in data.names:
        try:
            data[name]
        except Exception as exc:  # noqa: BLE001 - reported by /readyz; the service still answers
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            log.warning(
                "reference data not loaded at start", extra={"reason": f"{name}: {type(exc).__name__}"}
            )
    return problems
