"""The core does not know the domains: no module under ``cds_service/`` imports a domain package.

Domains reach the core through plugins (entry-point group ``dip_cds.plugins``); the dependency
arrow points from the domains to the core only. Every import form counts: ``import x``,
``from x import y``, imports inside functions or ``if TYPE_CHECKING:``, and
``importlib.import_module("x")`` / ``__import__("x")`` with a literal name, and a string that
is nothing but a domain module's dotted name or entry-point value (how ``COMMAND_MODULES = ("hooks.cli", …)`` once
imported domains by name).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = "cds_service"


def domain_packages() -> set[str]:
    """Every top-level package of the repository except the core (new domains are covered too)."""
    return {
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in (CORE, "tests", "benchmarks") and not p.parent.name.startswith(".")
    }


# "package.module" or "package.module:attr" (a bare word such as "cards" is too often a JSON key)
DOTTED = re.compile(r"^[a-z_][a-z0-9_]*((\.[a-z_][a-z0-9_]*)+(:[A-Za-z_]\w*)?|:[A-Za-z_]\w*)$")


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.match(node.value):
            found.add(node.value.split(":")[0])  # a module named by string, maybe "module:attr"
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
            )
        ):
            found.add(node.args[0].value)
    return found


def test_the_scanner_sees_every_import_form():
    source = """
import hooks.assess
from costing import his
def f():
    from terminology.systems import identify_system
if TYPE_CHECKING:
    import grouper
importlib.import_module("settlement.cli")
__import__("cards")
COMMAND_MODULES = ("mappings.cli", "dip_engine.plugin:plugin")
from . import relative
print("hooks and costing are mentioned in prose")
"""
    tops = {name.split(".")[0] for name in imported_modules(source)}
    expected = {"hooks", "costing", "terminology", "grouper", "settlement", "cards", "mappings", "dip_engine"}
    assert tops & domain_packages() == expected


def test_the_domains_are_known():
    assert {
        "costing",
        "dip_engine",
        "terminology",
        "hooks",
        "mappings",
        "cards",
        "grouper",
        "settlement",
    } <= (domain_packages())


def test_no_core_module_imports_a_domain_package():
    domains = domain_packages()
    modules = sorted((ROOT / CORE).rglob("*.py"))
    assert len(modules) > 10
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules
        for name in sorted(imported_modules(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in domains
    ]
    assert offenders == []
