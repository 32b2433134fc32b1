"""The browser plugin's HTTP API (``/plugin/...``): the panel's script, checks, feedback, page tokens.

``POST /plugin/v1/check`` takes a CDS Hooks request (or the national 3101/3102 request, see
``national``) and runs it through every service configured for its hook (DIP and, when installed, 智能审核) with the core's own pipeline — the same validation,
prefetch rules, handlers and cards as ``POST /cds-services/{id}`` — and answers one list of cards
for one panel, each with its service id and its ``detail`` already rendered to sanitised HTML.

Security (see ``tokens``): with ``security.jwt = "required"`` every call needs a bearer token,
either a CDS client's JWT (server-to-server callers) or a short-lived page token from
``POST /plugin/v1/token``; browsers may call only from ``[plugin] allowed_origins`` (CORS, and a
403 for any other ``Origin``). Patient data travels in POST bodies only, never in URLs or logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, request
from flask_cors.core import FLASK_CORS_EVALUATED, get_cors_options, set_cors_headers

import widget
from browser_plugin import national, tokens
from browser_plugin.render import detail_html
from browser_plugin.settings import PluginSettings
from cds_service import metrics
from cds_service.app import (
    invoke_service,
    jwt_verifier,
    read_json_body,
    request_audience,
    service_home,
    service_registry,
    service_settings,
    store_feedback,
)
from cds_service.errors import BadRequest, NotFound, ServiceError
from cds_service.registry import ServiceDefinition
from cds_service.security import AuthError

log = logging.getLogger("dip_cds.plugin")
access_log = logging.getLogger("dip_cds.access")

blueprint = Blueprint("browser_plugin", __name__, url_prefix="/plugin")

WIDGET_DIR = Path(widget.__file__).parent
ASSETS = {
    "dip-cds.js": "text/javascript; charset=utf-8",
    "dip-cds.css": "text/css; charset=utf-8",
}
SCHEMA_DIR = Path(__file__).with_name("schemas")
SCHEMAS = ("check-request.schema.json", "check-response.schema.json")
SEVERITY = {"critical": 0, "warning": 1, "info": 2}
EXTENSION_KEY = "dip_cds.plugin"


class Forbidden(ServiceError):
    status = 403
    code = "security"


# ----------------------------------------------------------------------------- per-app state


class _PluginState:
    def __init__(self) -> None:
        self.settings = service_settings().section("plugin", PluginSettings)
        self.secret = tokens.load_or_create_secret(service_home(), self.settings.token_secret)
        self.cors = get_cors_options(
            current_app,
            {
                "origins": list(self.settings.allowed_origins),
                "allow_headers": ["Authorization", "Content-Type"],
                "methods": ["POST", "OPTIONS"],
                "max_age": 600,
                "vary_header": True,
            },
        )


def _plugin() -> _PluginState:
    state = current_app.extensions.get(EXTENSION_KEY)
    if state is None:
        state = current_app.extensions[EXTENSION_KEY] = _PluginState()
    return state


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status, mimetype="application/json"
    )


# ----------------------------------------------------------------------------- origins and tokens


def _same_origin(origin: str) -> bool:
    return urlsplit(origin).netloc == request.host and urlsplit(origin).scheme == request.scheme


def _check_origin() -> str | None:
    """The calling page's origin (None for server-to-server calls); 403 for an origin not allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if origin.rstrip("/") in _plugin().settings.allowed_origins or _same_origin(origin):
        return origin
    raise Forbidden("this page's origin is not in [plugin] allowed_origins")


def _authorize(origin: str | None, *, page_tokens: bool = True) -> Response | None:
    """``None`` when the caller may proceed, else the bare 401 the hook endpoints answer."""
    verifier = jwt_verifier()
    if verifier is None:
        return None
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    try:
        if page_tokens and scheme.lower() == "bearer" and tokens.is_page_token(token):
            g.plugin_subject = tokens.verify(_plugin().secret, token, origin)["sub"]
        else:
            g.plugin_subject = verifier.verify(header or None, request_audience()).get("iss")
        return None
    except (AuthError, tokens.TokenError) as exc:
        metrics.AUTH_FAILURES.labels(str(exc).split(" (")[0]).inc()
        log.warning("rejected plugin caller", extra={"reason": str(exc), "endpoint": request.path})
        return Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _guarded(view: Callable[[], Response]) -> Callable[[], Response]:
    def wrapper() -> Response:
        g.service = "plugin"
        denied = _authorize(_check_origin())
        return denied if denied is not None else view()

    wrapper.__name__ = view.__name__
    return wrapper


# ----------------------------------------------------------------------------- the check


def services_for(hook: Any) -> list[ServiceDefinition]:
    """The services one check runs: ``[plugin] services`` for the hook, else every one answering it."""
    if not isinstance(hook, str) or not hook:
        raise BadRequest("hook: required (e.g. order-sign)")
    registry = service_registry()
    configured = _plugin().settings.services.get(hook)
    candidates = (
        [registry.get(sid) for sid in configured] if configured else sorted(registry, key=lambda s: s.id)
    )
    found = [svc for svc in candidates if svc is not None and svc.hook == hook]
    if not found:
        raise BadRequest(f"hook: no service answers {hook!r}")
    return found


def panel_card(card: dict[str, Any], service_id: str) -> dict[str, Any]:
    """A hook card as the panel shows it: which service said it, and its detail as safe HTML."""
    out = dict(card)
    out["service"] = service_id
    if isinstance(card.get("detail"), str):
        out["detailHtml"] = detail_html(card["detail"])
    return out


def run_check(body: dict[str, Any]) -> dict[str, Any]:
    """Every service of the request's hook over the same request → one panel's cards.

    A service that cannot answer (412: its data could not be fetched; or a bug in it, logged as the
    hook endpoint logs it) is reported under ``services`` while the others' cards are still shown:
    one domain's failure must not hide another's warning. When none can answer, its error is the answer.
    """
    results: list[dict[str, Any]] = []
    cards: list[dict[str, Any]] = []
    errors: list[Exception] = []
    for svc in services_for(body.get("hook")):
        try:
            answer = invoke_service(svc, body, channel="plugin")
        except ServiceError as exc:
            errors.append(exc)
            results.append({"id": svc.id, "status": exc.status, "problems": exc.problems})
            continue
        except Exception as exc:  # noqa: BLE001 - a bug in one service; the others still answer
            log.exception("unhandled error in a service", extra={"service": svc.id, "endpoint": request.path})
            errors.append(exc)
            results.append({"id": svc.id, "status": 500, "problems": ["internal error; see service logs"]})
            continue
        results.append({"id": svc.id, "status": 200, "cards": len(answer["cards"])})
        cards += [panel_card(card, svc.id) for card in answer["cards"]]
    if errors and len(errors) == len(results):
        raise errors[0]
    cards.sort(key=lambda c: SEVERITY.get(str(c.get("indicator")), 3))
    g.cards = len(cards)
    return {"hookInstance": body.get("hookInstance"), "cards": cards, "services": results}


def _check() -> Response:
    body = read_json_body()
    if national.data_of(body) is not None:  # the national 3101/3102 request: its one patient's order-sign
        try:
            body = national.to_order_sign(body, hook_instance=str(uuid.uuid4()))
        except national.NationalPayloadError as exc:
            raise BadRequest(exc.problems) from None
    return _json(run_check(body))


def _feedback() -> Response:
    body = read_json_body()
    service_id = body.get("service")
    if not isinstance(service_id, str) or service_registry().get(service_id) is None:
        raise NotFound("service: name the service whose card this is (the card's 'service')")
    g.service = service_id
    return _json(store_feedback(service_id, {"feedback": body.get("feedback")}))


def _token() -> Response:
    """A page token for the HIS backend (server-to-server: no CORS, CDS client JWT when required)."""
    g.service = "plugin"
    if request.headers.get("Origin") is not None:
        raise Forbidden("page tokens are issued to the HIS server, not to browsers")
    denied = _authorize(None, page_tokens=False)
    if denied is not None:
        return denied
    raw = request.get_data(cache=True)
    body = read_json_body() if raw else {}
    origin = body.get("origin")
    plugin = _plugin()
    if origin is not None and (
        not isinstance(origin, str) or origin.rstrip("/") not in plugin.settings.allowed_origins
    ):
        raise BadRequest("origin: must be one of [plugin] allowed_origins")
    subject = getattr(g, "plugin_subject", None) or "anonymous"
    issued = tokens.issue(
        plugin.secret,
        subject=subject,
        ttl_seconds=plugin.settings.token_ttl_seconds,
        origin=origin.rstrip("/") if origin else None,
    )
    log.info("page token issued", extra={"endpoint": request.path, "reason": f"ttl {issued['expires_in']}s"})
    return _json(issued)


# ----------------------------------------------------------------------------- static assets


@lru_cache(maxsize=8)
def _asset(directory: Path, name: str) -> tuple[bytes, str]:
    data = (directory / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


def _static(directory: Path, name: str, mimetype: str) -> Response:
    data, etag = _asset(directory, name)
    if request.if_none_match.contains(etag):
        resp = Response(status=304)
    else:
        resp = Response(data, 200, mimetype=mimetype.split(";")[0])
        resp.headers["Content-Type"] = mimetype
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    resp.headers["Access-Control-Allow-Origin"] = "*"  # public code; module scripts load in CORS mode
    setattr(resp, FLASK_CORS_EVALUATED, True)
    return resp


def _widget(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no such plugin file {name!r}")
    return _static(WIDGET_DIR, name, ASSETS[name])


def _schema(name: str) -> Response:
    if name not in SCHEMAS:
        raise NotFound(f"no such schema {name!r}")
    return _static(SCHEMA_DIR, name, "application/schema+json; charset=utf-8")


# ----------------------------------------------------------------------------- CORS + access log


@blueprint.before_request
def _before() -> None:
    g.plugin_started = time.perf_counter()
    if not _plugin().settings.enabled:
        raise NotFound("the browser plugin is disabled ([plugin] enabled = false)")


@blueprint.after_request
def _after(resp: Response) -> Response:
    if request.path.startswith("/plugin/v1/") and not hasattr(resp, FLASK_CORS_EVALUATED):
        # The service's open CORS ('*', also put on error responses before this runs) must not apply here.
        for name in [h for h in resp.headers.keys() if h.lower().startswith("access-control-")]:
            del resp.headers[name]
        if request.path != "/plugin/v1/token":
            set_cors_headers(resp, _plugin().cors)  # allowed origins only; nothing for any other
        setattr(resp, FLASK_CORS_EVALUATED, True)
    started = getattr(g, "plugin_started", None)
    if started is not None and request.method == "POST":
        seconds = time.perf_counter() - started
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Server-Timing"] = f"app;dur={seconds * 1000:.3f}"
        access_log.info(
            "request",
            extra={
                "service": "plugin",
                "endpoint": request.url_rule.rule if request.url_rule is not None else request.path,
                "method": request.method,
                "hook_instance": getattr(g, "hook_instance", None),
                "status": resp.status_code,
                "outcome": "ok"
                if resp.status_code < 400
                else "rejected"
                if resp.status_code < 500
                else "error",
                "duration_ms": round(seconds * 1000, 2),
                "cards": getattr(g, "cards", None),
            },
        )
    return resp


blueprint.add_url_rule("/dip-cds.js", "script", lambda: _widget("dip-cds.js"), methods=["GET"])
blueprint.add_url_rule("/dip-cds.css", "styles", lambda: _widget("dip-cds.css"), methods=["GET"])
blueprint.add_url_rule("/v1/schema/<name>", "schema", _schema, methods=["GET"])
blueprint.add_url_rule("/v1/check", "check", _guarded(_check), methods=["POST"])
blueprint.add_url_rule("/v1/feedback", "feedback", _guarded(_feedback), methods=["POST"])
blueprint.add_url_rule("/v1/token", "token", _token, methods=["POST"])
