"""Console access without a browser: the reverse proxy's identity header is trusted only from the
configured addresses and only for known users; cookies are HttpOnly/SameSite=Strict/Secure; repeated
wrong passwords lock the name; a sign-in form without its token is refused."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from console.models import view_log
from tests.console_helpers import PASSWORD, add_users, console_app

PROXY = {"REMOTE_ADDR": "10.1.2.3"}


def test_proxy_identity_is_trusted_only_from_the_allowlisted_proxy_and_for_known_users(
    tmp_path: Path,
) -> None:
    app = console_app(tmp_path, auth="proxy", trusted_proxies=("10.1.0.0/16",))
    add_users(app)
    client = app.test_client()
    ok = client.get("/console/stays", headers={"X-Remote-User": "head"}, environ_base=PROXY)
    assert ok.status_code == 200 and "科室主任" in ok.get_data(as_text=True)
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    spoofed = app.test_client().get(
        "/console/stays", headers={"X-Remote-User": "ybb"}, environ_base={"REMOTE_ADDR": "192.0.2.9"}
    )
    assert spoofed.status_code == 403
    unknown = app.test_client().get(
        "/console/stays", headers={"X-Remote-User": "mallory"}, environ_base=PROXY
    )
    assert unknown.status_code == 403
    no_csrf = client.post(
        "/console/audit/load", data={"folder": "x"}, headers={"X-Remote-User": "ybb"}, environ_base=PROXY
    )
    assert no_csrf.status_code == 403


def test_five_wrong_passwords_lock_the_name_and_every_attempt_is_in_the_audit_log(tmp_path: Path) -> None:
    app = console_app(tmp_path, cookie_secure=False)
    add_users(app)
    client = app.test_client()

    def login(password: str):
        page = client.get("/console/login").get_data(as_text=True)
        token = page.split('name="login_token" value="')[1].split('"')[0]
        return client.post(
            "/console/login", data={"login_token": token, "username": "ybb", "password": password}
        )

    assert all(login("wrong-password").status_code == 401 for _ in range(5))
    locked = login(PASSWORD)
    assert locked.status_code == 401 and "15 分钟" in locked.get_data(as_text=True)
    with app.extensions["dip_cds.console"].engine.connect() as conn:
        targets = conn.execute(select(view_log.c.action, view_log.c.target)).all()
    assert [a for a, _ in targets].count("login-failed") == 5 and ("login-locked", "login") in targets


def test_a_login_form_without_its_token_is_refused(tmp_path: Path) -> None:
    app = console_app(tmp_path)
    add_users(app)
    response = app.test_client().post("/console/login", data={"username": "ybb", "password": PASSWORD})
    assert response.status_code == 403
