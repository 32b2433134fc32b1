"""Every domain's commands are wired into ``dip-cds`` through ``COMMAND_MODULES`` (one place)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cds_service.cli import COMMAND_MODULES, main


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


def test_each_command_module_registers_itself():
    # costing registers its own import-prices (it once hid inside hooks.cli)
    assert "costing.cli" in COMMAND_MODULES
    assert "import-prices" in main.commands["data"].commands  # type: ignore[attr-defined]
