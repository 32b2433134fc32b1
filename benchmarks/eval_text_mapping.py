"""Text mapping quality: top-1 / top-3 of everyday Chinese diagnosis and operation phrases.

Runs ``tests/data/text_mapping_phrases.csv`` (kind, phrase, expected 医保版 code, set) against the
real tables: each phrase is searched as a coder would (``Terminology.search``, its kind) and resolved
as the mapping layer would (``resolve_text``: assigned, or left for confirmation). Prints the rates
per set, every phrase not ranked first, and the search latency over these phrases.

Usage: .venv/bin/python benchmarks/eval_text_mapping.py [--home DIR] [--misses]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", default=None, help="an imported data home (default: import the real tables)")
    ap.add_argument("--misses", action="store_true", help="list every phrase not ranked first")
    args = ap.parse_args()

    from tests.terminology_helpers import phrase_rates, rank_phrases, read_phrases, real_terminology

    if args.home:
        from terminology.loader import load_terminology

        term = load_terminology(args.home)
    else:
        term = real_terminology()
    rows = read_phrases()
    ranked = rank_phrases(term, rows)
    report: dict[str, object] = {"terminology": term.label}
    for name in ("tuning", "holdout"):
        report[name] = {
            k: round(v, 3) for k, v in phrase_rates([r for r in ranked if r["set"] == name]).items()
        }
    report["all"] = {k: round(v, 3) for k, v in phrase_rates(ranked).items()}

    cpu = []
    for _ in range(5):
        for row in rows:
            t = time.thread_time()
            term.search(row["phrase"], kind=row["kind"], limit=20)
            cpu.append((time.thread_time() - t) * 1000)
    cpu.sort()
    report["search_cpu_ms"] = {
        "p50": round(statistics.median(cpu), 3),
        "p99": round(cpu[int(0.99 * (len(cpu) - 1))], 3),
        "max": round(cpu[-1], 3),
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.misses:
        for r in ranked:
            if r["codes"][:1] != [r["expected"]]:
                got = " ; ".join(f"{h.code} {h.display} ({h.match} {h.score})" for h in r["hits"])
                print(f"[{r['set']}] {r['kind']} {r['phrase']} → {r['expected']} | {got}")


if __name__ == "__main__":
    main()
