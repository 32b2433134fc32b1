"""医保智能审核 benchmark (plain script): order audit under load, and the batch audit of 10 M fee lines.

Order audit — ``dip-cds serve`` (gunicorn, the real console script, JWT off, logging WARNING) on a
temp data home with the real rule library imported when ``../shared/data/rules`` is present (else
the built-in sample). Two scenarios, each 50 draft orders against a stay with 500 charged lines:

* ``hook``: ``yb-audit-order-sign`` with full prefetch (Patient, Encounter, Coverage, 500
  ChargeItems, 20 MedicationAdministrations), posted by C closed-loop clients;
* ``3101``: the same stay as a national 3101 request (500 history orders + 50 current ones).

Numbers: server-side time from ``Server-Timing: app;dur=`` (request start to response built in the
worker), client-observed round trip, req/s and CPU of service / generator / whole machine, and the
CPU per call in process (no server, so little affected by other work on the machine).
Target (issue): server-side p99 ≤ 10 ms at 50 clients on 2 cores.

Batch — ``dip-cds synth-fees`` makes N fee lines (default 10,000,000; not timed), then
``dip-cds audit`` runs embedded (DuckDB, 2 threads) as a child process: wall time, peak RSS of the
child (``ru_maxrss``) and the split read / join / rank / report from its summary.json.
Target (issue): ≤ 60 s end to end, ≤ 4 GB peak.

Usage: .venv/bin/python benchmarks/bench_audit.py [--part orders|batch|all] [--seconds 20]
       [--clients 50] [--workers 2] [--lines 10000000] [--data DIR] [--check-targets]
Exit status: 0 ok; 1 a non-200 answer or a failed run; 2 (with --check-targets) a target missed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from yb_audit.kinds import KINDS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import (  # noqa: E402
    ROOT,
    clean_env,
    closed_loop,
    dip_cds_command,
    free_port,
    machine_busy_seconds,
    percentiles,
    start_service,
)

RULES = ROOT.parent / "shared" / "data" / "rules" / "nhsa-rule-library"
DEMO = ROOT / "hooks" / "demo" / "requests"
TARGET_P99_MS = 10.0
TARGET_BATCH_SECONDS = 60.0
TARGET_BATCH_GB = 4.0

SYNTHETIC = ("009900000000001", "合成项目（无规则）", "12.00")
BED, VISIT, NURSING, ECG = (
    ("001109000010000", "普通病房床位费", "50.00"),
    ("001102000050000", "住院诊查费", "20.00"),
    ("001201000030000", "Ⅰ级护理", "30.00"),
    ("003107010220000", "心电监测", "5.00"),
)
OZAGREL = ("XB01AXA223B002010100156", "奥扎格雷钠注射液", "36.80")
HBA1C = ("002503020030000", "糖化血红蛋白测定", "60.00")
# 50 draft orders of 2026-11-22, 5 of each: some break a rule (a woman's 阿帕他胺片, an adult's
# children's syrup, four more ward visits, four more HbA1c, a second operation at full price)
DRAFTS = [
    ("XL02BBA326A001010102180", "阿帕他胺片"),
    ("ZA04CAE0023010100166", "儿童清肺口服液"),
    ("XB05BAU005B002010101415", "ω-3鱼油脂肪乳注射液"),
    OZAGREL[:2],
    VISIT[:2],
    ("001201000140100", "一般专项护理(口腔护理)"),
    HBA1C[:2],
    ("009900000000002", "合成项目（无规则）"),
    ("003310030220000", "阑尾切除术"),
    ("003310030080000", "肠粘连松解术"),
]


def charged_lines() -> list[tuple[str, str, str, str, str, str]]:
    """500 lines of a 20-day stay that keep the rules: (day, time, code, name, price, fee category)."""
    out = []
    for d in range(20):
        day = f"2026-11-{2 + d:02d}"
        rows = [("00:05", *BED, "01"), ("08:00", *VISIT, "02"), ("08:30", *NURSING, "07")]
        rows += [(f"{h:02d}:10", *ECG, "05") for h in range(20)]  # 20 hours of monitoring
        rows.append(("10:00", *(OZAGREL if d < 12 else SYNTHETIC), "09"))  # the drug for 12 days
        rows.append(("11:00", *(HBA1C if d == 2 else SYNTHETIC), "04"))
        out += [(day, *row) for row in rows]
    return out


def hook_request() -> dict[str, Any]:
    """The stay with full prefetch (Patient, Encounter, Coverage, 500 ChargeItems) and 50 drafts."""
    base = json.loads((DEMO / "yb-audit-order-sign-frequency.json").read_text(encoding="utf-8"))
    base.pop("fhirServer", None)
    base.pop("fhirAuthorization", None)
    template = base["prefetch"]["chargeItems"]["entry"][0]["resource"]
    template.pop("meta", None)  # the demo tag
    charges = []
    for i, (day, hhmm, code, name, price, category) in enumerate(charged_lines()):
        item = copy.deepcopy(template)
        item["id"] = f"bench-ci-{i:04d}"
        item["extension"][0]["valueCode"] = category
        item["code"] = {
            "coding": [
                {
                    "system": "http://www.nhsa.gov.cn/CodeSystem/medical-service-item",
                    "code": code,
                    "display": name,
                }
            ]
        }
        item["occurrenceDateTime"] = f"{day}T{hhmm}:00+08:00"
        item["priceOverride"] = {"value": float(price), "currency": "CNY"}
        charges.append({"resource": item, "search": {"mode": "match"}})
    base["prefetch"]["chargeItems"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 500,
        "entry": charges,
    }
    order = base["context"]["draftOrders"]["entry"][0]["resource"]
    drafts = []
    for i in range(50):
        code, name = DRAFTS[i % len(DRAFTS)]
        draft = copy.deepcopy(order)
        draft["id"] = f"bench-draft-{i:02d}"
        draft["code"] = {"coding": [{"system": "yb-item", "code": code, "display": name}], "text": name}
        drafts.append({"resource": draft})
    base["context"]["draftOrders"]["entry"] = drafts
    base["prefetch"]["patient"]["gender"] = "female"
    return base


def national_request() -> dict[str, Any]:
    """The same stay as a 3101 request: 500 history orders and 50 current ones."""
    rows = [
        (f"{day} {hhmm}:00", code, name, price, "0") for day, hhmm, code, name, price, _ in charged_lines()
    ]
    rows += [
        (f"2026-11-22 {9 + i // 10:02d}:{i % 60:02d}:00", *DRAFTS[i % len(DRAFTS)], "25.00", "1")
        for i in range(50)
    ]
    orders = [
        {
            "rx_id": f"RX{i:04d}",
            "hilist_code": code,
            "hilist_name": name,
            "hosplist_code": f"H{i:04d}",
            "cnt": 1,
            "pric": price,
            "sumamt": price,
            "drord_begn_date": begin,
            "drord_dept_codg": "0301",
            "drord_dr_codg": "D0001",
            "curr_drord_flag": current,
        }
        for i, (begin, code, name, price, current) in enumerate(rows)
    ]
    encounter = {
        "mdtrt_id": "M-BENCH",
        "medins_lv": "05",
        "adm_date": "2026-11-02 08:00:00",
        "med_type": "21",
        "insutype": "310",
        "adm_dept_codg": "0301",
        "adm_dept_name": "心血管内科",
        "dr_codg": "D0001",
        "fsi_diagnose_dtos": [],
        "fsi_order_dtos": orders,
    }
    patient = {
        "patn_id": "P-BENCH",
        "gend": "2",
        "brdy": "1960-01-01",
        "curr_mdtrt_id": "M-BENCH",
        "fsi_encounter_dtos": [encounter],
    }
    return {"infno": "3101", "input": {"data": {"patient_dtos": [patient], "task_id": "bench"}}}


def in_process_cpu_ms(home: Path, path: str, raw: bytes, calls: int = 100) -> float:
    """CPU per call in this process (Flask test client, no HTTP server): the handler's own cost,
    much less sensitive to other work on the machine than the latencies under load."""
    from cds_service.app import create_app

    os.environ["DIP_CDS_LOGGING__LEVEL"] = "WARNING"  # as the served process
    client = create_app(home=home).test_client()
    for _ in range(5):
        client.post(path, data=raw, content_type="application/json")
    started = time.process_time()
    for _ in range(calls):
        client.post(path, data=raw, content_type="application/json")
    return round((time.process_time() - started) / calls * 1000, 2)


def run_orders(args: argparse.Namespace, home: Path) -> list[dict[str, Any]]:
    port = free_port()
    service = start_service(home, port, args.workers, env=clean_env(DIP_CDS_LOGGING__LEVEL="WARNING"))
    results = []
    try:
        for name, path, body in (
            ("hook", "/cds-services/yb-audit-order-sign", hook_request()),
            ("3101", "/yb/3101", national_request()),
        ):
            raw = json.dumps(body, ensure_ascii=False).encode()
            check = requests.post(
                f"http://127.0.0.1:{port}{path}",
                data=raw,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            answer = check.json()
            found = (
                len(answer.get("cards", []))
                if name == "hook"
                else len((answer.get("output") or {}).get("result", []))
            )
            busy0, svc0 = machine_busy_seconds(), service.cpu_seconds()
            load = closed_loop(port, path, raw, args.clients, args.warmup, args.seconds)
            busy1, svc1 = machine_busy_seconds(), service.cpu_seconds()
            server = [s for _, s, _ in load.samples if s is not None]
            results.append(
                {
                    "scenario": name,
                    "request_kb": round(len(raw) / 1024),
                    "check_status": check.status_code,
                    "cards_or_results": found,
                    "n": len(load.samples),
                    "rps": round(len(load.samples) / load.window_seconds, 1),
                    "server_ms": {k: round(v, 2) for k, v in percentiles(server).items()},
                    "client_ms": {
                        k: round(v, 1) for k, v in percentiles([c for c, _, _ in load.samples]).items()
                    },
                    "in_process_cpu_ms": in_process_cpu_ms(home, path, raw),
                    "non200": sum(n for s, n in load.statuses.items() if s != 200),
                    "errors": load.errors,
                    "cpu_cores": {
                        "service": round((svc1 - svc0) / args.seconds, 2),
                        "generator": round(load.generator_cpu_seconds / args.seconds, 2),
                        "machine": round((busy1 - busy0) / args.seconds, 2),
                    },
                }
            )
    finally:
        service.stop()
    return results


def run_batch(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="yb-audit-bench-"))
    fees = data / "fees.csv"
    if not fees.exists():
        # 30 lines a stay on average; 0.1 % of the stays per kind seeded with a violation and as many
        # with a compliant boundary case (those stays are short): ~29.3 lines a stay overall
        stays = max(round(args.lines / 29.3), 1)
        rates = [arg for key in KINDS for arg in ("--rate", f"{key}=0.001")]
        started = time.perf_counter()
        subprocess.run(
            [dip_cds_command(), "--home", str(home), "synth-fees", "--output", str(data), "--stays", str(stays),
             "--seed", "1", "--bad-lines", "100", *rates],
            check=True, env=clean_env(),
        )  # fmt: skip

        print(f"synthetic data: {time.perf_counter() - started:.1f}s (not timed)", file=sys.stderr)
    lines = sum(1 for _ in fees.open("rb")) - 1
    out = data / "out"
    shutil.rmtree(out, ignore_errors=True)
    busy0 = machine_busy_seconds()
    started = time.perf_counter()
    err = data / "audit.stderr"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [dip_cds_command(), "--home", str(home), "audit", "--fees", str(fees), "--stays", str(data / "stays.csv"),
             "--output", str(out), "--threads", "2", "--memory-limit", args.memory_limit],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (not the synth run's)
    wall = time.perf_counter() - started
    busy1 = machine_busy_seconds()
    peak_kb = usage.ru_maxrss
    returncode = os.waitstatus_to_exitcode(status)
    if returncode != 0:
        return {"ok": False, "error": err.read_text()[-2000:]}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    expected = sum(1 for _ in (data / "expected.csv").open("rb")) - 1
    return {
        "ok": True,
        "lines": lines,
        "wall_seconds": round(wall, 1),
        "split_seconds": summary["timings"],
        "peak_rss_gb": round(peak_kb / 1024 / 1024, 2),
        "findings": summary["totals"]["findings"],
        "expected_findings": expected,
        "machine_cores_busy": round((busy1 - busy0) / wall, 2),
        "data": str(data),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["orders", "batch", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--data", default=None, help="keep / reuse the synthetic batch data here")
    parser.add_argument("--check-targets", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="yb-audit-home-"))
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    try:
        if RULES.is_dir():
            subprocess.run([dip_cds_command(), "--home", str(home), "data", "import-rules", str(RULES)],
                           check=True, env=clean_env(), capture_output=True)  # fmt: skip
            report["rules"] = "national library (14 workbooks)"
        else:
            report["rules"] = "built-in sample"
        if args.part in ("orders", "all"):
            report["orders"] = run_orders(args, home)
        if args.part in ("batch", "all"):
            report["batch"] = run_batch(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, ensure_ascii=False, indent=2))
    failed = any(r["non200"] or r["errors"] or r["check_status"] != 200 for r in report.get("orders", []))
    failed |= "batch" in report and not report["batch"]["ok"]
    if failed:
        return 1
    if args.check_targets:
        missed = [r["scenario"] for r in report.get("orders", []) if r["server_ms"]["p99"] > TARGET_P99_MS]
        batch = report.get("batch")
        if batch and (batch["wall_seconds"] > TARGET_BATCH_SECONDS or batch["peak_rss_gb"] > TARGET_BATCH_GB):
            missed.append("batch")
        if missed:
            print(f"targets missed: {', '.join(missed)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
