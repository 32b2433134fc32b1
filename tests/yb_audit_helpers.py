"""Shared pieces of the 医保智能审核 tests: the evaluator's inputs, small hand-made rule workbooks,
the real rule library location, and the service served over real HTTP with an event recorder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from cds_service.plugins import Plugin, discover
from tests.demo_fhir_helpers import SHARED_DATA, serving
from tests.test_service_tables import workbook  # noqa: F401 - hand-made workbooks, re-exported
from yb_audit.model import Case, Line, Patient, Stay
from yb_audit.settings import AuditSettings
from yb_audit.store import load_sample

RULE_LIBRARY = SHARED_DATA / "rules" / "nhsa-rule-library"
SAMPLE = load_sample()
SETTINGS = AuditSettings()

# real codes of the library used by the tests (all in the built-in sample rule set)
APALUTAMIDE = "XL02BBA326A001010102180"  # 阿帕他胺片, 限男性 (B01-DSEX-0001)
CHILD_SYRUP = "ZA04CAE0023010100166"  # 儿童清肺口服液, 限儿童 (B01-DAGEG-0001)
NEWBORN_CARE = "001201000070000"  # 新生儿护理, 限新生儿 (B01-IAGEG-0014)
WORK_TRAINING = "003402000320000"  # 职业功能训练, 限定年龄 text rule (B08-2-IAGE-0001)
SCAR_CREAM = "ZH01AAB0066010100716"  # 疤痕止痒软化膏, 限工伤 (B03-DINS-0001)
FISH_OIL = "XB05BAU005B002010101415"  # ω-3鱼油脂肪乳注射液, 限住院 (B04-DSET-0002)
ANGONG = "ZA07AAA0061010100166"  # 安宫牛黄丸, 限急诊或住院 (B04-DSET-0004)
SHENFU = "ZA05CAC0029010102312"  # 参附注射液, 限二级及以上 (B05-DLVL-0002)
OZAGREL = "XB01AXA223B002010100156"  # 奥扎格雷钠注射液, 支付不超过 14 天 (B06-DDAYS-0002)
ICU_CARE = "001201000010000"  # 重症监护 (主项) …
ORAL_CARE = "001201000140100"  # … 含 一般专项护理(口腔护理) (从项), 单日 (B07-IDUP-0033)
COLD_PRESSOR = "003102070040000"  # 冷加压试验 含 动态血压监测, 同一小时 (B07-IDUP-0291)
AMBULATORY_BP = "003107010210000"
DELIVERY = "003314000020000"  # 单胎顺产接生 含 胎心监测, 6小时 (B07-IDUP-0788)
FETAL_MONITOR = "003112010260000"
MULTI_HEMATOMA = "003302010140000"  # 颅内多发血肿清除术 含 颅内血肿清除术, 单次就诊 (B07-IDUP-0393)
HEMATOMA = "003302010150000"
WARD_VISIT = "001102000050000"  # 住院诊查费, 每日 1 次 (B08-1-IFREQ-0002)
ECG_MONITOR = "003107010220000"  # 心电监测, 每日 24 小时 (B08-1-IFREQ-0039)
HBA1C = "002503020030000"  # 糖化血红蛋白测定, 15 天 1 次 (B08-4-ICYC-0002)
WEIGHT_TRAINING = "003402000210000"  # 减重支持系统训练, 支付不超过 30 天 (B08-3-ICRS-0004)
HEARING_TRAINING = "003402000350000"  # 儿童听力障碍语言训练, 1 年 + 每周 1 次 (B08-3-ICRS-0011)
APPENDECTOMY = "003310030220000"  # 阑尾切除术 } 胃肠手术组 (B02-IOPS-0001)
ADHESIOLYSIS = "003310030080000"  # 肠粘连松解术 }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def line(
    ref: str,
    code: str | None,
    when: str,
    *,
    qty: str | int = 1,
    price: str | None = "10.00",
    draft: bool = False,
    days: int = 1,
    stay: str | None = "s1",
    ref_price: str | None = None,
    seq: int = 0,
) -> Line:
    quantity = Decimal(str(qty))
    unit = Decimal(price) if price is not None else None
    return Line(
        ref=ref,
        code=code,
        subject=None,
        name=ref,
        at=at(when),
        quantity=quantity,
        unit_price=unit,
        amount=(unit * quantity).quantize(Decimal("0.01")) if unit is not None else None,
        days=days,
        draft=draft,
        stay_id=stay,
        reference_price=Decimal(ref_price) if ref_price is not None else None,
        seq=seq,
    )


def case(
    *lines: Line,
    sex: str | None = "男",
    birth: date | None = date(1980, 5, 1),
    encounter_type: str | None = "住院",
    insurance: str | None = "职工",
    level: int | None = 3,
    stays: dict[str, Stay] | None = None,
) -> Case:
    stay = Stay("s1", "p1", encounter_type, insurance, level)
    return Case(Patient(sex, birth), stay, tuple(lines), stays or {"s1": stay})


# ----------------------------------------------------------------------------- the service over HTTP

EVENTS: list[dict[str, Any]] = []
_events_lock = threading.Lock()


def _record(data: Any, payload: Any) -> None:
    with _events_lock:
        EVENTS.append(dict(payload))


RECORDER = Plugin(name="test_event_recorder", events={"assessment": _record})


def service_app(home: Path, **sections: Any):
    """The real service (every installed plugin) plus a recorder of ``assessment`` events."""
    plugins = [*discover(), RECORDER]
    settings = settings_from_mapping({"logging": {"level": "WARNING"}, **sections}, plugins=plugins)
    app = create_app(settings, home, plugins=plugins)
    problems = preload(app)
    assert problems == [], problems
    return app


@contextmanager
def served(home: Path, **sections: Any) -> Iterator[str]:
    with serving(service_app(home, **sections)) as url:
        yield url
