"""Helpers for the cards / costing / demo-FHIR tests: real HTTP servers on 127.0.0.1 in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO_REQUESTS = Path(__file__).resolve().parents[1] / "hooks" / "demo" / "requests"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        pass


@contextmanager
def serving(wsgi_app) -> Iterator[str]:
    """Run a WSGI app on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def demo_request(name: str) -> dict:
    return json.loads((DEMO_REQUESTS / f"{name}.json").read_text(encoding="utf-8"))


def entries(bundle: dict) -> list[dict]:
    return [
        e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"
    ]
