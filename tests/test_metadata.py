"""pyproject.toml tells the truth: every imported library is declared with a lower bound, every
declared library is used, and requirements.lock pins each of them inside its declared range."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PROJECT = PYPROJECT["project"]
PACKAGES = tuple(p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
# declared but not imported, with the reason
INDIRECT = {
    "cryptography": "PyJWT's ES384/RS256 verification (PyJWT[crypto]); declared for its floor",
    "gevent": "gunicorn's gevent worker class (dip-cds serve's default); gunicorn imports it",
    "psycopg": "the driver SQLAlchemy loads for postgresql+psycopg:// URLs (the console's PostgreSQL tests)",
}
TOOLS = {"ruff", "mypy"}  # run by .ci/run, not imported


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    """requirements.lock as normalised name → pinned version."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text("utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def declared(*groups: str) -> dict[str, Requirement]:
    lines = list(PROJECT["dependencies"]) if "runtime" in groups else []
    for group in groups:
        lines += PROJECT["optional-dependencies"].get(group, [])
    return {normalise(r.name): r for r in map(Requirement, lines)}


def third_party_imports(*folders: str) -> dict[str, set[str]]:
    """Top-level module → distributions that provide it, for every import under ``folders``."""
    providers = packages_distributions()
    local = set(PACKAGES) | {"tests", "benchmarks"} | {p.stem for p in (ROOT / "tests").glob("*.py")}
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in local or top == "__future__":
                        continue
                    # not installed here (an extra): its distribution is named like the module
                    found.setdefault(top, set()).update(normalise(d) for d in providers.get(top, [top]))
    return found


def test_every_library_the_packages_import_is_declared():
    allowed = set(declared("runtime", "spark"))
    missing = {top: dists for top, dists in third_party_imports(*PACKAGES).items() if not dists & allowed}
    assert missing == {}


def test_every_library_the_tests_import_is_declared():
    allowed = set(declared("runtime", "spark", "test"))
    missing = {top: dists for top, dists in third_party_imports("tests").items() if not dists & allowed}
    assert missing == {}


def test_every_declared_runtime_library_is_used():
    used = set().union(*third_party_imports(*PACKAGES).values())
    unused = (
        set(declared("runtime", "spark")) - used - set(INDIRECT) - {"pyarrow"}
    )  # pyarrow: pandas↔Spark transfer
    assert unused == set()
    used_by_tests = set().union(*third_party_imports("tests").values())
    assert set(declared("test")) - used_by_tests - TOOLS - set(INDIRECT) == set()


def test_every_dependency_has_a_lower_bound_and_the_lock_pins_it_inside_its_range():
    pins = lock_pins()
    for name, requirement in declared("runtime", "test", "spark").items():
        assert any(s.operator == ">=" for s in requirement.specifier), f"{name}: no lower bound"
        assert name in pins, f"{name} is not in requirements.lock (re-run pip-compile, see README)"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} outside {requirement.specifier}"
        )
