"""Records every ``assessment`` event without making the doctor wait, and without losing one.

The hook call pays for one ``write(2)`` of a JSON line to this process's spool file (an append-only
file under the data home, locked by the process for its lifetime). A drainer thread (a greenlet
under gevent workers) moves the lines into the database — one event per transaction, pausing
between them, so the hook calls beside it never wait long — and then empties the file. Chosen by
measurement (benchmarks/bench_console.py): a synchronous SQLite insert per hook call costs several
times the 1 ms budget at p99 once workers contend for the write lock, and a PostgreSQL commit is a
network round trip plus an fsync; the spool write is ~10 µs.

Nothing is lost when the process stops: a written line is in the kernel's page cache, so it
survives the process being killed (``spool_fsync = true`` also makes it survive a power cut, at
the price of an fsync per call). A clean stop drains the spool; after a kill, the file is left
unlocked and the next recorder of any process (or ``dip-cds console migrate``) drains it. Each
line carries an ``event_id``, so a batch stored just before a kill and drained again is not
stored twice.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from console.ingest import ingest, reject

log = logging.getLogger("dip_cds.console")

SPOOL_SUFFIX = ".jsonl"
BATCH_LINES = 500  # per transaction when nothing else runs (recovery, ``console migrate``)
# Beside live hook calls: storing one event costs ~0.4 ms of CPU, and the drainer holds the GIL
# (with the default gevent workers: the event loop) for a whole transaction, so it stores a few
# events per transaction and yields between them — a hook call then waits ~1 ms at most, not the
# 5 ms GIL switch interval or a 500-event batch.
LIVE_BATCH_LINES = 1
LIVE_PAUSE_SECONDS = 0.0005  # a real pause: after sleep(0) the drainer takes the GIL straight back


def _lock(fd: int, blocking: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


def drain_file(
    engine: Engine, path: Path, start: int = 0, batch: int = BATCH_LINES, pause: float = 0.0
) -> int:
    """Store the complete lines of ``path`` from byte ``start``; returns the offset drained to.

    A trailing partial line (a write cut by a kill mid-call: the caller never got its answer) is
    left in place. Lines that are not JSON are kept as rejected events, with the reason. Between
    transactions of ``batch`` lines the thread yields (``time.sleep(0)``: the GIL, or the gevent
    loop), never inside one: a writer waiting on an open transaction would block the loop.
    """
    offset = start
    with path.open("rb") as fh:
        fh.seek(start)
        while True:
            if offset != start:
                time.sleep(pause)
            lines: list[bytes] = []
            size = 0
            while len(lines) < batch:
                line = fh.readline()
                if not line.endswith(b"\n"):
                    break  # end of file, or a partial last line
                lines.append(line)
                size += len(line)
            if not lines:
                return offset
            events: list[Mapping[str, Any]] = []
            bad: list[tuple[bytes, str]] = []
            for line in lines:
                try:
                    events.append(json.loads(line))
                except ValueError as exc:
                    bad.append((line, f"not JSON ({exc})"))
            with engine.begin() as conn:
                for line, reason in bad:
                    reject(conn, line, reason)
                ingest(conn, events)
            offset += size


class Recorder:
    """One per process and database: the spool writer (request path) and its drainer thread."""

    def __init__(
        self,
        engine: Engine,
        spool_dir: Path,
        interval: float = 0.2,
        fsync: bool = False,
        housekeeping: Callable[[], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.housekeeping = housekeeping  # run hourly on the drainer thread (retention)
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self.fsync = fsync
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._fd: int | None = None
        self._path: Path | None = None
        self._drained = 0
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self.errors = 0

    # -- request path --------------------------------------------------------------------------

    def record(self, event: Mapping[str, Any]) -> None:
        """Spool one event (called by the ``assessment`` subscriber, on the hook call's thread)."""
        line = json.dumps({**event, "event_id": uuid.uuid4().hex}, ensure_ascii=False, separators=(",", ":"))
        data = line.encode("utf-8") + b"\n"
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            assert self._fd is not None
            os.write(self._fd, data)
            if self.fsync:
                os.fsync(self._fd)

    # -- lifecycle -----------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._fd is not None:  # inherited across a fork: the parent's file and lock stay the parent's
                os.close(self._fd)
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._path = self.spool_dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}{SPOOL_SUFFIX}"
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            _lock(self._fd, blocking=True)  # held for the process's life: an unlocked file is an orphan
            self._drained = 0
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="console-recorder", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _run(self) -> None:
        last_orphans = last_housekeeping = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.drain_own()
                if time.monotonic() - last_orphans > 5:
                    last_orphans = time.monotonic()
                    recover_orphans(self.engine, self.spool_dir)
                if self.housekeeping is not None and time.monotonic() - last_housekeeping > 3600:
                    last_housekeeping = time.monotonic()
                    self.housekeeping()
            except Exception as exc:  # noqa: BLE001 - the database may be down: keep spooling, retry
                self.errors += 1
                log.error("console: recording failed, will retry", extra={"reason": type(exc).__name__})
                self._stop.wait(min(5.0, self.interval * 10))

    def drain_own(self) -> None:
        """Move this process's spooled lines into the database, then empty the file."""
        path = self._path
        if path is None or self._pid != os.getpid():
            return
        self._drained = drain_file(self.engine, path, self._drained, LIVE_BATCH_LINES, LIVE_PAUSE_SECONDS)
        with self._lock:
            if self._fd is not None and os.fstat(self._fd).st_size == self._drained:
                os.ftruncate(self._fd, 0)
                self._drained = 0

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything spooled so far is in the database (tests, clean shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pid == os.getpid() and self._fd is not None:
            if os.fstat(self._fd).st_size == 0:
                return
            self._wake.set()
            if time.monotonic() > deadline:
                raise TimeoutError("console recorder did not drain its spool in time")
            time.sleep(0.01)

    def close(self) -> None:
        """Clean stop: drain the spool and remove it."""
        if self._pid != os.getpid() or self._fd is None:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.drain_own()
            with self._lock:
                if os.fstat(self._fd).st_size == 0 and self._path is not None:
                    self._path.unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - the file stays for the next start to drain
            log.error("console: could not drain the spool at exit", extra={"reason": type(exc).__name__})
        finally:
            with self._lock:
                os.close(self._fd)
                self._fd = None
                self._pid = None


def recover_orphans(engine: Engine, spool_dir: Path) -> int:
    """Drain and delete spool files no live process holds (left by a killed process)."""
    if not spool_dir.is_dir():
        return 0
    recovered = 0
    for path in sorted(spool_dir.glob(f"*{SPOOL_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            if not _lock(fd, blocking=False):
                continue  # its process is alive (or another recoverer has it)
            if not path.exists():
                continue  # drained and removed by another process meanwhile
            end = drain_file(engine, path)
            size = os.fstat(fd).st_size
            if end < size:  # a partial last line from a kill mid-write: never answered, keep it aside
                with engine.begin() as conn:
                    reject(conn, path.read_bytes()[end:], "partial line left by a killed process")
            path.unlink()
            recovered += 1
        finally:
            os.close(fd)
    return recovered
