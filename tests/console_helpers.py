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


def console_app(home: Path, **console: Any):
    """The service with the console mounted with ``console`` settings (tables migrated)."""
    app = create_app(settings=settings_from_mapping({"logging": {"level": "WARNING"}}), home=home)
    assert preload(app) == []
    install(app, ConsoleSettings(**console))
    return app


def add_users(app) -> None:
    engine = app.extensions["dip_cds.console"].engine
    for name, (role, dept) in USERS.items():
        auth.create_user(engine, name, role, PASSWORD, dept, display_name=name)


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
