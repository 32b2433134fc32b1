"""The 医保办 console in a real browser (Playwright on /usr/bin/chromium) after a replayed demo week
over real HTTP: each role sees only what it may, the ranking matches counts computed from the stored
records, an XLSX export's totals match, a POST without the CSRF token is refused, no console errors."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import date

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page
from sqlalchemy import select

from console.demo_traffic import replay
from console.imports import load_settle
from console.models import assessments, findings, stays
from tests.chromium_helpers import ARTIFACTS as ALL_ARTIFACTS
from tests.chromium_helpers import chromium, needs_chromium
from tests.console_helpers import PASSWORD, add_users, console_app, serving, settlement_output

ARTIFACTS = ALL_ARTIFACTS / "console"
TODAY = date.today()

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("console-home")
    app = console_app(home, cookie_secure=False)  # plain HTTP here; the Secure flag: test_console_access
    add_users(app)
    with serving(app) as base:
        counts = replay(base, days=7, beds=24, seed=7, workers=4, today=TODAY)
        assert counts["failed"] == 0 and counts["calls"] > 100 and counts["plugin"] > 10
        app.extensions["dip_cds.console"].flush()
        # a settlement estimate (no fund budgets: priced at the engine's point values) to browse
        out = settlement_output(tmp_path_factory.mktemp("settle"), '[settlement]\nregion = "999999"\n')
        load_settle(app.extensions["dip_cds.console"].engine, out, "ybb", "2025 年度结算（合成数据）")
        yield base, app


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as b:
        yield b


@pytest.fixture
def signed_in(site, browser):
    base, _ = site
    pages: list[tuple[Page, list[str]]] = []

    def open_as(username: str) -> Page:
        context = browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/console/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/console/stays"))
        pages.append((page, errors))
        return page

    yield open_as
    for page, errors in pages:
        page.context.close()
        assert errors == [], errors


def _cells(page: Page, table: str, key: str) -> list[str]:
    return page.locator(f'table[data-table="{table}"] tbody td[data-key="{key}"]').all_inner_texts()


def _total(page: Page, table: str, key: str) -> str:
    return page.locator(f'table[data-table="{table}"] tfoot td[data-key="{key}"]').inner_text()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_medical_insurance_office_sees_every_department_and_every_page(site, signed_in) -> None:
    base, app = site
    page = signed_in("ybb")
    with app.extensions["dip_cds.console"].engine.connect() as conn:
        open_count = len(conn.execute(select(stays.c.id).where(stays.c.is_open.is_(True))).all())
        departments = set(
            conn.execute(select(stays.c.department_name).where(stays.c.is_open.is_(True))).scalars()
        )
    assert page.locator("#kpi-open").inner_text() == str(open_count)
    assert set(_cells(page, "stays", "department")) == departments and len(departments) == 4
    ratios = [float(t.rstrip("%")) for t in _cells(page, "stays", "ratio_e4") if t != "—"]
    assert ratios == sorted(ratios, reverse=True)
    _shot(page, "stays-ybb")
    page.locator('table[data-table="stays"] tbody a').first.click()
    page.wait_for_url(re.compile(r"/console/stays/[0-9a-f]{24}$"))
    assert page.locator('table[data-table="history"] tbody tr').count() >= 1
    _shot(page, "stay-detail")
    for name in ("ranking", "audit", "feedback", "settle"):
        page.goto(f"{base}/console/{name}")
        _shot(page, f"{name}-ybb")
    page.locator("section.runs a").first.click()
    assert page.locator('table[data-table="settle-departments"] tbody tr').count() > 1
    assert page.locator('table[data-table="funds"] tbody tr').count() == 1
    _shot(page, "settle-run-ybb")
    assert page.locator("form.load").count() == 1  # 医保办 may load outputs


def test_plugin_checks_and_live_audit_findings_are_recorded_and_shown(site, signed_in) -> None:
    """demo-traffic signs a third of the orders through /plugin/v1/check and sends hook-signed orders
    to the 智能审核 service too: both channels and both kinds are stored, and the 智能审核 page ranks
    the live findings (the sample rules' 儿童清肺口服液 for adults among them)."""
    base, app = site
    with app.extensions["dip_cds.console"].engine.connect() as conn:
        seen = set(conn.execute(select(assessments.c.channel, assessments.c.kind).distinct()).all())
        rules = set(
            conn.execute(select(findings.c.item_name).where(findings.c.import_id.is_(None))).scalars()
        )
    assert {("plugin", "dip"), ("plugin", "audit"), ("cds-hooks", "dip"), ("cds-hooks", "audit")} <= seen
    assert "儿童清肺口服液" in rules
    page = signed_in("ybb")
    page.goto(f"{base}/console/audit")
    assert any("儿童清肺口服液" in name for name in _cells(page, "rules", "rule_name"))
    assert "实时审核" in _cells(page, "findings", "source")
    page.locator('table[data-table="stays"]').count()  # the stay drill-down names the channel
    page.goto(f"{base}/console/stays")
    page.locator('table[data-table="stays"] tbody a').first.click()
    labels = set(_cells(page, "history", "channel_label"))
    assert labels and labels <= {"CDS Hooks", "浏览器插件"}


def test_a_department_head_sees_only_their_own_department(site, signed_in) -> None:
    base, app = site
    page = signed_in("head")
    assert set(_cells(page, "stays", "department")) == {"呼吸内科"}
    assert page.locator("select[name=dept]").count() == 0
    page.goto(f"{base}/console/ranking")
    assert _cells(page, "departments", "department") == ["呼吸内科"]
    _shot(page, "ranking-dept-head")
    with app.extensions["dip_cds.console"].engine.connect() as conn:
        other = (
            conn.execute(select(stays.c.stay_key).where(stays.c.department_code != "0302")).scalars().first()
        )
    response = page.request.get(f"{base}/console/stays/{other}")
    assert response.status == 404  # another department's stay does not exist for this user
    export = page.request.get(f"{base}/console/export/stays/stays.xlsx")
    sheet = load_workbook(io.BytesIO(export.body())).active
    header_row = next(i for i, row in enumerate(sheet.iter_rows(values_only=True), 1) if row[0] == "序号")
    assert {row[1] for row in sheet.iter_rows(min_row=header_row + 1, values_only=True)} == {"呼吸内科"}


def test_read_only_users_see_the_pages_but_cannot_load_anything(site, signed_in) -> None:
    base, _ = site
    page = signed_in("viewer")
    page.goto(f"{base}/console/audit")
    assert page.locator("form.load").count() == 0
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(f"{base}/console/audit/load", form={"csrf_token": token, "folder": "/tmp"})
    assert response.status == 403


def test_the_ranking_matches_counts_computed_from_the_stored_records(site, signed_in) -> None:
    base, app = site
    page = signed_in("ybb")
    page.goto(f"{base}/console/ranking")
    _shot(page, "ranking")
    # independently: each stay's newest DIP assessment, over standard when projected > standard
    with app.extensions["dip_cds.console"].engine.connect() as conn:
        rows = conn.execute(
            select(assessments.c.stay_id, assessments.c.at, assessments.c.id, assessments.c.department_name,
                   assessments.c.projected_cents, assessments.c.standard_cents)
            .where(assessments.c.kind == "dip").order_by(assessments.c.at, assessments.c.id)
        ).all()  # fmt: skip
    newest = {r.stay_id: r for r in rows}
    assessed = Counter(r.department_name for r in newest.values())
    over = Counter(
        r.department_name
        for r in newest.values()
        if r.projected_cents is not None and r.projected_cents > r.standard_cents
    )
    shown = dict(
        zip(_cells(page, "departments", "department"), _cells(page, "departments", "over"), strict=True)
    )
    assert {d: int(n) for d, n in shown.items()} == {d: over.get(d, 0) for d in assessed}
    stays_shown = dict(
        zip(_cells(page, "departments", "department"), _cells(page, "departments", "stays"), strict=True)
    )
    assert {d: int(n) for d, n in stays_shown.items()} == dict(assessed)
    assert int(_total(page, "departments", "over")) == sum(over.values()) > 0


def test_an_xlsx_export_opens_and_its_totals_match_the_page(site, signed_in) -> None:
    base, _ = site
    page = signed_in("ybb")
    page.goto(f"{base}/console/ranking")
    with page.expect_download() as info:
        page.locator("#table-departments a.export").click()
    path = ARTIFACTS / "ranking-departments.xlsx"
    info.value.save_as(path)
    sheet = load_workbook(path).active
    rows = list(sheet.iter_rows(values_only=True))
    start = next(i for i, row in enumerate(rows) if row[0] == "科室") + 1
    body, total = rows[start:-1], rows[-1]
    assert total[0] == "合计"
    assert sum(r[2] for r in body) == total[2] == int(_total(page, "departments", "over"))
    assert (
        round(sum(r[4] for r in body), 2)
        == round(total[4], 2)
        == float(_total(page, "departments", "loss_cents").replace(",", ""))
    )


def test_a_post_without_the_csrf_token_is_refused(site, signed_in) -> None:
    base, _ = site
    page = signed_in("ybb")
    refused = page.request.post(f"{base}/console/audit/load", form={"folder": "/tmp"})
    assert refused.status == 403 and "CSRF" in refused.text()
    wrong = page.request.post(f"{base}/console/audit/load", form={"folder": "/tmp", "csrf_token": "x" * 43})
    assert wrong.status == 403
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    accepted = page.request.post(
        f"{base}/console/audit/load", form={"folder": "/tmp", "csrf_token": token}, max_redirects=0
    )
    assert accepted.status == 302  # the form is taken (the folder itself is outside the import roots)
