"""``[costing]`` in config.toml: where the cost so far comes from when billing is not FHIR ChargeItems.

``[costing.his]`` loads straight into :class:`costing.his.HisCostConfig`, checked at start-up so a
bad template or header is named once instead of failing every request.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate

from cds_service.config import SectionSchema
from costing.his import PLACEHOLDERS, HisCostConfig


@dataclass(frozen=True)
class CostingSettings:
    his: HisCostConfig | None = field(default=None, repr=False)  # its headers usually carry an API key


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token


def _url_template(value: str) -> None:
    """The checks ``HisCostConfig`` makes, with a message naming the field."""
    if not value.startswith(("http://", "https://")):
        raise ValidationError("must be an http(s) URL")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:  # unbalanced braces
        raise ValidationError(f"is not a valid template ({exc})") from None
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        raise ValidationError(f"unknown placeholders {sorted(unknown)} (allowed: {allowed})")
    if not names:
        raise ValidationError("needs {encounter_id} or {patient_id}")


def _headers(value: dict[str, str]) -> None:
    # header values are secrets (API keys): name the bad header, never echo its value
    for name, header_value in value.items():
        if not _HEADER_NAME.match(name):
            raise ValidationError(f"{name!r} is not a valid HTTP header name")
        if "\r" in header_value or "\n" in header_value:
            raise ValidationError(f"the value of {name!r} contains a line break")


class HisSchema(SectionSchema):
    settings_class = HisCostConfig
    url_template = fields.String(required=True, validate=_url_template)
    timeout_seconds = fields.Float(validate=validate.Range(min=0, max=30, min_inclusive=False))
    headers = fields.Dict(keys=fields.String(), values=fields.String(), validate=_headers)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> HisCostConfig:
        try:  # the consumer's own checks, so a handler never meets a ValueError from a loaded config
            return HisCostConfig(**data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class CostingSchema(SectionSchema):
    settings_class = CostingSettings
    his = fields.Nested(HisSchema, allow_none=True)
