"""The Spark engine (local mode) settles a sample exactly like the embedded engine, to the cent."""

from __future__ import annotations

import json

import pytest

from tests.settlement_helpers import (
    RULES,
    TWO_FUNDS,
    case,
    import_real_catalog,
    output_bytes,
    settle,
    write_cases,
)

pytest.importorskip("pyspark", reason="pyspark not installed (pip install -e '.[spark]')")
pytest.importorskip("pandas", reason="pandas not installed (pip install -e '.[spark]')")
pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install -e '.[spark]')")


def test_spark_and_embedded_settlements_are_identical(tmp_path):
    import shutil

    if shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark")
    home = import_real_catalog(tmp_path / "home", RULES)
    from dip_engine import load_catalogs
    from settlement.synth import write_synth

    sample = tmp_path / "sample.csv"
    write_synth(sample, load_catalogs(home).get("410400"), 400, 5, seed=5)
    # plus hand-made edge cases: a duplicate case id, a bad row, an ungroupable case, the other fund
    extra = write_cases(
        tmp_path / "extra.csv",
        [
            case("SYN005-0000001", "K35.3", "47.0100", "9000.00", "H3", "3"),
            case("bad", "K35.3", "47.0100", "-5", "H3", "3"),
            case("ungrouped", "ZZZ", "", "1234.56", "H3", "3", insurance="居民"),
        ],
    )
    with extra.open("a", encoding="utf-8") as fh:  # a blank line, an all-empty row and a stray comment
        fh.write("\n" + "," * 12 + "\n# not a comment once data has started\n")
    jsonl = tmp_path / "more.jsonl"
    lines = [
        json.dumps(
            case("j1", "K80.1", "51.2300", "9500.00", "H1", "1", insurance="居民"), ensure_ascii=False
        ),
        "{broken",
        json.dumps(case("j2", "I63.9", "", "4000.00", "H3", "3"), ensure_ascii=False),
    ]
    jsonl.write_bytes("\ufeff".encode() + "\n".join(lines).encode() + b"\n")
    config = (
        TWO_FUNDS.replace('region = "410400"', 'region = "410400"\ntrim = "quantile"')
        .replace('"60000.00"', '"2000000.00"')
        .replace('"20000.00"', '"1500000.00"')
    )
    embedded = tmp_path / "embedded"
    spark = tmp_path / "spark"
    a = settle(home, [sample, extra, jsonl], embedded, config, region="410400", workers=1)
    b = settle(home, [sample, extra, jsonl], spark, config, region="410400", workers=2, engine="spark")
    assert a.result.ok, a.result.reconciliation
    assert b.result.ok, (b.result.reconciliation, b.result.counts, a.result.counts)
    assert a.result.counts == b.result.counts
    assert a.result.counts["duplicates"] == 1 and a.result.counts["outside"] > 2
    assert a.result.counts["rejected"] == 4  # bad amount, stray comment line, broken JSON, duplicate

    first, second = output_bytes(embedded), output_bytes(spark)
    for name in ("cases.csv", "rejects.csv", "hospitals.csv", "departments.csv", "groups.csv"):
        assert first[name] == second[name], name
    # summary.json differs only in the engine named in its metadata (and the copies of settle.toml)
    left, right = json.loads(first["summary.json"]), json.loads(second["summary.json"])
    assert left["meta"].pop("计算引擎") == "embedded" and right["meta"].pop("计算引擎") == "spark"
    left["meta"].pop("配置文件"), right["meta"].pop("配置文件")
    assert left == right
