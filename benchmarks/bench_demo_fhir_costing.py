"""Benchmark: demo FHIR server (prefetch queries over loopback HTTP), costing and card rendering.

A plain script (not a test). Run:  .venv/bin/python benchmarks/bench_demo_fhir_costing.py
Numbers are per call; the FHIR part starts ``dip-cds demo-fhir`` in its own process (as an
integrator or the service benchmark would) and measures N concurrent clients against it.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cards import GroupView, OrderSignView, load_card_templates, position_from, source, unpriced_from  # noqa: E402
from costing import cost_of_orders, cost_so_far, load_prices  # noqa: E402

PREFETCH_QUERIES = [
    "Patient/demo-stroke",
    "Encounter/demo-enc-stroke",
    "Condition?patient=demo-stroke&encounter=demo-enc-stroke&_count=200",
    "Procedure?patient=demo-stroke&encounter=demo-enc-stroke&_count=200",
    "ChargeItem?patient=demo-stroke&context=Encounter/demo-enc-stroke&_count=1000",
]


DEMO_REQUESTS = Path(__file__).resolve().parents[1] / "hooks" / "demo" / "requests"


def demo_request(name: str) -> dict:
    return json.loads((DEMO_REQUESTS / f"{name}.json").read_text(encoding="utf-8"))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(name: str, samples_ms: list[float], target: str = "") -> None:
    print(
        f"{name:<58} n={len(samples_ms):>6}  p50={statistics.median(samples_ms):8.3f} ms  "
        f"p99={percentile(samples_ms, 0.99):8.3f} ms  {target}"
    )


def time_calls(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_demo_fhir(workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cli = Path(sys.executable).with_name("dip-cds")
    command = [str(cli), "demo-fhir", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/metadata", timeout=1).ok:
                return process, base
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("dip-cds demo-fhir did not start")


def bench_fhir(clients: int, rounds: int, workers: int) -> None:
    print(f"-- dip-cds demo-fhir --workers {workers}")
    process, base = start_demo_fhir(workers)
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def fetch_all_prefetch() -> float:
        """One hook call's worth of prefetch, fetched concurrently like the service does."""
        started = time.perf_counter()
        for response in prefetch_pool.map(
            lambda q: session().get(f"{base}/{q}", timeout=5), PREFETCH_QUERIES
        ):
            response.raise_for_status()
        return (time.perf_counter() - started) * 1000

    def one_query(query: str) -> float:
        started = time.perf_counter()
        session().get(f"{base}/{query}", timeout=5).raise_for_status()
        return (time.perf_counter() - started) * 1000

    prefetch_pool = ThreadPoolExecutor(len(PREFETCH_QUERIES))
    try:
        for query in PREFETCH_QUERIES:
            one_query(query)  # warm up
        for query in (PREFETCH_QUERIES[0], PREFETCH_QUERIES[-1]):
            samples = [one_query(query) for _ in range(rounds)]
            report(f"FHIR GET {query.split('?')[0]}{'?…' if '?' in query else ''} (1 client)", samples)
        with ThreadPoolExecutor(clients) as pool:
            started = time.perf_counter()
            samples = list(pool.map(lambda i: one_query(PREFETCH_QUERIES[i % 5]), range(rounds * clients)))
            elapsed = time.perf_counter() - started
        report(
            f"FHIR mixed prefetch queries ({clients} concurrent clients)",
            samples,
            f"{len(samples) / elapsed:,.0f} req/s",
        )
        samples = [fetch_all_prefetch() for _ in range(max(20, rounds // 5))]
        report(
            "FHIR all 5 prefetch queries of one hook call, concurrent",
            samples,
            "(part of the ≤100 ms p99 budget)",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def bench_domain(repeat: int) -> None:
    request = demo_request("order-sign-stroke-high-cost")
    prices = load_prices(None)
    draft = request["context"]["draftOrders"]
    charge_items = request["prefetch"]["chargeItems"]
    report(
        "cost_of_orders (4 demo draft orders)",
        time_calls(lambda: cost_of_orders(draft, prices), repeat),
        "target ≤ 0.2 ms",
    )
    big = {"resourceType": "Bundle", "entry": draft["entry"] * 125}
    report(
        "cost_of_orders (500 draft orders)",
        time_calls(lambda: cost_of_orders(big, prices), max(20, repeat // 50)),
        "target ≤ 20 ms",
    )
    report(
        "cost_so_far (demo stay, 27 ChargeItems)",
        time_calls(lambda: cost_so_far(charge_items, encounter_id="demo-enc-stroke"), repeat),
        "target ≤ 0.5 ms",
    )
    many = {"resourceType": "Bundle", "entry": charge_items["entry"] * 40}
    report(
        "cost_so_far (1,080 ChargeItems)",
        time_calls(lambda: cost_so_far(many), max(20, repeat // 50)),
        "target ≤ 20 ms",
    )
    templates = load_card_templates(None)
    so_far = cost_so_far(charge_items, encounter_id="demo-enc-stroke")
    orders = cost_of_orders(draft, prices)
    group = GroupView("I63.9", "未特指的脑梗死", "core", Decimal("670.049325"), Decimal("3831.44"))
    view = OrderSignView(
        "DIP 平顶山2025",
        group,
        position_from(group.standard, so_far, orders),
        priced_order_count=len(orders.priced),
        unpriced_orders=unpriced_from(orders),
    )
    label = source("DIP 平顶山2025")
    report(
        "order-sign card: render templates + build dict",
        time_calls(lambda: templates.build("order_sign", view, source=label), repeat),
        "target ≤ 1 ms",
    )
    report("load_card_templates (cached, mtime check)", time_calls(lambda: load_card_templates(None), repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="demo-fhir --workers values to measure"
    )
    args = parser.parse_args()
    bench_domain(args.repeat)
    for workers in args.workers:
        bench_fhir(args.clients, args.rounds, workers)


if __name__ == "__main__":
    main()
