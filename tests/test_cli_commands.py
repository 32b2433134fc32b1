"""Every domain's commands reach ``dip-cds`` through its plugin (entry point ``dip_cds.plugins``)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cds_service.cli import main
from cds_service.plugins import discover


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ((), ("code", "data", "demo-fhir", "group", "serve", "settle", "synth")),
        (("data",), ("import-terminology", "import-catalog", "import-optypes", "import-prices")),
        (("code",), ("lookup", "search", "map")),
    ],
)
def test_help_lists_every_command(group, commands):
    result = CliRunner().invoke(main, [*group, "--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert set(commands) <= listed, set(commands) - listed


def test_each_domain_registers_its_own_commands_through_its_plugin():
    plugins = {p.name: p for p in discover()}
    assert {"costing", "dip_engine", "hooks", "settlement", "terminology"} <= set(plugins)
    # costing's plugin alone adds import-prices to a bare group (it once hid inside hooks.cli)
    bare = click.Group(commands=[click.Group("data")])
    plugins["costing"].cli(bare)  # type: ignore[misc]
    assert set(bare.commands["data"].commands) == {"import-prices"}  # type: ignore[attr-defined]
