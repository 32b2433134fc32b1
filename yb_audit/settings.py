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
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

SECTION = "audit"
_LEVELS = {"一级": 1, "二级": 2, "三级": 3, "1": 1, "2": 2, "3": 3}


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


def _level(value: Any) -> int | None:
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
        return _level(value)


class AuditSchema(Schema):
    """Validates ``[audit]`` into :class:`AuditSettings` (unknown keys are errors)."""

    class Meta:
        unknown = RAISE

    child_age_limit = fields.Integer(load_default=18, validate=validate.Range(min=1, max=30))
    infant_age_limit = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))
    baby_age_limit = fields.Integer(load_default=1, validate=validate.Range(min=1, max=3))
    newborn_age_days = fields.Integer(load_default=28, validate=validate.Range(min=1, max=60))
    hospital_level = LevelField(load_default=None, allow_none=True)
    default_insurance = fields.String(
        load_default="基本医疗",
        validate=validate.OneOf(["基本医疗", "职工", "居民", "离休", "工伤", "生育", "自费"]),
    )
    secondary_operation_rate = fields.Decimal(
        load_default=Decimal("0.5"), validate=validate.Range(min=0, max=1), as_string=False
    )
    disabled_rules = fields.List(fields.String(validate=validate.Length(min=1, max=200)), load_default=list)
    group_cards_above = fields.Integer(load_default=3, validate=validate.Range(min=1, max=100))
    show_suspicious = fields.Boolean(load_default=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AuditSettings:
        data["disabled_rules"] = tuple(data["disabled_rules"])
        return AuditSettings(**data)


def audit_settings(settings: Any) -> AuditSettings:
    """The ``[audit]`` settings of the service settings (defaults when the section is absent)."""
    found = getattr(settings, SECTION, None) if settings is not None else None
    if isinstance(found, AuditSettings):
        return found
    section = getattr(settings, "section", None)
    if callable(section):
        try:
            found = section(SECTION)
        except (KeyError, LookupError):
            found = None
        if isinstance(found, AuditSettings):
            return found
    return AuditSettings()


def load_audit_settings(raw: Mapping[str, Any] | None) -> AuditSettings:
    """Validate a ``[audit]`` table (raises ``marshmallow.ValidationError``)."""
    return AuditSchema().load(dict(raw or {}))
