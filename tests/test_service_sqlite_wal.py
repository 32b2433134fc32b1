"""Several worker processes opening a fresh service database at once all get it in WAL mode: none
fails its boot with "database is locked" (a fresh data home once failed the second worker)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

from cds_service.sqlite_wal import use_wal


def _open(path: str, start, results) -> None:  # noqa: ANN001 - multiprocessing primitives
    start.wait()
    try:
        conn = sqlite3.connect(path, timeout=10)
        use_wal(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        conn.commit()
        results.put(conn.execute("PRAGMA journal_mode").fetchone()[0])
        conn.close()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_eight_processes_switch_a_fresh_database_to_wal_together(tmp_path):
    ctx = mp.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    for _round in range(20):  # the naive switch failed about 1 process in 160 here
        path = str(tmp_path / f"fresh-{_round}.sqlite")
        procs = [ctx.Process(target=_open, args=(path, start, results)) for _ in range(8)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(30)
        start.clear()
        assert sorted(results.get(timeout=5) for _ in procs) == ["wal"] * 8
