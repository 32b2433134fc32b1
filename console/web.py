"""The console's pages under ``/console/``: server-rendered, every table exportable to XLSX.

Each page is a data function (``queries``) rendered by a template; the export of a table calls the
same function with the same filters, so the file always matches the screen. Every view, export,
load and sign-in is written to the audit log (who, what, when, from where); patient identifiers
never appear in URLs (a stay is addressed by its random key).
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse  # what redirect() and views return

from console import auth, queries
from console.imports import LoadError, check_root, load_audit, load_settle
from console.models import stays
from console.service import EXTENSION_KEY, Console, setup
from console.tables import Table, display, to_xlsx

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@blueprint.record_once
def _set_up(state: BlueprintSetupState) -> None:
    """Mounted by the plugin seam: the app's console (unless a test installed one with its settings)."""
    if EXTENSION_KEY not in state.app.extensions and isinstance(state.app, Flask):
        setup(state.app)


COOKIE = "dipcds_console"
LOGIN_COOKIE = "dipcds_console_login"  # double-submit token of the sign-in form
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
NAV = (
    ("console.stays_page", "在院监控"),
    ("console.ranking_page", "科室/医生排名"),
    ("console.audit_page", "智能审核"),
    ("console.feedback_page", "反馈"),
    ("console.settle_page", "结算"),
)


def _console() -> Console:
    return current_app.extensions[EXTENSION_KEY]


def _remote() -> str | None:
    return request.remote_addr


def _audit(action: str, target: str) -> None:
    user = getattr(g, "console_user", None)
    auth.log_event(_console().engine, user.username if user else "-", action, target, _remote())


def _cookie(response: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    settings = _console().settings
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=url_for("console.index"),
        secure=settings.cookie_secure,
        httponly=True,
        samesite="Strict",
    )


def _error(status: int, message: str) -> BaseResponse:
    return Response(
        render_template("console_error.html", status=status, message=message, nav=NAV),
        status,
        mimetype="text/html",
    )


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> BaseResponse:
    if exc.response is not None:
        return exc.get_response()
    return _error(exc.code or 500, "请求无法处理。" if (exc.code or 500) < 500 else "服务内部错误。")


# ----------------------------------------------------------------------------- who is asking


@blueprint.before_request
def _identify() -> BaseResponse | None:
    g.console_user = None
    g.console_session = None
    if request.endpoint in ("console.static", "console.login", "console.login_post"):
        return None
    console = _console()
    settings = console.settings
    idle = timedelta(minutes=settings.session_idle_minutes)
    max_age = timedelta(hours=settings.session_max_hours)
    session = auth.session_for(console.engine, request.cookies.get(COOKIE), idle, max_age)
    if settings.auth == "proxy":
        if not auth.trusted_proxy(_remote(), settings.proxy_networks()):
            auth.log_event(console.engine, "-", "denied", "untrusted proxy address", _remote())
            return _error(403, "请通过医院的统一登录入口访问医保办控制台。")
        name = (request.headers.get(settings.proxy_user_header) or "").strip()
        user = auth.user_named(console.engine, name) if name else None
        if user is None:
            auth.log_event(console.engine, name or "-", "denied", "unknown proxy user", _remote())
            return _error(403, "当前登录用户没有医保办控制台的权限，请联系医保办开通。")
        if session is None or session.user.username != user.username:
            session = auth.open_session(console.engine, user)
            g.new_session_token = session.token
    if session is None:
        if request.method == "GET":
            return redirect(
                url_for("console.login", next=request.full_path if request.args else request.path)
            )
        return _error(401, "登录已过期，请重新登录。")
    g.console_user = session.user
    g.console_session = session
    if request.method == "POST" and not auth.csrf_ok(
        session.csrf_token, request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
    ):
        _audit("csrf-refused", request.path)
        return _error(403, "请求缺少有效的安全令牌（CSRF），已拒绝。请刷新页面后重试。")
    return None


@blueprint.after_request
def _headers(response: BaseResponse) -> BaseResponse:
    token = getattr(g, "new_session_token", None)
    if token:
        _cookie(response, COOKIE, token)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _department_scope() -> str | None:
    user = g.console_user
    return user.department if user is not None else None


def _may_change() -> None:
    if not g.console_user.can_change:
        _audit("denied", request.path)
        abort(_error(403, "只有医保办用户可以执行此操作。"))


@blueprint.app_template_filter("cell")
def _cell(value: Any, kind: str) -> str:
    return display(value, kind)


@blueprint.context_processor
def _layout() -> dict[str, Any]:
    session = getattr(g, "console_session", None)
    return {
        "nav": NAV,
        "user": getattr(g, "console_user", None),
        "csrf_token": session.csrf_token if session is not None else "",
        "auth_mode": _console().settings.auth,
    }


# ----------------------------------------------------------------------------- sign in / out


def _safe_next(target: str | None) -> str:
    base = url_for("console.index")
    return (
        target
        if target and target.startswith(base) and not target.startswith("//")
        else url_for("console.stays_page")
    )


@blueprint.get("/login")
def login() -> BaseResponse:
    if _console().settings.auth == "proxy":
        return redirect(url_for("console.stays_page"))
    token = secrets.token_urlsafe(24)
    response = Response(
        render_template(
            "console_login.html", login_token=token, next=request.args.get("next", ""), error=None
        )
    )
    _cookie(response, LOGIN_COOKIE, token, max_age=1800)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/login")
def login_post() -> BaseResponse:
    console = _console()
    if console.settings.auth == "proxy":
        return _error(403, "本控制台通过医院统一登录访问。")
    if not auth.csrf_ok(request.cookies.get(LOGIN_COOKIE, ""), request.form.get("login_token")):
        auth.log_event(console.engine, "-", "csrf-refused", "login", _remote())
        return _error(403, "请求缺少有效的安全令牌（CSRF），已拒绝。请刷新页面后重试。")
    username = (request.form.get("username") or "").strip()[:100]
    try:
        user = auth.check_password(console.engine, username, request.form.get("password") or "", _remote())
    except auth.AuthError as exc:
        token = secrets.token_urlsafe(24)
        response = Response(
            render_template(
                "console_login.html", login_token=token, next=request.form.get("next", ""), error=str(exc)
            ),
            401,
        )
        _cookie(response, LOGIN_COOKIE, token, max_age=1800)
        return response
    session = auth.open_session(console.engine, user)
    auth.log_event(console.engine, user.username, "login", "login", _remote())
    signed_in = redirect(_safe_next(request.form.get("next")))
    _cookie(signed_in, COOKIE, session.token or "")
    signed_in.delete_cookie(LOGIN_COOKIE, path=url_for("console.index"))
    return signed_in


@blueprint.post("/logout")
def logout() -> BaseResponse:
    _audit("logout", "logout")
    auth.close_session(_console().engine, request.cookies.get(COOKIE))
    response = redirect(url_for("console.login"))
    response.delete_cookie(COOKIE, path=url_for("console.index"))
    return response


@blueprint.get("/")
def index() -> BaseResponse:
    return redirect(url_for("console.stays_page"))


# ----------------------------------------------------------------------------- page data

PageData = Callable[[Any], dict[str, Any]]


def _period() -> queries.Period:
    return queries.Period.parse(request.args.get("from"), request.args.get("to"), _console().settings.zone())


def _int_arg(name: str, default: int = 1) -> int:
    try:
        return max(1, min(int(request.args.get(name, default)), 10**6))
    except ValueError:
        return default


def _stays_data(conn: Any, everything: bool = False) -> dict[str, Any]:
    return queries.open_stays(
        conn,
        _department_scope(),
        _console().settings.zone(),
        dept=request.args.get("dept") or None,
        doctor=request.args.get("doctor") or None,
        band=request.args.get("band") or None,
        page=_int_arg("page"),
        everything=everything,
    )


def _settle_department_names(conn: Any) -> tuple[str, ...]:
    code = _department_scope()
    if code is None:
        return ()
    names = conn.execute(
        select(stays.c.department_name).where(stays.c.department_code == code).distinct()
    ).scalars()
    return tuple({code, *(n for n in names if n)})


def _settle_data(conn: Any, import_id: int, everything: bool = False) -> dict[str, Any] | None:
    return queries.settle_view(
        conn,
        _department_scope(),
        _settle_department_names(conn),
        import_id,
        request.args.get("table") or "departments",
        _int_arg("page"),
        everything=everything,
    )


def _tables(page: str, conn: Any) -> dict[str, Table]:
    """The exportable tables of a page, with the request's filters and the viewer's scope."""
    if page == "stays":
        return {"stays": _stays_data(conn, everything=True)["table"]}
    if page == "ranking":
        data = queries.ranking(conn, _department_scope(), _period())
        return {k: data[k] for k in ("departments", "doctors", "weeks")}
    if page == "audit":
        data = queries.audit(conn, _department_scope(), _period(), request.args.get("source") or None)
        return {k: data[k] for k in ("rules", "departments", "doctors", "findings")}
    if page == "feedback":
        return dict(queries.feedback(conn, _department_scope(), _period()))
    if page == "settle":
        run = _settle_data(conn, _int_arg("run"), everything=True)
        if run is None:
            return {}
        return {
            "funds": run["summary"]["funds"],
            **({"table": run["table"]} if run["table"] is not None else {}),
        }
    if page == "stay":
        stay = queries.stay_detail(
            conn, _department_scope(), _console().settings.zone(), request.args.get("key", "")
        )
        return {"history": stay["table"]} if stay else {}
    return {}


def _export_url(page: str, table: str) -> str:
    args = {k: v for k, v in request.args.items() if k != "page"}
    return url_for("console.export", page=page, table=table) + ("?" + urlencode(args) if args else "")


def _chart(data: Any) -> str:
    """Chart data for a ``<script type="application/json">`` block (no ``</script>`` can close it)."""
    text = json.dumps(
        data, ensure_ascii=False, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _filters_text() -> str:
    """The request's filters for the audit log, without patient identifiers (none are filters; a
    stay is named by its random key)."""
    return "&".join(
        f"{k}={v}"
        for k, v in sorted(request.args.items())
        if k in ("dept", "doctor", "band", "from", "to", "page", "source", "table", "run", "key")
    )


def _viewed(name: str) -> Callable:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def view(*args: Any, **kwargs: Any) -> Any:
            _audit("view", f"{name}?{_filters_text()}".rstrip("?"))
            return fn(*args, **kwargs)

        return view

    return wrap


# ----------------------------------------------------------------------------- pages


@blueprint.get("/stays")
@_viewed("stays")
def stays_page() -> str:
    with _console().engine.connect() as conn:
        data = _stays_data(conn)
    for row in data["table"].rows:
        row["url"] = url_for("console.stay_page", stay_key=row["stay_key"])
    chart = {"labels": [b["label"] for b in data["bands"]], "values": [b["count"] for b in data["bands"]]}
    return render_template(
        "console_stays.html",
        page_id="stays",
        data=data,
        chart_data=_chart(chart),
        export=_export_url("stays", "stays"),
        args=request.args,
        scope=_department_scope(),
    )


@blueprint.get("/stays/<stay_key>")
def stay_page(stay_key: str) -> BaseResponse | str:
    if len(stay_key) > 32 or not stay_key.isalnum():
        return _error(404, "没有这个住院记录。")
    _audit("view", f"stay {stay_key}")
    with _console().engine.connect() as conn:
        data = queries.stay_detail(conn, _department_scope(), _console().settings.zone(), stay_key)
    if data is None:
        return _error(404, "没有这个住院记录，或不在您的科室范围内。")
    history = list(reversed(data["table"].rows))
    chart = {
        "labels": [h["at"].strftime("%m-%d %H:%M") for h in history if h["kind"] == "dip"],
        "values": [
            h["ratio_e4"] / 100 if h["ratio_e4"] is not None else None for h in history if h["kind"] == "dip"
        ],
    }
    export = url_for("console.export", page="stay", table="history") + "?" + urlencode({"key": stay_key})
    return render_template(
        "console_stay.html", page_id="stays", data=data, chart_data=_chart(chart), export=export
    )


@blueprint.get("/ranking")
@_viewed("ranking")
def ranking_page() -> str:
    period = _period()
    with _console().engine.connect() as conn:
        data = queries.ranking(conn, _department_scope(), period)
    weeks = data["weeks"].rows
    chart = {
        "labels": [w["week"] for w in weeks],
        "over": [w["over"] for w in weeks],
        "loss": [float(Decimal(w["loss_cents"]) / 100) for w in weeks],
    }
    exports = {k: _export_url("ranking", k) for k in ("departments", "doctors", "weeks")}
    return render_template(
        "console_ranking.html",
        page_id="ranking",
        data=data,
        chart_data=_chart(chart),
        exports=exports,
        period=period,
    )


@blueprint.get("/audit")
@_viewed("audit")
def audit_page() -> str:
    period = _period()
    source = request.args.get("source") or None
    with _console().engine.connect() as conn:
        data = queries.audit(conn, _department_scope(), period, source)
    top = data["rules"].rows[:10]
    chart = {
        "labels": [r["rule_name"] or r["rule_id"] for r in top],
        "values": [float(Decimal(r["amount_cents"]) / 100) for r in top],
    }
    exports = {k: _export_url("audit", k) for k in ("rules", "departments", "doctors", "findings")}
    return render_template(
        "console_audit.html",
        page_id="audit",
        data=data,
        chart_data=_chart(chart),
        exports=exports,
        period=period,
        source=source or "",
        message=request.args.get("message"),
    )


@blueprint.post("/audit/load")
def audit_load() -> BaseResponse:
    _may_change()
    return _load("audit")


@blueprint.get("/feedback")
@_viewed("feedback")
def feedback_page() -> str:
    period = _period()
    with _console().engine.connect() as conn:
        data = queries.feedback(conn, _department_scope(), period)
    services = data["services"].rows
    chart = {
        "labels": [s["service"] for s in services],
        "accepted": [s["accepted"] for s in services],
        "overridden": [s["overridden"] for s in services],
    }
    exports = {k: _export_url("feedback", k) for k in data}
    return render_template(
        "console_feedback.html",
        page_id="feedback",
        data=data,
        chart_data=_chart(chart),
        exports=exports,
        period=period,
    )


@blueprint.get("/settle")
@_viewed("settle")
def settle_page() -> str:
    run_id = request.args.get("run")
    with _console().engine.connect() as conn:
        runs = queries.settle_imports(conn)
        data = _settle_data(conn, int(run_id)) if run_id and run_id.isdigit() else None
    return render_template(
        "console_settle.html",
        page_id="settle",
        runs=runs,
        data=data,
        tables=queries.SETTLE_TABLES,
        visible=queries.DEPARTMENT_TABLES if _department_scope() else queries.SETTLE_TABLES,
        current=request.args.get("table") or "departments",
        export=_export_url("settle", "table") if data and data["table"] is not None else None,
        funds_export=_export_url("settle", "funds") if data else None,
        message=request.args.get("message"),
    )


@blueprint.post("/settle/load")
def settle_load() -> BaseResponse:
    _may_change()
    return _load("settle")


def _load(kind: str) -> BaseResponse:
    console = _console()
    folder = (request.form.get("folder") or "").strip()
    target = "console.audit_page" if kind == "audit" else "console.settle_page"
    try:
        path = check_root(folder, console.settings.roots(console.home)) if folder else None
        if path is None:
            raise LoadError("请填写输出目录")
        if kind == "audit":
            result = load_audit(console.engine, path, g.console_user.username, console.settings.zone())
            message = f"已导入 {result['findings']} 条审核发现（{path.name}）"
        else:
            result = load_settle(console.engine, path, g.console_user.username)
            message = f"已导入结算结果 {path.name}（{result['rows']} 行）"
    except LoadError as exc:
        _audit("import-failed", f"{kind} {folder}"[:300])
        return redirect(url_for(target, message=f"导入失败：{exc}"))
    _audit("import", f"{kind} {path}"[:300])
    return redirect(url_for(target, message=message, **({"run": result["id"]} if kind == "settle" else {})))


@blueprint.get("/export/<page>/<table>.xlsx")
def export(page: str, table: str) -> BaseResponse:
    with _console().engine.connect() as conn:
        found = _tables(page, conn).get(table)
    if found is None:
        return _error(404, "没有这个表格。")
    _audit("export", f"{page}/{table}?{_filters_text()}".rstrip("?"))
    meta = [("导出人", g.console_user.username), ("筛选", _filters_text() or "无")]
    response = Response(
        to_xlsx(found, meta), mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response.headers["Content-Disposition"] = f"attachment; filename=dip-cds-{page}-{table}.xlsx"
    return response
