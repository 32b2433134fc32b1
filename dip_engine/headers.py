"""Header-alias matching for imported tables (configuration in ``config/headers.toml``)."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import lru_cache
from pathlib import Path

CONFIG = Path(__file__).with_name("config") / "headers.toml"
_PARENS = re.compile(r"[(\[].*?[)\]]|[(\[].*$")


def header_key(header: object) -> str:
    """Comparable form of a header cell: NFKC, no blanks/backticks/parenthesised notes, upper case."""
    text = unicodedata.normalize("NFKC", "" if header is None else str(header))
    text = re.sub(r"[\s`'\"]+", "", text)
    return _PARENS.sub("", text).upper()


@lru_cache(maxsize=8)
def _load(home_file: str | None, mtime: float | None = None) -> dict[str, dict[str, tuple[str, ...]]]:
    """Packaged aliases plus the data home's; ``mtime`` makes an edited home file take effect."""
    with CONFIG.open("rb") as fh:
        table = tomllib.load(fh)
    if home_file and Path(home_file).is_file():
        try:
            with open(home_file, "rb") as fh:
                extra = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{home_file}: {exc}") from None
        for section, fields in extra.items():
            for field, names in fields.items():
                table.setdefault(section, {}).setdefault(field, [])
                table[section][field] = list(table[section][field]) + list(names)
    return {
        s: {f: tuple(header_key(n) for n in names) for f, names in fields.items()}
        for s, fields in table.items()
    }


def aliases(section: str, home: Path | None = None) -> dict[str, tuple[str, ...]]:
    path = Path(home) / "headers.toml" if home else None
    mtime = path.stat().st_mtime if path is not None and path.is_file() else None
    return _load(str(path) if mtime is not None else None, mtime)[section]


def map_headers(headers: list[object], section: str, home: Path | None = None) -> dict[str, int]:
    """Field name → column index for the headers present (first matching column wins)."""
    keys = [header_key(h) for h in headers]
    found: dict[str, int] = {}
    for field, names in aliases(section, home).items():
        for name in names:
            if name in keys:
                found[field] = keys.index(name)
                break
    return found
