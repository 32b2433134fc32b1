"""The console's database: one engine per process, migrations applied with Alembic.

SQLite (the default, beside the feedback table in the data home) runs in WAL mode so the pages
read while the recorder writes; PostgreSQL is used as given by URL.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from cds_service.sqlite_wal import use_wal

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "console_alembic_version"  # its own: the service database is shared with other tables
_engines: dict[tuple[str, int], Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    use_wal(dbapi_conn)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def engine_for(url: str) -> Engine:
    """The process's engine for ``url`` (a new one after a fork: connections are never shared)."""
    key = (url, os.getpid())
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                is_sqlite = url.startswith("sqlite")
                engine = create_engine(
                    url,
                    pool_pre_ping=not is_sqlite,
                    connect_args={"timeout": 10} if is_sqlite else {},
                )
                if is_sqlite:
                    event.listen(engine, "connect", _sqlite_pragmas)
                _engines[key] = engine
    return engine


def alembic_config(engine: Engine | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the console tables to ``revision``. Idempotent, and one migrator at a time: gunicorn's
    workers all migrate at start, so the migration is one transaction under the database's own
    write lock (SQLite ``BEGIN EXCLUSIVE``, a PostgreSQL advisory lock) and the others wait for it,
    then find the tables at ``revision``. (Python's sqlite3 would otherwise commit each CREATE on
    its own, and a second worker would find half the tables made.)"""
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # across workers and hosts
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(742318)")
        elif conn.dialect.name == "sqlite":  # waits up to the busy timeout for another migrator
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
