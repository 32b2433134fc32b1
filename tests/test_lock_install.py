"""requirements.lock installs the service into a fresh venv the way the Dockerfile does, and every
module of every package then imports, the plugins are found and ``dip-cds`` runs.

It downloads and installs the runtime dependencies (about a minute), so it runs when
``DIP_CDS_TEST_LOCK_INSTALL=1``, which ``.ci/run`` sets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.test_metadata import PACKAGES, ROOT, lock_pins, normalise

pytestmark = pytest.mark.skipif(
    os.environ.get("DIP_CDS_TEST_LOCK_INSTALL") != "1",
    reason="installs from PyPI into a fresh venv; set DIP_CDS_TEST_LOCK_INSTALL=1 (.ci/run does)",
)

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
count = 0
for top in sys.argv[1:]:
    package = importlib.import_module(top)
    assert "site-packages" in package.__file__, package.__file__   # the installed copy, not the checkout
    for module in pkgutil.walk_packages(package.__path__, top + "."):
        importlib.import_module(module.name)
        count += 1
from cds_service.plugins import discover
print(count, " ".join(p.name for p in discover()))
"""


def run(*args: object, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_lock_installs_the_service_and_every_module_imports(tmp_path):
    # the sources as the Dockerfile sees them (no venvs, caches or build output)
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis", "tests"
        ),
    )
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = venv / "bin" / "pip"
    # the Dockerfile's dependency layer: the runtime dependencies, pinned by the lock
    dependencies = tomllib.loads((source / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    run(pip, "install", "-q", "-c", source / "requirements.lock", *dependencies, cwd=tmp_path)
    # then the project itself, without resolving anything more
    run(pip, "install", "-q", "--no-deps", source, cwd=tmp_path)
    run(pip, "check", cwd=tmp_path)

    pins = lock_pins()
    installed = dict(
        line.split("==", 1) for line in run(pip, "freeze", "--all", cwd=tmp_path).splitlines() if "==" in line
    )
    unpinned = {
        name: version
        for name, version in installed.items()
        if normalise(name) not in ("dip-cds", "pip", "setuptools", "wheel")
        and pins.get(normalise(name)) != version
    }
    assert unpinned == {}, "installed versions the lock does not pin (re-run pip-compile, see README)"

    env = {**os.environ, "DIP_CDS_HOME": str(tmp_path / "home")}  # cds_service.wsgi builds an app on import
    out = run(venv / "bin" / "python", "-c", IMPORT_EVERYTHING, *PACKAGES, cwd=tmp_path, env=env)
    count, plugins = out.split(maxsplit=1)
    assert int(count) > 80
    declared = tomllib.loads((source / "pyproject.toml").read_text("utf-8"))["project"]["entry-points"]
    assert plugins.split() == sorted(declared["dip_cds.plugins"])
    help_text = run(venv / "bin" / "dip-cds", "--help", cwd=tmp_path, env=env)
    for command in (
        "code",
        "console",
        "data",
        "demo-fhir",
        "demo-traffic",
        "group",
        "serve",
        "settle",
        "synth",
    ):
        assert f"  {command} " in help_text, command
