"""``POST /yb/3101`` and ``POST /yb/3102``: the national 明细审核事前 / 事中分析 interface.

A HIS that already calls the national platform points the same client here. Requests and answers
are in the national shape (README "医保智能审核 / 3101 / 3102"); a bad request is answered with
``infcode = -1`` and every problem named in ``err_msg``, with HTTP 200 as the national platform does
(clients read ``infcode``). When ``[audit] national_api_keys`` is set, the caller must send one of
them as ``Authorization: Bearer <key>`` (the endpoints carry patient data: also restrict them to the
hospital network at the reverse proxy).
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, g, request

from cds_service.appdata import get_app_data
from cds_service.jsonparse import has_lone_surrogate, parse_json
from cds_service.plugins import publish
from yb_audit import kinds
from yb_audit.evaluate import evaluate
from yb_audit.events import assessment
from yb_audit.fhir_input import now_local
from yb_audit.national import PayloadError, envelope, error_message, keep_finding, parse_request, result_entry
from yb_audit.service import AuditContext, audit_context

blueprint = Blueprint("yb_audit_national", __name__, url_prefix="/yb")
HOSPITAL_CODE_SYSTEM = "hosplist"  # local-map rows with this source system map 3101 hosplist_code


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status, mimetype="application/json"
    )


def _authorised(keys: tuple[str, ...]) -> bool:
    if not keys:
        return True
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return any(hmac.compare_digest(token.encode(), key.encode()) for key in keys)


def _rules_for(ctx: AuditContext, rule_ids: list[str]) -> tuple[AuditContext, str | None]:
    """Restrict to the rules ``rule_ids`` names (rule ids, kind keys or labels, batches, rule sets);
    ids that name nothing of ours are ignored, and when none matches every rule applies."""
    if not rule_ids:
        return ctx, None
    wanted = set(rule_ids) | {kinds.kind_of(r) for r in rule_ids if kinds.kind_of(r)}
    names = lambda r: {r.rule_id, r.kind, r.batch, r.ruleset}  # noqa: E731
    unknown = [
        r for r in rule_ids if not any(r in names(x) or kinds.kind_of(r) == x.kind for x in ctx.rules.rules)
    ]
    if len(unknown) == len(rule_ids):
        return ctx, f"rule_ids 均不是本系统的规则，已按全部规则审核：{'、'.join(unknown[:10])}"
    selected = ctx.rules.select(lambda r: bool(names(r) & wanted))
    note = f"未知的 rule_ids 已忽略：{'、'.join(unknown[:10])}" if unknown else None
    return replace(ctx, rules=selected), note


def _answer(infno: str) -> Response:
    received = now_local()
    g.service = f"yb-{infno}"
    data = get_app_data()
    ctx = audit_context(data, data.settings)
    if not _authorised(ctx.settings.national_api_keys):
        return Response(status=401, headers={"WWW-Authenticate": 'Bearer realm="yb-audit"'})
    try:
        raw = request.get_data(cache=False) or b"null"
        body = parse_json(raw)
        if has_lone_surrogate(raw, body):
            raise ValueError("unpaired surrogate")
    except (ValueError, RecursionError):
        return _json(envelope(None, received, now_local(), error_message(infno, ["请求体不是有效的 JSON"])))
    local_code = _local_code(ctx)
    try:
        parsed = parse_request(
            body,
            infno,
            ctx.tables,
            hospital_level=ctx.hospital_level,
            local_code=local_code,
            relevant=ctx.rules.knows,
        )
    except PayloadError as exc:
        return _json(envelope(None, received, now_local(), error_message(infno, exc.problems)))
    ctx, warning = _rules_for(ctx, parsed.rule_ids)
    results: list[dict[str, Any]] = []
    for national in parsed.cases:
        found = evaluate(ctx.rules, national.case, ctx.settings, drafts_only=True)
        findings = [f for f in found.findings if keep_finding(f, national)]
        results += [result_entry(f, national.patient_id, parsed.task_id) for f in findings]
        publish(
            "assessment",
            assessment(
                service=f"yb-audit-{infno}",
                hook=infno,
                hook_instance=parsed.task_id or parsed.msgid or "",
                channel=infno,
                patient_id=national.patient_id,
                encounter_id=national.current_encounter,
                encounter_status=None,
                department=national.department,
                attending=national.attending,
                findings=findings,
            ),
        )
    return _json(envelope({"result": results}, received, now_local(), warn_msg=warning))


def _local_code(ctx: AuditContext):
    def lookup(code: str) -> str | None:
        for maps in ctx.local_maps.values():
            entry = maps.get(HOSPITAL_CODE_SYSTEM, code)
            if entry is not None:
                return entry.target_code.strip().upper()
        return None

    return lookup


@blueprint.route("/3101", methods=["POST"])
def analyse_before() -> Response:
    """3101 明细审核事前分析."""
    return _answer("3101")


@blueprint.route("/3102", methods=["POST"])
def analyse_during() -> Response:
    """3102 明细审核事中分析."""
    return _answer("3102")


@blueprint.after_request
def _timing(response: Response) -> Response:
    started = getattr(g, "started", None)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
    response.headers["Cache-Control"] = "no-store"
    return response
