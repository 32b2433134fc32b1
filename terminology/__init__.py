"""医保版 / 国临版 code systems: import, versioned store, fast load, normalisation, structure,
validation, search and the FHIR terminology operations.

The light modules (``normalize``, ``structure``, ``systems``) import nothing heavy, so the grouper
can use them without loading the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminology.model import Terminology

__all__ = ["load_terminology", "import_files", "Terminology"]


def load_terminology(home=None) -> Terminology:
    """Active imported terminology from ``home``'s ``terminology.sqlite``; the sample when absent."""
    from terminology.loader import load_terminology as _load

    return _load(home)


def import_files(home, paths, version: str = "2.0", kind: str | None = None, activate: bool = True):
    from terminology.loader import import_files as _import

    return _import(home, paths, version=version, kind=kind, activate=activate)


def __getattr__(name: str):
    if name == "Terminology":
        from terminology.model import Terminology

        return Terminology
    raise AttributeError(name)
