"""Console users, roles, server-side sessions with CSRF tokens, and the audit log of who saw what.

Roles: 医保办 (``ybb``) sees and loads everything; 科室主任 (``dept_head``) sees only the stays,
findings, feedback and settlement rows of their own department; 只读 (``readonly``) sees every page
but changes nothing. Passwords are hashed with Argon2id. A session is a random token in an
HttpOnly, SameSite=Strict (and by default Secure) cookie; the database keeps only its SHA-256, so a
stolen database holds no usable session. Behind the hospital's single sign-on, the reverse proxy's
identity header is trusted from the configured proxy addresses only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Engine

from console.models import sessions, users, view_log

ROLES = {"ybb": "医保办", "dept_head": "科室主任", "readonly": "只读"}
LOGIN_LOCK_FAILURES = 5  # failed sign-ins of one user name within LOGIN_LOCK_WINDOW lock it
LOGIN_LOCK_WINDOW = timedelta(minutes=15)
_hasher = PasswordHasher()  # argon2id, the library's current parameters
_DUMMY_HASH = _hasher.hash(secrets.token_hex(8))  # equalises timing for unknown user names


class AuthError(Exception):
    """Sign-in refused; the message is safe to show."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str | None
    role: str
    department_code: str | None

    @property
    def role_label(self) -> str:
        return ROLES.get(self.role, self.role)

    @property
    def can_change(self) -> bool:
        return self.role == "ybb"

    @property
    def department(self) -> str | None:
        """The only department this user may see (None: all)."""
        return self.department_code if self.role == "dept_head" else None


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: Any) -> User:
    return User(row.id, row.username, row.display_name, row.role, row.department_code)


def create_user(
    engine: Engine,
    username: str,
    role: str,
    password: str | None,
    department_code: str | None = None,
    display_name: str | None = None,
) -> User:
    """Add (or update) a user; ``password`` None: a user who signs in only through the proxy."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "dept_head" and not department_code:
        raise ValueError("a 科室主任 (dept_head) needs --department")
    if password is not None and len(password) < 10:
        raise ValueError("password must have at least 10 characters")
    values = {
        "display_name": display_name,
        "role": role,
        "department_code": department_code,
        "password_hash": _hasher.hash(password) if password is not None else None,
        "active": True,
    }
    with engine.begin() as conn:
        found = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
        if found is None:
            conn.execute(users.insert().values(username=username, created_at=_now(), **values))
        else:
            conn.execute(update(users).where(users.c.id == found).values(**values))
            conn.execute(delete(sessions).where(sessions.c.user_id == found))  # role changed: sign in again
        row = conn.execute(select(users).where(users.c.username == username)).one()
    return _user(row)


def log_event(engine: Engine, username: str, action: str, target: str, remote_addr: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            view_log.insert().values(
                at=_now(),
                username=username[:100],
                action=action[:40],
                target=target[:300],
                remote_addr=remote_addr,
            )
        )


def check_password(engine: Engine, username: str, password: str, remote_addr: str | None) -> User:
    """The user, or :class:`AuthError` (same message whether the name or the password was wrong)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(users).where(users.c.username == username, users.c.active.is_(True))
        ).first()
        failures = conn.execute(
            select(func.count())
            .select_from(view_log)
            .where(
                and_(
                    view_log.c.username == username,
                    view_log.c.action == "login-failed",
                    view_log.c.at >= _now() - LOGIN_LOCK_WINDOW,
                )
            )
        ).scalar_one()
    if failures >= LOGIN_LOCK_FAILURES:
        log_event(engine, username, "login-locked", "login", remote_addr)
        raise AuthError("登录失败次数过多，请 15 分钟后再试")
    try:
        _hasher.verify(row.password_hash if row is not None and row.password_hash else _DUMMY_HASH, password)
        if row is None or not row.password_hash:
            raise VerificationError
    except (VerificationError, InvalidHashError):
        log_event(engine, username, "login-failed", "login", remote_addr)
        raise AuthError("用户名或密码错误") from None
    if _hasher.check_needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(
                update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password))
            )
    return _user(row)


def user_named(engine: Engine, username: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(users).where(users.c.username == username, users.c.active.is_(True))
        ).first()
    return _user(row) if row is not None else None


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    token: str | None = None  # set only when just created (to put in the cookie)


def open_session(engine: Engine, user: User) -> Session:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = _now()
    with engine.begin() as conn:
        conn.execute(
            sessions.insert().values(
                token_hash=_token_hash(token), user_id=user.id, csrf_token=csrf, created_at=now, last_seen=now
            )
        )
    return Session(user, csrf, token)


def session_for(engine: Engine, token: str | None, idle: timedelta, max_age: timedelta) -> Session | None:
    """The live session of a cookie value (touching it), or None when absent, expired or revoked."""
    if not token or len(token) > 100:
        return None
    now = _now()
    with engine.connect() as conn:
        row = conn.execute(
            select(sessions, users)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == _token_hash(token), users.c.active.is_(True))
        ).first()
    if row is None:
        return None
    if now - _utc(row.last_seen) > idle or now - _utc(row.created_at) > max_age:
        close_session(engine, token)
        return None
    if now - _utc(row.last_seen) > timedelta(minutes=1):  # not a write per page view
        with engine.begin() as conn:
            conn.execute(
                update(sessions).where(sessions.c.token_hash == _token_hash(token)).values(last_seen=now)
            )
    user = User(row.user_id, row.username, row.display_name, row.role, row.department_code)
    return Session(user, row.csrf_token)


def close_session(engine: Engine, token: str | None) -> None:
    if token:
        with engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _token_hash(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def trusted_proxy(remote_addr: str | None, networks: tuple) -> bool:
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in networks)
