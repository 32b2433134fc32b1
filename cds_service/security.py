"""JWT verification of CDS clients (CDS Hooks 2.0 security), answered by a bare 401 on failure.

Checks: ``alg`` is ES384 or RS384 and matches the key (pinned per key, so an RSA public key can
never verify an HMAC token); ``iss`` on the allowlist; ``jku`` on the issuer's allowlist; the
signature against the issuer's JWKS (inline, or fetched and cached, refreshed once on an
unknown ``kid`` at a bounded rate); ``aud`` equals the exact URL called; ``exp``/``iat``
present and sane; ``jti`` never seen before (Redis ``SET NX EX`` shared by all workers, or an
in-process TTL cache for a single worker); optional ``tenant``. Tokens are never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import jwt
import requests
from cachetools import TTLCache

from cds_service.config import IssuerSettings, SecuritySettings

log = logging.getLogger("dip_cds.security")

ALLOWED_ALGS = ("ES384", "RS384")


class AuthError(Exception):
    """Why a token was rejected (a short code for logs/metrics, never token content)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# ----------------------------------------------------------------------------- replay caches


class ReplayCache(Protocol):
    def first_use(self, key: str, ttl_seconds: int) -> bool: ...


class MemoryReplayCache:
    """Single-process replay cache (only correct with one worker; see ``dip-cds serve``)."""

    def __init__(self, maxsize: int = 200_000, max_ttl: int = 3600) -> None:
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=maxsize, ttl=max_ttl)
        self._lock = threading.Lock()

    def first_use(self, key: str, ttl_seconds: int) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = True
            return True


class RedisReplayCache:
    """Replay cache shared by all workers and instances: ``SET key 1 NX EX ttl``."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def first_use(self, key: str, ttl_seconds: int) -> bool:
        try:
            return bool(self._client.set(f"dip-cds:jti:{key}", b"1", nx=True, ex=max(1, ttl_seconds)))
        except Exception as exc:  # noqa: BLE001 - fail closed: cannot prove it is not a replay
            raise AuthError(f"replay cache unavailable ({type(exc).__name__})") from None


def make_replay_cache(settings: SecuritySettings) -> ReplayCache:
    if settings.redis_url:
        return RedisReplayCache(settings.redis_url)
    return MemoryReplayCache(max_ttl=settings.max_token_lifetime_seconds + settings.leeway_seconds)


# ----------------------------------------------------------------------------- key sets


def _key_alg(jwk: dict[str, Any]) -> str | None:
    """The one algorithm a JWK may verify (ES384 for EC P-384, RS384 for RSA)."""
    kty = jwk.get("kty")
    declared = jwk.get("alg")
    if kty == "EC" and jwk.get("crv") == "P-384":
        natural = "ES384"
    elif kty == "RSA":
        natural = "RS384"
    else:
        return None
    if declared and declared != natural:
        return None
    return natural


class KeySet:
    """An issuer's keys: kid → (algorithm, PyJWK)."""

    def __init__(self, jwks: list[dict[str, Any]]):
        self.keys: dict[str, tuple[str, jwt.PyJWK]] = {}
        for jwk in jwks:
            alg = _key_alg(jwk)
            kid = jwk.get("kid")
            if alg is None or not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
                continue
            try:
                self.keys[kid] = (alg, jwt.PyJWK(jwk, algorithm=alg))
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                log.warning("ignored an unusable JWK", extra={"kid": kid})


class JwksProvider:
    """Inline keys, or keys fetched from ``jwks_url``/an allowlisted ``jku`` (cached, rate-limited)."""

    def __init__(self, settings: SecuritySettings) -> None:
        self.settings = settings
        self._cache: TTLCache[str, KeySet] = TTLCache(maxsize=64, ttl=max(1, settings.jwks_cache_seconds))
        self._last_fetch: dict[str, float] = {}
        self._lock = threading.Lock()
        self._inline = {
            iss: KeySet(list(cfg.jwks)) for iss, cfg in settings.trusted_issuers().items() if cfg.jwks
        }

    def _url_for(self, issuer: IssuerSettings, jku: str | None) -> str | None:
        if issuer.jwks_url:
            return issuer.jwks_url
        return jku if jku and jku in issuer.jku else None

    def key(self, issuer: IssuerSettings, kid: str, jku: str | None) -> tuple[str, jwt.PyJWK]:
        inline = self._inline.get(issuer.iss)
        if inline is not None and kid in inline.keys:
            return inline.keys[kid]
        url = self._url_for(issuer, jku)
        if url is None:
            raise AuthError("unknown kid")
        keyset = self._cache.get(url)
        if keyset is not None and kid in keyset.keys:
            return keyset.keys[kid]
        keyset = self._refresh(url)  # unknown kid: refresh once, rate limited
        if keyset is not None and kid in keyset.keys:
            return keyset.keys[kid]
        raise AuthError("unknown kid")

    def _refresh(self, url: str) -> KeySet | None:
        with self._lock:
            now = time.monotonic()
            last = self._last_fetch.get(url)
            if last is not None and now - last < self.settings.jwks_refresh_min_interval_seconds:
                return self._cache.get(url)
            self._last_fetch[url] = now
        try:
            resp = requests.get(
                url, timeout=self.settings.jwks_fetch_timeout_seconds, headers={"Accept": "application/json"}
            )
            resp.raise_for_status()
            body = resp.json()
            keys = body.get("keys") if isinstance(body, dict) else None
            if not isinstance(keys, list):
                raise ValueError("no keys")
        except (requests.RequestException, ValueError) as exc:
            log.warning("JWKS fetch failed", extra={"reason": type(exc).__name__})
            return self._cache.get(url)
        keyset = KeySet([k for k in keys if isinstance(k, dict)])
        self._cache[url] = keyset
        return keyset


# ----------------------------------------------------------------------------- verifier


class JwtVerifier:
    def __init__(self, settings: SecuritySettings, replay: ReplayCache | None = None) -> None:
        self.settings = settings
        self.issuers = settings.trusted_issuers()
        self.jwks = JwksProvider(settings)
        self.replay = replay if replay is not None else make_replay_cache(settings)

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        """Return the verified claims or raise :class:`AuthError`."""
        if not authorization:
            raise AuthError("missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("not a Bearer token")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise AuthError("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("missing kid")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError("issuer not trusted")
        jku = header.get("jku")
        if jku is not None and jku not in issuer.jku:
            raise AuthError("jku not allowed")
        key_alg, key = self.jwks.key(issuer, kid, jku)
        if key_alg != alg:
            raise AuthError("algorithm does not match key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key_alg],
                audience=audience,
                issuer=issuer.iss,
                leeway=self.settings.leeway_seconds,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong audience") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("issued in the future") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token ({type(exc).__name__})") from None
        now = time.time()
        if claims["exp"] - now > self.settings.max_token_lifetime_seconds:
            raise AuthError("lifetime too long")
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise AuthError("wrong tenant")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise AuthError("invalid jti")
        ttl = int(claims["exp"] - now) + self.settings.leeway_seconds + 1
        if not self.replay.first_use(f"{issuer.iss}|{jti}", ttl):
            raise AuthError("replayed jti")
        return claims
