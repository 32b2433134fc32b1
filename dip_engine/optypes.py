"""Procedure types (手术 / 介入 → SS, 治疗性操作 → ZLXCZ, 诊断性操作 → ZDXCZ) for comprehensive groups.

Each region decides them, so they are an imported table; ``default_type`` is the documented rule
(``config/optype_default.toml``) for codes the table does not type. Results that relied on the
rule are flagged by the grouper.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFAULT_RULE_FILE = Path(__file__).with_name("config") / "optype_default.toml"

#: Published type names → type codes.
TYPE_NAMES = {
    "手术": "SS",
    "相关手术": "SS",
    "介入治疗": "JR",
    "介入": "JR",
    "介入手术": "JR",
    "治疗性操作": "ZLXCZ",
    "诊断性操作": "ZDXCZ",
}
TYPE_CODES = ("SS", "JR", "ZLXCZ", "ZDXCZ")


@dataclass(frozen=True, slots=True)
class OpTypeEntry:
    code: str
    type_code: str | None
    entry_option: str | None = None
    name: str | None = None


@cache
def _rule() -> dict:
    with DEFAULT_RULE_FILE.open("rb") as fh:
        rule = tomllib.load(fh)
    for key in (
        "diagnostic_words",
        "therapeutic_words",
        "surgical_words",
        "minor_procedure_words",
        "therapy_words_nuclear",
    ):
        rule[key + "_re"] = re.compile("|".join(map(re.escape, rule[key])))
    return rule


def default_type(code: str, name: str | None = None) -> str:
    """The documented default type of an ICD-9-CM-3 code (see ``config/optype_default.toml``)."""
    r = _rule()
    try:
        category = int(code[:2])
    except (TypeError, ValueError):
        return "SS"
    if category in r["diagnostic_categories"]:
        return "ZDXCZ"
    if not name:
        return "SS" if category <= r["last_operation_category"] else "ZLXCZ"
    dx = r["diagnostic_words_re"].search(name) is not None
    tx = r["therapeutic_words_re"].search(name) is not None
    if category == r["nuclear_category"]:
        return "ZLXCZ" if r["therapy_words_nuclear_re"].search(name) else "ZDXCZ"
    if category == r["examination_category"]:
        return "ZLXCZ" if tx else "ZDXCZ"
    if category in r["therapy_categories"]:
        return "ZDXCZ" if dx and not tx else "ZLXCZ"
    surgical = r["surgical_words_re"].search(name) is not None
    if dx and not surgical:
        return "ZDXCZ"
    if tx and not surgical and ("术" not in name or r["minor_procedure_words_re"].search(name)):
        return "ZLXCZ"
    return "SS"


class OpTypeTable:
    """Imported procedure types keyed by upper-cased code, with the default rule as fallback.

    ``names``: optional code → name lookup (the terminology) so the default rule can read names
    of codes the table does not carry.
    """

    def __init__(
        self,
        entries: Mapping[str, OpTypeEntry] | None = None,
        source: str | None = None,
        names: Callable[[str], str | None] | None = None,
    ) -> None:
        self.entries: dict[str, OpTypeEntry] = {k.upper(): v for k, v in (entries or {}).items()}
        self.source = source
        self._names = names
        self._cache: dict[str, tuple[str, bool]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict:
        return {"entries": self.entries, "source": self.source, "_names": None, "_cache": {}}

    def __setstate__(self, state: dict) -> None:
        self.entries = state["entries"]
        self.source = state["source"]
        self._names = state["_names"]
        self._cache = {}

    def classify(self, code: str) -> tuple[str, bool]:
        """(type code, from the default rule) for a procedure code."""
        key = code.upper()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        entry = self.entries.get(key)
        if entry is not None and entry.type_code:
            hit = (entry.type_code, False)
        else:
            name = entry.name if entry is not None and entry.name else None
            if name is None and self._names is not None:
                try:
                    name = self._names(code)
                except Exception:  # a terminology hiccup must not break grouping
                    name = None
            hit = (default_type(code, name), True)
        if len(self._cache) < 200_000:
            self._cache[key] = hit
        return hit

    def codes_with_option(self, options: set[str]) -> frozenset[str]:
        """Upper-cased codes whose 入选类型 is one of ``options`` (e.g. {"选择性"})."""
        return frozenset(k for k, e in self.entries.items() if e.entry_option in options)


def type_code_of(type_text: str, type_code: str | None) -> str | None:
    """Normalise a published type (name or code) to SS / JR / ZLXCZ / ZDXCZ, or None."""
    code = (type_code or "").strip().upper()
    if code in TYPE_CODES:
        return code
    text = (type_text or "").strip()
    if text.upper() in TYPE_CODES:
        return text.upper()
    return TYPE_NAMES.get(text)
