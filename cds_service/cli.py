"""The ``dip-cds`` command line.

Each domain package contributes its own commands through a ``register(cli)`` function in its
``cli`` module, so this file only wires them together and owns the global ``--home`` option.
"""

from __future__ import annotations

import importlib

import click

from cds_service.home import resolve_home

# Domain modules that add commands; each exposes ``register(main: click.Group) -> None``.
COMMAND_MODULES = (
    "cds_service.serve_cli",
    "terminology.cli",
    "dip_engine.cli",
    "hooks.cli",
    "settlement.cli",
    "costing.cli",
    "browser_plugin.cli",
)


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


def home_from(ctx: click.Context):
    """The resolved data home for a command (created on first use)."""
    return resolve_home(ctx.find_root().obj.get("home_option"))


@main.group("data")
def data_group() -> None:
    """Import reference data (terminology, catalogs, procedure types, prices) into the data home."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a domain not built yet must not break the others
            if exc.name == name:
                continue
            raise
        module.register(main)


_register_all()
