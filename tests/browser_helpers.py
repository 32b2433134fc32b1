"""Real-browser test pieces of the plugin: the demo HIS and the service (Chromium: chromium_helpers).

One browser per test module (start-up is the slow part); every page records console errors and
uncaught exceptions, and a test fails on any of them. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine, select

from browser_plugin.demo_his import HisSigner, create_demo_his
from cds_service.feedback import feedback_table
from tests.chromium_helpers import CHROMIUM
from tests.demo_fhir_helpers import serving
from tests.plugin_helpers import ARTIFACTS, plugin_service
from tests.service_helpers import ec_key, public_jwk

VIEWPORT = {"width": 1280, "height": 800}
HIS_ISS = "https://his.demo.example.cn"
SERVICE_PUBLIC_URL = "https://cds.demo.example.cn"  # the JWT audience base (public_base_url)


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (.ci/run installs it with apt)")


class ConsoleWatch:
    """Console errors and page exceptions of a page (a browser test fails on any)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.expected: list[str] = []
        page.on(
            "console",
            lambda m: self.errors.append(f"console {m.text} @ {m.location}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"pageerror {e}"))

    def expect(self, text: str) -> None:
        """A console error the test provokes on purpose (e.g. the browser's own note of a failed request)."""
        self.expected.append(text)

    def assert_clean(self) -> None:
        unexpected = [e for e in self.errors if not any(x in e for x in self.expected)]
        assert unexpected == [], unexpected


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def feedback_rows(home: Path) -> list[Any]:
    engine = create_engine(f"sqlite:///{home / 'feedback.sqlite'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(feedback_table)))
    finally:
        engine.dispose()


@contextmanager
def his_and_service(home: Path) -> Iterator[SimpleNamespace]:
    """The demo HIS (its backend signs with its own EC key) and the dip-cds service with JWT required,
    that key trusted and the HIS origin allowed, both over HTTP on loopback."""
    key = ec_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    his = create_demo_his(signer=HisSigner(pem, HIS_ISS, "his-1"), service_public_url=SERVICE_PUBLIC_URL)
    with serving(his) as his_url:
        service = plugin_service(
            home,
            server={"public_base_url": SERVICE_PUBLIC_URL},
            security={
                "jwt": "required",
                "issuers": [{"iss": HIS_ISS, "jwks": {"keys": [public_jwk(key, "his-1", "ES384")]}}],
            },
            plugin={"allowed_origins": [his_url]},
        )
        with serving(service) as service_url:
            his.config["SERVICE_URL"] = service_url
            yield SimpleNamespace(his=his_url, service=service_url, home=home)
