"""``[plugin]``: the browser plugin's configuration (HIS origins, services per hook, page tokens).

Everything a hospital changes for the panel lives here, validated at start-up with the rest of the
service configuration (env overrides ``DIP_CDS_PLUGIN__<KEY>`` work as for every section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

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
    services: dict[str, tuple[str, ...]] = field(default_factory=dict)
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


class PluginSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=True)
    allowed_origins = fields.List(fields.String(validate=_origin), load_default=list)
    services = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict, validate=_services)
    token_ttl_seconds = fields.Integer(load_default=600, validate=validate.Range(min=30, max=3600))
    token_secret = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=32))

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> PluginSettings:
        return PluginSettings(
            enabled=data["enabled"],
            allowed_origins=tuple(o.rstrip("/") for o in data["allowed_origins"]),
            services={hook: tuple(ids) for hook, ids in data["services"].items()},
            token_ttl_seconds=data["token_ttl_seconds"],
            token_secret=data["token_secret"],
        )
