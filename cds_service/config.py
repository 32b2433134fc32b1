"""Service configuration: a TOML file plus ``DIP_CDS_<SECTION>__<KEY>`` environment overrides.

Everything a hospital or region changes (JWT issuers, timeouts, database URL, public URL behind a
proxy) lives here, validated once at start-up so a typo fails loudly with one message per bad
setting instead of surfacing as a strange runtime error hours later.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from cds_service.errors import flatten_messages

if TYPE_CHECKING:
    from cds_service.plugins import Plugin

ENV_CONFIG = "DIP_CDS_CONFIG"
ENV_PREFIX = "DIP_CDS_"

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


# ----------------------------------------------------------------------------- sections


class SectionSchema(Schema):
    """One configuration section: unknown keys are errors, and a load builds ``settings_class``.

    The settings dataclass holds the only defaults: a schema field has no ``load_default``, so a
    key left out of the file keeps the dataclass's default. Lists become tuples (frozen settings).
    Domains subclass this for the sections they declare in their :class:`~cds_service.plugins.Plugin`.
    """

    settings_class: ClassVar[type]

    class Meta:
        unknown = RAISE

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Any:
        return self.settings_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class IssuerSettings:
    """One trusted CDS client (EHR): its ``iss``, allowed ``jku`` URLs and where its keys come from."""

    iss: str
    jku: tuple[str, ...] = ()
    jwks: tuple[dict[str, Any], ...] = ()  # inline public JWKs
    jwks_url: str | None = None
    tenant: str | None = None
    # the FHIR servers this issuer's EHR may name in ``fhirServer`` (URL prefixes, matched by scheme,
    # host, port and path); empty: ``prefetch.allowed_fhir_servers``, else loopback only
    fhir_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    public_base_url: str | None = None  # e.g. https://cds.hospital.cn/dip ; used for JWT ``aud``
    max_body_bytes: int = 5 * 1024 * 1024
    body_timeout_seconds: float = 10.0  # a request body must arrive within this (slow clients)
    max_concurrent_requests: int = 1  # per worker process: requests with a body inside the app at once
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
    # FHIR servers any caller may name (URL prefixes: scheme, host, port, path); empty = loopback
    # only. With JWT, an issuer's own ``fhir_servers`` take precedence.
    allowed_fhir_servers: tuple[str, ...] = ()


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


_http_url = validate.URL(schemes={"http", "https"}, require_tld=False)


def _server_url(value: str) -> None:
    """An allowlist entry: the parse every outbound call uses (no user info, no query, no dot segments)."""
    from cds_service.outbound import UrlError, UrlRule

    try:
        UrlRule.parse(value)
    except UrlError as exc:
        raise ValidationError(f"{exc}") from None


class _IssuerSchema(SectionSchema):
    settings_class = IssuerSettings
    iss = fields.String(required=True, validate=validate.Length(min=1))
    jku = fields.List(fields.String(validate=_http_url))
    jwks = fields.Raw()
    jwks_url = fields.String(allow_none=True, validate=_http_url)
    tenant = fields.String(allow_none=True)
    fhir_servers = fields.List(fields.String(validate=_server_url))

    @validates_schema
    def _keys(self, data: dict[str, Any], **_: Any) -> None:
        jwks = data.get("jwks")
        if jwks is not None:
            keys = jwks.get("keys") if isinstance(jwks, dict) else jwks
            if not isinstance(keys, list) or not all(isinstance(k, dict) and k.get("kty") for k in keys):
                raise ValidationError("must be a JWKS ({keys = [...]}) or a list of JWKs with kty", "jwks")
        if not jwks and not data.get("jwks_url") and not data.get("jku"):
            raise ValidationError("an issuer needs inline jwks, a jwks_url or an allowed jku", "iss")

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> IssuerSettings:
        jwks = data.get("jwks") or ()
        keys = jwks.get("keys") if isinstance(jwks, dict) else jwks
        return IssuerSettings(
            iss=data["iss"],
            jku=tuple(data.get("jku", ())),
            jwks=tuple(dict(k) for k in keys or ()),
            jwks_url=data.get("jwks_url"),
            tenant=data.get("tenant"),
            fhir_servers=tuple(data.get("fhir_servers", ())),
        )


class _ServerSchema(SectionSchema):
    settings_class = ServerSettings
    public_base_url = fields.String(allow_none=True, validate=_http_url)
    max_body_bytes = fields.Integer(validate=validate.Range(min=1024))
    body_timeout_seconds = fields.Float(validate=validate.Range(min=0.5, max=300))
    max_concurrent_requests = fields.Integer(validate=validate.Range(min=1, max=1000))
    preload_data = fields.Boolean()


class _SecuritySchema(SectionSchema):
    settings_class = SecuritySettings
    jwt = fields.String(validate=validate.OneOf(["off", "required"]))
    trust_sandbox = fields.Boolean()
    issuers = fields.List(fields.Nested(_IssuerSchema))
    redis_url = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^(redis|rediss|unix)://", error="must start with redis://, rediss:// or unix://"
        ),
    )
    leeway_seconds = fields.Integer(validate=validate.Range(min=0, max=600))
    max_token_lifetime_seconds = fields.Integer(validate=validate.Range(min=10))
    jwks_cache_seconds = fields.Integer(validate=validate.Range(min=0))
    jwks_refresh_min_interval_seconds = fields.Float(validate=validate.Range(min=0))
    jwks_fetch_timeout_seconds = fields.Float(validate=validate.Range(min=0.05, max=30))

    @validates_schema(skip_on_field_errors=True)
    def _issuers_when_required(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("jwt") == "required" and not data.get("issuers") and not data.get("trust_sandbox"):
            raise ValidationError(
                "'required' needs at least one [[security.issuers]] or trust_sandbox = true", "jwt"
            )


class _PrefetchSchema(SectionSchema):
    settings_class = PrefetchSettings
    connect_timeout_seconds = fields.Float(validate=validate.Range(min=0.01, max=30))
    read_timeout_seconds = fields.Float(validate=validate.Range(min=0.01, max=60))
    deadline_seconds = fields.Float(validate=validate.Range(min=0.02, max=60))
    retries = fields.Integer(validate=validate.Range(min=0, max=5))
    retry_backoff_seconds = fields.Float(validate=validate.Range(min=0, max=5))
    max_concurrency = fields.Integer(validate=validate.Range(min=1, max=64))
    allowed_fhir_servers = fields.List(fields.String(validate=_server_url))


class _FeedbackSchema(SectionSchema):
    settings_class = FeedbackSettings
    database_url = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9+]*://", error="must be a SQLAlchemy URL like sqlite:///x.db"
        ),
    )


class _LoggingSchema(SectionSchema):
    settings_class = LoggingSettings
    level = fields.String(validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]))
    json = fields.Boolean()


class _MetricsSchema(SectionSchema):
    settings_class = MetricsSettings
    enabled = fields.Boolean()


# The core's own sections; domains add theirs through their plugin's ``settings``.
CORE_SECTIONS: dict[str, type[SectionSchema]] = {
    "server": _ServerSchema,
    "security": _SecuritySchema,
    "prefetch": _PrefetchSchema,
    "feedback": _FeedbackSchema,
    "logging": _LoggingSchema,
    "metrics": _MetricsSchema,
}

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The validated configuration: the core's sections as attributes, the domains' by name."""

    server: ServerSettings = field(default_factory=ServerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    prefetch: PrefetchSettings = field(default_factory=PrefetchSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    domains: Mapping[str, Any] = field(default_factory=dict)  # plugin section name → its settings object
    source: str = "defaults"  # where the settings came from (for logs / readyz)

    @overload
    def section(self, name: str) -> Any: ...
    @overload
    def section(self, name: str, kind: type[T]) -> T: ...
    def section(self, name: str, kind: type[Any] | None = None) -> Any:
        """A domain's section, e.g. ``settings.section("dip", DipSettings)`` (typed when ``kind`` is
        given). A section no installed plugin declares is a programming error: ``KeyError``."""
        try:
            value = self.domains[name]
        except KeyError:
            raise KeyError(f"no plugin declares the configuration section [{name}]") from None
        if kind is not None and not isinstance(value, kind):
            raise TypeError(f"[{name}] holds {type(value).__name__}, not {kind.__name__}")
        return value


# ----------------------------------------------------------------------------- loading


def _env_value(raw: str) -> Any:
    """Parse an env value as a TOML literal (numbers, booleans, arrays, inline tables), else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
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


def _section_schemas(plugins: Iterable[Plugin] | None) -> dict[str, type[SectionSchema]]:
    from cds_service.plugins import PluginSet, discover

    plugin_set = (
        plugins if isinstance(plugins, PluginSet) else PluginSet(discover() if plugins is None else plugins)
    )
    return {**CORE_SECTIONS, **plugin_set.sections()}


def settings_from_mapping(
    raw: dict[str, Any], source: str = "mapping", plugins: Iterable[Plugin] | None = None
) -> Settings:
    """Validate a nested mapping (TOML shape) against the core's sections and those of ``plugins``
    (default: the installed ones) and build :class:`Settings`; raises :class:`ConfigError`."""
    if not isinstance(raw, dict):
        raise ConfigError(["configuration must be a table of sections"])
    schemas = _section_schemas(plugins)
    problems = [
        f"{section}: unknown section (known: {', '.join(schemas)})"
        for section in raw
        if section not in schemas
    ]
    loaded: dict[str, Any] = {}
    for section, schema in schemas.items():
        value = raw.get(section, {})
        if not isinstance(value, dict):
            problems.append(f"{section}: must be a table")
            continue
        try:
            loaded[section] = schema().load(value)
        except ValidationError as exc:
            problems += flatten_messages(exc.messages, section)
    if not problems:
        problems += cross_section_problems(loaded["server"], loaded["security"])
    if problems:
        raise ConfigError(problems)
    core = {name: loaded.pop(name) for name in CORE_SECTIONS}
    return Settings(**core, domains=loaded, source=source)


def cross_section_problems(server: ServerSettings, security: SecuritySettings) -> list[str]:
    """Rules that span sections."""
    problems = []
    if security.jwt == "required" and not server.public_base_url:
        # The JWT ``aud`` must be the URL the EHR was configured with, never one derived from the
        # request's Host header (which the caller chooses: a token minted for another hospital's
        # service would pass when sent with that Host).
        problems.append(
            "server.public_base_url: required when security.jwt = 'required' (the JWT audience is "
            "this URL + the endpoint path), e.g. https://cds.hospital.cn/dip"
        )
    return problems


def check_bind(settings: Settings, host: str | None) -> None:
    """Refuse settings that are unsafe on the interface the service binds to (when it is known)."""
    from cds_service.outbound import is_loopback_host

    if settings.security.trust_sandbox and host is not None and not is_loopback_host(host):
        raise ConfigError(
            [
                f"security.trust_sandbox: refused on {host}: the CDS Hooks Sandbox's private key is "
                "public, so anyone who reaches the service could sign an accepted token. Bind to "
                "127.0.0.1 (or ::1) to try the Sandbox, never on a network interface."
            ]
        )


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
    environ: Mapping[str, str] | None = None,
    plugins: Iterable[Plugin] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply env overrides, validate against the core's and the
    ``plugins``' sections (default: the installed plugins). Raises :class:`ConfigError`."""
    overrides = env_overrides(os.environ if environ is None else environ)
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
    if overrides:
        source += " + environment"
    return settings_from_mapping(_merge(raw, overrides), source=source, plugins=plugins)
