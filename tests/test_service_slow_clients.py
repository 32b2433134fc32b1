"""Slow and idle clients against the production server (``dip-cds serve``, two workers, as shipped).

The audit's finding: two connections sending their body slowly blocked both sync workers and
``/healthz`` stopped answering. Here 50 such connections stay open while normal requests are
timed against the same server's latency without them.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.service_helpers import hook_request, open_slow_body, trickling
from tests.test_service_serve import DIP_CDS, dip_cds_serve

pytestmark = pytest.mark.skipif(not DIP_CDS.exists(), reason="dip-cds console script not installed")
SLOW_CONNECTIONS = 50
BODY_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("slow-home")
    env = {"DIP_CDS_LOGGING__LEVEL": "WARNING", "DIP_CDS_SERVER__BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)}
    with dip_cds_serve(home, **env) as base:
        yield base


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def timed(call) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:300]
    return elapsed


def latencies(base: str, rounds: int = 30) -> dict[str, list[float]]:
    session = requests.Session()
    body = hook_request("order-sign")
    out: dict[str, list[float]] = {"healthz": [], "order-sign": []}
    for _ in range(rounds):
        out["healthz"].append(timed(lambda: session.get(f"{base}/healthz", timeout=5)))
        out["order-sign"].append(
            timed(lambda: session.post(f"{base}/cds-services/dip-order-sign", json=body, timeout=5))
        )
    return out


def test_fifty_slow_body_connections_do_not_slow_healthz_or_hooks(server):
    usual = latencies(server)
    slow = [open_slow_body(port_of(server)) for _ in range(SLOW_CONNECTIONS)]
    with trickling(slow):
        time.sleep(0.5)
        loaded = latencies(server)
    for kind in ("healthz", "order-sign"):
        before, during = statistics.median(usual[kind]), statistics.median(loaded[kind])
        # "usual latency": the median may not triple (plus 20 ms of scheduling noise on a shared
        # CI machine); no single request may wait anywhere near a body timeout
        assert during <= 3 * before + 0.02, (kind, before, during)
        assert max(loaded[kind]) < 1.0, (kind, max(loaded[kind]))


def test_a_body_slower_than_the_body_timeout_gets_408_and_the_connection_is_closed(server):
    sock = open_slow_body(port_of(server), declared=1000)
    sock.settimeout(BODY_TIMEOUT + 5)
    started = time.monotonic()
    answer = b""
    while True:
        try:
            sock.sendall(b" ")
        except OSError:
            pass
        time.sleep(0.2)
        sock.setblocking(False)
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            chunk = None
        finally:
            sock.setblocking(True)
        if chunk == b"":
            break
        if chunk:
            answer += chunk
        assert time.monotonic() - started < BODY_TIMEOUT + 5, "the slow body was never cut off"
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"resourceType":"OperationOutcome"' in answer
    assert BODY_TIMEOUT - 0.5 <= time.monotonic() - started


def test_a_chunked_body_over_the_limit_is_413(server):
    def chunks() -> Iterator[bytes]:
        yield b'{"hook": "order-sign", "pad": "'
        for _ in range(6 * 1024):  # 6 MiB > the default 5 MiB limit, without a Content-Length
            yield b"x" * 1024
        yield b'"}'

    response = requests.post(
        f"{server}/cds-services/dip-order-sign",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_chunked_body_under_the_limit_is_served(server):
    import json

    payload = json.dumps(hook_request("order-sign")).encode()
    response = requests.post(
        f"{server}/cds-services/dip-order-sign",
        data=iter([payload[:100], payload[100:]]),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200 and len(response.json()["cards"]) == 1


def test_idle_connections_do_not_hold_the_workers(server):
    idle = [
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) for _ in range(SLOW_CONNECTIONS)
    ]
    try:
        assert max(latencies(server, rounds=5)["healthz"]) < 1.0
    finally:
        for sock in idle:
            sock.close()


def test_requests_with_a_body_enter_the_app_one_at_a_time_and_health_checks_are_not_held():
    """A gevent worker accepts every connection; admission keeps hook calls from sharing one core
    (their prefetch deadline would run while they wait for each other's CPU)."""
    import io

    from cds_service.body import BufferedBody

    lock = threading.Lock()
    state = {"inside": 0, "peak": 0}
    release = threading.Event()

    def app(environ, start_response):
        with lock:
            state["inside"] += 1
            state["peak"] = max(state["peak"], state["inside"])
        if environ["REQUEST_METHOD"] == "POST":
            release.wait(5)
        with lock:
            state["inside"] -= 1
        start_response("200 OK", [])
        return [b"ok"]

    guarded = BufferedBody(app, max_bytes=1000, timeout=5, concurrency=1)

    def call(method: str) -> None:
        body = b"{}" if method == "POST" else b""
        environ = {
            "REQUEST_METHOD": method,
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "wsgi.input": io.BytesIO(body),
        }
        guarded(environ, lambda *a: None)

    posts = [threading.Thread(target=call, args=("POST",)) for _ in range(4)]
    for t in posts:
        t.start()
    time.sleep(0.2)
    started = time.monotonic()
    call("GET")  # not held behind the waiting POSTs
    assert time.monotonic() - started < 1.0
    release.set()
    for t in posts:
        t.join(5)
    assert state["peak"] == 2  # one POST and the GET; never two POSTs
