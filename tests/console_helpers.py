"""Shared pieces of the console tests: the real service (hooks + console) on a temp data home, served
over real HTTP, a replayed demo week, console users of each role, and a throwaway PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from console import auth
from console.service import install
from console.settings import ConsoleSettings

PASSWORD = "console-test-pw-1"
USERS = {  # username → (role, department)
    "ybb": ("ybb", None),
    "head": ("dept_head", "0302"),  # 呼吸内科 of the demo ward
    "viewer": ("readonly", None),
}


def console_app(home: Path, service: dict[str, Any] | None = None, **console: Any):
    """The service (``service``: its other configuration sections) with the console mounted with
    ``console`` settings (tables migrated)."""
    sections = {"logging": {"level": "WARNING"}, **(service or {})}
    app = create_app(settings=settings_from_mapping(sections), home=home)
    assert preload(app) == []
    install(app, ConsoleSettings(**console))
    return app


def add_users(app) -> None:
    engine = app.extensions["dip_cds.console"].engine
    for name, (role, dept) in USERS.items():
        auth.create_user(engine, name, role, PASSWORD, dept, display_name=name)


def settlement_output(work: Path, config_toml: str, cases: int = 300) -> Path:
    """A real ``dip-cds settle`` output: synthetic cases of the sample region (labelled as such),
    settled with ``config_toml``; returns the output folder."""
    from click.testing import CliRunner

    from cds_service.cli import main
    from tests.settlement_helpers import settle

    path = work / "cases.csv"
    result = CliRunner().invoke(main, ["--home", str(work), "synth", "--region", "999999", "--cases", str(cases),
                                       "--hospitals", "1", "--output", str(path), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    settle(work, [path], work / "out", config_toml, region="999999")
    return work / "out"


def signed_in(app, username: str):
    """A test client signed in as ``username`` through the real sign-in form (its CSRF token)."""
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = page.split('name="login_token" value="')[1].split('"')[0]
    response = client.post(
        "/console/login", data={"login_token": token, "username": username, "password": PASSWORD}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def csrf_token(page_html: str) -> str:
    return page_html.split('name="csrf_token" value="')[1].split('"')[0]


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` on a real HTTP port (threaded), for the browser and the demo replay."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


# ----------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").exists():
            return base
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@contextmanager
def postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL cluster on a unix socket (None when PostgreSQL is not installed)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="dipcds-pg-"))  # not under pytest's 0700 tmp: postgres must enter it
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
    data = tmp / "pg"
    data.mkdir()
    shutil.chown(tmp, "postgres") if as_user else None
    shutil.chown(data, "postgres") if as_user else None
    os.chmod(tmp, 0o755)
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = f"-k {tmp} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(tmp / "pg.log"), "start"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={tmp}&port={port}"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)
