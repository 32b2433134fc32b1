"""The ``dip-cds`` command line.

The core owns the group, the global ``--home`` option, the ``data`` subgroup and ``serve``; every
other command comes from an installed plugin's ``cli`` (see :mod:`cds_service.plugins`).
"""

from __future__ import annotations

from pathlib import Path

import click

from cds_service import serve_cli
from cds_service.home import resolve_home
from cds_service.plugins import PluginSet, discover


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="DIP_CDS_HOME",
    help="Data store directory (default: env DIP_CDS_HOME, else the user's data dir).",
)
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """dip-cds: DIP (按病种分值付费) clinical decision support as a CDS Hooks 2.0 service."""
    ctx.ensure_object(dict)
    ctx.obj["home_option"] = home


def home_from(ctx: click.Context) -> Path:
    """The resolved data home for a command (created on first use)."""
    return resolve_home(ctx.find_root().obj.get("home_option"))


@main.group("data")
def data_group() -> None:
    """Import reference data (terminology, catalogs, procedure types, prices) into the data home."""


serve_cli.register(main)
PluginSet(discover()).register_cli(main)
