"""What every DIP hook service does before its card: pick the catalog, get the stay's FHIR data,
and answer nothing unless it is an inpatient stay — DIP pays inpatient stays only. When the DIP
answer cannot be computed at all, one warning card says why."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cards import card, escape_markdown, source
from cds_service.registry import HookRequest
from hooks.context import DipContext, NoCatalog, dip_context
from hooks.encounter_data import EncounterData, encounter_data, is_inpatient

CATALOG_ADVICE = "请联系信息科导入该统筹区的 DIP 目录或检查 [dip] region 配置"
FHIR_ADVICE = "请检查 EMR 的 FHIR 服务是否可用"

StayHandler = Callable[[HookRequest, DipContext, EncounterData], list[dict[str, Any]]]


def problem_card(message: str, advice: str) -> dict[str, Any]:
    """The one card a request gets when the DIP answer cannot be computed at all, saying why."""
    return card(
        summary=f"DIP 提示不可用：{message}",
        detail=f"**DIP 提示不可用**：{escape_markdown(message)}。{advice}。",
        indicator="warning",
        source=source("DIP"),
    )


def for_inpatient_stay(*, find_open: bool) -> Callable[[StayHandler], Callable[[HookRequest], list]]:
    """Wrap a card builder ``fn(req, ctx, data)``: the catalog (a warning card when the region has
    none), the stay's data (``find_open``: look up the open stay when no encounterId is given; a
    warning card when the FHIR server cannot tell), and no card for a stay that is not inpatient."""

    def wrap(fn: StayHandler) -> Callable[[HookRequest], list]:
        @functools.wraps(fn)
        def handler(req: HookRequest) -> list[dict[str, Any]]:
            try:
                ctx = dip_context(req)
            except NoCatalog as exc:
                return [problem_card(str(exc), CATALOG_ADVICE)]
            data = encounter_data(req, find_open=find_open)
            if data.encounter is None and data.problem:
                return [problem_card(f"未能从 FHIR 服务器读取患者的在院就诊（{data.problem}）", FHIR_ADVICE)]
            if not is_inpatient(data.encounter):
                return []
            return fn(req, ctx, data)

        return handler

    return wrap
