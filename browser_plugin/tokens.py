"""Short-lived page tokens: the HIS server obtains one, its page uses it, no long-lived secret in JS.

The HIS **backend** authenticates to ``POST /plugin/v1/token`` exactly like a CDS client (its
ES384/RS384 JWT, verified by the service's JWT verifier with ``aud`` = the token URL) and passes
the returned token to the doctor's page. The token is an HS256 JWT signed with a service secret:
``iss``/``aud`` ``dip-cds-plugin``, a lifetime of ``[plugin] token_ttl_seconds`` (default 10
minutes), the HIS client it was issued to, and optionally the page origin it is bound to. It is
only ever checked here, with its own key and algorithm, so it can never be confused with a CDS
client's JWT (whose verifier accepts ES384/RS384 only).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

ISSUER = AUDIENCE = "dip-cds-plugin"
ALGORITHM = "HS256"
KEY_FILE = "plugin-token.key"


class TokenError(Exception):
    """Why a page token was refused (a short reason for logs and metrics, never the token)."""


def load_or_create_secret(home: Path, configured: str | None) -> bytes:
    """``[plugin] token_secret``, else a random key kept in the data home (created 0600 on first use).

    Every worker of one machine shares the data home, hence the key; several machines serving one
    hospital must configure the same ``token_secret``.
    """
    if configured:
        return configured.encode()
    path = Path(home) / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex())
    try:
        os.link(tmp, path)  # atomic "create if absent": two workers starting together agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def issue(secret: bytes, *, subject: str, ttl_seconds: int, origin: str | None = None,
          tenant: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A token response in OAuth's shape (``access_token``, ``token_type``, ``expires_in``)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if origin:
        claims["origin"] = origin
    if tenant:
        claims["tenant"] = tenant
    token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"typ": "JWT"})
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl_seconds}


def is_page_token(token: str) -> bool:
    """True for a token of ours (HS256); CDS client JWTs go to the JWT verifier instead."""
    try:
        return jwt.get_unverified_header(token).get("alg") == ALGORITHM
    except jwt.PyJWTError:
        return False


def verify(secret: bytes, token: str, origin: str | None, leeway: int = 30) -> dict[str, Any]:
    """The claims of a valid page token, else :class:`TokenError`. A token bound to a page origin is
    refused from any other origin."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("page token expired") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid page token ({type(exc).__name__})") from None
    bound = claims.get("origin")
    if bound and origin != bound:
        raise TokenError("page token used from another origin")
    return claims
