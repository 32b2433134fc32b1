"""The one outbound HTTP layer: every call the service makes to another system (the EHR's FHIR
server, a hospital's HIS cost endpoint) goes through here.

Why one layer: the rules that keep a hostile ``fhirServer`` from turning the service into a proxy
into the hospital network (SSRF) or from collecting the EHR's bearer token must hold for every
outbound call, not only for the ones someone remembered. So:

* URLs are parsed and canonicalised (:func:`canonical_url`): http(s) only, no user information
  (``http://allowed@evil/``), numeric IPv4 spellings (``2130706433``, ``0x7f000001``, ``127.1``)
  turned into the dotted address they connect to, default ports made explicit, dot segments
  (also percent-encoded) refused; an allowlist entry matches scheme, host, port and a path prefix at a segment boundary
  (:class:`UrlRule`), never a string prefix;
* one pooled ``requests`` session per process with ``trust_env = False`` (no proxy or netrc taken
  from the environment);
* redirects are followed only within the same origin (scheme, host, port) and the same rule;
  a redirect elsewhere is a failure, so credentials never travel to another host;
* an absolute deadline bounds connect, every read and the whole body (a server trickling bytes
  cannot outlast it), and the body is capped in size.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_HOST = frozenset("0123456789abcdefx.")


class UrlError(ValueError):
    """A URL the service refuses to call; the message names the rule, never the URL."""


class NotAllowed(UrlError):
    """A well-formed URL of a server that is not on the allowlist."""


class OutboundError(Exception):
    """An outbound call failed. ``reason`` is for logs (no URL, token or identifier in it)."""

    def __init__(self, reason: str, *, status: int | None = None):
        self.reason = reason
        self.status = status
        super().__init__(reason)


# ----------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class CanonicalUrl:
    scheme: str
    host: str  # lower-case name, dotted IPv4 or compressed IPv6 (no brackets)
    port: int
    path: str  # never empty; no dot segments
    query: str = ""

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost" or self.host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def geturl(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}:{self.port}{self.path}{query}"


def _canonical_host(raw: str) -> str:
    host = raw.strip().lower().rstrip(".")
    if not host:
        raise UrlError("URL without a host")
    if ":" in host:  # IPv6 literal (urlsplit removed the brackets)
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0]).compressed
        except ValueError:
            raise UrlError("invalid IPv6 address") from None
    if set(host) <= _NUMERIC_HOST and any(ch.isdigit() for ch in host):
        # 2130706433, 0x7f000001, 0177.0.0.1, 127.1: the resolver connects to an IPv4 address
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            if not any(ch.isalpha() for ch in host.replace("x", "")):
                raise UrlError("invalid IPv4 address") from None
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UrlError("invalid host name") from None


def is_loopback_host(host: str | None) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost`` (and their numeric spellings); not ``0.0.0.0`` or a name."""
    if not host:
        return False
    try:
        canonical = _canonical_host(host.strip("[]"))
    except UrlError:
        return False
    return CanonicalUrl("http", canonical, 80, "/").is_loopback


def canonical_url(url: str) -> CanonicalUrl:
    """Parse ``url`` into the form every comparison uses; :class:`UrlError` when it is not one we call."""
    if not isinstance(url, str) or any(ch in url for ch in "\r\n\t\\ ") or not url.isprintable():
        raise UrlError("malformed URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlError("malformed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlError("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise UrlError("URLs with user information are not allowed")
    if parts.fragment:
        raise UrlError("URLs with a fragment are not allowed")
    path = parts.path or "/"
    if any(s.lower().replace("%2e", ".") in (".", "..") for s in path.split("/")):
        raise UrlError("URLs with dot segments are not allowed")
    return CanonicalUrl(
        scheme=scheme,
        host=_canonical_host(parts.hostname or ""),
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        path=path,
        query=parts.query,
    )


@dataclass(frozen=True)
class UrlRule:
    """One allowed server: scheme, host and port equal, and the path under ``path`` (segment-wise)."""

    scheme: str
    host: str
    port: int
    path: str  # ends with "/"

    @classmethod
    def parse(cls, url: str) -> UrlRule:
        c = canonical_url(url)
        if c.query:
            raise UrlError("an allowed server URL has no query")
        return cls(c.scheme, c.host, c.port, c.path if c.path.endswith("/") else c.path + "/")

    def allows(self, url: CanonicalUrl) -> bool:
        if url.origin != (self.scheme, self.host, self.port):
            return False
        path = url.path if url.path.endswith("/") else url.path + "/"
        return path.startswith(self.path)


class Allowlist:
    """Servers a caller may reach: explicit rules, or (when there are none) loopback hosts only."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self.rules = tuple(UrlRule.parse(u) for u in urls)

    @property
    def loopback_only(self) -> bool:
        return not self.rules

    def allows(self, url: CanonicalUrl) -> bool:
        if not self.rules:
            return url.is_loopback
        return any(rule.allows(url) for rule in self.rules)

    def check(self, url: str) -> CanonicalUrl:
        """The canonical form of an allowed ``url``; :class:`UrlError` otherwise."""
        canonical = canonical_url(url)
        if not self.allows(canonical):
            raise NotAllowed("not an allowed server")
        return canonical


# ----------------------------------------------------------------------------- the session

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "session": None, "pool": None, "pool_size": 0}


def _per_process() -> dict[str, Any]:
    """Session and thread pool are per worker process (created after the server forks)."""
    pid = os.getpid()
    if _state["pid"] != pid:
        with _lock:
            if _state["pid"] != pid:
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False  # no proxies, netrc or CA bundles taken from the environment
                _state.update(pid=pid, session=session, pool=None, pool_size=0)
    return _state


def http_session() -> requests.Session:
    return _per_process()["session"]


def thread_pool(size: int) -> ThreadPoolExecutor:
    state = _per_process()
    if state["pool"] is None or state["pool_size"] != size:
        with _lock:
            if state["pool"] is None or state["pool_size"] != size:
                state["pool"] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="dip-cds-http")
                state["pool_size"] = size
    return state["pool"]


# ----------------------------------------------------------------------------- GET


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


def get(
    url: CanonicalUrl,
    *,
    headers: Mapping[str, str],
    deadline: float,
    connect_timeout: float,
    read_timeout: float,
    allow: Allowlist | UrlRule | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> Answer:
    """One GET of ``url`` (already checked by the caller), bounded by the absolute ``deadline``
    (``time.monotonic()``). Redirects are followed only to the same origin that ``allow`` (default:
    the same origin and path rule as ``url``) still allows; raises :class:`OutboundError`."""
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0.005:
            raise OutboundError("deadline exceeded")
        timeout = (min(connect_timeout, remaining), min(read_timeout, remaining))
        try:
            resp = http_session().get(
                current.geturl(), headers=dict(headers), timeout=timeout, stream=True, allow_redirects=False
            )
        except requests.Timeout:
            raise OutboundError("timeout") from None
        except requests.ConnectionError:
            raise OutboundError("connection failed") from None
        except requests.RequestException as exc:
            raise OutboundError(f"request failed ({type(exc).__name__})") from None
        try:
            if resp.is_redirect:
                current = _redirect_target(current, resp.headers.get("Location"), allow)
                continue
            body = _read_body(resp, deadline, max_bytes)
            return Answer(resp.status_code, body, resp.headers.get("Content-Type", ""))
        finally:
            resp.close()
    raise OutboundError("too many redirects")


def _redirect_target(
    current: CanonicalUrl, location: str | None, allow: Allowlist | UrlRule | None
) -> CanonicalUrl:
    if not location:
        raise OutboundError("redirect without a location")
    try:
        target = canonical_url(urljoin(current.geturl(), location))
    except UrlError:
        raise OutboundError("redirect to a refused URL") from None
    if target.origin != current.origin:
        raise OutboundError("redirect to another server not followed")
    if allow is not None and not allow.allows(target):
        raise OutboundError("redirect outside the allowed path not followed")
    return target


def _read_body(resp: requests.Response, deadline: float, max_bytes: int) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise OutboundError("response too large")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:  # read1: whatever has arrived, so a trickling server cannot outlast the deadline
            chunk = resp.raw.read1(65536, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise OutboundError("response too large")
            if time.monotonic() > deadline:
                raise OutboundError("deadline exceeded")
    except OutboundError:
        raise
    except Exception as exc:  # noqa: BLE001 - socket, urllib3 protocol/timeout and decoding errors
        raise OutboundError(f"read failed ({type(exc).__name__})") from None
    return b"".join(chunks)
