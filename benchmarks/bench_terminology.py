"""Terminology benchmark: start-up load time and RSS, normalise/lookup/resolve cost, search latency.

Targets (issue 3): full terminology ready ≤ 1 s after import (fresh process), ≤ 150 MB RSS;
lookup/normalise ≤ 10 µs; search p99 ≤ 10 ms over the full ICD-10 list. Also validate() of an
unknown code (it looks the code up in other imported versions).

Usage: .venv/bin/python benchmarks/bench_terminology.py [--data ../shared/data] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ("icd10-yb2.0.tsv", "icd9cm3-yb2.0.tsv", "icd10-gl2.0-to-yb2.0.csv", "icd9cm3-gl3.0-to-yb2.0.csv")

STARTUP = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
sys.path.insert(0, {root!r})
from terminology.loader import load_terminology
term = load_terminology({home!r})
term.search("急性阑尾炎", limit=5)  # ready means searchable
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
status = dict(l.split(":", 1) for l in open("/proc/self/status") if l.startswith(("VmRSS", "VmHWM")))
print(json.dumps({{"seconds": elapsed, "cpu_seconds": cpu, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                   "peak_mb": int(status["VmHWM"].split()[0]) / 1024, "is_sample": term.is_sample,
                   "sizes": [len(term.dx), len(term.px), len(term.dx_map), len(term.px_map)]}}))
"""


def per_call_us(fn, items, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return (time.perf_counter() - start) / (len(items) * repeat) * 1e6


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument(
        "--home", default=None, help="an already imported data home (default: import into a temp dir)"
    )
    args = ap.parse_args()

    from terminology.loader import import_files, load_terminology

    results: dict[str, object] = {}
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="bench-term-"))
    if not args.home:
        term_dir = Path(args.data) / "terminology"
        t = time.perf_counter()
        reports = import_files(home, [term_dir / f for f in FILES])
        results["import_seconds"] = round(time.perf_counter() - t, 2)
        results["imported_rows"] = {r.kind: r.accepted for r in reports}

    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", STARTUP.format(root=str(ROOT), home=str(home))],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    results["startup_seconds"] = [round(r["seconds"], 3) for r in runs]
    # CPU time of the same runs: wall time above includes waiting for a shared CPU
    results["startup_cpu_seconds"] = [round(r["cpu_seconds"], 3) for r in runs]
    results["startup_rss_mb"] = [round(r["rss_mb"], 1) for r in runs]
    results["startup_peak_rss_mb"] = [round(r["peak_mb"], 1) for r in runs]
    results["sizes"] = runs[0]["sizes"]

    term = load_terminology(home)
    from mappings.resolve import _resolve_cached, resolve_code
    from terminology.normalize import _normalize_diagnosis, _normalize_procedure, normalize_diagnosis

    dx_codes, px_codes = list(term.dx.codes), list(term.px.codes)
    messy = [c.lower().replace(".", "") for c in dx_codes]
    results["normalize_dx_uncached_us"] = round(per_call_us(_normalize_diagnosis.__wrapped__, messy), 2)
    results["normalize_px_uncached_us"] = round(per_call_us(_normalize_procedure.__wrapped__, px_codes), 2)
    per_call_us(normalize_diagnosis, messy)  # warm the cache
    results["normalize_dx_cached_us"] = round(per_call_us(normalize_diagnosis, messy, repeat=5), 3)
    results["lookup_dx_us"] = round(per_call_us(lambda c: term.lookup("dx", c), messy, repeat=3), 3)
    _resolve_cached.cache_clear()
    results["resolve_code_first_call_us"] = round(
        per_call_us(lambda c: resolve_code(term, "dx", c), messy), 2
    )
    results["resolve_code_cached_us"] = round(
        per_call_us(lambda c: resolve_code(term, "dx", c), messy, repeat=5), 3
    )

    # validate() on a code in no table: the "retired in another version?" store query dominates it
    rng_unknown = random.Random(11)
    unknown = [
        f"Z{rng_unknown.randint(10, 99)}.{rng_unknown.randint(100, 999)}x9{i % 100:02d}" for i in range(2000)
    ]
    unknown = [c for c in unknown if term.dx.get(c) is None]
    term.validate("dx", unknown[0])  # first call pays for lazy set-up
    results["validate_unknown_dx_us"] = round(per_call_us(lambda c: term.validate("dx", c), unknown), 1)

    from pypinyin import Style, lazy_pinyin

    rng = random.Random(7)
    names = rng.sample(term.dx.names, 1000)
    queries = names + ["".join(lazy_pinyin(n, style=Style.FIRST_LETTER)).upper()[:8] for n in names[:500]]
    queries += [c[:5] for c in rng.sample(dx_codes, 200)]
    queries += [n[:2] for n in names[:200]] + [n[1:-1] + "病" for n in names[:200]]  # short and typo'd
    latencies, cpu = [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        term.search(q, kind="dx", limit=20)
        latencies.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    results["search_queries"] = len(queries)
    # wall time includes waiting for a shared CPU; the CPU time of the same calls does not
    for key, values in (("search_ms", latencies), ("search_cpu_ms", cpu)):
        results[key] = {
            "p50": round(statistics.median(values), 3),
            "p95": round(percentile(values, 95), 3),
            "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3),
        }
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
