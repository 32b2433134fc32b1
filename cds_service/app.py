"""The Flask application: CDS Hooks 2.0 endpoints, health, metrics.

Request path: JWT (when required) → JSON body → marshmallow validation (every problem named) →
prefetch resolution under one deadline → the service's handler → card serialisation. Bad input
always ends as a 4xx OperationOutcome; only true bugs give a (logged) 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_cors import CORS
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from cds_service import metrics
from cds_service.appdata import AppData, install
from cds_service.body import TIMED_OUT, TOO_LARGE, BufferedBody
from cds_service.config import (
    SANDBOX_ISSUER,
    ConfigError,
    Settings,
    check_bind,
    cross_section_problems,
    load_settings,
)
from cds_service.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    PreconditionFailed,
    RequestTimeout,
    ServiceError,
    UnsupportedMediaType,
    flatten_messages,
    operation_outcome,
)
from cds_service.feedback import FeedbackStore, ReasonDisplay, default_database_url
from cds_service.fhir_client import FhirClient
from cds_service.home import resolve_home
from cds_service.jsonparse import has_lone_surrogate, parse_json
from cds_service.logging_setup import configure_logging
from cds_service.outbound import Allowlist, CanonicalUrl, NotAllowed, UrlError, is_loopback_host
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
# "\ud800" is valid JSON syntax but no Unicode text: it cannot be stored, logged or answered


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
        self.fhir_servers = _fhir_allowlists(settings)
        self.feedback = FeedbackStore(settings.feedback.database_url or default_database_url(home))
        self.discovery = json.dumps(self.registry.discovery_document(), ensure_ascii=False).encode()
        self._preloaded = False
        self._preload_lock = threading.Lock()

    def preload_once(self) -> list[str]:
        """Load every plugin's data the first time only (a failed loader is retried lazily later)."""
        if self._preloaded:
            return []
        with self._preload_lock:
            if self._preloaded:
                return []
            problems = _load_all(self.data)
            self._preloaded = True
            return problems


def _fhir_allowlists(settings: Settings) -> dict[str | None, Allowlist]:
    """Which FHIR servers a caller may name: per JWT issuer its ``fhir_servers``, else the global
    ``prefetch.allowed_fhir_servers``, else loopback only. Key ``None``: callers without a JWT."""
    default = Allowlist(settings.prefetch.allowed_fhir_servers)
    lists: dict[str | None, Allowlist] = {None: default}
    for iss, issuer in settings.security.trusted_issuers().items():
        lists[iss] = Allowlist(issuer.fhir_servers) if issuer.fhir_servers else default
    return lists


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
        body = parse_json(raw)
    except (ValueError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise BadRequest(f"malformed JSON: {msg}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if has_lone_surrogate(raw, body):
        raise BadRequest("malformed JSON: a string contains an unpaired surrogate (\\ud800-\\udfff)")
    return body


def _audience() -> str:
    """The configured public URL + path; never derived from the request's Host header (the start
    refuses ``jwt = "required"`` without ``server.public_base_url``)."""
    base = _state().settings.server.public_base_url or ""
    return f"{base.rstrip('/')}{request.path}"


def _authenticate() -> Response | None:
    """``None`` when allowed, else the bare 401 response."""
    verifier = _state().verifier
    if verifier is None:
        return None
    try:
        claims = verifier.verify(request.headers.get("Authorization"), _audience())
        if claims["iss"] == SANDBOX_ISSUER and not is_loopback_host(request.remote_addr):
            # anyone can sign with the Sandbox's published key: only a browser on this machine counts
            raise AuthError("sandbox token from a non-loopback client")
        g.issuer = claims["iss"]
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


def _fhir_server(url: str) -> CanonicalUrl:
    """The canonical form of ``fhirServer`` when the caller (its JWT issuer) may name it."""
    allowlist = _state().fhir_servers.get(g.get("issuer"))
    try:
        if allowlist is None:  # every trusted issuer has a list: never fall back to "anything"
            raise NotAllowed("no list")
        return allowlist.check(url)
    except NotAllowed:
        raise UrlError("not an allowed FHIR server for this client") from None


def _validate_hook_request(
    svc: ServiceDefinition, body: dict[str, Any]
) -> tuple[dict, dict, CanonicalUrl | None]:
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
    fhir_server = None
    if isinstance(server, str) and server:
        try:
            fhir_server = _fhir_server(server)
        except UrlError as exc:
            problems.append(f"fhirServer: {exc}")
    if problems:
        raise BadRequest(problems)
    return data, context, fhir_server


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
    data, context, fhir_server = _validate_hook_request(svc, body)
    g.hook_instance = data["hookInstance"]
    state = _state()
    settings = state.settings
    # The reference data is loaded before the clock starts: the prefetch budget is for the FHIR
    # server, and a cold process must not spend it (it would miss the stay lookups).
    state.preload_once()
    deadline = time.monotonic() + settings.prefetch.deadline_seconds
    auth = data.get("fhirAuthorization")
    client = (
        FhirClient(fhir_server, auth.get("access_token") if auth else None, settings.prefetch, deadline)
        if fhir_server is not None
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
        deadline=deadline,
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
    stored, duplicates = _state().feedback.store(svc.id, data["feedback"], _reason_display(svc))
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
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
    except OverflowError:
        raise BadRequest(f"{name}: date/time out of range") from None
    return parsed


def _feedback_summary(service_id: str) -> Response:
    svc = _service(service_id)
    g.service = svc.id
    summary = _state().feedback.summary(
        svc.id, _parse_time("since"), _parse_time("until"), _reason_display(svc)
    )
    return _json_response(summary)


def _reason_display(svc: ServiceDefinition) -> ReasonDisplay:
    """The display of an override reason the service offers; a failing plugin costs the display,
    never the feedback."""
    data = _state().data

    def display(system: str | None, code: str | None) -> str | None:
        try:
            return svc.reason_display(data, system, code)
        except Exception as exc:  # noqa: BLE001 - plugin code; the feedback is stored regardless
            log.warning(
                "override reasons unavailable", extra={"service": svc.id, "error": type(exc).__name__}
            )
            return None

    return display


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
    if request.environ.get(TOO_LARGE):
        raise PayloadTooLarge("request body too large")
    if request.environ.get(TIMED_OUT):
        raise RequestTimeout("request body not received in time")


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


def _startup_warnings(settings: Settings) -> None:
    sec = settings.security
    if sec.jwt == "required" and sec.trust_sandbox:
        log.warning(
            "SECURITY: security.trust_sandbox = true: tokens signed with the CDS Hooks Sandbox's "
            "PUBLISHED private key are accepted (from loopback clients only). For trying the Sandbox "
            "on this machine, never in production."
        )
    if sec.jwt == "required" and not sec.redis_url:
        log.warning(
            "JWT replay (jti) cache is in-process: correct only with ONE worker process; "
            "set security.redis_url when running several workers or instances"
        )
    if not settings.prefetch.allowed_fhir_servers:
        open_issuers = [i.iss for i in sec.trusted_issuers().values() if not i.fhir_servers]
        if sec.jwt == "off" or open_issuers:
            log.warning(
                "FHIR servers restricted to loopback (127.0.0.1, ::1, localhost) for %s: set "
                "prefetch.allowed_fhir_servers or [[security.issuers]] fhir_servers to reach others",
                "every caller (JWT off)" if sec.jwt == "off" else ", ".join(open_issuers),
            )


def create_app(
    settings: Settings | None = None,
    home: str | Path | None = None,
    plugins: Iterable[Plugin] | None = None,
    *,
    bind_host: str | None = None,
) -> Flask:
    """Build the service with ``plugins`` (default: the installed ones, see :mod:`cds_service.plugins`).
    ``settings`` default: ``load_settings`` (TOML + env) for the ``home``, validated against the
    sections of the same plugins. ``bind_host``: the interface the server listens on, when the
    caller knows it (``dip-cds serve``); settings unsafe there raise :class:`ConfigError`."""
    home_path = resolve_home(home)
    plugin_set = PluginSet(discover() if plugins is None else plugins)
    settings = settings if settings is not None else load_settings(home=home_path, plugins=plugin_set)
    problems = cross_section_problems(settings.server, settings.security)  # also for hand-built Settings
    if problems:
        raise ConfigError(problems)
    check_bind(settings, bind_host)
    configure_logging(settings.logging.level, settings.logging.json)

    app = Flask("cds_service")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    # the whole body, bounded in size and time, before any view runs (slow clients, chunked bodies)
    server = settings.server
    app.wsgi_app = BufferedBody(  # type: ignore[method-assign]
        app.wsgi_app, server.max_body_bytes, server.body_timeout_seconds, server.max_concurrent_requests
    )
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
    _startup_warnings(settings)
    return app


def preload(app: Flask) -> list[str]:
    """Load every plugin's data now (a server worker's start) so the first hook call is fast."""
    return app.extensions[STATE_KEY].preload_once()


def _load_all(data: AppData) -> list[str]:
    problems = []
    for name in data.names:
        try:
            data[name]
        except Exception as exc:  # noqa: BLE001 - reported by /readyz; the service still answers
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            log.warning(
                "reference data not loaded at start", extra={"reason": f"{name}: {type(exc).__name__}"}
            )
    return problems
