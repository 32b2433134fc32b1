"""``dip-cds serve`` as a real subprocess (gunicorn, two workers) answers health, discovery, hooks, metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.service_helpers import free_port, hook_request

DIP_CDS = Path(sys.executable).with_name("dip-cds")


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"dip-cds serve exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}"
            )
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        time.sleep(0.1)
    raise AssertionError("dip-cds serve did not come up")


@contextmanager
def dip_cds_serve(home: Path, **env_overrides: str) -> Iterator[str]:
    """``dip-cds serve`` (two workers, as shipped) on a free loopback port with the caller's
    ``DIP_CDS_*`` environment replaced by ``env_overrides``; yields the base URL once /readyz is 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIP_CDS_")}
    env.update(env_overrides)
    proc = subprocess.Popen(
        [str(DIP_CDS), "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/readyz", proc)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not DIP_CDS.exists(), reason="dip-cds console script not installed in this venv")
def test_dip_cds_serve_answers_healthz_discovery_hooks_and_metrics(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIP_CDS_")}
    proc = subprocess.Popen(
        [
            str(DIP_CDS),
            "--home",
            str(tmp_path),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", proc)
        services = requests.get(f"{base}/cds-services", timeout=5).json()["services"]
        assert len(services) == 7  # the five DIP services and the two 医保智能审核 ones
        for _ in range(4):  # reach both workers
            response = requests.post(
                f"{base}/cds-services/dip-order-sign", json=hook_request("order-sign"), timeout=5
            )
            assert response.status_code == 200 and len(response.json()["cards"]) == 1
        assert requests.get(f"{base}/readyz", timeout=30).status_code == 200
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        line = next(
            ln
            for ln in metrics.splitlines()
            if ln.startswith("dip_cds_requests_total{") and 'service="dip-order-sign"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) == 4.0  # summed over all workers (multiprocess mode)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_refuses_jwt_without_shared_replay_cache_for_several_workers(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[server]\npublic_base_url = "http://127.0.0.1:8080"\n[security]\njwt = "required"\ntrust_sandbox = true\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            str(DIP_CDS),
            "--home",
            str(tmp_path),
            "serve",
            "--workers",
            "2",
            "--config",
            str(config),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert b"redis_url" in result.stderr


def test_serve_reports_every_bad_setting_and_exits(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[security]\njwt = "maybe"\n[prefetch]\nretries = -3\n', encoding="utf-8")
    result = subprocess.run(
        [str(DIP_CDS), "--home", str(tmp_path), "serve", "--config", str(config)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert b"security.jwt" in result.stderr and b"prefetch.retries" in result.stderr


def test_wsgi_entry_point_builds_the_app_from_the_environment(tmp_path):
    code = (
        "from cds_service.wsgi import app\n"
        "c = app.test_client()\n"
        "r = c.get('/cds-services')\n"
        "print(r.status_code, len(r.get_json()['services']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIP_CDS_")}
    env["DIP_CDS_HOME"] = str(tmp_path)
    env["DIP_CDS_LOGGING__LEVEL"] = "WARNING"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "7"]  # every installed plugin's services


def test_serve_refuses_trust_sandbox_on_a_network_interface(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[server]\npublic_base_url = "http://cds.hospital.cn"\n[security]\njwt = "required"\ntrust_sandbox = true\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(DIP_CDS), "--home", str(tmp_path), "serve", "--host", "0.0.0.0", "--workers", "1"]
        + ["--config", str(config), "--port", str(free_port())],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert b"trust_sandbox: refused on 0.0.0.0" in result.stderr
