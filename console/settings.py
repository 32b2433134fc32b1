"""``[console]``: where the console keeps its record, how long, and how its users sign in.

Everything a hospital changes lives here (retention, the reverse proxy's identity header and
addresses, cookie policy), validated once at start-up like the core's sections.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import ValidationError, fields, validate

from cds_service.config import SectionSchema

AUTH_MODES = ("password", "proxy")


@dataclass(frozen=True)
class ConsoleSettings:
    enabled: bool = True
    database_url: str | None = None  # default: the service database (the feedback table's)
    retention_days: int = 365  # closed stays older than this are purged (0 = keep for ever)
    auth: str = "password"  # "password" (console users) | "proxy" (trusted identity header)
    proxy_user_header: str = "X-Remote-User"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    cookie_secure: bool = True
    spool_dir: str | None = None  # default: <home>/console-spool
    drain_interval_seconds: float = 0.2
    spool_fsync: bool = False  # True: survive power loss too (costs an fsync per hook call)
    timezone: str = "Asia/Shanghai"  # the hospital's clock: pages show times and weeks in it
    import_roots: tuple[str, ...] = ()  # folders `dip-cds audit` / `settle` outputs may be loaded from

    def spool_path(self, home: Path) -> Path:
        return Path(self.spool_dir) if self.spool_dir else Path(home) / "console-spool"

    def zone(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def roots(self, home: Path) -> tuple[Path, ...]:
        """Where outputs may be loaded from: the configured folders, else the data home."""
        return tuple(Path(r).resolve() for r in self.import_roots) or (Path(home).resolve(),)

    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.trusted_proxies)


def _network(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError(f"{value!r} is not an IP address or CIDR network") from None


def _zone(value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {value!r}") from None


_HEADER = validate.Regexp(r"^[A-Za-z0-9-]+$", error="must be an HTTP header name")


class ConsoleSettingsSchema(SectionSchema):
    """Validates ``[console]``; keys left out keep the dataclass defaults."""

    settings_class = ConsoleSettings

    enabled = fields.Boolean()
    database_url = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9+]*://", error="must be a SQLAlchemy URL like sqlite:///x.db"
        ),
    )
    retention_days = fields.Integer(validate=validate.Range(min=0, max=36500))
    auth = fields.String(validate=validate.OneOf(AUTH_MODES))
    proxy_user_header = fields.String(validate=_HEADER)
    trusted_proxies = fields.List(fields.String(validate=_network))
    session_idle_minutes = fields.Integer(validate=validate.Range(min=1, max=24 * 60))
    session_max_hours = fields.Integer(validate=validate.Range(min=1, max=24 * 7))
    cookie_secure = fields.Boolean()
    spool_dir = fields.String(allow_none=True, validate=validate.Length(min=1))
    drain_interval_seconds = fields.Float(validate=validate.Range(min=0.01, max=60))
    spool_fsync = fields.Boolean()
    timezone = fields.String(validate=_zone)
    import_roots = fields.List(fields.String(validate=validate.Length(min=1)))


def load_console_settings(raw: dict[str, Any] | None) -> ConsoleSettings:
    """``[console]`` as a mapping → settings; raises marshmallow ``ValidationError``."""
    return ConsoleSettingsSchema().load(raw or {})
