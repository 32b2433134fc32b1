"""The settlement domain's plug-in: ``dip-cds settle`` and ``dip-cds synth``."""

from __future__ import annotations

from cds_service.plugins import Plugin
from settlement.cli import register

plugin = Plugin(name="settlement", cli=register)
