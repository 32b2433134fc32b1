"""The panel in a real browser, on the demo 医生工作站 embedded by script tag, with JWT required.

The page obtains its short-lived token from its own backend (which signs with the HIS's key), signs
orders, and the panel shows the cards; suggestions reach the host page and the HIS's FHIR
endpoint, dismissals store feedback, everything works from the keyboard, and the panel shifts
nothing on the host page. Any console error fails the test.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.browser_helpers import (
    VIEWPORT,
    ConsoleWatch,
    feedback_rows,
    his_and_service,
    require_chromium,
    screenshot,
)
from tests.chromium_helpers import chromium
from tests.plugin_helpers import EXAMPLE_3101


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Demo HIS (with its signing key) → dip-cds service (JWT required, the HIS origin allowed)."""
    require_chromium()
    with his_and_service(tmp_path_factory.mktemp("home")) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(stack):
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    watch = ConsoleWatch(page)
    page.goto(f"{stack.his}/workstation/")
    page.locator("body[data-ready=true]").wait_for()
    page.watch = watch
    yield page
    context.close()
    watch.assert_clean()


def open_patient(page, patient_id: str) -> None:
    page.click(f"button[data-patient={patient_id}]")
    page.locator(f"body[data-patient={patient_id}]").wait_for()


def add_order(page, code: str, qty: int = 1) -> None:
    option = page.locator("#order-item option", has_text=f" {code} ").first
    page.select_option("#order-item", value=option.get_attribute("value"))
    page.fill("#order-qty", str(qty))
    page.click("#order-form button[type=submit]")


def cards(page):
    return page.locator("dip-cds-panel li.card")


def dip_card(page, text: str = "I63.9"):
    """The DIP card (other installed services, e.g. 智能审核, may add theirs to the same panel)."""
    return cards(page).filter(has_text=text).first


def test_signing_an_order_shows_the_dip_card(page):
    open_patient(page, "demo-stroke")
    add_order(page, "XY0005")  # 阿替普酶 4,980 元: the stay passes its DIP standard
    page.click("#sign-btn")
    card = dip_card(page)
    card.wait_for()
    assert cards(page).filter(has_text="I63.9").count() == 1
    assert card.get_attribute("data-indicator") == "warning"
    summary = card.locator(".summary")
    assert "I63.9" in summary.inner_text() and "高于支付标准" in summary.inner_text()
    assert summary.get_attribute("aria-expanded") == "false"  # summary first
    assert not card.locator(".detail").is_visible()
    summary.click()
    assert card.locator(".detail table").is_visible()  # detail on demand, with its table
    assert "¥7,795.20" in card.locator(".detail table").inner_text()
    panel = page.locator("dip-cds-panel section.panel")
    assert panel.get_attribute("data-level") == "warning"
    screenshot(page, "panel-dip-card")


def test_a_live_region_announces_new_warnings(page):
    open_patient(page, "demo-stroke")
    add_order(page, "XY0005")
    page.click("#sign-btn")
    dip_card(page).wait_for()
    live = page.locator("dip-cds-panel [aria-live=polite]")
    page.wait_for_timeout(100)  # the region is refilled after 50 ms so screen readers speak it again
    total = cards(page).count()
    assert live.inner_text().startswith(f"医保提醒 {total} 条，其中警告 1 条：I63.9")  # the most severe first


def test_accepting_a_suggestion_reaches_the_host_page_and_the_his_fhir_endpoint(page, stack):
    open_patient(page, "demo-pneumonia")
    page.click("#discharge-btn")
    card = cards(page).first
    card.wait_for()
    card.locator(".summary").click()
    accept = card.locator("button.suggest").first
    label = accept.inner_text().removeprefix("采纳：")
    assert "J18.803" in label
    before = len(requests.get(f"{stack.his}/his/api/applied", timeout=5).json()["transactions"])
    accept.click()
    card.locator(".outcome", has_text="已采纳").wait_for()
    assert page.locator("#his-message").inner_text() == f"已采纳建议：{label}"  # the host's own handler ran
    received = page.evaluate("window.HIS.accepted")
    assert len(received) == 1 and received[0]["label"] == label and received[0]["actions"] == 1
    applied = requests.get(f"{stack.his}/his/api/applied", timeout=5).json()["transactions"][before:]
    assert len(applied) == 1
    (entry,) = applied[0]["entry"]
    assert entry["request"] == {"method": "PUT", "url": "Condition/demo-cond-pneu-1"}
    codes = [c["code"] for c in entry["resource"]["code"]["coding"]]
    assert codes == ["J18.800x003", "J18.803"]  # the 医保版 code added beside the original
    rows = [r for r in feedback_rows(stack.home) if r.card_uuid == received[0]["card"]]
    assert [(r.service_id, r.outcome, json.loads(r.accepted_suggestions)) for r in rows] == [
        ("dip-encounter-discharge", "accepted", [received[0]["suggestion"]])
    ]
    screenshot(page, "panel-suggestion-accepted")


def test_dismissing_with_a_reason_stores_override_feedback(page, stack):
    open_patient(page, "demo-stroke")
    add_order(page, "XY0005")
    page.click("#sign-btn")
    card = dip_card(page)
    card.wait_for()
    card.locator(".summary").click()
    card.locator("button.dismiss").click()
    form = card.locator("form.override")
    reason = form.locator("label.reason").nth(1)
    reason_text = reason.inner_text().strip()
    reason.locator("input").check()
    form.locator("textarea").fill("家属要求继续溶栓治疗")
    screenshot(page, "panel-dismiss-reason")
    form.locator("button[type=submit]").click()
    card.locator(".outcome", has_text="已忽略").wait_for()
    assert card.locator(".outcome").inner_text() == f"已忽略：{reason_text}"
    overridden = [
        r
        for r in feedback_rows(stack.home)
        if r.outcome == "overridden" and r.user_comment == "家属要求继续溶栓治疗"
    ]
    assert len(overridden) == 1
    assert overridden[0].service_id == "dip-order-sign"
    assert overridden[0].override_display == reason_text
    assert overridden[0].override_code == "cost-data-wrong"


def test_the_panel_works_from_the_keyboard_alone(page, stack):
    page.focus("button[data-patient=demo-stroke]")
    page.keyboard.press("Enter")
    page.locator("#diagnosis-rows tr[data-condition]").first.wait_for()
    page.focus("#order-item")
    steps = page.evaluate(
        "[...document.querySelectorAll('#order-item option')].findIndex(o => o.text.includes(' XY0005 '))"
    )
    page.keyboard.press("Home")
    for _ in range(steps):  # down the list to 注射用阿替普酶
        page.keyboard.press("ArrowDown")
    assert "XY0005" in page.locator("#order-item option:checked").inner_text()
    page.focus("#order-form button[type=submit]")
    page.keyboard.press("Enter")
    page.focus("#sign-btn")
    page.keyboard.press("Enter")
    dip_card(page).wait_for()  # a warning: the first card of the panel
    page.keyboard.press("Alt+Shift+KeyY")  # the panel's shortcut: focus its collapse button
    toggle = page.locator("dip-cds-panel button.toggle")
    assert toggle.evaluate("b => b.getRootNode().activeElement === b")
    page.keyboard.press("Tab")
    summary = cards(page).first.locator(".summary")
    assert summary.evaluate("b => b.getRootNode().activeElement === b")
    page.keyboard.press("Enter")
    assert summary.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Tab")  # → 忽略…
    page.keyboard.press("Enter")
    form = cards(page).first.locator("form.override")
    assert form.is_visible()
    page.keyboard.press("ArrowDown")  # focus is on the first reason: pick the second
    page.keyboard.press("Tab")
    page.keyboard.type("键盘操作测试")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # 确认忽略
    cards(page).first.locator(".outcome", has_text="已忽略").wait_for()
    assert any(
        r.user_comment == "键盘操作测试" and r.override_code == "cost-data-wrong"
        for r in feedback_rows(stack.home)
    )
    # move the panel with the arrow keys on its grip; Escape collapses it, the toggle opens it again
    grip = page.locator("dip-cds-panel button.grip")
    grip.focus()
    start = page.locator("dip-cds-panel").bounding_box()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Shift+ArrowDown")
    moved = page.locator("dip-cds-panel").bounding_box()
    assert (round(start["x"] - moved["x"]), round(moved["y"] - start["y"])) == (16, 64)
    page.keyboard.press("Escape")
    assert not page.locator("dip-cds-panel .body").is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    assert page.locator("dip-cds-panel .body").is_visible()


def test_the_panel_remembers_where_it_was_dragged_and_whether_it_was_collapsed(page):
    bar = page.locator("dip-cds-panel header.bar")
    box = bar.bounding_box()
    page.mouse.move(box["x"] + 120, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(300, 420, steps=5)
    page.mouse.up()
    dragged = page.locator("dip-cds-panel").bounding_box()
    page.locator("dip-cds-panel button.toggle").click()
    page.reload()
    page.locator("body[data-ready=true]").wait_for()
    page.locator("dip-cds-panel header.bar").wait_for()
    again = page.locator("dip-cds-panel").bounding_box()
    assert (round(again["x"]), round(again["y"])) == (round(dragged["x"]), round(dragged["y"]))
    assert page.locator("dip-cds-panel button.toggle").get_attribute("aria-expanded") == "false"
    page.locator("dip-cds-panel button.toggle").click()  # leave it open for the next test's context
    screenshot(page, "panel-moved")


def test_the_panel_shifts_nothing_on_the_host_page(page):
    """Layout shifts (PerformanceObserver, CLS) and the host's element positions, around a check
    started without user input (shifts right after an input would not count towards CLS)."""
    open_patient(page, "demo-stroke")
    add_order(page, "XY0005")
    page.evaluate(
        """() => {
          window.__shifts = [];
          new PerformanceObserver((list) => {
            for (const e of list.getEntries()) window.__shifts.push({value: e.value, input: e.hadRecentInput});
          }).observe({type: 'layout-shift', buffered: true});
        }"""
    )
    page.evaluate("document.fonts.ready.then(() => true)")  # a late web font would shift the page itself
    page.wait_for_timeout(600)  # leave the 500 ms input window of the clicks above
    page.evaluate("() => { window.__shifts = []; }")
    watched = ["#order-rows", "#sign-btn", "#diagnosis-rows", "#patient-list", "header.top"]
    before = {sel: page.locator(sel).bounding_box() for sel in watched}
    page.evaluate(
        """() => { const c = window.HIS; window.DipCds.check({hook: 'order-sign', patientId: c.patientId,
             encounterId: c.encounterId, userId: 'Practitioner/' + c.doctorId, draftOrders: c.draftOrders}); }"""
    )
    cards(page).first.wait_for()
    cards(page).first.locator(".summary").click()  # expanding a card grows the panel, not the page
    page.wait_for_timeout(300)
    after = {sel: page.locator(sel).bounding_box() for sel in watched}
    assert after == before
    shifts = page.evaluate("window.__shifts")
    cls = sum(s["value"] for s in shifts if not s["input"])
    assert cls == 0, shifts
    # the measurement itself works: a banner pushed into the page's flow is a layout shift
    page.evaluate(
        "() => document.body.prepend(Object.assign(document.createElement('p'), {textContent: '通知'}))"
    )
    page.wait_for_timeout(300)
    assert sum(s["value"] for s in page.evaluate("window.__shifts")) > 0


def test_a_service_outage_is_shown_in_the_panel_not_thrown(page, stack):
    open_patient(page, "demo-stroke")
    add_order(page, "XY0004")
    page.route(f"{stack.service}/plugin/v1/check", lambda route: route.abort())
    page.watch.expect("net::ERR_FAILED")  # Chromium's own console note of the failed request
    page.click("#sign-btn")
    status = page.locator("dip-cds-panel p.status.error")
    status.wait_for()
    assert status.inner_text() == "无法连接医保智能提醒服务"
    page.wait_for_timeout(100)
    assert page.locator("dip-cds-panel [aria-live=assertive]").inner_text() == "无法连接医保智能提醒服务"
    assert page.locator("#his-message").inner_text().startswith("已签署")  # the HIS itself carries on


def test_a_page_without_fhir_sends_its_3101_payload_and_gets_the_card(page):
    payload = json.loads(EXAMPLE_3101.read_text(encoding="utf-8"))["request"]
    result = page.evaluate("(payload) => window.DipCds.check({payload3101: payload})", payload)
    assert "dip-order-sign" in [c["service"] for c in result["cards"]]
    card = dip_card(page)
    card.wait_for()
    assert "预计费用 ¥8,000.00（102.6%，高于支付标准）" in card.locator(".summary").inner_text()


def test_the_panel_talks_only_to_the_service_and_the_his_itself(page, stack):
    origins: set[str] = set()
    page.on("request", lambda r: origins.add("/".join(r.url.split("/")[:3])))
    open_patient(page, "demo-pneumonia")
    page.click("#discharge-btn")
    card = cards(page).first
    card.wait_for()
    card.locator(".summary").click()
    card.locator("button.suggest").first.click()
    card.locator(".outcome", has_text="已采纳").wait_for()
    assert origins == {stack.his, stack.service}  # the HIS's pages, token and FHIR endpoints; the service


def test_card_links_open_only_http_targets_in_a_new_window(page):
    card = {
        "uuid": "c-links",
        "service": "dip-order-sign",
        "summary": "带链接的提醒",
        "indicator": "info",
        "source": {"label": "测试"},
        "links": [
            {"label": "医保政策", "url": "https://www.nhsa.gov.cn/", "type": "absolute"},
            {"label": "脚本", "url": "javascript:alert(1)", "type": "absolute"},
        ],
    }
    page.evaluate("(card) => window.DipCds.panel().render({cards: [card], services: []})", card)
    cards(page).first.locator(".summary").click()
    links = cards(page).first.locator("button.link")
    assert links.all_inner_texts() == ["打开：医保政策"]
    page.context.route("https://www.nhsa.gov.cn/**", lambda route: route.fulfill(status=200, body="ok"))
    with page.context.expect_page() as popup:
        links.first.click()
    popup.value.wait_for_url("https://www.nhsa.gov.cn/")  # a new window starts blank, then navigates
    assert popup.value.evaluate("window.opener") is None  # noopener: the site cannot reach the HIS page


def test_signing_an_order_a_rule_forbids_shows_the_audit_finding_beside_the_dip_card(page, stack):
    """Needs the 智能审核 package (yb_audit) installed: then its service answers the same check."""
    pytest.importorskip("yb_audit", reason="the 智能审核 package (yb_audit) is not installed")
    open_patient(page, "demo-audit-child-drug")  # an adult
    add_order(page, "ZA04CAE0023010100166")  # 儿童清肺口服液: 限定年龄对象 儿童
    page.click("#sign-btn")
    cards(page).nth(1).wait_for()
    audit, dip = cards(page).nth(0), cards(page).nth(1)  # the most severe first
    assert audit.get_attribute("data-indicator") == "warning"
    assert "儿童清肺口服液" in audit.locator(".summary").inner_text()
    assert dip.get_attribute("data-indicator") == "info"
    audit.locator(".summary").click()
    screenshot(page, "panel-audit-finding")
    accept = audit.locator("button.suggest").first
    label = accept.inner_text().removeprefix("采纳：")
    accept.click()
    audit.locator(".outcome", has_text="已采纳").wait_for()
    assert page.locator("#his-message").inner_text() == f"已采纳建议：{label}"
    received = page.evaluate("window.HIS.accepted")[-1]
    rows = [r for r in feedback_rows(stack.home) if r.card_uuid == received["card"]]
    assert [(r.service_id, r.outcome) for r in rows] == [("yb-audit-order-sign", "accepted")]
