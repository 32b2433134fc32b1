"""Service overhead benchmark (plain script, not a test).

1. In-process: Flask test client, order-sign with full prefetch, handler doing no work
   (validation + prefetch resolution + dispatch + serialisation). Target: median ≤ 2 ms.
2. Over HTTP on loopback: ``dip-cds serve`` (gunicorn) started here, driven by ``wrk`` with a
   POST body. Target: ≥ 500 req/s, p99 ≤ 20 ms on a 2-core machine.

Usage: .venv/bin/python benchmarks/bench_service.py [--seconds 10] [--connections 16] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import ROOT, free_port, start_service  # noqa: E402

sys.path.insert(0, str(ROOT))

from tests.service_helpers import hook_request, make_app  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}", "rb"):read("*a")
"""


def in_process(n: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="dip-bench-"))
    client = make_app(home, logging={"level": "WARNING"}).test_client()
    body = json.dumps(hook_request("order-sign")).encode()
    for _ in range(200):
        client.post("/cds-services/dip-order-sign", data=body, content_type="application/json")
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.post("/cds-services/dip-order-sign", data=body, content_type="application/json")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    times.sort()
    shutil.rmtree(home, ignore_errors=True)
    return {"median_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99)], "n": n}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def over_http(
    workers: int, threads: int, seconds: int, connections: int, body_file: Path
) -> dict[str, float]:
    port = free_port()
    home = tempfile.mkdtemp(prefix="dip-bench-")
    url = f"http://127.0.0.1:{port}/cds-services/dip-order-sign"
    try:
        proc = start_service(home, port, workers, threads)  # returns once /readyz is 200
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    try:
        body = body_file.read_bytes()
        for _ in range(50):  # warm every worker
            assert requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=5).ok
        lua = body_file.with_suffix(".lua")
        lua.write_text(LUA.format(body=body_file), encoding="utf-8")
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        proc.stop()
        shutil.rmtree(home, ignore_errors=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": _ms(pct["50"]),
        "p99_ms": _ms(pct["99"]),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000, help="in-process requests")
    parser.add_argument("--quick", action="store_true", help="only the default server layout")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs (shared with other work while measuring)")
    r = in_process(args.requests)
    verdict = "OK" if r["median_ms"] <= 2 else "MISS"
    print(f"\nin-process order-sign, full prefetch, empty handler: n={r['n']}")
    print(f"  median {r['median_ms']:.3f} ms   p99 {r['p99_ms']:.3f} ms   (target median ≤ 2 ms: {verdict})")

    if not shutil.which("wrk"):
        print("\nwrk not installed (apt-get install -y wrk): HTTP benchmark skipped")
        return
    body_file = Path(tempfile.mkdtemp(prefix="dip-bench-body-")) / "order-sign.json"
    body_file.write_text(json.dumps(hook_request("order-sign")), encoding="utf-8")
    layouts = [(2, 1), (3, 1), (4, 1), (2, 2)] if not args.quick else [(3, 1)]
    print(
        f"\nHTTP loopback, gunicorn, wrk -t1 -c{args.connections} -d{args.seconds}s, order-sign with full prefetch"
    )
    print(
        f"{'workers':>8} {'threads':>8} {'class':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  verdict"
    )
    for workers, threads in layouts:
        m = over_http(workers, threads, args.seconds, args.connections, body_file)
        ok = m["rps"] >= 500 and m["p99_ms"] <= 20 and m["non2xx"] == 0
        cls = "gthread" if threads > 1 else "sync"
        print(
            f"{workers:>8} {threads:>8} {cls:>8} {m['rps']:>9.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
            f"{m['non2xx']:>8}  {'OK' if ok else 'MISS'} {m['socket_errors']}"
        )
    print("\ntargets: ≥ 500 req/s and p99 ≤ 20 ms")


if __name__ == "__main__":
    main()
