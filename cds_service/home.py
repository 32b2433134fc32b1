"""Where the data store lives: ``--home``, else ``DIP_CDS_HOME``, else the user's data dir.

Every domain keeps its own files under this one directory (terminology, catalogs, feedback),
so a hospital backs up or moves one folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "DIP_CDS_HOME"


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the data home, creating it if needed."""
    if explicit:
        home = Path(explicit)
    elif os.environ.get(ENV_VAR):
        home = Path(os.environ[ENV_VAR])
    else:
        home = Path(platformdirs.user_data_dir("dip-cds", appauthor=False))
    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home
