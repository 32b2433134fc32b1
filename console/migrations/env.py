"""Alembic environment of the console's tables (run by :func:`console.db.migrate`).

The console shares the service database with the core's feedback table (and maybe other domains),
so it keeps its own version table and only ever touches ``console_*`` tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from console.db import VERSION_TABLE
from console.models import metadata


def _include(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001 - alembic's signature
    return type_ != "table" or bool(name and name.startswith("console_"))


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    # the alembic command line: ``alembic -x url=...``
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("alembic: give the database as `-x url=...` (or sqlalchemy.url in alembic.ini)")
    with create_engine(url).begin() as conn:
        _configure(conn)


if hasattr(
    context, "config"
):  # run by Alembic; merely importing the module (e.g. a package walk) does nothing
    run()
