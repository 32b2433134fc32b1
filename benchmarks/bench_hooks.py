"""Hook latency benchmark: the demo order-sign requests against the production server (plain script).

Starts ``dip-cds serve`` (gunicorn, the real console script, JWT off, logging WARNING) on a temp
data home and ``dip-cds demo-fhir`` on loopback (every request's ``fhirServer`` points at it, so
the no-prefetch request fetches patient, encounter, diagnoses, procedures and charges over HTTP),
then drives each scenario with C closed-loop clients for N seconds after a warm-up.

Numbers, per scenario:
* server-side: the app's own time per request, from the ``Server-Timing: app;dur=<ms>`` header
  (request start to response built, in the worker; excludes waiting in gunicorn's accept queue);
* client-observed: round trip seen by the load generator, including the queueing of C clients on
  the workers and the generator's own scheduling delays;
* req/s over the measured window, and CPU used by the service, the demo FHIR server and the
  generator (all share the machine's cores).

Targets (issue): full prefetch, 50 clients, 2 cores: server-side p50 ≤ 10 ms and p99 ≤ 30 ms;
all prefetch fetched from a loopback FHIR server: server-side p99 ≤ 100 ms.

Exit status: 0 all answers 200; 1 any non-200, connection error or missing Server-Timing, or more
than 1 % of prefetch fetches failed (fewer: a warning); 2 (only with --check-targets) a target
missed; 130 interrupted.

Usage: .venv/bin/python benchmarks/bench_hooks.py [--seconds 20] [--clients 50] [--workers 2]
       [--worker-class gevent|sync|gthread] [--sweep 2,3,4] [--scenarios full-prefetch,no-prefetch] [--home DIR] [--check-targets]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import (  # noqa: E402
    ROOT,
    LoadResult,
    ManagedProcess,
    clean_env,
    closed_loop,
    free_port,
    machine_busy_seconds,
    percentiles,
    start_demo_fhir,
    start_service,
)

DEMO_REQUESTS = ROOT / "hooks" / "demo" / "requests"
DEFAULT_WORKERS = 2  # best server-side p99 of 2, 3, 4 workers on the 2-core machine (see README)
MAX_PREFETCH_FAILED = 0.01  # share of failed prefetch fetches above which a run is invalid


@dataclass(frozen=True)
class Scenario:
    name: str
    request_file: str
    label: str
    target_p50_ms: float | None = None
    target_p99_ms: float | None = None


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "full-prefetch", "order-sign-appendicitis", "order-sign, full prefetch (appendicitis)", 10, 30
        ),
        Scenario("high-cost", "order-sign-stroke-high-cost", "order-sign, full prefetch (stroke, high cost)"),
        Scenario("sandbox-shape", "order-sign-sandbox-shape", "order-sign, Sandbox shape (patient only)"),
        Scenario(
            "no-prefetch",
            "order-sign-appendicitis-no-prefetch",
            "order-sign, no prefetch: patient, encounter, diagnoses, procedures, charges fetched",
            None,
            100,
        ),
    )
}


def _request_body(scenario: Scenario, fhir_base: str) -> tuple[str, bytes]:
    request = json.loads((DEMO_REQUESTS / f"{scenario.request_file}.json").read_text(encoding="utf-8"))
    request["fhirServer"] = fhir_base
    return f"/cds-services/dip-{request['hook']}", json.dumps(request, ensure_ascii=False).encode()


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Current Prometheus samples of the service (all workers), keyed by name and labels."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _delta(after: dict, before: dict, name: str, **labels: str) -> float:
    total = 0.0
    for (sample, key), value in after.items():
        if sample == name and all(dict(key).get(k) == v for k, v in labels.items()):
            total += value - before.get((sample, key), 0.0)
    return total


def _histogram_shares(after: dict, before: dict, service: str) -> dict[str, float]:
    """Share of requests per latency bucket from the service's own LATENCY histogram (cross-check)."""
    count = _delta(after, before, "dip_cds_request_seconds_count", endpoint="/cds-services/<service_id>",
                   service=service)  # fmt: skip
    out = {"count": count}
    for le in ("0.01", "0.025", "0.1"):
        n = _delta(after, before, "dip_cds_request_seconds_bucket", endpoint="/cds-services/<service_id>",
                   service=service, le=le)  # fmt: skip
        out[f"le_{float(le) * 1000:g}ms"] = n / count if count else float("nan")
    return out


def _check_once(port: int, path: str, body: bytes) -> dict[str, Any]:
    """One request before the load: must be a 200 CDS Hooks response with Server-Timing."""
    resp = requests.post(f"http://127.0.0.1:{port}{path}", data=body,
                         headers={"Content-Type": "application/json"}, timeout=30)  # fmt: skip
    info: dict[str, Any] = {"status": resp.status_code}
    try:
        info["cards"] = len(resp.json()["cards"])
    except (ValueError, KeyError, TypeError):
        info["cards"] = None
    if resp.status_code != 200:
        info["problem"] = resp.text[:300]
    return info


def run_scenario(
    scenario: Scenario,
    service: ManagedProcess,
    service_port: int,
    fhir: ManagedProcess,
    fhir_base: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    path, body = _request_body(scenario, fhir_base)
    check = _check_once(service_port, path, body)
    marks: dict[str, Any] = {}

    def window_start() -> None:
        marks["m0"] = _metrics(service_port)
        marks["svc0"], marks["fhir0"] = service.cpu_seconds(), fhir.cpu_seconds()
        marks["busy0"] = machine_busy_seconds()

    def window_end() -> None:
        marks["busy1"] = machine_busy_seconds()
        marks["svc1"], marks["fhir1"] = service.cpu_seconds(), fhir.cpu_seconds()

    before = _metrics(service_port)
    load: LoadResult = closed_loop(
        service_port, path, body, args.clients, args.warmup, args.seconds,
        on_window_start=window_start, on_window_end=window_end,
    )  # fmt: skip
    after = _metrics(service_port)
    window = load.window_seconds
    server_ms = [s for _, s, _ in load.samples if s is not None]
    service_id = path.rsplit("/", 1)[1]
    result = {
        "scenario": scenario.name,
        "cards": check["cards"],
        "check_status": check["status"],
        "check_problem": check.get("problem"),
        "n": len(load.samples),
        "rps": len(load.samples) / window,
        "server_ms": percentiles(server_ms),
        "client_ms": percentiles([c for c, _, _ in load.samples]),
        "non200": sum(n for status, n in load.statuses.items() if status != 200),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "errors": load.errors,
        "error_examples": load.error_examples,
        "missing_server_timing": len(load.samples) - len(server_ms),
        # whole run, warm-up included (see _problems for what a failed fetch means)
        "prefetch_fetched": int(_delta(after, before, "dip_cds_prefetch_fetches_total", outcome="ok")),
        "prefetch_failed": int(_delta(after, before, "dip_cds_prefetch_fetches_total", outcome="failed")),
        "histogram": _histogram_shares(after, marks["m0"], service_id),
        "cpu_cores": _cpu_cores(marks, load.generator_cpu_seconds, window),
    }
    result["problems"], result["warnings"] = _problems(result)
    return result


def _problems(r: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings): problems make the numbers untrustworthy and the exit status 1.

    A failed prefetch fetch still gives a 200 (the card notes the gap) but skips the FHIR round
    trip, so more than 1 % of fetches failing means the scenario did not measure what it says.
    """
    problems, warnings = [], []
    if r["check_status"] != 200:
        problems.append(f"first request answered {r['check_status']}: {r['check_problem']}")
    if r["n"] == 0:
        problems.append("no request completed in the measured window")
    if r["non200"]:
        problems.append(f"statuses {r['statuses']}")
    if r["errors"]:
        problems.append(f"{r['errors']} connection errors, e.g. {r['error_examples'][0]}")
    if r["prefetch_failed"]:
        share = r["prefetch_failed"] / (r["prefetch_failed"] + r["prefetch_fetched"])
        message = f"{r['prefetch_failed']} prefetch fetches failed ({share:.2%}, see the service log above)"
        (problems if share > MAX_PREFETCH_FAILED else warnings).append(message)
    if r["missing_server_timing"]:
        problems.append(f"{r['missing_server_timing']} responses without Server-Timing")
    return problems, warnings


def _cpu_cores(marks: dict[str, Any], generator_seconds: float, window: float) -> dict[str, float]:
    """Cores used during the window by each party; 'other' is the rest of the machine (not ours)."""
    cores = {
        "service": (marks["svc1"] - marks["svc0"]) / window,
        "demo_fhir": (marks["fhir1"] - marks["fhir0"]) / window,
        "generator": generator_seconds / window,
    }
    busy = (marks["busy1"] - marks["busy0"]) / window
    cores["other"] = max(busy - sum(cores.values()), 0.0)
    return cores


def _fmt(value: float) -> str:
    if value is None or math.isnan(value):
        return "   n/a"
    return f"{value:6.1f}" if value >= 100 else f"{value:6.2f}"


def _print_table(results: list[dict[str, Any]]) -> None:
    print(f"  {'scenario':<14}{'cards':>5}{'req/s':>7} | {'server-side ms (Server-Timing)':^27} | "
          f"{'client-observed ms (+queueing)':^27} |{'non200':>6}{'err':>4}{'prefetch ok/fail':>17} | "
          f"CPU cores svc/fhir/gen/other")  # fmt: skip
    print(f"  {'':<14}{'':>5}{'':>7} | {'p50':>6}{'p90':>7}{'p99':>7}{'max':>7} | "
          f"{'p50':>6}{'p90':>7}{'p99':>7}{'max':>7} |")  # fmt: skip
    for r in results:
        s, c, cpu = r["server_ms"], r["client_ms"], r["cpu_cores"]
        cards = "-" if r["cards"] is None else str(r["cards"])
        print(
            f"  {r['scenario']:<14}{cards:>5}{r['rps']:>7.0f} | "
            f"{_fmt(s['p50'])}{_fmt(s['p90']):>7}{_fmt(s['p99']):>7}{_fmt(s['max']):>7} | "
            f"{_fmt(c['p50'])}{_fmt(c['p90']):>7}{_fmt(c['p99']):>7}{_fmt(c['max']):>7} |"
            f"{r['non200']:>6}{r['errors']:>4}{r['prefetch_fetched']:>11}/{r['prefetch_failed']:<5} | "
            f" {cpu['service']:.2f}/{cpu['demo_fhir']:.2f}/{cpu['generator']:.2f}/{cpu['other']:.2f}"
        )
    for r in results:
        h, problems, warnings = r["histogram"], r["problems"], r["warnings"]
        print(
            f"    {r['scenario']}: n={r['n']}; service LATENCY histogram over the window: "
            f"{h['count']:.0f} requests, ≤10 ms {h['le_10ms']:.1%}, ≤25 ms {h['le_25ms']:.1%}, "
            f"≤100 ms {h['le_100ms']:.1%}"
            + ("; PROBLEM: " + "; ".join(problems) if problems else "")
            + ("; WARNING: " + "; ".join(warnings) if warnings else "")
        )


def _verdicts(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        scenario = SCENARIOS[r["scenario"]]
        for point, target in (("p50", scenario.target_p50_ms), ("p99", scenario.target_p99_ms)):
            if target is not None:
                value = r["server_ms"][point]
                out.append({"scenario": r["scenario"], "point": point, "server_ms": round(value, 2),
                            "target_ms": target, "ok": bool(value <= target)})  # fmt: skip
    return out


def run_config(
    workers: int, threads: int, args: argparse.Namespace, home: Path, fhir: ManagedProcess, fhir_base: str
) -> dict[str, Any]:
    port = free_port()
    env = clean_env(DIP_CDS_LOGGING__LEVEL="WARNING", DIP_CDS_SECURITY__JWT="off")
    if args.concurrency:
        env["DIP_CDS_SERVER__MAX_CONCURRENT_REQUESTS"] = str(args.concurrency)
    service = start_service(home, port, workers, threads, env, args.worker_class)
    try:
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
        cls = args.worker_class or ("gthread" if threads > 1 else "gevent")
        print(f"\n== dip-cds serve --workers {workers} --threads {threads} (gunicorn {cls}); "
              f"reference data: {ready.get('data')}")  # fmt: skip
        results = [
            run_scenario(SCENARIOS[name], service, port, fhir, fhir_base, args) for name in args.scenarios
        ]
        if any(r["problems"] or r["warnings"] for r in results):
            print(f"  service log (last lines):\n{service.log_tail()}")
    finally:
        service.stop()
    _print_table(results)
    verdicts = _verdicts(results)
    for v in verdicts:
        print(f"  target {v['scenario']} server-side {v['point']} {v['server_ms']:.2f} ms ≤ {v['target_ms']} ms: "
              f"{'OK' if v['ok'] else 'MISS'}")  # fmt: skip
    return {
        "workers": workers,
        "threads": threads,
        "worker_class": cls,
        "scenarios": results,
        "targets": verdicts,
    }


def _failed(config: dict[str, Any]) -> bool:
    return any(r["problems"] for r in config["scenarios"])


def _summary(configs: list[dict[str, Any]], args: argparse.Namespace, failed: bool) -> dict[str, Any]:
    def r2(d: dict[str, float]) -> dict[str, float | None]:
        return {k: None if math.isnan(v) else round(v, 2) for k, v in d.items()}

    return {
        "bench": "hooks",
        "cpus": os.cpu_count(),
        "clients": args.clients,
        "seconds": args.seconds,
        "ok": not failed,
        "targets_met": all(v["ok"] for c in configs for v in c["targets"]),
        "configs": [
            {
                "workers": c["workers"],
                "threads": c["threads"],
                "worker_class": c["worker_class"],
                "scenarios": {
                    r["scenario"]: {
                        "rps": round(r["rps"], 1),
                        "server_ms": r2(r["server_ms"]),
                        "client_ms": r2(r["client_ms"]),
                        "cards": r["cards"],
                        "non200": r["non200"],
                        "errors": r["errors"],
                        "prefetch_fetched": r["prefetch_fetched"],
                        "prefetch_failed": r["prefetch_failed"],
                        "cpu_cores": r2(r["cpu_cores"]),
                    }
                    for r in c["scenarios"]
                },
            }
            for c in configs
        ],
    }


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per scenario (same load)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent closed-loop clients")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (>1: gthread)")
    parser.add_argument("--worker-class", choices=["gevent", "sync", "gthread"], default=None,
                        help="gunicorn worker class (default: dip-cds serve's, gevent)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=0,
                        help="server.max_concurrent_requests per worker (default: the service's)")  # fmt: skip
    parser.add_argument(
        "--sweep", default="", help="server layouts to compare: workers[xthreads],... e.g. 2,3,4,2x4"
    )
    parser.add_argument("--fhir-workers", type=int, default=1,
                        help="demo FHIR server processes (1: one threaded process)")  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--home", type=Path, help="existing data home (real reference data); default: a temp one"
    )
    parser.add_argument("--check-targets", action="store_true", help="exit 2 when a latency target is missed")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    try:
        layouts = [
            tuple(int(n) for n in (w.split("x") + ["1"])[:2]) for w in args.sweep.split(",") if w.strip()
        ]
    except ValueError:
        parser.error(f"--sweep: expected workers[xthreads],..., got {args.sweep!r}")
    args.layouts = layouts or [(args.workers, args.threads)]
    return args


def main() -> int:
    args = _parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C
    print(f"dip-cds hook latency benchmark — {os.cpu_count()} CPUs shared by the service, the demo FHIR "
          f"server and this load generator (its CPU is shown as 'gen')")  # fmt: skip
    print(f"closed loop: {args.clients} clients (threads, keep-alive http.client), {args.warmup:g} s warm-up + "
          f"{args.seconds:g} s measured per scenario; JWT off, logging WARNING")  # fmt: skip
    print("server-side = Server-Timing app;dur (time inside the worker); client-observed adds accept-queue "
          "waiting, network stack and generator scheduling")  # fmt: skip
    print("CPU cores: svc = dip-cds serve (all workers), fhir = demo FHIR server, gen = this generator, "
          "other = rest of the machine (other processes, kernel): other ≳ 0.3 means it was not quiet")  # fmt: skip
    print("prefetch ok/fail = prefetch fetches from the FHIR server over the whole run, warm-up included")
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        print(f"  {name:<14} hooks/demo/requests/{scenario.request_file}.json: {scenario.label}")
    home = args.home or Path(tempfile.mkdtemp(prefix="dip-bench-hooks-"))
    fhir: ManagedProcess | None = None
    configs: list[dict[str, Any]] = []
    try:
        fhir_port = free_port()
        fhir = start_demo_fhir(fhir_port, args.fhir_workers, clean_env())
        fhir_base = f"http://127.0.0.1:{fhir_port}"
        print(f"demo FHIR server: {fhir_base} ({args.fhir_workers} process(es)); data home: {home}")
        for workers, threads in args.layouts:
            configs.append(run_config(workers, threads, args, home, fhir, fhir_base))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        if fhir is not None:
            fhir.stop()
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)

    if len(configs) > 1:
        print("\nworker sweep (server-side p99 decides the default --workers):")
        for c in configs:
            for r in c["scenarios"]:
                print(f"  {c['workers']}x{c['threads']}  {r['scenario']:<14} server p99 {r['server_ms']['p99']:7.2f} ms   "
                      f"client p99 {r['client_ms']['p99']:7.2f} ms   {r['rps']:6.0f} req/s")  # fmt: skip
    failed = any(_failed(c) for c in configs)
    summary = _summary(configs, args, failed)
    print(json.dumps(summary, ensure_ascii=False, separators=(",", ":")))
    if failed:
        return 1
    if args.check_targets and not summary["targets_met"]:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
