"""The stay's cost so far: its FHIR ChargeItems, else the hospital's HIS cost endpoint, else unknown.

Unknown stays ``None`` (never zero): the card then shows the payment standard only and says why.
"""

from __future__ import annotations

import logging

from cds_service.registry import HookRequest
from costing import CostSoFar, HisCostClient, HisCostError, PriceList, cost_so_far
from costing.settings import CostingSettings
from hooks.encounter_data import EncounterData

log = logging.getLogger("dip_cds.hooks")


def cost_of_stay(req: HookRequest, data: EncounterData, prices: PriceList) -> CostSoFar | None:
    """Cost so far of ``data``'s stay; a failing HIS endpoint becomes a note on the card."""
    items = data.charge_items
    found = cost_so_far(items, encounter_id=data.encounter_id, prices=prices) if items is not None else None
    if found is not None:
        return found
    config = req.settings.section("costing", CostingSettings).his
    if config is None:
        return None
    try:
        return HisCostClient(config).fetch(
            encounter_id=data.encounter_id, patient_id=req.patient_id, deadline=req.deadline
        )
    except HisCostError as exc:
        req.notes.append(f"HIS 费用接口不可用：{exc}")
        log.warning("HIS cost endpoint failed: %s", exc)
        return None
