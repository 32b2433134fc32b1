"""Print a pip constraints file pinning every dependency pyproject.toml declares (runtime and the
extras named on the command line) to its declared MINIMUM version: ``Flask>=3.0`` → ``Flask==3.0``.

Used by ``.ci/min-versions`` so CI proves the lower bounds are true, not wishful.
A dependency without a lower bound is an error: every declared library needs one.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def minimum_pins(requirements: list[str]) -> list[str]:
    pins = []
    for requirement in requirements:
        match = SPEC.match(requirement.split(";")[0])
        if match is None:
            raise SystemExit(f"cannot read requirement {requirement!r}")
        name, _, spec = match.groups()
        lower = re.search(r">=\s*([0-9][0-9A-Za-z.]*)", spec)
        if lower is None:
            raise SystemExit(f"{name}: no lower bound (>=) declared in pyproject.toml")
        pins.append(f"{name}=={lower.group(1)}")
    return pins


def main(extras: list[str]) -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))[
        "project"
    ]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(minimum_pins(requirements)))


if __name__ == "__main__":
    main(sys.argv[1:])
