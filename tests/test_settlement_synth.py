"""``dip-cds synth``: deterministic, labelled synthetic batches that land in real catalog groups."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

from click.testing import CliRunner

from cds_service.cli import main
from settlement.rows import COST_COLUMNS
from tests.settlement_helpers import import_real_catalog, read_rows, settle


def _synth(home, path, seed=3, cases=3000, hospitals=12):
    result = CliRunner().invoke(
        main,
        ["--home", str(home), "synth", "--region", "410400", "--cases", str(cases), "--hospitals", str(hospitals),
         "--seed", str(seed), "--output", str(path), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


def test_same_seed_gives_identical_bytes_and_different_seed_differs(tmp_path):
    home = import_real_catalog(tmp_path / "home")
    a = _synth(home, tmp_path / "a.csv", seed=3, cases=500)
    b = _synth(home, tmp_path / "b.csv", seed=3, cases=500)
    c = _synth(home, tmp_path / "c.csv", seed=4, cases=500)
    assert a.read_bytes().split(b"\n", 1)[1] == b.read_bytes().split(b"\n", 1)[1]
    assert a.read_bytes().split(b"\n", 2)[2] != c.read_bytes().split(b"\n", 2)[2]


def test_synthetic_batches_are_labelled_three_ways(tmp_path):
    home = import_real_catalog(tmp_path / "home")
    path = _synth(home, tmp_path / "s.csv", cases=200)
    assert path.read_text(encoding="utf-8").startswith("# SYNTHETIC DATA")
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text(encoding="utf-8"))
    assert meta["synthetic"] is True and meta["seed"] == 3 and meta["cases"] == 200
    rows = read_rows_skipping_comment(path)
    assert {r["synthetic"] for r in rows} == {"1"}


def read_rows_skipping_comment(path):
    import csv
    import io

    text = path.read_text(encoding="utf-8").split("\n", 1)[1]
    return list(csv.DictReader(io.StringIO(text)))


def test_synthetic_cases_are_realistic_and_settle_cleanly(tmp_path):
    home = import_real_catalog(tmp_path / "home")
    path = _synth(home, tmp_path / "s.csv", cases=3000, hospitals=12)
    rows = read_rows_skipping_comment(path)
    for row in rows:
        assert sum(Decimal(row[c]) for c in COST_COLUMNS) == Decimal(row["total_cost"])
    assert {r["hospital_level"] for r in rows} == {"1", "2", "3"}
    assert {r["insurance_type"] for r in rows} == {"职工", "居民"}
    assert len({r["department"] for r in rows}) > 5

    out = tmp_path / "out"
    report = settle(home, [path], out, region="410400")
    assert report.result.ok
    assert report.result.counts["rejected"] == 0
    cases = read_rows(out / "cases.csv")
    bands = Counter(c["deviation_band"] for c in cases)
    # deliberate deviation cases: < 50 %, > 200 % and > 5× all present; most cases are normal
    assert bands["超低"] > 30 and bands["超高"] > 30 and bands["特例"] > 3
    assert bands["正常"] > 0.8 * len(cases)
    grouped = sum(1 for c in cases if c["basis"] == "DIP")
    assert grouped > 0.97 * len(cases)
    assert len({c["dip_code"] for c in cases}) > 500
