"""Service configuration: a TOML file plus ``DIP_CDS_<SECTION>__<KEY>`` environment overrides.

Everything a hospital or region changes (JWT issuers, timeouts, database URL, public URL behind a
proxy) lives here, validated once at start-up so a typo fails loudly with one message per bad
setting instead of surfacing as a strange runtime error hours later.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from browser_plugin.settings import PluginSettings, PluginSettingsSchema
from costing.his import PLACEHOLDERS as HIS_PLACEHOLDERS
from costing.his import HisCostConfig
from dip_engine.pricing import insurance_key
from dip_engine.rules import RulesError, check_region_code

ENV_CONFIG = "DIP_CDS_CONFIG"
ENV_PREFIX = "DIP_CDS_"
SECTIONS = ("server", "security", "prefetch", "feedback", "logging", "metrics", "dip", "costing", "plugin")

SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
# The CDS Hooks Sandbox's published EC P-384 signing key (public part only). Source: the HL7
# cds-hooks/sandbox repository, keys/jwk-keypair.json (commit 33477b92e15e79d802e78ff7d492003b544f592c),
# the key the Sandbox's src/retrieve-data-helpers/jwt-generator.js signs with and serves at SANDBOX_JKU.
# Configured rather than fetched so a hospital network without internet access can still trust it.
SANDBOX_JWK: dict[str, str] = {
    "kty": "EC",
    "crv": "P-384",
    "use": "sig",
    "alg": "ES384",
    "kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
    "x": "dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB",
    "y": "Sm3mLE-n1zYNla_aiE3cb3nZsL51RbC7ysw3q8aJLxGm-hx79RPMYpITDjp7kgzy",
}


class ConfigError(ValueError):
    """Invalid configuration; ``problems`` holds one human-readable line per bad setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid dip-cds configuration:\n  " + "\n  ".join(problems))


# ----------------------------------------------------------------------------- settings objects


@dataclass(frozen=True)
class IssuerSettings:
    """One trusted CDS client (EHR): its ``iss``, allowed ``jku`` URLs and where its keys come from."""

    iss: str
    jku: tuple[str, ...] = ()
    jwks: tuple[dict[str, Any], ...] = ()  # inline public JWKs
    jwks_url: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class ServerSettings:
    public_base_url: str | None = None  # e.g. https://cds.hospital.cn/dip ; used for JWT ``aud``
    max_body_bytes: int = 5 * 1024 * 1024
    preload_data: bool = True


@dataclass(frozen=True)
class SecuritySettings:
    jwt: str = "off"  # "off" | "required"
    trust_sandbox: bool = False
    issuers: tuple[IssuerSettings, ...] = ()
    redis_url: str | None = None
    leeway_seconds: int = 30
    max_token_lifetime_seconds: int = 3600
    jwks_cache_seconds: int = 3600
    jwks_refresh_min_interval_seconds: float = 30.0
    jwks_fetch_timeout_seconds: float = 2.0

    def trusted_issuers(self) -> dict[str, IssuerSettings]:
        issuers = {i.iss: i for i in self.issuers}
        if self.trust_sandbox and SANDBOX_ISSUER not in issuers:
            issuers[SANDBOX_ISSUER] = IssuerSettings(
                iss=SANDBOX_ISSUER, jku=(SANDBOX_JKU,), jwks=(dict(SANDBOX_JWK),)
            )
        return issuers


@dataclass(frozen=True)
class PrefetchSettings:
    connect_timeout_seconds: float = 0.15
    read_timeout_seconds: float = 0.35
    deadline_seconds: float = 0.4
    retries: int = 1
    retry_backoff_seconds: float = 0.03
    max_concurrency: int = 8
    allowed_fhir_servers: tuple[str, ...] = ()  # URL prefixes; empty = any (dev only)


@dataclass(frozen=True)
class FeedbackSettings:
    database_url: str | None = None  # default sqlite:///<home>/feedback.sqlite


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    json: bool = True


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = True


@dataclass(frozen=True)
class DipSettings:
    """``[dip]``: this hospital's defaults for grouping and pricing (None = not configured).

    ``region`` picks the catalog when a request does not name one (extension ``dip-cds-region``);
    the others feed the hospital coefficient and the point value (职工 / 居民).
    """

    region: str | None = None
    hospital_id: str | None = None
    hospital_level: str | None = None
    insurance_type: str | None = None


@dataclass(frozen=True)
class CostingSettings:
    """``[costing]``: where the cost so far comes from when billing is not FHIR ChargeItems.

    ``his`` is the validated ``[costing.his]`` table as a mapping (None when absent), in
    the shape ``costing.his.HisCostConfig.from_settings`` takes, so the service does not duplicate
    that class. Hidden from ``repr`` because its headers usually carry an API key.
    """

    his: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    prefetch: PrefetchSettings = field(default_factory=PrefetchSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    dip: DipSettings = field(default_factory=DipSettings)
    costing: CostingSettings = field(default_factory=CostingSettings)
    plugin: PluginSettings = field(default_factory=PluginSettings)
    source: str = "defaults"  # where the settings came from (for logs / readyz)


# ----------------------------------------------------------------------------- validation schemas

_http_url = validate.URL(schemes={"http", "https"}, require_tld=False)


class _Section(Schema):
    class Meta:
        unknown = RAISE


class _IssuerSchema(_Section):
    iss = fields.String(required=True, validate=validate.Length(min=1))
    jku = fields.List(fields.String(validate=_http_url), load_default=list)
    jwks = fields.Raw(load_default=None)
    jwks_url = fields.String(load_default=None, allow_none=True, validate=_http_url)
    tenant = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _keys(self, data: dict[str, Any], **_: Any) -> None:
        jwks = data.get("jwks")
        if jwks is not None:
            keys = jwks.get("keys") if isinstance(jwks, dict) else jwks
            if not isinstance(keys, list) or not all(isinstance(k, dict) and k.get("kty") for k in keys):
                raise ValidationError("must be a JWKS ({keys = [...]}) or a list of JWKs with kty", "jwks")
        if not jwks and not data.get("jwks_url") and not data.get("jku"):
            raise ValidationError("an issuer needs inline jwks, a jwks_url or an allowed jku", "iss")


class _ServerSchema(_Section):
    public_base_url = fields.String(load_default=None, allow_none=True, validate=_http_url)
    max_body_bytes = fields.Integer(load_default=5 * 1024 * 1024, validate=validate.Range(min=1024))
    preload_data = fields.Boolean(load_default=True)


class _SecuritySchema(_Section):
    jwt = fields.String(load_default="off", validate=validate.OneOf(["off", "required"]))
    trust_sandbox = fields.Boolean(load_default=False)
    issuers = fields.List(fields.Nested(_IssuerSchema), load_default=list)
    redis_url = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(
            r"^(redis|rediss|unix)://", error="must start with redis://, rediss:// or unix://"
        ),
    )
    leeway_seconds = fields.Integer(load_default=30, validate=validate.Range(min=0, max=600))
    max_token_lifetime_seconds = fields.Integer(load_default=3600, validate=validate.Range(min=10))
    jwks_cache_seconds = fields.Integer(load_default=3600, validate=validate.Range(min=0))
    jwks_refresh_min_interval_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    jwks_fetch_timeout_seconds = fields.Float(load_default=2.0, validate=validate.Range(min=0.05, max=30))


class _PrefetchSchema(_Section):
    connect_timeout_seconds = fields.Float(load_default=0.15, validate=validate.Range(min=0.01, max=30))
    read_timeout_seconds = fields.Float(load_default=0.35, validate=validate.Range(min=0.01, max=60))
    deadline_seconds = fields.Float(load_default=0.4, validate=validate.Range(min=0.02, max=60))
    retries = fields.Integer(load_default=1, validate=validate.Range(min=0, max=5))
    retry_backoff_seconds = fields.Float(load_default=0.03, validate=validate.Range(min=0, max=5))
    max_concurrency = fields.Integer(load_default=8, validate=validate.Range(min=1, max=64))
    allowed_fhir_servers = fields.List(fields.String(validate=_http_url), load_default=list)


class _FeedbackSchema(_Section):
    database_url = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9+]*://", error="must be a SQLAlchemy URL like sqlite:///x.db"
        ),
    )


class _LoggingSchema(_Section):
    level = fields.String(
        load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    )
    json = fields.Boolean(load_default=True)


class _MetricsSchema(_Section):
    enabled = fields.Boolean(load_default=True)


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


class _DipSchema(_Section):
    region = fields.String(load_default=None, allow_none=True, validate=_region)
    hospital_id = fields.String(load_default=None, allow_none=True, validate=_short_text)
    hospital_level = fields.String(load_default=None, allow_none=True, validate=_short_text)
    insurance_type = fields.String(load_default=None, allow_none=True, validate=_insurance_type)


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token


def _url_template(value: str) -> None:
    """The checks ``HisCostConfig`` makes, run at start-up so a bad template is not found per request."""
    if not value.startswith(("http://", "https://")):
        raise ValidationError("must be an http(s) URL")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:  # unbalanced braces
        raise ValidationError(f"is not a valid template ({exc})") from None
    unknown = names - set(HIS_PLACEHOLDERS)
    if unknown:
        allowed = ", ".join(f"{{{p}}}" for p in HIS_PLACEHOLDERS)
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


class _HisSchema(_Section):
    url_template = fields.String(required=True, validate=_url_template)
    timeout_seconds = fields.Float(
        load_default=2.0, validate=validate.Range(min=0, max=30, min_inclusive=False)
    )
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict, validate=_headers)


class _CostingSchema(_Section):
    his = fields.Nested(_HisSchema, load_default=None)


_SCHEMAS: dict[str, type[Schema]] = {
    "server": _ServerSchema,
    "security": _SecuritySchema,
    "prefetch": _PrefetchSchema,
    "feedback": _FeedbackSchema,
    "logging": _LoggingSchema,
    "metrics": _MetricsSchema,
    "dip": _DipSchema,
    "costing": _CostingSchema,
    "plugin": PluginSettingsSchema,
}


def _flatten(prefix: str, messages: Any) -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out += _flatten(f"{prefix}.{key}" if prefix else str(key), value)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(prefix, m)]
    return [f"{prefix}: {messages}"]


# ----------------------------------------------------------------------------- loading


def _env_value(raw: str) -> Any:
    """Parse an env value as a TOML literal (numbers, booleans, arrays, inline tables), else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, dict[str, Any]]:
    """``DIP_CDS_SECURITY__JWT=required`` → ``{"security": {"jwt": "required"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        out.setdefault(section.lower(), {})[key.lower()] = _env_value(raw)
    return out


def config_file_path(explicit: str | os.PathLike[str] | None, home: Path | None) -> Path | None:
    """``--config``, else env ``DIP_CDS_CONFIG``, else ``<home>/config.toml`` when it exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    if home is not None and (Path(home) / "config.toml").is_file():
        return Path(home) / "config.toml"
    return None


def settings_from_mapping(raw: dict[str, Any], source: str = "mapping") -> Settings:
    """Validate a nested mapping (TOML shape) and build :class:`Settings`; raises :class:`ConfigError`."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(["configuration must be a table of sections"])
    for section in raw:
        if section not in _SCHEMAS:
            problems.append(f"{section}: unknown section (known: {', '.join(SECTIONS)})")
    loaded: dict[str, dict[str, Any]] = {}
    for section, schema in _SCHEMAS.items():
        value = raw.get(section, {})
        if not isinstance(value, dict):
            problems.append(f"{section}: must be a table")
            continue
        try:
            loaded[section] = schema().load(value)
        except ValidationError as exc:
            problems += _flatten(section, exc.messages)
    if problems:
        raise ConfigError(problems)

    sec = loaded["security"]
    issuers = []
    for item in sec.pop("issuers"):
        jwks = item.get("jwks") or ()
        keys = jwks.get("keys") if isinstance(jwks, dict) else jwks
        issuers.append(
            IssuerSettings(
                iss=item["iss"],
                jku=tuple(item["jku"]),
                jwks=tuple(dict(k) for k in keys or ()),
                jwks_url=item.get("jwks_url"),
                tenant=item.get("tenant"),
            )
        )
    pre = loaded["prefetch"]
    pre["allowed_fhir_servers"] = tuple(pre["allowed_fhir_servers"])
    his = loaded["costing"]["his"]
    if his is not None:
        his = {**his, "headers": dict(his["headers"])}
        try:  # the consumer's own checks, so a handler never meets a ValueError from a loaded config
            HisCostConfig.from_settings(his)
        except ValueError as exc:
            raise ConfigError([f"costing.his: {exc}"]) from None
    settings = Settings(
        server=ServerSettings(**loaded["server"]),
        security=SecuritySettings(issuers=tuple(issuers), **sec),
        prefetch=PrefetchSettings(**pre),
        feedback=FeedbackSettings(**loaded["feedback"]),
        logging=LoggingSettings(**loaded["logging"]),
        metrics=MetricsSettings(**loaded["metrics"]),
        dip=DipSettings(**loaded["dip"]),
        costing=CostingSettings(his=his),
        plugin=loaded["plugin"],
        source=source,
    )
    if settings.security.jwt == "required" and not settings.security.trusted_issuers():
        raise ConfigError(
            ["security.jwt: 'required' needs at least one [[security.issuers]] or trust_sandbox = true"]
        )
    return settings


def _merge(base: dict[str, Any], over: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in over.items():
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target.update(values)
    return merged


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    home: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply env overrides, validate. Raises :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    path = config_file_path(config_file, home)
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file not found: {path}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
        source = str(path)
    overrides = env_overrides(environ)
    if overrides:
        source += " + environment"
    return settings_from_mapping(_merge(raw, overrides), source=source)
