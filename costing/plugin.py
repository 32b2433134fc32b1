"""The costing domain's plug-in: the ``[costing]`` section and ``dip-cds data import-prices``."""

from __future__ import annotations

from cds_service.plugins import Plugin
from costing.cli import register
from costing.settings import CostingSchema

plugin = Plugin(name="costing", settings={"costing": CostingSchema}, cli=register)
