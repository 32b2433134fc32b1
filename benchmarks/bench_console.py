"""Console benchmark (plain script): what recording costs a hook call, and the 在院监控 page at scale.

1. Recording overhead per hook call: the demo order-sign request through the real app (reference
   data preloaded), N calls; the time spent in the ``assessment`` subscriber (the spool write) is
   measured around each call, p50/p99 — twice: in a process patched as gunicorn's gevent worker
   (the default of ``dip-cds serve``; the drainer is a greenlet) and with OS threads (sync / gthread
   workers; there a spool write that returns while the drainer holds the GIL waits for it). For the
   decision recorded in console/recorder.py, the same event stored by a synchronous SQLite WAL
   insert in 1, 2 and 4 processes writing at once.
2. The 在院监控 page with 3,000 open stays and 1,000,000 stored assessments (rows generated
   directly into the SQLite database, 47,000 closed stays besides): server render time of
   ``GET /console/stays`` (signed in, first page, and filtered by department), median and p95.

Targets (issue): recording ≤ 1 ms p99 per hook call; the page ≤ 500 ms.

Usage: .venv/bin/python benchmarks/bench_console.py [--calls 500] [--assessments 1000000]
       [--open-stays 3000] [--home DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _sync_writer(url: str, n: int, out) -> None:  # noqa: ANN001
    from console.db import engine_for
    from console.ingest import ingest
    from tests.test_console_record import _event

    engine = engine_for(url)
    times = []
    for i in range(n):
        event = _event(patient=f"S{i % 300}", encounter=f"S{i % 300}")
        started = time.perf_counter()
        with engine.begin() as conn:
            ingest(conn, [event])
        times.append(time.perf_counter() - started)
    out.put(times)


def recording(home: Path, calls: int, sync_alternative: bool = True) -> None:
    from console.db import engine_for, migrate
    from tests.console_helpers import console_app
    from tests.demo_fhir_helpers import demo_request

    app = console_app(home / "rec")
    console = app.extensions["dip_cds.console"]
    spent: list[float] = []
    cpu: list[float] = []
    original = console.record

    def timed(data, event):  # noqa: ANN001
        started, started_cpu = time.perf_counter(), time.thread_time()
        original(data, event)
        spent.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)

    console.record = timed
    client = app.test_client()
    body = demo_request("order-sign-stroke-high-cost")
    totals = []
    for _ in range(calls):
        started = time.perf_counter()
        response = client.post(
            "/cds-services/dip-order-sign", json={**body, "hookInstance": str(uuid.uuid4())}
        )
        totals.append(time.perf_counter() - started)
        assert response.status_code == 200
    console.flush()
    print(
        f"hook call (order-sign, in-process): p50 {pct(totals, 0.5):.2f} ms, p99 {pct(totals, 0.99):.2f} ms"
    )
    print(
        f"recording (spool write) per call:   p50 {pct(spent, 0.5):.4f} ms, p99 {pct(spent, 0.99):.4f} ms  (target ≤ 1 ms)"
    )
    # Wall time includes waiting for a core: on a host with more runnable tasks than cores the p99 is
    # the scheduler's, not the recorder's. Its own work is the thread's CPU time.
    print(
        f"recording, this thread's CPU time:  p50 {pct(cpu, 0.5):.4f} ms, p99 {pct(cpu, 0.99):.4f} ms, max {max(cpu) * 1000:.4f} ms"
    )

    if not sync_alternative:
        return
    url = f"sqlite:///{home / 'sync.sqlite'}"
    migrate(engine_for(url))
    for procs in (1, 2, 4):
        queue = mp.get_context("fork").Queue()
        workers = [
            mp.get_context("fork").Process(target=_sync_writer, args=(url, 300, queue)) for _ in range(procs)
        ]
        for w in workers:
            w.start()
        times = [t for _ in workers for t in queue.get()]
        for w in workers:
            w.join()
        print(
            f"alternative: synchronous SQLite WAL insert, {procs} writer process(es): p50 {pct(times, 0.5):.2f} ms, p99 {pct(times, 0.99):.2f} ms"
        )


DEPARTMENTS = [(f"{d:04d}", f"科室{d}") for d in range(1, 31)]


def generate(db: Path, assessments_total: int, open_stays: int, closed_stays: int) -> None:
    """Rows straight into SQLite (the schema made by the migrations): stays, then their history."""
    rng = random.Random(1)
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC)
    stays = []
    total_stays = open_stays + closed_stays
    for i in range(total_stays):
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        standard = rng.randint(3000, 40000) * 100
        ratio = int(rng.uniform(0.2, 2.4) * 10000)
        is_open = i < open_stays
        last = now - timedelta(hours=rng.randint(0, 24 * (7 if is_open else 300)))
        stays.append(
            (
                i + 1,
                secrets.token_hex(12),
                f"P{i:07d}",
                f"E{i:07d}",
                "in-progress" if is_open else "finished",
                is_open,
                (last - timedelta(days=5)).isoformat(),
                last.isoformat(),
                None if is_open else last.isoformat(),
                "dip-order-sign",
                last.isoformat(),
                0,
                0,
                0,
                dept[0],
                dept[1],
                f"dr{i % 400}",
                f"医生{i % 400}",
                "bench",
                "I63.9",
                "脑梗死",
                "core",
                False,
                standard,
                standard * ratio // 10000,
                0,
                standard * ratio // 10000,
                ratio,
                "loss" if ratio > 10000 else "normal",
            )  # fmt: skip
        )
    con.executemany(f"INSERT INTO console_stay (id, stay_key, patient_id, encounter_id, encounter_status, is_open, first_at, last_at, closed_at, last_service, dip_at, assessments, findings, risk_cents, department_code, department_name, attending_id, attending_name, catalog, group_code, group_name, group_kind, estimate, standard_cents, cost_cents, order_cents, projected_cents, ratio_e4, band) VALUES ({','.join('?' * 29)})", stays)  # fmt: skip
    per = assessments_total // total_stays
    batch = []
    n = 0
    for stay in stays:
        for k in range(per):
            n += 1
            at = (datetime.fromisoformat(stay[7]) - timedelta(hours=per - k)).isoformat()
            batch.append((n, uuid.uuid4().hex, stay[0], "dip", "dip-order-sign", "order-sign", at, stay[14], stay[15], stay[16], stay[17], stay[23], stay[24], stay[26], stay[27], stay[28]))  # fmt: skip
            if len(batch) == 50000:
                con.executemany("INSERT INTO console_assessment (id, event_id, stay_id, kind, service, hook, at, department_code, department_name, attending_id, attending_name, standard_cents, cost_cents, projected_cents, ratio_e4, band) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)  # fmt: skip
                batch.clear()
    if batch:
        con.executemany("INSERT INTO console_assessment (id, event_id, stay_id, kind, service, hook, at, department_code, department_name, attending_id, attending_name, standard_cents, cost_cents, projected_cents, ratio_e4, band) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)  # fmt: skip
    con.commit()
    con.execute("ANALYZE")
    con.close()


def page(home: Path, assessments_total: int, open_stays: int) -> None:
    from console import auth
    from tests.console_helpers import console_app

    app = console_app(home / "page")
    engine = app.extensions["dip_cds.console"].engine
    db = Path(engine.url.database)
    started = time.perf_counter()
    generate(db, assessments_total, open_stays, closed_stays=47000)
    with engine.connect() as conn:
        counts = conn.exec_driver_sql(
            "select (select count(*) from console_assessment), (select count(*) from console_stay where is_open)"
        ).one()
    print(
        f"generated {counts[0]:,} assessments, {counts[1]:,} open stays in {time.perf_counter() - started:.1f} s"
    )
    auth.create_user(engine, "bench", "ybb", "bench-password-1")
    client = app.test_client()
    response = client.post("/console/login", data={})
    login = client.get("/console/login")
    token = login.get_data(as_text=True).split('name="login_token" value="')[1].split('"')[0]
    response = client.post(
        "/console/login", data={"login_token": token, "username": "bench", "password": "bench-password-1"}
    )
    assert response.status_code == 302, response.status_code
    for label, path in (
        ("first page", "/console/stays"),
        ("one department", "/console/stays?dept=0007"),
        ("band loss, page 5", "/console/stays?band=loss&page=5"),
    ):
        times = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        print(
            f"在院监控 {label}: median {statistics.median(times) * 1000:.1f} ms, p95 {pct(times, 0.95):.1f} ms  (target ≤ 500 ms)"
        )


# the recording measurement in a process patched as gunicorn's gevent worker patches itself
GEVENT_RECORDING = """
from gevent import monkey
monkey.patch_all()
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import bench_console
bench_console.recording(Path(sys.argv[1]), int(sys.argv[2]), sync_alternative=False)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--assessments", type=int, default=1_000_000)
    parser.add_argument("--open-stays", type=int, default=3000)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-console-"))
    home.mkdir(parents=True, exist_ok=True)
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    print("-- recording with gevent workers (the default of `dip-cds serve`: the drainer is a greenlet)")
    subprocess.run(
        [sys.executable, "-c", GEVENT_RECORDING, str(home / "gevent"), str(args.calls)],
        check=True,
        cwd=ROOT,
    )
    print("-- recording with OS threads (sync / gthread workers: the drainer is a thread)")
    recording(home / "threads", args.calls)
    page(home, args.assessments, args.open_stays)
    print(f"host: load average {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
