"""``[dip]`` in config.toml: this hospital's defaults for grouping and pricing."""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError, fields, validate

from cds_service.config import SectionSchema
from dip_engine.pricing import insurance_key
from dip_engine.rules import RulesError, check_region_code


@dataclass(frozen=True)
class DipSettings:
    """``region`` picks the catalog when a request does not name one (extension ``dip-cds-region``);
    the others feed the hospital coefficient and the point value (职工 / 居民). None = not configured."""

    region: str | None = None
    hospital_id: str | None = None
    hospital_level: str | None = None
    insurance_type: str | None = None


def _region(value: str) -> None:
    try:
        check_region_code(value)
    except RulesError as exc:
        raise ValidationError(str(exc)) from None


def _insurance_type(value: str) -> None:
    if insurance_key(value) not in ("职工", "居民"):
        raise ValidationError(
            "must name 职工 or 居民 insurance (职工, 城镇职工, 310, 居民, 城乡居民, 390, …)"
        )


_short_text = validate.Length(min=1, max=64)


class DipSchema(SectionSchema):
    settings_class = DipSettings
    region = fields.String(allow_none=True, validate=_region)
    hospital_id = fields.String(allow_none=True, validate=_short_text)
    hospital_level = fields.String(allow_none=True, validate=_short_text)
    insurance_type = fields.String(allow_none=True, validate=_insurance_type)
