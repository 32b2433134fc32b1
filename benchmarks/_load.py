"""Shared pieces of the HTTP benchmarks: run ``dip-cds`` subprocesses, drive closed-loop load, summarise.

The servers run as real console-script processes in their own session (so a Ctrl-C in the
terminal reaches only the benchmark, which then stops them in order) and are always stopped by
process group, SIGTERM first. The load generator is plain threads with one keep-alive
``http.client`` connection each: cheap enough to share a 2-core machine with the server, and it
measures its own CPU so the report can say how much of the machine it took.
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


def dip_cds_command() -> str:
    """The installed ``dip-cds`` console script next to this interpreter (the venv's), as production runs it."""
    for candidate in (Path(sys.executable).with_name("dip-cds"), ROOT / ".venv" / "bin" / "dip-cds"):
        if candidate.exists():
            return str(candidate)
    raise SystemExit("dip-cds console script not found; install the project (pip install -e .) first")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """This environment without any ``DIP_CDS_*`` setting of the caller's shell, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIP_CDS_")}
    env.update(overrides)
    return env


def _tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), to see work that is not ours."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS  # user..steal; guest time is already inside user


class ManagedProcess:
    """A server subprocess in its own process group, stderr kept in a temp file for diagnostics."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"dip-bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            list(cmd), stdout=subprocess.DEVNULL, stderr=self.log, env=env, start_new_session=True
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """user+system CPU of the whole process tree (gunicorn master and workers) so far."""
        total = 0
        for pid in _tree_pids(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                continue
        return total / _TICKS

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        """Poll ``url`` until it answers 200; fail with the server's own error output if it died."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready at {url} after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group (gunicorn: graceful), SIGKILL what is left after ``timeout``."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def start_service(
    home: str | Path,
    port: int,
    workers: int,
    threads: int = 1,
    env: dict[str, str] | None = None,
    worker_class: str | None = None,
) -> ManagedProcess:
    """``dip-cds --home H serve`` (gunicorn, production code path), returned once ``/readyz`` is 200."""
    cmd = [dip_cds_command(), "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--threads", str(threads)]  # fmt: skip
    if worker_class:
        cmd += ["--worker-class", worker_class]
    proc = ManagedProcess("service", cmd, env if env is not None else clean_env())
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
    except BaseException:
        proc.stop()
        raise
    return proc


def start_demo_fhir(port: int, workers: int = 1, env: dict[str, str] | None = None) -> ManagedProcess:
    """``dip-cds demo-fhir`` on loopback, returned once ``/metadata`` answers."""
    cmd = [
        dip_cds_command(),
        "demo-fhir",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = ManagedProcess("demo-fhir", cmd, env if env is not None else clean_env())
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/metadata")
    except BaseException:
        proc.stop()
        raise
    return proc


# ----------------------------------------------------------------------------- load generation


@dataclass
class LoadResult:
    """Samples of the measured window only: (client latency ms, Server-Timing app ms or None, status)."""

    samples: list[tuple[float, float | None, int]]
    window_seconds: float
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    generator_cpu_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


def _server_ms(header: str | None) -> float | None:
    """``app;dur=1.234`` → 1.234 (the first metric carrying a ``dur``)."""
    if not header:
        return None
    for part in header.split(";"):
        part = part.strip()
        if part.startswith("dur="):
            try:
                return float(part[4:].split(",")[0])
            except ValueError:
                return None
    return None


def closed_loop(
    port: int,
    path: str,
    body: bytes,
    clients: int,
    warmup_seconds: float,
    seconds: float,
    *,
    on_window_start: Callable[[], None] | None = None,
    on_window_end: Callable[[], None] | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """``clients`` threads, each POSTing ``body`` back to back on its own keep-alive connection.

    Warm-up and measurement are one continuous run (no cold restart between them). A request
    counts when it both started and finished inside the measured window; the callbacks run at
    the window's edges (e.g. to read CPU counters or scrape server metrics). Connections the server
    closes (gunicorn sync workers answer ``Connection: close``) are reopened transparently.
    """
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    t_start = time.perf_counter() + 0.05
    t_window = t_start + warmup_seconds
    t_end = t_window + seconds
    stop = threading.Event()
    per_thread: list[list[tuple[float, float, float | None, int]]] = [[] for _ in range(clients)]
    errors: list[str] = []
    err_lock = threading.Lock()

    def client(slot: int) -> None:
        out = per_thread[slot]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        while not stop.is_set():
            now = time.perf_counter()
            if now >= t_end:
                break
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                resp.read()
                done = time.perf_counter()
                out.append((now, done, _server_ms(resp.getheader("Server-Timing")), resp.status))
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                with err_lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.01)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        time.sleep(max(t_window - time.perf_counter(), 0))
        if on_window_start is not None:
            on_window_start()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)  # after the callback: count only the load threads
        time.sleep(max(t_end - time.perf_counter(), 0))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        if on_window_end is not None:
            on_window_end()
    except BaseException:  # Ctrl-C: do not wait for slow requests, the threads are daemons
        stop.set()
        for t in threads:
            t.join(0.5)
        raise
    stop.set()
    for t in threads:
        t.join(timeout + 5)
    samples: list[tuple[float, float | None, int]] = []
    statuses: dict[int, int] = {}
    for rows in per_thread:
        for started, done, server_ms, status in rows:
            if started >= t_window and done <= t_end:
                samples.append(((done - started) * 1000, server_ms, status))
                statuses[status] = statuses.get(status, 0) + 1
    gen_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return LoadResult(samples, seconds, len(errors), errors[:3], gen_cpu, statuses)


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max; empty input gives NaNs."""
    if not values:
        return {**{f"p{p}": float("nan") for p in points}, "max": float("nan")}
    ordered = sorted(values)
    n = len(ordered)
    out = {f"p{p}": ordered[min(n - 1, max(0, -(-p * n // 100) - 1))] for p in points}
    out["max"] = ordered[-1]
    return out
