"""Benchmark: ``dip-cds settle`` on a synthetic city-year against the real 平顶山 catalog.

    .venv/bin/python benchmarks/bench_settlement.py [--cases 1000000] [--workers 2] [--work DIR]

Steps: import the real catalog and the 医保版 terminology (../shared/data) into a scratch data home
(so the settlement-list quality gate checks every code against the real tables), generate N
synthetic cases with ``dip-cds synth`` (cached in the work dir, not timed), run ``dip-cds settle`` as a
subprocess and report wall time, the split reading / grouping / aggregation / reporting, CPU
seconds spent grouping, and the peak memory of the whole process tree (parent + workers, sampled
from /proc every 50 ms). Targets: ≤ 60 s end-to-end, ≤ 2 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "catalogs" / "410400-pingdingshan-2025-dip2.0"
TERMINOLOGY = ROOT.parent / "shared" / "data" / "terminology"
TERMINOLOGY_FILES = (
    "icd10-yb2.0.tsv",
    "icd9cm3-yb2.0.tsv",
    "icd10-gl2.0-to-yb2.0.csv",
    "icd9cm3-gl3.0-to-yb2.0.csv",
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cds_service.cli import main; main()", *args]


def _tree_rss(root: int) -> int:
    """Σ RSS (bytes) of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--hospitals", type=int, default=120)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "dip-cds-bench-settlement")
    args = parser.parse_args()
    if not (DATA / "目录.csv").is_file():
        sys.exit(f"real catalog not found at {DATA}")

    work: Path = args.work
    home = work / "home-v2"  # v2: with the terminology (the quality gate checks codes against it)
    if not (home / "terminology.sqlite").exists():
        sys.path.insert(0, str(ROOT))
        from terminology import import_files

        home.mkdir(parents=True, exist_ok=True)
        import_files(home, [TERMINOLOGY / name for name in TERMINOLOGY_FILES])
    if not (home / "catalogs.sqlite").exists():
        sys.path.insert(0, str(ROOT))
        from dip_engine.importer import import_catalog
        from dip_engine.store import save_catalog

        home.mkdir(parents=True, exist_ok=True)
        catalog, _ = import_catalog(
            DATA / "目录.csv", "410400", "平顶山", 2025, stats_path=DATA / "中间结果.csv"
        )
        save_catalog(home, catalog, make_default=True)
    cases = work / f"city-{args.cases}-v2.csv"  # v2: real 医保版 codes, sex/age consistent
    if not cases.exists():
        started = time.perf_counter()
        subprocess.run(
            _cli("--home", str(home), "synth", "--region", "410400", "--cases", str(args.cases),
                 "--hospitals", str(args.hospitals), "--seed", "2025", "--output", str(cases), "--no-progress"),
            check=True,
        )  # fmt: skip
        print(
            f"synth: {args.cases:,} cases in {time.perf_counter() - started:.1f}s (not part of the benchmark)"
        )

    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = _cli(
        "--home", str(home), "settle", "--region", "410400", "--period", "2025", "--input", str(cases),
        "--output", str(out), "--workers", str(args.workers), "--no-progress",
    )  # fmt: skip
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        print(stdout)
        sys.exit(f"settle failed with exit code {proc.returncode}")
    info = json.loads((out / "_checkpoint" / "last-run.json").read_text(encoding="utf-8"))
    t = info["timings"]
    print(stdout.strip())
    print()
    print(f"cases: {args.cases:,}   workers: {args.workers}   load average before the run: {load_before:.2f}")
    print(f"end-to-end wall time: {wall:.1f}s   (target ≤ 60 s)")
    print(f"peak memory, whole process tree: {peak / 2**30:.2f} GiB   (target ≤ 2 GB)")
    grouping = t["group_wall_s"]
    print(
        "split: catalog load {:.1f}s | reading (parent, overlapped) {:.1f}s | grouping+pricing (parallel wall) {:.1f}s"
        " | aggregation {:.1f}s | reporting {:.1f}s".format(
            t["engine_load_s"], t["read_s"], grouping, t["aggregate_s"], t["report_s"]
        )
    )
    cpu = t.get("worker_cpu_s", 0.0)
    read, write = t.get("worker_read_cpu_s", 0.0), t.get("worker_write_cpu_s", 0.0)
    print(
        f"worker CPU: {cpu:.1f}s in total = {cpu / args.cases * 1e6:.1f} µs per case "
        f"(reading+splitting {read:.1f}s, parsing+grouping+pricing {cpu - read - write:.1f}s, checkpoint writing {write:.1f}s)"
    )
    ideal = t["engine_load_s"] + cpu / args.workers + t["aggregate_s"] + t["report_s"]
    print(
        f"projection with {args.workers} otherwise idle cores (grouping CPU ÷ workers + other phases): {ideal:.1f}s"
    )


if __name__ == "__main__":
    main()
