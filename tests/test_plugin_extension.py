"""The browser extension, built by our build and loaded unpacked into Chromium, on the demo HIS page
that has no script tag: configured on its options page, it shows the panel and checks on the
page's own sign button. Also: the .crx we write is byte-for-byte what Chromium writes."""

from __future__ import annotations

import json
import struct
import subprocess
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import sync_playwright

from browser_plugin.extension import (
    build,
    collect,
    crx3,
    enterprise_policy,
    host_patterns,
    load_or_create_key,
)
from tests.browser_helpers import (
    VIEWPORT,
    ConsoleWatch,
    feedback_rows,
    his_and_service,
    require_chromium,
    screenshot,
)
from tests.chromium_helpers import CHROMIUM, CHROMIUM_ARGS
from tests.service_helpers import ec_key


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_chromium()
    with his_and_service(tmp_path_factory.mktemp("home")) as stack:
        yield stack


@pytest.fixture(scope="module")
def extension(tmp_path_factory):
    out = tmp_path_factory.mktemp("extension")
    key_path = out.parent / "extension-key.pem"
    build(out / "unpacked", key_path=key_path, unpacked=True)
    return SimpleNamespace(path=out / "unpacked", id=collect(key=load_or_create_key(key_path)).extension_id)


@pytest.fixture(scope="module")
def browser(stack, extension, tmp_path_factory):
    """MV3 extensions need a persistent context; Playwright's headless mode is Chromium's new headless."""
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=CHROMIUM,
            headless=True,
            viewport=VIEWPORT,
            locale="zh-CN",
            args=[
                *CHROMIUM_ARGS,
                f"--disable-extensions-except={extension.path}",
                f"--load-extension={extension.path}",
            ],
        )
        worker = (
            context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker")
        )
        yield SimpleNamespace(context=context, worker=worker)
        context.close()


def configure(browser, extension, stack) -> ConsoleWatch:
    page = browser.context.new_page()
    watch = ConsoleWatch(page)
    page.goto(f"chrome-extension://{extension.id}/options.html")
    page.locator("body[data-ready=true]").wait_for()
    page.fill("input[name=serviceUrl]", stack.service + "/")
    page.fill("textarea[name=pages]", f"{stack.his}/plain/*")
    page.fill("input[name=signButton]", "#sign-btn")
    page.fill("input[name=tokenUrl]", "/his/api/cds-token")
    page.fill("input[name=fhirServer]", f"{stack.his}/fhir")
    sources = {  # one of each way a page can be read
        "patientId": ("selector", "#patient-id", ""),
        "encounterId": ("xhr", "/his/api/chart", "encounter.id"),
        "userId": ("global", "HIS.doctorId", ""),
        "draftOrders": ("selector", "tr.order-row", ""),
    }
    for key, (source, value, path) in sources.items():
        page.select_option(f"select[name='{key}.from']", source)
        page.fill(f"input[name='{key}.value']", value)
        page.fill(f"input[name='{key}.path']", path)
    screenshot(page, "extension-options")
    page.click("button[type=submit]")
    page.locator("#result.ok").wait_for()
    assert page.locator("#result").inner_text() == "已保存，刷新 HIS 页面后生效"
    page.close()
    return watch


def test_the_extension_id_is_the_one_the_build_computed_from_the_key(browser, extension):
    assert browser.worker.url == f"chrome-extension://{extension.id}/background.js"


def test_options_refuse_an_unusable_configuration(browser, extension):
    page = browser.context.new_page()
    watch = ConsoleWatch(page)
    page.goto(f"chrome-extension://{extension.id}/options.html")
    page.locator("body[data-ready=true]").wait_for()
    page.fill("input[name=serviceUrl]", "ftp://cds")
    page.fill("textarea[name=pages]", "his.hospital.cn")
    page.click("button[type=submit]")
    errors = page.locator("#result.error").inner_text()
    assert "服务地址必须是 http(s) 地址" in errors and "页面地址模式无效：his.hospital.cn" in errors
    page.close()
    watch.assert_clean()


def test_the_extension_shows_the_panel_on_a_page_without_the_script_tag(browser, extension, stack):
    options_watch = configure(browser, extension, stack)
    page = browser.context.new_page()
    watch = ConsoleWatch(page)
    page.goto(f"{stack.his}/plain/")
    page.locator("body[data-ready=true]").wait_for()
    assert page.locator("dip-cds-panel").count() == 0  # no script tag on this page
    page.locator("dip-cds-host header.bar").wait_for()
    page.click("button[data-patient=demo-stroke]")
    page.locator("#diagnosis-rows tr[data-condition]").first.wait_for()
    option = page.locator("#order-item option", has_text=" XY0005 ").first
    page.select_option("#order-item", value=option.get_attribute("value"))
    page.click("#order-form button[type=submit]")
    with page.expect_request(f"{stack.service}/plugin/v1/check") as sent:
        page.click("#sign-btn")
    context = json.loads(sent.value.post_data)["context"]
    assert context["patientId"] == "demo-stroke"  # CSS selector: the hidden input
    assert context["encounterId"] == "demo-enc-stroke"  # the page's own XHR answer (POST /his/api/chart)
    assert context["userId"] == "Practitioner/demo-dr-zhang"  # JS global HIS.doctorId, with the prefix
    (order,) = [e["resource"] for e in context["draftOrders"]["entry"]]  # the order rows' data-* attributes
    assert (order["resourceType"], order["medicationCodeableConcept"]["coding"][0]["code"]) == (
        "MedicationRequest",
        "XY0005",
    )
    card = page.locator("dip-cds-host li.card").first
    card.wait_for()
    assert card.get_attribute("data-indicator") == "warning"
    assert "I63.9" in card.locator(".summary").inner_text()
    card.locator(".summary").click()
    assert "¥4,980.00" in card.locator(".detail table").inner_text()  # the order read from the page's rows
    screenshot(page, "extension-panel")
    card.locator("button.dismiss").click()
    card.locator("form.override label.reason").first.locator("input").check()
    card.locator("form.override textarea").fill("扩展忽略测试")
    card.locator("form.override button[type=submit]").click()
    card.locator(".outcome", has_text="已忽略").wait_for()
    rows = [r for r in feedback_rows(stack.home) if r.user_comment == "扩展忽略测试"]
    assert [(r.service_id, r.outcome, r.override_code) for r in rows] == [
        ("dip-order-sign", "overridden", "clinically-necessary")
    ]
    page.close()
    watch.assert_clean()
    options_watch.assert_clean()


def test_the_crx_we_write_is_byte_for_byte_what_chromium_writes(tmp_path, extension):
    require_chromium()
    key_path = extension.path.parent.parent / "extension-key.pem"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--pack-extension={extension.path}",
            f"--pack-extension-key={key_path}",
        ],  # fmt: skip
        check=True,
        capture_output=True,
        timeout=60,
    )
    theirs = extension.path.with_suffix(".crx").read_bytes()
    (header_length,) = struct.unpack("<I", theirs[8:12])
    archive = theirs[12 + header_length :]
    assert crx3(archive, load_or_create_key(key_path)) == theirs


def test_the_enterprise_policy_force_installs_and_limits_the_extension_to_the_his_and_the_service():
    config = {"serviceUrl": "https://cds.hospital.cn/", "pages": ["https://his.hospital.cn/doctor/*"]}
    policy = enterprise_policy(
        "a" * 32, "https://cds.hospital.cn/ext/updates.xml", host_patterns(config), config
    )
    settings = policy["ExtensionSettings"]["a" * 32]
    assert settings["installation_mode"] == "force_installed"
    assert settings["runtime_allowed_hosts"] == ["*://his.hospital.cn", "*://cds.hospital.cn"]
    assert settings["runtime_blocked_hosts"] == ["*://*"]
    assert policy["3rdparty"]["extensions"]["a" * 32] == config
    assert json.loads(json.dumps(policy)) == policy


def test_the_build_command_writes_a_reproducible_zip_a_signed_crx_the_update_manifest_and_the_policy(
    tmp_path,
):
    from click.testing import CliRunner

    from cds_service.cli import main

    config = tmp_path / "extension-config.json"
    config.write_text(
        json.dumps({"serviceUrl": "https://cds.hospital.cn/", "pages": ["https://his.hospital.cn/*"]})
    )
    key = tmp_path / "hospital.pem"
    runs = []
    for out in ("a", "b"):
        result = CliRunner().invoke(
            main,
            [
                "plugin",
                "build-extension",
                "--output",
                str(tmp_path / out),
                "--key",
                str(key),
                "--update-url",
                "https://cds.hospital.cn/ext/updates.xml",
                "--config",
                str(config),
            ],  # fmt: skip
        )
        assert result.exit_code == 0, result.output
        runs.append(tmp_path / out)
    assert oct(key.stat().st_mode & 0o777) == "0o600"  # created on the first run, reused on the second
    zips = [(run / "dip-cds-extension-1.0.0.zip").read_bytes() for run in runs]
    assert zips[0] == zips[1]  # reproducible
    ext_id = collect(key=load_or_create_key(key)).extension_id
    policy = json.loads((runs[0] / "enterprise-policy.json").read_text())
    assert policy["ExtensionSettings"][ext_id]["update_url"] == "https://cds.hospital.cn/ext/updates.xml"
    ns = {"u": "http://www.google.com/update2/response"}
    app = ElementTree.parse(runs[0] / "updates.xml").getroot().find("u:app", ns)
    assert app.get("appid") == ext_id
    check = app.find("u:updatecheck", ns)
    assert (check.get("codebase"), check.get("version")) == (
        "https://cds.hospital.cn/ext/dip-cds-extension-1.0.0.crx",
        "1.0.0",
    )
    crx = (runs[0] / "dip-cds-extension-1.0.0.crx").read_bytes()
    (header_length,) = struct.unpack("<I", crx[8:12])
    assert crx[:4] == b"Cr24" and crx[12 + header_length :] == zips[0]


def test_the_build_refuses_a_key_that_cannot_sign_an_extension(tmp_path):
    from click.testing import CliRunner

    from cds_service.cli import main

    bad = tmp_path / "ec.pem"
    bad.write_bytes(
        ec_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = CliRunner().invoke(
        main, ["plugin", "build-extension", "--output", str(tmp_path / "o"), "--key", str(bad)]
    )
    assert result.exit_code != 0 and "signed with RSA keys" in result.output
