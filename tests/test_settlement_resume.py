"""An interrupted run resumes from its checkpoints and ends with byte-identical outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.settlement_helpers import output_bytes


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cds_service.cli import main; main()", *args]


def _settle_args(home: Path, src: Path, out: Path, workers: int = 1) -> list[str]:
    return _cli(
        "--home", str(home), "settle", "--period", "2025", "--input", str(src), "--output", str(out),
        "--workers", str(workers), "--chunk-size", "500", "--no-progress",
    )  # fmt: skip


def test_run_killed_mid_way_resumes_without_losing_or_double_counting(tmp_path):
    home = tmp_path / "home"  # empty: the built-in sample catalog
    src = tmp_path / "cases.csv"
    synth = _cli("--home", str(home), "synth", "--cases", "30000", "--hospitals", "8", "--seed", "9",
                 "--output", str(src), "--no-progress")  # fmt: skip
    subprocess.run(synth, check=True, capture_output=True)

    reference = tmp_path / "reference"  # uninterrupted, two worker processes: same bytes as one worker
    subprocess.run(_settle_args(home, src, reference, workers=2), check=True, capture_output=True)

    resumed = tmp_path / "resumed"
    proc = subprocess.Popen(
        _settle_args(home, src, resumed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    checkpoint = resumed / "_checkpoint"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(checkpoint.glob("*.stats.json"))) < 3:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(checkpoint.glob("*.stats.json")))
    assert 3 <= done_at_kill < 60, "the run must be killed part-way (60 chunks of 500 cases)"
    assert not (resumed / "cases.csv").exists()

    rerun = subprocess.run(_settle_args(home, src, resumed), check=True, capture_output=True, text=True)
    assert "断点续跑" in rerun.stdout
    assert output_bytes(resumed) == output_bytes(reference)

    # idempotent: running again over a finished run changes nothing
    subprocess.run(_settle_args(home, src, resumed), check=True, capture_output=True)
    assert output_bytes(resumed) == output_bytes(reference)


def test_changing_the_region_rules_invalidates_the_checkpoint(tmp_path):
    """Chunks grouped under other hospital coefficients must not be reused."""
    import json

    from tests.settlement_helpers import case, settle, write_cases

    home = tmp_path / "home"
    src = write_cases(tmp_path / "c.csv", [case("r1", "K35.300", "47.0100", "9000.00", "H999999002", "2")])
    out = tmp_path / "out"
    first = settle(home, [src], out)
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "999999.toml").write_text(
        '[hospital_coefficient]\nby_level = { "2" = "1.5" }\n', encoding="utf-8"
    )
    second = settle(home, [src], out)
    assert second.chunks_resumed == 0 and first.chunks_total == 1
    manifest = json.loads((out / "_checkpoint" / "manifest.json").read_text(encoding="utf-8"))
    assert any(f[0].endswith("999999.toml") for f in manifest["engine"]["rules"])
    assert (out / "cases.csv").read_text(encoding="utf-8").count(",1.500000,") == 1


def test_clean_checkpoint_removes_chunks_but_keeps_outputs(tmp_path):
    home = tmp_path / "home"
    src = tmp_path / "cases.csv"
    synth = _cli(
        "--home", str(home), "synth", "--cases", "800", "--seed", "2", "--output", str(src), "--no-progress"
    )
    subprocess.run(synth, check=True, capture_output=True)
    out = tmp_path / "out"
    subprocess.run([*_settle_args(home, src, out), "--clean-checkpoint"], check=True, capture_output=True)
    assert (out / "cases.csv").is_file()
    assert [p.name for p in (out / "_checkpoint").iterdir()] == ["last-run.json"]
