"""The 14 费用类别 of the 医保结算清单 and the names HIS systems use for them (TOML config)."""

from __future__ import annotations

import tomllib
import unicodedata
from functools import lru_cache
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "fee_categories.toml"
UNCLASSIFIED = "unclassified"


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower().replace(" ", "")
    return text


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    with CONFIG.open("rb") as handle:
        raw = tomllib.load(handle)["categories"]
    names = {code: entry["name"] for code, entry in raw.items()}
    lookup: dict[str, str] = {}
    for code, entry in raw.items():
        lookup[_key(code)] = code
        lookup[_key(str(int(code)))] = code
        for alias in (entry["name"], *entry.get("aliases", [])):
            lookup[_key(alias)] = code
    return names, lookup


def category_names() -> dict[str, str]:
    """``{"01": "床位费", …, "14": "其他费"}``."""
    return dict(_tables()[0])


def normalize_category(raw: object) -> str | None:
    """'6', '06', '手术费', '手术', '06 手术费', '06-手术费' → '06'; unknown → None."""
    if raw is None:
        return None
    text = _key(str(raw))
    if not text:
        return None
    lookup = _tables()[1]
    if text in lookup:
        return lookup[text]
    if text.endswith("费") and text[:-1] in lookup:
        return lookup[text[:-1]]
    # "06 手术费" / "06-手术费" / "06手术费": a code followed by a name that agrees with it
    digits = "".join(ch for ch in text[:2] if ch.isdigit())
    if len(digits) == 2 and digits in _tables()[0]:
        rest = text[2:].lstrip("-_.:、")
        if not rest or normalize_category(rest) == digits:
            return digits
    return None
