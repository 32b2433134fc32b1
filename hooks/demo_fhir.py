"""A small read/search FHIR R4 server over the demo data set, for integrators and end-to-end tests.

``dip-cds demo-fhir --port 8081`` serves ``hooks/demo/fhir/`` (or ``--data DIR``) so the CDS Hooks
Sandbox, a hospital's test EMR or our own tests can fetch what the prefetch templates need:
``GET [base]/metadata``, ``GET [type]/[id]``, ``GET [type]?params`` and ``POST [type]/_search``
(form-encoded). Search parameters: ``_id``, ``patient``, ``subject``, ``encounter``, ``context``
(ChargeItem), ``beneficiary`` / ``type`` (Coverage), ``status``, ``code`` (token), ``_count`` and
``_getpagesoffset`` (paging). Unknown parameters are ignored as FHIR says: the self link lists only
the parameters used and an OperationOutcome entry (``search.mode = outcome``) names the ignored
ones. Read-only; CORS open; response bodies are cached since the data cannot change while served.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cachetools import LRUCache
from flask import Blueprint, Flask, Response, current_app, request
from flask_cors import CORS
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from cds_service.errors import operation_outcome

DEMO_DATA_DIR = Path(__file__).resolve().parent / "demo" / "fhir"
FHIR_JSON = "application/fhir+json; charset=utf-8"
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
DEFAULT_COUNT = 50
MAX_COUNT = 1000
# Parameters the server understands but that do not filter (they never count as "ignored").
RESULT_PARAMS = {"_count", "_getpagesoffset", "_format", "_pretty", "_summary"}
RESPONSE_CACHE_SIZE = 2048


class DemoDataError(ValueError):
    """The demo data directory holds something that is not usable FHIR JSON."""


# -- the store -----------------------------------------------------------------------------------


def _ref_id(value: Any, target_type: str | None) -> str | None:
    """Id in a reference or a search value: 'Patient/p1', 'http://x/Patient/p1', 'p1' → 'p1'."""
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str) or not value:
        return None
    parts = value.strip().rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) == 1:
        return parts[0]
    if target_type is None or parts[-2] == target_type:
        return parts[-1]
    return None


def _reference_matcher(fields: tuple[str, ...], target_type: str) -> Callable[[dict, str], bool]:
    def match(resource: dict[str, Any], value: str) -> bool:
        wanted = _ref_id(value, target_type)
        if wanted is None:
            return False
        for name in fields:
            if _ref_id(resource.get(name), target_type) == wanted:
                return True
        return False

    return match


def _status_matcher(resource: dict[str, Any], value: str) -> bool:
    return resource.get("status") == value


def _id_matcher(resource: dict[str, Any], value: str) -> bool:
    return resource.get("id") == value


def _token_matcher(field: str) -> Callable[[dict, str], bool]:
    def match(resource: dict[str, Any], value: str) -> bool:
        concept = resource.get(field)
        codings = concept.get("coding", []) if isinstance(concept, dict) else []
        system, _, code = value.rpartition("|") if "|" in value else (None, "", value)
        for coding in codings:
            if system is not None and system != "" and coding.get("system") != system:
                continue
            if code == "" or coding.get("code") == code:
                return True
        return False

    return match


_PATIENT = _reference_matcher(("subject", "patient"), "Patient")
_ENCOUNTER = _reference_matcher(("encounter", "context"), "Encounter")

SEARCH_PARAMETERS: dict[str, dict[str, Callable[[dict, str], bool]]] = {
    "Patient": {},
    "Practitioner": {},
    "Encounter": {"patient": _PATIENT, "subject": _PATIENT, "status": _status_matcher},
    "Condition": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "encounter": _ENCOUNTER,
        "code": _token_matcher("code"),
    },
    "Procedure": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "encounter": _ENCOUNTER,
        "status": _status_matcher,
        "code": _token_matcher("code"),
    },
    "ChargeItem": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "context": _reference_matcher(("context",), "Encounter"),
        "status": _status_matcher,
        "code": _token_matcher("code"),
    },
    "Observation": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "encounter": _ENCOUNTER,
        "status": _status_matcher,
        "code": _token_matcher("code"),
    },
    "ServiceRequest": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "encounter": _ENCOUNTER,
        "status": _status_matcher,
        "code": _token_matcher("code"),
    },
    "MedicationRequest": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "encounter": _ENCOUNTER,
        "status": _status_matcher,
    },
    "MedicationAdministration": {
        "patient": _PATIENT,
        "subject": _PATIENT,
        "context": _reference_matcher(("context", "encounter"), "Encounter"),
        "encounter": _ENCOUNTER,
        "status": _status_matcher,
    },
    "Coverage": {  # FHIR R4: Coverage's patient parameter searches its beneficiary
        "patient": _reference_matcher(("beneficiary",), "Patient"),
        "beneficiary": _reference_matcher(("beneficiary",), "Patient"),
        "status": _status_matcher,
        "type": _token_matcher("type"),
    },
}
for _params in SEARCH_PARAMETERS.values():
    _params["_id"] = _id_matcher


def _resources_in(document: Any, origin: str) -> Iterable[dict[str, Any]]:
    if not isinstance(document, dict) or "resourceType" not in document:
        raise DemoDataError(f"{origin}: not a FHIR resource or Bundle")
    if document["resourceType"] == "Bundle":
        for index, entry in enumerate(document.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                raise DemoDataError(f"{origin}: entry {index} has no resource")
            yield from _resources_in(resource, f"{origin} entry {index}")
        return
    yield document


class FhirStore:
    """Resources in memory, indexed by type and id (the demo set is small; searches scan a type)."""

    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self.by_type: dict[str, dict[str, dict[str, Any]]] = {}
        for resource in resources:
            rtype, rid = resource.get("resourceType"), resource.get("id")
            if not isinstance(rtype, str) or not isinstance(rid, str) or not ID_PATTERN.match(rid):
                raise DemoDataError(f"resource without a valid resourceType/id: {str(resource)[:80]}")
            if rtype not in SEARCH_PARAMETERS:
                raise DemoDataError(f"{rtype}/{rid}: resource type not served by the demo server")
            bucket = self.by_type.setdefault(rtype, {})
            if rid in bucket:
                raise DemoDataError(f"{rtype}/{rid} is defined twice")
            bucket[rid] = resource
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        # The data is read-only while served, so identical requests get identical bodies.
        self._responses: LRUCache = LRUCache(RESPONSE_CACHE_SIZE)
        self._lock = threading.Lock()

    def cached_body(self, key: tuple, build: Callable[[], str]) -> str:
        with self._lock:
            body = self._responses.get(key)
        if body is None:
            body = build()
            with self._lock:
                self._responses[key] = body
        return body

    @classmethod
    def from_directory(cls, directory: Path | str) -> FhirStore:
        directory = Path(directory)
        files = sorted(directory.glob("*.json"))
        if not files:
            raise DemoDataError(f"no *.json FHIR files in {directory}")
        resources: list[dict[str, Any]] = []
        for path in files:
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DemoDataError(f"{path.name}: {exc}") from exc
            resources.extend(_resources_in(document, path.name))
        return cls(resources)

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        return self.by_type.get(rtype, {}).get(rid)

    def search(
        self, rtype: str, params: MultiDict
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[str]]:
        """(matches, parameters used, parameter names ignored). Comma = OR, repetition = AND."""
        matchers = SEARCH_PARAMETERS.get(rtype, {})
        used: list[tuple[str, str]] = []
        ignored: list[str] = []
        filters: list[tuple[Callable[[dict, str], bool], list[str]]] = []
        for name, value in params.items(multi=True):
            if name in RESULT_PARAMS:
                continue
            matcher = matchers.get(name)
            if matcher is None:
                if name not in ignored:
                    ignored.append(name)
                continue
            used.append((name, value))
            filters.append((matcher, [v for v in value.split(",") if v]))
        results = [
            resource
            for resource in self.by_type.get(rtype, {}).values()
            if all(any(matcher(resource, v) for v in values) for matcher, values in filters)
        ]
        return results, used, ignored


# -- HTTP ----------------------------------------------------------------------------------------


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _fhir_response(body: dict[str, Any] | str, status: int = 200) -> Response:
    text = body if isinstance(body, str) else _dumps(body)
    return Response(text, status=status, content_type=FHIR_JSON)


def outcome_response(status: int, code: str, diagnostics: str, severity: str = "error") -> Response:
    return _fhir_response(operation_outcome([(severity, code, diagnostics)]), status)


def _base_url() -> str:
    return request.url_root.rstrip("/") + current_app.config["FHIR_BASE_PATH"]


def _store() -> FhirStore:
    return current_app.config["FHIR_STORE"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _capability_statement() -> dict[str, Any]:
    resources = []
    for rtype, params in SEARCH_PARAMETERS.items():
        resources.append(
            {
                "type": rtype,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [
                    {"name": name, "type": _param_type(name)} for name in sorted(params) if name != "_id"
                ]
                + [{"name": "_id", "type": "token"}],
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _now(),
        "kind": "instance",
        "software": {"name": "dip-cds demo FHIR server (演示数据)"},
        "implementation": {"description": "dip-cds demo data set — fictional patients", "url": _base_url()},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}],
    }


def _param_type(name: str) -> str:
    return {"status": "token", "code": "token", "type": "token"}.get(name, "reference")


def _search_params() -> MultiDict:
    params = MultiDict(request.args)
    if request.method == "POST":
        for name, value in request.form.items(multi=True):
            params.add(name, value)
    return params


def _int_param(params: MultiDict, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a non-negative integer, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {raw!r}")
    return value


def _search(rtype: str) -> Response:
    if rtype not in SEARCH_PARAMETERS:
        return outcome_response(404, "not-supported", f"resource type {rtype!r} is not served here")
    params = _search_params()
    try:
        count = min(_int_param(params, "_count", DEFAULT_COUNT), MAX_COUNT)
        if params.get("_summary") == "count":
            count = 0  # total only
        offset = _int_param(params, "_getpagesoffset", 0)
    except ValueError as exc:
        return outcome_response(400, "invalid", str(exc))
    store = _store()
    base = _base_url()
    key = ("search", base, rtype, tuple(sorted(params.items(multi=True))))
    return _fhir_response(
        store.cached_body(key, lambda: _search_body(store, rtype, params, base, count, offset))
    )


def _search_body(store: FhirStore, rtype: str, params: MultiDict, base: str, count: int, offset: int) -> str:
    matches, used, ignored = store.search(rtype, params)
    page = matches[offset : offset + count]

    def page_url(start: int) -> str:
        query = [*used, ("_count", str(count))]
        if start:
            query.append(("_getpagesoffset", str(start)))
        return f"{base}/{rtype}?{urlencode(query)}"

    links = [{"relation": "self", "url": page_url(offset)}]
    if count and offset + count < len(matches):
        links.append({"relation": "next", "url": page_url(offset + count)})
    if count and offset > 0:
        links.append({"relation": "previous", "url": page_url(max(0, offset - count))})
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in page
    ]
    if ignored:
        entries.append(
            {
                "resource": operation_outcome(
                    [
                        (
                            "warning",
                            "not-supported",
                            f"search parameter {name!r} is not supported for {rtype} and was ignored",
                        )
                        for name in ignored
                    ]
                ),
                "search": {"mode": "outcome"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": store.loaded_at},
        "type": "searchset",
        "total": len(matches),
        "link": links,
        "entry": entries,
    }
    if not entries:
        del bundle["entry"]
    return _dumps(bundle)


def _make_blueprint() -> Blueprint:
    bp = Blueprint("demo_fhir", __name__)

    @bp.get("/metadata")
    def metadata() -> Response:
        return _fhir_response(_capability_statement())

    @bp.get("/<rtype>")
    def search_get(rtype: str) -> Response:
        return _search(rtype)

    @bp.post("/<rtype>/_search")
    def search_post(rtype: str) -> Response:
        return _search(rtype)

    @bp.get("/<rtype>/<rid>")
    def read(rtype: str, rid: str) -> Response:
        if rtype not in SEARCH_PARAMETERS:
            return outcome_response(404, "not-supported", f"resource type {rtype!r} is not served here")
        store = _store()
        resource = store.read(rtype, rid) if ID_PATTERN.match(rid) else None
        if resource is None:
            return outcome_response(404, "not-found", f"{rtype}/{rid} is not known")
        return _fhir_response(store.cached_body(("read", rtype, rid), lambda: _dumps(resource)))

    return bp


def create_app(data_dir: Path | str | None = None, base_path: str = "") -> Flask:
    """The demo FHIR server (built-in demo set unless ``data_dir``); served under ``base_path``."""
    base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
    app = Flask(__name__)
    app.config["FHIR_STORE"] = FhirStore.from_directory(data_dir or DEMO_DATA_DIR)
    app.config["FHIR_BASE_PATH"] = base_path
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # DefaultJSONProvider's setting
    app.register_blueprint(_make_blueprint(), url_prefix=base_path or None)
    CORS(
        app,
        origins="*",
        allow_headers=["Authorization", "Content-Type", "Accept"],
        methods=["GET", "POST", "OPTIONS"],
    )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.code or 500, "processing")
        diagnostics = "this demo server is read-only" if exc.code == 405 else exc.description
        return outcome_response(exc.code or 500, code, diagnostics or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:  # pragma: no cover - last resort
        app.logger.exception("demo FHIR server error")
        return outcome_response(500, "exception", "internal error in the demo FHIR server")

    return app


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8081, log_requests: bool = False):
    """A threaded werkzeug server (``.serve_forever()`` / ``.shutdown()``); port 0 picks a free one.

    Requests are not logged unless asked (URLs carry patient ids, and logging halves throughput)."""
    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.serving import make_server as werkzeug_make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if log_requests:
                super().log_request(code, size)

    return werkzeug_make_server(host, port, app, threaded=True, request_handler=Handler)


def serve_with_gunicorn(
    data_dir: Path | str | None, base_path: str, host: str, port: int, workers: int, threads: int = 8
) -> None:
    """Serve with gunicorn (``workers`` processes × ``threads``) for load tests; blocks until stopped."""
    from gunicorn.app.base import BaseApplication

    create_app(data_dir, base_path=base_path)  # fail here, with a clear error, before forking

    class DemoFhirServer(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "accesslog": None,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return create_app(data_dir, base_path=base_path)

    DemoFhirServer().run()
