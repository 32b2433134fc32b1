"""The console's record: every hook answer is stored (latest state per stay + history), nothing
is lost when the process is killed, bad events are kept with the reason, retention purges closed
stays, and the Alembic migrations build exactly the tables the code uses — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from console.db import VERSION_TABLE, engine_for, migrate
from console.ingest import ingest
from console.models import assessments, cards, metadata, rejected_events, stays
from console.queries import open_stays
from console.recorder import Recorder, drain_file, recover_orphans
from console.retention import purge
from tests.console_helpers import console_app, postgres
from tests.demo_fhir_helpers import demo_request
from tests.service_helpers import free_port


def _event(
    patient: str = "P1",
    encounter: str = "E1",
    at: str = "2026-12-01T08:00:00Z",
    ratio: str = "1.2000",
    **extra,
):
    return {
        "kind": "dip", "service": "dip-order-sign", "hook": "order-sign", "hook_instance": str(uuid.uuid4()),
        "channel": "cds-hooks", "at": at, "patient_id": patient, "encounter_id": encounter,
        "encounter_status": "in-progress", "department": {"code": "0302", "name": "呼吸内科"},
        "attending": {"id": "dr1", "name": "李医生"},
        "dip": {"catalog": "x", "group_code": "J18.9", "group_name": "肺炎", "group_kind": "core", "estimate": False,
                "standard": "1000.00", "cost_so_far": "1100.00", "order_cost": "100.00", "projected": "1200.00",
                "projected_ratio": ratio, "band": "loss"},
        "findings": [], "cards": [{"uuid": str(uuid.uuid4()), "summary": "s", "indicator": "warning"}],
        "event_id": uuid.uuid4().hex, **extra,
    }  # fmt: skip


def test_a_hook_answer_is_recorded_with_its_stay_doctor_group_and_cards_and_no_patient_name(
    tmp_path: Path,
) -> None:
    app = console_app(tmp_path)
    body = demo_request("order-sign-stroke-high-cost")
    response = app.test_client().post("/cds-services/dip-order-sign", json=body)
    assert response.status_code == 200
    console = app.extensions["dip_cds.console"]
    console.flush()
    with console.engine.connect() as conn:
        stay = conn.execute(select(stays)).mappings().one()
        card_uuids = conn.execute(select(cards.c.card_uuid)).scalars().all()
        dump = json.dumps([dict(r) for t in metadata.sorted_tables for r in conn.execute(select(t)).mappings()],
                          default=str, ensure_ascii=False)  # fmt: skip
    assert (stay["patient_id"], stay["encounter_id"]) == (
        body["context"]["patientId"],
        body["context"]["encounterId"],
    )
    assert stay["department_name"] == "神经内科" and stay["attending_name"] == "张医生（演示）"
    assert stay["group_code"] == "I63.9" and stay["is_open"] and stay["band"] == "loss"
    assert stay["ratio_e4"] > 10000 and stay["projected_cents"] > stay["standard_cents"]
    assert card_uuids == [response.json["cards"][0]["uuid"]]
    names = [n.get("text") for e in body["prefetch"].values() if isinstance(e, dict)
             for r in ([e] + [x["resource"] for x in e.get("entry", [])]) if r.get("resourceType") == "Patient"
             for n in r.get("name", [])]  # fmt: skip
    assert names and all(name not in dump for name in names)


def test_the_latest_state_follows_the_newest_event_even_when_events_arrive_out_of_order(
    tmp_path: Path,
) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with engine.begin() as conn:
        ingest(conn, [_event(at="2026-12-02T08:00:00Z", ratio="1.5000")])
        ingest(conn, [_event(at="2026-12-01T08:00:00Z", ratio="0.5000")])  # late arrival of an older call
        ingest(
            conn, [_event(at="2026-12-03T08:00:00Z", encounter_status="finished", hook="encounter-discharge")]
        )
    with engine.connect() as conn:
        stay = conn.execute(select(stays)).mappings().one()
        history = conn.execute(select(assessments.c.ratio_e4).order_by(assessments.c.at)).scalars().all()
    assert history == [5000, 15000, 12000]
    assert stay["assessments"] == 3 and stay["ratio_e4"] == 12000
    assert not stay["is_open"] and stay["closed_at"] is not None


def test_a_replayed_spool_stores_nothing_twice_and_broken_lines_are_kept_with_the_reason(
    tmp_path: Path,
) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    spool = tmp_path / "spool.jsonl"
    events = [_event(patient=f"P{i}", encounter=f"E{i}") for i in range(5)]
    bad = {**_event(), "at": "yesterday"}
    spool.write_text("\n".join(json.dumps(e) for e in [*events, bad]) + "\n{not json\n", encoding="utf-8")
    assert drain_file(engine, spool) == spool.stat().st_size
    drain_file(engine, spool)  # again, as after a kill between the commit and the truncate
    with engine.connect() as conn:
        assert conn.execute(select(assessments.c.id)).all().__len__() == 5
        reasons = conn.execute(select(rejected_events.c.reason)).scalars().all()
    assert any("'at'" in r for r in reasons) and any("not JSON" in r for r in reasons)


def test_retention_purges_closed_stays_past_the_setting_and_keeps_open_ones(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    recent = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    with engine.begin() as conn:
        ingest(conn, [_event("P1", "E1", at=old, encounter_status="finished")])
        ingest(conn, [_event("P2", "E2", at=recent, encounter_status="finished")])
        ingest(conn, [_event("P3", "E3", at=old)])  # open for 40 days: never purged
    assert purge(engine, retention_days=30)["stays"] == 1
    with engine.connect() as conn:
        assert sorted(conn.execute(select(stays.c.patient_id)).scalars()) == ["P2", "P3"]
        assert conn.execute(select(assessments.c.id)).all().__len__() == 2


def test_a_killed_process_leaves_its_spool_and_the_next_start_stores_it(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    code = (
        "import sys, os, signal; from console.db import engine_for; from console.recorder import Recorder\n"
        f"r = Recorder(engine_for({str(engine.url)!r}), __import__('pathlib').Path({str(tmp_path / 'spool')!r}), interval=60)\n"
        "import json; events = json.loads(sys.stdin.read())\n"
        "[r.record(e) for e in events]\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    events = [_event(patient=f"K{i}", encounter=f"K{i}") for i in range(50)]
    proc = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(events), text=True, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL
    assert recover_orphans(engine, tmp_path / "spool") == 1
    with engine.connect() as conn:
        assert len(conn.execute(select(stays.c.id)).all()) == 50
    assert list((tmp_path / "spool").iterdir()) == []


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_kill_during_a_burst_of_hook_calls_loses_no_answered_assessment(tmp_path: Path) -> None:
    """The real server (gunicorn, 2 workers) is SIGKILLed mid-burst; every call that got its 200
    answer is in the record after the next start (``dip-cds console migrate``)."""
    port = free_port()
    env = {**os.environ, "DIP_CDS_HOME": str(tmp_path), "DIP_CDS_LOGGING__LEVEL": "WARNING"}
    exe = Path(sys.executable).with_name("dip-cds")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(exe), "serve", "--port", str(port), "--workers", "2"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # generous: the cores are shared with other test runs
        while not _ready(base):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dip-cds serve did not become ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        template = demo_request("order-sign-stroke-high-cost")
        answered: list[str] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            body = {**template, "hookInstance": str(uuid.uuid4())}
            try:
                r = requests.post(f"{base}/cds-services/dip-order-sign", json=body, timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 200:
                with lock:
                    answered.append(body["hookInstance"])
                    if len(answered) == 60:
                        os.killpg(server.pid, signal.SIGKILL)  # mid-burst: requests still in flight

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(200)))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
    assert len(answered) >= 60
    result = subprocess.run([str(exe), "console", "migrate"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with create_engine(f"sqlite:///{tmp_path / 'feedback.sqlite'}").connect() as conn:
        stored = set(conn.execute(select(assessments.c.hook_instance)).scalars())
    assert set(answered) <= stored


def _migrations_match_models(url: str) -> None:
    engine = engine_for(url)
    migrate(engine)
    migrate(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata
        )
        tables = set(inspect(conn).get_table_names())
    assert diff == []
    assert {t.name for t in metadata.sorted_tables} | {"console_alembic_version"} <= tables


def test_migrations_build_exactly_the_tables_the_code_uses_on_sqlite(tmp_path: Path) -> None:
    _migrations_match_models(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_workers_starting_together_on_a_new_database_migrate_it_once_and_all_start(tmp_path: Path) -> None:
    """gunicorn starts its workers at once; each migrates at start. One migrates, the others wait."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    code = (
        "import sys, time; from console.db import engine_for, migrate\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"  # start together
        "migrate(engine_for(sys.argv[1]))\n"
    )
    start = str(time.time() + 3)
    workers = [subprocess.Popen([sys.executable, "-c", code, url, start], stderr=subprocess.PIPE, text=True)
               for _ in range(4)]  # fmt: skip
    failures = [w.stderr.read()[-800:] for w in workers if w.wait(60) != 0]  # type: ignore[union-attr]
    assert failures == []
    with create_engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() is not None
        assert not compare_metadata(context, metadata)


def test_the_record_and_the_monitor_query_work_on_postgresql(tmp_path: Path) -> None:
    with postgres() as url:
        if url is None:
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL must be installed in CI (.ci/run installs it)")
            pytest.skip("PostgreSQL is not installed here (CI installs it)")
        _migrations_match_models(url)
        engine = engine_for(url)
        recorder = Recorder(engine, tmp_path / "spool", interval=0.05)
        for i in range(30):
            recorder.record(
                {
                    k: v
                    for k, v in _event(
                        patient=f"P{i}", encounter=f"E{i}", ratio=f"{0.5 + i / 20:.4f}"
                    ).items()
                    if k != "event_id"
                }
            )
        recorder.flush()
        recorder.close()
        from zoneinfo import ZoneInfo

        with engine.connect() as conn:
            page = open_stays(conn, None, ZoneInfo("Asia/Shanghai"))
            count = conn.execute(text("select count(*) from console_assessment")).scalar()
        assert count == 30 and page["open"] == 30
        ratios = [r["ratio_e4"] for r in page["table"].rows]
        assert ratios == sorted(ratios, reverse=True) and ratios[0] == 19500
        engine.dispose()
