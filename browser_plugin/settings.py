"""``[plugin]`` in config.toml: the browser plugin (HIS origins, services per hook, page tokens).

Validated at start-up with the rest of the configuration; env overrides ``DIP_CDS_PLUGIN__<KEY>``
work as for every section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, post_load, validate

from cds_service.config import SectionSchema

HOOKS = ("patient-view", "order-select", "order-sign", "encounter-start", "encounter-discharge")


@dataclass(frozen=True)
class PluginSettings:
    """``allowed_origins``: HIS page origins a browser may call ``/plugin/v1`` from (CORS); empty =
    none, so an unconfigured service never answers a foreign page. ``services``: hook → service ids
    one check runs (default: every service answering the hook). Page tokens (``POST /plugin/v1/token``)
    live ``token_ttl_seconds`` and are signed with ``token_secret`` (default: a key generated in the
    data home; set it when several machines serve the same hospital)."""

    enabled: bool = True
    allowed_origins: tuple[str, ...] = ()
    services: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    token_ttl_seconds: int = 600
    token_secret: str | None = field(default=None, repr=False)


def _origin(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{value!r} is not an origin like https://his.hospital.cn")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValidationError(f"{value!r}: an origin has no path, query or user (https://host[:port])")


def _services(value: dict[str, Any]) -> None:
    for hook, ids in value.items():
        if hook not in HOOKS:
            raise ValidationError(f"unknown hook {hook!r} (known: {', '.join(HOOKS)})")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValidationError(f"{hook}: a non-empty list of service ids")


class PluginSettingsSchema(SectionSchema):
    settings_class = PluginSettings
    enabled = fields.Boolean()
    allowed_origins = fields.List(fields.String(validate=_origin))
    services = fields.Dict(keys=fields.String(), values=fields.Raw(), validate=_services)
    token_ttl_seconds = fields.Integer(validate=validate.Range(min=30, max=3600))
    token_secret = fields.String(allow_none=True, validate=validate.Length(min=32))

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> Any:
        if "allowed_origins" in data:
            data["allowed_origins"] = [o.rstrip("/") for o in data["allowed_origins"]]
        if "services" in data:
            data["services"] = {hook: tuple(ids) for hook, ids in data["services"].items()}
        return super()._build(data, **kwargs)
