"""``dip-patient-view``: opening a chart shows the open stay's DIP status.

Prefetch: the patient, the encounter in context (when the client sends an encounterId) with its
diagnoses, procedures and charges, and ``openEncounters`` (the patient's in-progress encounters)
for clients such as the Sandbox that send no encounterId.
Handler contract: as in :mod:`hooks.order_sign`.
"""

from __future__ import annotations

from typing import Any

from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH, OPEN_ENCOUNTERS


@cds_service(
    id="dip-patient-view",
    hook="patient-view",
    title="DIP 在院患者结余概览 / DIP budget overview when opening a chart",
    description=(
        "打开病历时显示当前住院的 DIP 病种、已发生费用与剩余额度。"
        " Shows the current stay's DIP group, cost so far and remaining budget when a chart is opened."
    ),
    prefetch={**ENCOUNTER_PREFETCH, "openEncounters": OPEN_ENCOUNTERS},
    required_prefetch={"patient"},
)
def handle(req: HookRequest) -> list[dict[str, Any]]:
    """No cards yet: the DIP cards are built by the hook-services issue."""
    return []
