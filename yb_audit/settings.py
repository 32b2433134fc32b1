"""``[audit]``: the settings of 医保智能审核 a hospital changes (config.toml / ``DIP_CDS_AUDIT__*``).

```toml
[audit]
child_age_limit = 18            # 儿童 = 未满 18 周岁 (stated on the card)
infant_age_limit = 3            # 婴幼儿 = 未满 3 周岁
baby_age_limit = 1              # 婴儿 = 未满 1 周岁
newborn_age_days = 28           # 新生儿 = 出生后未满 28 天
hospital_level = "三级"          # this hospital's level (else [dip] hospital_level)
default_insurance = "基本医疗"    # when the stay's Coverage says nothing
secondary_operation_rate = "0.5" # 第二及以后的手术按主手术价格的该比例收费
disabled_rules = []             # rule ids, kind keys (e.g. "course") or rule-set names not to apply
group_cards_above = 3           # more findings than this → one grouped card per severity
show_suspicious = true          # show 可疑 findings (info cards) on hooks
national_api_keys = []          # when set: /yb/3101 and /yb/3102 need "Authorization: Bearer <key>"
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, validate

from cds_service.config import SectionSchema

SECTION = "audit"
_LEVELS = {"一级": 1, "二级": 2, "三级": 3, "1": 1, "2": 2, "3": 3}
INSURANCE_VALUES = ("基本医疗", "职工", "居民", "离休", "工伤", "生育", "自费")


@dataclass(frozen=True)
class AuditSettings:
    child_age_limit: int = 18
    infant_age_limit: int = 3
    baby_age_limit: int = 1
    newborn_age_days: int = 28
    hospital_level: int | None = None
    default_insurance: str = "基本医疗"
    secondary_operation_rate: Decimal = Decimal("0.5")
    disabled_rules: tuple[str, ...] = ()
    group_cards_above: int = 3
    show_suspicious: bool = True
    national_api_keys: tuple[str, ...] = field(default=(), repr=False)  # secrets: never in logs


def parse_level(value: Any) -> int | None:
    """一级 / 二级 / 三级 (or 1 / 2 / 3, 三级甲等 …) → 1 / 2 / 3; raises ``ValidationError``."""
    if value is None:
        return None
    text = str(value).strip()
    level = _LEVELS.get(text) or _LEVELS.get(text[:2])
    if level is None:
        raise ValidationError("must be 一级, 二级 or 三级 (or 1, 2, 3)")
    return level


class LevelField(fields.Field):
    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int | None:
        return parse_level(value)


class AuditSchema(SectionSchema):
    """Validates ``[audit]`` into :class:`AuditSettings` (unknown keys are errors)."""

    settings_class = AuditSettings
    child_age_limit = fields.Integer(validate=validate.Range(min=1, max=30))
    infant_age_limit = fields.Integer(validate=validate.Range(min=1, max=10))
    baby_age_limit = fields.Integer(validate=validate.Range(min=1, max=3))
    newborn_age_days = fields.Integer(validate=validate.Range(min=1, max=60))
    hospital_level = LevelField(allow_none=True)
    default_insurance = fields.String(validate=validate.OneOf(INSURANCE_VALUES))
    secondary_operation_rate = fields.Decimal(validate=validate.Range(min=0, max=1))
    disabled_rules = fields.List(fields.String(validate=validate.Length(min=1, max=200)))
    group_cards_above = fields.Integer(validate=validate.Range(min=1, max=100))
    show_suspicious = fields.Boolean()
    national_api_keys = fields.List(fields.String(validate=validate.Length(min=16, max=200)))


def audit_settings(settings: Any) -> AuditSettings:
    """The ``[audit]`` settings of the service settings (defaults when no plugin declared it)."""
    section = getattr(settings, "section", None)
    if callable(section):
        try:
            found = section(SECTION)
        except KeyError:
            return AuditSettings()
        if isinstance(found, AuditSettings):
            return found
    return AuditSettings()
