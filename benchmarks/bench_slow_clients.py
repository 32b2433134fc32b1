"""Slow-client resilience of the production server (plain script): does a crowd of slow or idle
connections starve the workers?

For each server layout (``dip-cds serve --worker-class …``, and waitress when it is installed, for
comparison) it starts the service on a temp data home, times sequential ``GET /healthz`` and
``POST /cds-services/dip-order-sign`` requests (one keep-alive connection, client-observed), then
opens S connections that announce a body and trickle one byte every 0.5 s (slow body; or send
nothing at all: idle) and times the same requests again while they stay open. A request that
does not answer within ``--timeout`` seconds counts as starved. Last, the price of each layout:
``--clients`` closed-loop keep-alive clients POST the full-prefetch order-sign request for
``--load-seconds`` (req/s, client-observed and server-side latency from ``Server-Timing``).

Usage: .venv/bin/python benchmarks/bench_slow_clients.py [--slow 50] [--rounds 200]
       [--servers sync,gevent,gthread,waitress] [--workers 2] [--timeout 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _load import ManagedProcess, clean_env, closed_loop, free_port, percentiles, start_service  # noqa: E402

from tests.service_helpers import hook_request, open_slow_body, trickling  # noqa: E402

MAX_STARVED = 6  # per phase


def start(server: str, home: Path, port: int, workers: int) -> ManagedProcess:
    env = clean_env(DIP_CDS_LOGGING__LEVEL="WARNING", DIP_CDS_HOME=str(home))
    if server == "waitress":  # one process, its own buffering and channel timeouts
        cmd = [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "--threads", "8",
               "cds_service.wsgi:app"]  # fmt: skip
        proc = ManagedProcess("waitress", cmd, env)
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
        return proc
    threads = 4 if server == "gthread" else 1
    return start_service(home, port, workers, threads, env, server)


def timings(port: int, rounds: int, timeout: float) -> dict[str, Any]:
    session = requests.Session()
    body = json.dumps(hook_request("order-sign")).encode()
    out: dict[str, list[float]] = {"healthz": [], "order-sign": []}
    starved = {"healthz": 0, "order-sign": 0}
    base = f"http://127.0.0.1:{port}"
    for _ in range(rounds):
        if sum(starved.values()) >= MAX_STARVED:
            break  # starving: the verdict is clear, do not wait out every timeout
        for kind in out:
            started = time.perf_counter()
            try:
                if kind == "healthz":
                    ok = session.get(f"{base}/healthz", timeout=timeout).status_code == 200
                else:
                    resp = session.post(f"{base}/cds-services/dip-order-sign", data=body, timeout=timeout,
                                        headers={"Content-Type": "application/json"})  # fmt: skip
                    ok = resp.status_code == 200
            except requests.RequestException:
                ok = False
                session = requests.Session()
            if ok:
                out[kind].append((time.perf_counter() - started) * 1000)
            else:
                starved[kind] += 1
    return {k: {"ms": percentiles(v), "answered": len(v), "starved": starved[k]} for k, v in out.items()}


def measure(server: str, args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="dip-bench-slow-"))
    port = free_port()
    proc = start(server, home, port, args.workers)
    result: dict[str, Any] = {"server": server}
    try:
        timings(port, 20, args.timeout)  # warm-up
        result["quiet"] = timings(port, args.rounds, args.timeout)
        for mode in ("slow-body", "idle"):
            slow_body = mode == "slow-body"
            socks = [
                open_slow_body(port)
                if slow_body
                else socket.create_connection(("127.0.0.1", port), timeout=5)
                for _ in range(args.slow)
            ]
            with trickling(socks, feed=slow_body):
                time.sleep(0.5)
                result[mode] = timings(port, args.rounds, args.timeout)
            time.sleep(0.5)
        body = json.dumps(hook_request("order-sign")).encode()
        load = closed_loop(port, "/cds-services/dip-order-sign", body, args.clients, 3, args.load_seconds)
        server_ms = [s for _, s, _ in load.samples if s is not None]
        result["load"] = {
            "rps": len(load.samples) / load.window_seconds,
            "client_ms": percentiles([c for c, _, _ in load.samples]),
            "server_ms": percentiles(server_ms),
            "non200": sum(n for status, n in load.statuses.items() if status != 200),
            "errors": load.errors,
        }
    finally:
        proc.stop()
        shutil.rmtree(home, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=50, help="slow connections held open")
    parser.add_argument("--rounds", type=int, default=200, help="requests of each kind per phase")
    parser.add_argument("--servers", default="sync,gevent,gthread,waitress")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=50, help="closed-loop clients of the load phase")
    parser.add_argument("--load-seconds", type=float, default=10, help="measured seconds of the load phase")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds before a request counts as starved"
    )
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    if "waitress" in servers and importlib.util.find_spec("waitress") is None:
        print("waitress not installed: skipped (pip install waitress to compare)")
        servers.remove("waitress")
    print(f"{args.slow} slow connections; {args.rounds} sequential requests of each kind per phase; "
          f"starved = no answer within {args.timeout:g} s (a phase stops after {MAX_STARVED}); client-observed ms")  # fmt: skip
    results = []
    for server in servers:
        r = measure(server, args)
        results.append(r)
        print(f"\n== {server}" + ("" if server == "waitress" else f" ({args.workers} workers)"))
        for phase in ("quiet", "slow-body", "idle"):
            for kind in ("healthz", "order-sign"):
                m = r[phase][kind]
                ms = m["ms"]
                print(f"  {phase:<10}{kind:<11} p50 {ms['p50']:8.2f}  p99 {ms['p99']:8.2f}  max {ms['max']:8.2f}"
                      f"   answered {m['answered']:4d}  starved {m['starved']:4d}")  # fmt: skip
        ld = r["load"]
        print(f"  load      {args.clients} clients: {ld['rps']:7.0f} req/s; client p50 {ld['client_ms']['p50']:.2f} "
              f"p99 {ld['client_ms']['p99']:.2f} ms; server p50 {ld['server_ms']['p50']:.2f} p99 "
              f"{ld['server_ms']['p99']:.2f} ms; non-200 {ld['non200']}, errors {ld['errors']}")  # fmt: skip
    print(json.dumps({"bench": "slow_clients", "slow": args.slow, "results": results}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
